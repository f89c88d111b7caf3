// Package compress gzip- or zstd-encodes responses of compressible types
// for clients that accept it, using klauspost/compress's gzhttp (which
// negotiates Accept-Encoding, skips already-encoded and small bodies, and
// fixes up ETag, Vary and Content-Length).
package compress

import (
	"net/http"
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
			wrapped.ServeHTTP(w, r)
		})
	}, nil
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
