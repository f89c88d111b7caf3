package httpwasm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/internal/framing"
	"github.com/wasmsrv/wasmsrv/internal/statuswriter"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// DefaultBufferLimit bounds each body the host holds for a guest (a body it
// wrote, a request body kept with buffer_request, a response kept with
// buffer_response) when Config.BufferLimit is 0.
const DefaultBufferLimit = 16 << 20

// Config configures a Handler.
type Config struct {
	// App names the app in logs.
	App string
	// DefaultStatus answers a request the guest passed on (next=1) when it
	// runs as an app, with nothing after it (default 404).
	DefaultStatus int
	// BufferLimit bounds each body held for the guest (DefaultBufferLimit if 0):
	// a guest writing more traps; a buffered response larger than it is a 502.
	BufferLimit int64
	// BodyLimit caps request bodies (413 beyond it); 0: none.
	BodyLimit int64
	// BodyBuffer reads request bodies ahead before an instance is taken.
	BodyBuffer bodybuf.Config
	// RetryAfter is the Retry-After seconds sent with a 503 (default 1).
	RetryAfter int
}

// Handler runs an http-wasm guest on the instances of a pool: as an app
// (ServeHTTP) or as middleware before another handler (Wrap).
type Handler struct {
	pool  *runtime.SyncPool
	cfg   Config
	log   *slog.Logger
	bufs  bodybuf.Pool
	exs   sync.Pool
	retry string
	final http.Handler // the app shape's next: DefaultStatus
}

// New returns a handler for pool's guest.
func New(pool *runtime.SyncPool, cfg Config, log *slog.Logger) *Handler {
	if log == nil {
		log = slog.Default()
	}
	if cfg.DefaultStatus == 0 {
		cfg.DefaultStatus = http.StatusNotFound
	}
	if cfg.BufferLimit <= 0 {
		cfg.BufferLimit = DefaultBufferLimit
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 1
	}
	h := &Handler{pool: pool, cfg: cfg, log: log.With("app", cfg.App), retry: strconv.Itoa(cfg.RetryAfter)}
	h.exs.New = func() any { return new(exchange) }
	status := cfg.DefaultStatus
	h.final = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(status)
	})
	return h
}

// ServeHTTP runs the guest as the whole handler: a request it passes on gets
// DefaultStatus.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serve(w, r, h.final) }

