package host

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuardRefusesMalformedHTTP2Requests(t *testing.T) {
	reached := false
	h := guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true }))
	for _, c := range []struct {
		method, uri, host string
		ok                bool
	}{
		{"GET", "/a?b=c", "example.com", true},
		{"M-SEARCH", "*", "example.com:80", true},
		{"GET /evil", "/a", "x", false},
		{"G(ET", "/a", "x", false},
		{"", "/a", "x", false},
		{"GET\t", "/a", "x", false},
		{"GET", "/a b", "x", false},
		{"GET", "/a?x y", "x", false},
		{"GET", "/a\x00", "x", false},
		{"GET", "/a\x7f", "x", false},
		{"GET", "/a", "a b", false},
		{"GET", "/a", "a\r\nX: 1", false},
	} {
		reached = false
		r := httptest.NewRequest("GET", "/", nil)
		r.ProtoMajor, r.ProtoMinor, r.Proto = 2, 0, "HTTP/2.0"
		r.Method, r.RequestURI, r.Host = c.method, c.uri, c.host
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if reached != c.ok || (!c.ok && w.Code != http.StatusBadRequest) {
			t.Errorf("%q %q %q: reached %v, status %d", c.method, c.uri, c.host, reached, w.Code)
		}
	}
}

func TestGuardClosesAfterAmbiguousFraming(t *testing.T) {
	h := guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clear(w.Header()) // a handler that drops what was set before must not lose the close
		w.Header().Set("Connection", "keep-alive")
		switch r.URL.Path {
		case "/copy":
			_, _ = io.Copy(w, strings.NewReader("sent with ReadFrom"))
		case "/flush":
			w.(http.Flusher).Flush()
		default:
			http.Error(w, "nope", http.StatusTeapot)
		}
	}))
	for _, c := range []struct {
		name    string
		minor   int
		te      []string
		path    string
		closing bool
	}{
		{"HTTP/1.1 chunked", 1, []string{"chunked"}, "/", true},
		{"HTTP/1.1 chunked, ReadFrom", 1, []string{"chunked"}, "/copy", true},
		{"HTTP/1.1 chunked, Flush", 1, []string{"chunked"}, "/flush", true},
		{"HTTP/1.0", 0, nil, "/", true},
		{"HTTP/1.1 with a length", 1, nil, "/", false},
	} {
		r := httptest.NewRequest("POST", c.path, strings.NewReader("x"))
		r.ProtoMinor, r.TransferEncoding = c.minor, c.te
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if got := w.Result().Header.Get("Connection"); (got == "close") != c.closing {
			t.Errorf("%s: Connection %q", c.name, got)
		}
	}
}

// BenchmarkGuard is the per-request cost of guard on a typical HTTP/1.1
// request (one branch) and an HTTP/2 one (method, target and authority
// checked).
func BenchmarkGuard(b *testing.B) {
	h := guard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, proto := range []int{1, 2} {
		b.Run(fmt.Sprintf("HTTP%d", proto), func(b *testing.B) {
			r := httptest.NewRequest("GET", "/api/books/123?sort=title&page=2", nil)
			r.Host = "www.example.com"
			r.ProtoMajor = proto
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}
