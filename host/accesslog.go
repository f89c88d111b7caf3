package host

import (
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// AccessLog wraps h with one structured log record per request (method, path,
// status, bytes, duration, client). The recorder is pooled.
func AccessLog(h http.Handler, log *slog.Logger) http.Handler {
	pool := sync.Pool{New: func() any { return new(recorder) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := pool.Get().(*recorder)
		*rec = recorder{ResponseWriter: w}
		defer func() {
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", status), slog.Int64("bytes", rec.bytes),
				slog.Duration("took", time.Since(start)), slog.String("client", r.RemoteAddr),
				slog.String("proto", r.Proto))
			*rec = recorder{}
			pool.Put(rec)
		}()
		h.ServeHTTP(rec, r)
	})
}

// recorder captures status and size; Unwrap keeps http.ResponseController
// (Flush, Hijack, deadlines) working through it.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	// An interim response (100 Continue, 103 Early Hints) is not the answer:
	// the final status follows it.
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps net/http's sendfile path for static files when the access
// log is on: io.Copy finds no ReaderFrom on an embedded interface.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

// Flush lets handlers that type-assert http.Flusher stream through the recorder.
func (r *recorder) Flush() { _ = http.NewResponseController(r.ResponseWriter).Flush() }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
