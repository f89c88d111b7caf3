// Package wasmhttp runs an ordinary net/http Handler inside a wasmsrv guest: the std
// ServeMux with its patterns, or any router. Streaming works through http.Flusher
// (or http.ResponseController), and the request body streams from the host.
//
//	func init() {
//		mux := http.NewServeMux()
//		mux.HandleFunc("GET /items/{id}", getItem)
//		wasmhttp.Handle(mux)
//	}
//	func main() {}
//
// Build with GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared.
package wasmhttp

import (
	"net/http"
	"net/url"
	"strconv"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

// Handle makes h the app's handler. Call it from init.
func Handle(h http.Handler) { wasmsrv.Handle(Adapter(h)) }

// HandleFunc makes f the app's handler. Call it from init.
func HandleFunc(f func(http.ResponseWriter, *http.Request)) { Handle(http.HandlerFunc(f)) }

// Adapter converts an http.Handler to a wasmsrv.Handler.
func Adapter(h http.Handler) wasmsrv.Handler {
	return wasmsrv.HandlerFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		req, err := NewRequest(r)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			w.WriteString("400 bad request: " + err.Error() + "\n")
			return
		}
		rw := &responseWriter{w: w, header: http.Header{}}
		h.ServeHTTP(rw, req)
		rw.finish()
	})
}

// NewRequest builds the *http.Request a net/http handler expects from a wasmsrv
// request. URL.Path is the path below the mount point; the mount point itself is in
// the X-Forwarded-Prefix-style RootPath (available through RootPath).
func NewRequest(r *wasmsrv.Request) (*http.Request, error) {
	uri := r.Path
	if r.RawQuery != "" {
		uri += "?" + r.RawQuery
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = r.Scheme, r.Host
	h := make(http.Header, r.Header.Len())
	r.Header.Each(func(name, value string) {
		if name == "host" {
			return // net/http keeps Host in Request.Host, not in Header
		}
		k := http.CanonicalHeaderKey(name)
		h[k] = append(h[k], value)
	})
	req := &http.Request{
		Method:        r.Method,
		URL:           u,
		Proto:         "HTTP/" + strconv.Itoa(r.ProtoMajor) + "." + strconv.Itoa(r.ProtoMinor),
		ProtoMajor:    r.ProtoMajor,
		ProtoMinor:    r.ProtoMinor,
		Header:        h,
		Body:          body{r.Body},
		ContentLength: r.ContentLength,
		Host:          r.Host,
		RemoteAddr:    r.RemoteAddr,
		RequestURI:    r.RootPath + uri,
	}
	if r.ProtoMajor == 2 {
		req.Proto = "HTTP/2.0"
	}
	if r.ContentLength < 0 && r.ProtoMajor == 1 {
		// The host frames bodies itself and keeps hop-by-hop fields such as
		// Transfer-Encoding from the guest (SPEC §2.1); an HTTP/1 body of
		// unknown length was chunked, which net/http reports here.
		req.TransferEncoding = []string{"chunked"}
	}
	if r.RootPath != "" {
		req = req.WithContext(withRootPath(req.Context(), r.RootPath))
	}
	return req, nil
}

// body adapts the SDK body to io.ReadCloser.
type body struct{ b *wasmsrv.Body }

func (b body) Read(p []byte) (int, error) { return b.b.Read(p) }
func (b body) Close() error               { return nil }

// responseWriter implements http.ResponseWriter and http.Flusher over the SDK's
// buffered writer. Headers are copied to the SDK at the first write, as net/http
// freezes them at WriteHeader.
type responseWriter struct {
	w           *wasmsrv.ResponseWriter
	header      http.Header
	wroteHeader bool
}

func (rw *responseWriter) Header() http.Header { return rw.header }

func (rw *responseWriter) WriteHeader(status int) {
	if rw.wroteHeader {
		return
	}
	if status < 100 || status > 999 {
		panic("wasmhttp: invalid WriteHeader code " + strconv.Itoa(status))
	}
	if status >= 100 && status < 200 {
		return // informational responses are not forwarded in ABI v1
	}
	rw.wroteHeader = true
	out := rw.w.Header()
	for k, vs := range rw.header {
		for _, v := range vs {
			out.Add(k, v)
		}
	}
	rw.w.WriteHeader(status)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if !rw.wroteHeader {
		if rw.header.Get("Content-Type") == "" && len(p) > 0 {
			rw.header.Set("Content-Type", http.DetectContentType(p))
		}
		rw.WriteHeader(http.StatusOK)
	}
	return rw.w.Write(p)
}

// Flush implements http.Flusher: buffered bytes go to the client now.
func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// FlushError is what http.ResponseController.Flush calls.
func (rw *responseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.w.Flush()
}

func (rw *responseWriter) finish() {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
}
