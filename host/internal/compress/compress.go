// Package compress gzip- or zstd-encodes responses of compressible types
// for clients that accept it, using klauspost/compress's gzhttp (which
// negotiates Accept-Encoding, skips already-encoded and small bodies, and
// fixes up ETag, Vary and Content-Length).
package compress

import (
	"net/http"
	"slices"
	"strings"

	"github.com/klauspost/compress/gzhttp"
)

// types are the media types worth compressing; everything else (images,
// video, archives, already-compressed data) passes through.
func types() []string {
	return []string{
		"text/html", "text/plain", "text/css", "text/csv", "text/xml", "text/javascript",
		"text/event-stream", "application/javascript", "application/json", "application/xml",
		"application/wasm", "application/manifest+json", "image/svg+xml",
	}
}

// New returns middleware compressing responses of at least minSize bytes
// (0 picks gzhttp's 1 KiB default).
func New(minSize int) (func(http.Handler) http.Handler, error) {
	wrap, err := gzhttp.NewWrapper(
		gzhttp.ContentTypes(types()),
		gzhttp.MinSize(orDefault(minSize, gzhttp.DefaultMinSize)),
		gzhttp.EnableZstd(true),
		// Inflating request bodies would bypass body-size limits.
		gzhttp.AllowCompressedRequests(false),
	)
	if err != nil {
		return nil, err
	}
	return func(next http.Handler) http.Handler {
		wrapped := wrap(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Requests that cannot get a compressed answer skip the wrapper,
			// so static files keep net/http's sendfile path.
			if !wantsCompression(r.Header.Get("Accept-Encoding")) || r.Header.Get("Upgrade") != "" {
				next.ServeHTTP(w, r)
				return
			}
			// gzhttp adds "Vary: Accept-Encoding" before the handler runs; a
			// handler that names it too (a static file, an upstream, an app, a
			// cached answer) would send it twice.
			wrapped.ServeHTTP(&varyOnce{ResponseWriter: w}, r)
		})
	}, nil
}

// varyOnce drops repeated Vary fields from the head when it is written.
type varyOnce struct {
	http.ResponseWriter
	written bool
}

func (v *varyOnce) WriteHeader(code int) {
	if !v.written && code >= 200 {
		v.written = true
		dedupVary(v.Header())
	}
	v.ResponseWriter.WriteHeader(code)
}

func (v *varyOnce) Write(p []byte) (int, error) {
	if !v.written {
		v.written = true
		dedupVary(v.Header())
	}
	return v.ResponseWriter.Write(p)
}

func (v *varyOnce) Flush() {
	if !v.written {
		v.written = true
		dedupVary(v.Header())
	}
	_ = http.NewResponseController(v.ResponseWriter).Flush() // http.Flusher has no error to report
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (v *varyOnce) Unwrap() http.ResponseWriter { return v.ResponseWriter }

// dedupVary rewrites the Vary values with each field name once (compared without
// case), keeping the first spelling and the order; a head without repeats is left as
// it is.
func dedupVary(h http.Header) {
	vals := h["Vary"]
	if len(vals) < 2 && (len(vals) == 0 || !strings.Contains(vals[0], ",")) {
		return
	}
	var names []string
	dup := false
	for _, v := range vals {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			if slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, f) }) {
				dup = true
				continue
			}
			names = append(names, f)
		}
	}
	if dup {
		h["Vary"] = []string{strings.Join(names, ", ")}
	}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

func wantsCompression(ae string) bool {
	return ae != "" && (strings.Contains(ae, "gzip") || strings.Contains(ae, "zstd") || strings.Contains(ae, "*"))
}