// Wrap returns the guest as middleware in front of next.
func (h *Handler) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.serve(w, r, next) })
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	if h.cfg.BodyLimit > 0 && r.ContentLength > h.cfg.BodyLimit {
		w.Header().Set("Connection", "close")
		http.Error(w, "413 request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, ok := h.bufs.ReadAhead(w, r, h.cfg.BodyBuffer, h.cfg.BodyLimit, h.log)
	if !ok {
		return
	}
	defer h.bufs.Release(body)
	in, err := h.pool.Acquire(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st := instanceState(in)
	ex := h.exs.Get().(*exchange)
	defer func() {
		ex.clear()
		h.exs.Put(ex)
	}()
	ex.reset(r, st.features, h.cfg.BufferLimit)
	st.ex = ex
	l := lease{h: h, in: in, st: st, held: true}
	release := l.release
	defer l.release(nil) // a panic from next: the instance goes back all the same

	timeout := h.pool.RequestTimeout()
	ctxNext, err := in.HandleRequest(timeout)
	if err != nil {
		release(err)
		h.fail(w, r, err)
		return
	}
	if uint32(ctxNext) == 0 {
		// The guest answered (or accepted the empty 200): the instance goes back
		// before a slow client takes the bytes.
		release(nil)
		h.writeOut(w, ex)
		return
	}
	reqCtx := uint32(ctxNext >> 32)
	r2 := ex.nextRequest()
	buffered := ex.has(FeatureBufferResponse)
	var rec *recorder
	var sw *statuswriter.Writer
	if buffered {
		ex.respBody.Reset()
		ex.rec = recorder{header: ex.respHeader, body: &ex.respBody, limit: ex.limit}
		rec = &ex.rec
	} else {
		dst := w.Header()
		for k, v := range ex.respHeader {
			dst[k] = v // what the guest set for the response in handle_request
		}
		ex.sw = statuswriter.Writer{ResponseWriter: w}
		sw = &ex.sw
	}
	panicked := runNext(next, rec, sw, r2)
	ex.phase = phaseResponse
	ex.respWritten, ex.respReadAt = false, 0
	if buffered {
		ex.status = rec.status
		if ex.status == 0 {
			ex.status = http.StatusOK
		}
		ex.respTrailer = rec.trailers()
		if rec.overflow {
			h.log.Error("buffer_response: the next handler's response is larger than the buffer limit", "limit", ex.limit)
			release(nil)
			http.Error(w, "502 bad gateway: response too large to buffer", http.StatusBadGateway)
			return
		}
	} else {
		ex.live, ex.liveHeader, ex.liveStatus = true, w.Header(), sw.Status()
		if ex.liveStatus == 0 {
			ex.liveStatus = http.StatusOK
		}
	}
	err = in.HandleResponse(reqCtx, panicked != nil, timeout)
	release(err)
	if panicked != nil {
		panic(panicked)
	}
	if err != nil {
		if buffered {
			h.fail(w, r, err)
			return
		}
		h.log.Error("handle_response failed after the response was sent", "err", err)
		return
	}
	if buffered {
		h.writeOut(w, ex)
	}
}

// lease is an instance held for one request.
type lease struct {
	h    *Handler
	in   *runtime.Instance
	st   *state
	held bool
}

// release gives the instance back once; err is its last call's.
func (l *lease) release(err error) {
	if l.held {
		l.held = false
		l.st.ex = nil
		l.h.pool.Release(l.in, err)
	}
}

// runNext calls next, into rec when buffering, else through sw; it returns
// what next panicked with, if it did.
func runNext(next http.Handler, rec *recorder, sw *statuswriter.Writer, r *http.Request) (panicked any) {
	defer func() { panicked = recover() }()
	if rec != nil {
		next.ServeHTTP(rec, r)
	} else {
		next.ServeHTTP(sw, r)
	}
	return nil
}

// instanceState returns the http-wasm state of an instance.
func instanceState(in *runtime.Instance) *state {
	if st, ok := in.Value(stateKey{}).(*state); ok {
		return st
	}
	st := &state{}
	in.SetValue(stateKey{}, st)
	return st
}

// nextRequest is the request the next handler gets: the guest's changes and
// the body as the guest left it.
func (ex *exchange) nextRequest() *http.Request {
	r := ex.r
	body, n := ex.nextBody()
	if body != ex.reqRest {
		r.Body = readCloser{body}
		r.ContentLength = n
		if n >= 0 {
			r.Header.Set("Content-Length", strconv.FormatInt(n, 10))
		} else {
			r.Header.Del("Content-Length")
		}
	}
	return r
}

type readCloser struct {
	r interface{ Read([]byte) (int, error) }
}

func (rc readCloser) Read(p []byte) (int, error) { return rc.r.Read(p) }
func (rc readCloser) Close() error               { return nil }

// writeOut sends the response the guest holds: its own, or a buffered one it
// may have changed.
func (h *Handler) writeOut(w http.ResponseWriter, ex *exchange) {
	framing.RemoveHopByHop(ex.respHeader)
	delete(ex.respHeader, "Content-Length")
	dst := w.Header()
	for k, v := range ex.respHeader {
		dst[k] = v
	}
	trailers := len(ex.respTrailer) > 0 && ex.has(FeatureTrailers)
	body := framing.BodyAllowed(ex.status)
	if body && !trailers {
		dst.Set("Content-Length", strconv.Itoa(ex.respBody.Len()))
	}
	if trailers {
		for k := range ex.respTrailer {
			dst.Add("Trailer", k) // declared before the head; the values follow the body
		}
	}
	w.WriteHeader(ex.status)
	if body {
		_, _ = w.Write(ex.respBody.Bytes())
	}
	if trailers {
		for k, v := range ex.respTrailer {
			dst[k] = v
		}
	}
}

// fail answers a request the guest could not serve.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ge *runtime.GuestError
	switch {
	case errors.Is(err, runtime.ErrQueueFull), errors.Is(err, runtime.ErrQueueTimeout),
		errors.Is(err, runtime.ErrUnavailable), errors.Is(err, runtime.ErrPoolClosed):
		h.log.Warn("request not served", "err", err)
		w.Header().Set("Retry-After", h.retry)
		http.Error(w, "503 service unavailable: "+err.Error(), http.StatusServiceUnavailable)
	case errors.Is(err, runtime.ErrDeadline):
		h.log.Error("request deadline exceeded; instance replaced", "method", r.Method, "path", r.URL.Path)
		http.Error(w, "504 gateway timeout: the app did not answer in time", http.StatusGatewayTimeout)
	case errors.As(err, &ge):
		h.log.Error("guest failed; instance replaced", "err", err)
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
	case errors.Is(err, context.Canceled):
		// the client went away while waiting
	default:
		h.log.Error("request failed", "err", err)
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
	}
}

// recorder holds the next handler's response for buffer_response.
type recorder struct {
	header   http.Header
	status   int
	body     *bytes.Buffer
	limit    int64
	overflow bool
}

func (rc *recorder) Header() http.Header { return rc.header }

func (rc *recorder) WriteHeader(code int) {
	if rc.status == 0 && code >= 200 {
		rc.status = code
	}
}

func (rc *recorder) Write(p []byte) (int, error) {
	if rc.status == 0 {
		rc.status = http.StatusOK
	}
	if int64(rc.body.Len()+len(p)) > rc.limit {
		rc.overflow = true
		return 0, errors.New("httpwasm: buffered response over the buffer limit")
	}
	return rc.body.Write(p)
}

// Flush is a no-op: the response is held until handle_response.
func (rc *recorder) Flush() {}

// trailers moves the trailers the next handler set (declared in Trailer, or
// with http.TrailerPrefix) out of the header map.
func (rc *recorder) trailers() http.Header {
	var t http.Header
	add := func(k string, v []string) {
		if t == nil {
			t = http.Header{}
		}
		t[k] = v
	}
	for _, decl := range rc.header["Trailer"] {
		for name := range strings.SplitSeq(decl, ",") {
			name = http.CanonicalHeaderKey(strings.TrimSpace(name))
			if v, ok := rc.header[name]; ok && name != "" {
				add(name, v)
				delete(rc.header, name)
			}
		}
	}
	delete(rc.header, "Trailer")
	for k, v := range rc.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(http.CanonicalHeaderKey(name), v)
			delete(rc.header, k)
		}
	}
	return t
}
