package static

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func tree(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "www")
	outside = filepath.Join(base, "secret.txt")
	files := map[string]string{
		"index.html":        "<h1>home</h1>",
		"app.js":            strings.Repeat("console.log(1);", 50),
		"app.js.gz":         "GZ",
		"app.js.br":         "BR",
		"hello.txt":         "hello, world",
		"docs/index.html":   "docs",
		"empty/readme.md":   "md",
		".env":              "SECRET=1",
		".well-known/x.txt": "wk",
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(outside, []byte("top secret"), 0o644)
	if err := os.Symlink(outside, filepath.Join(root, "escape.txt")); err != nil {
		t.Fatal(err)
	}
	// Relative links that stay inside are fine; os.Root treats absolute
	// targets as escapes.
	os.Symlink("hello.txt", filepath.Join(root, "inside.txt"))
	// Precompressed siblings must not be older than the original.
	later := time.Now().Add(time.Minute)
	for _, n := range []string{"app.js.gz", "app.js.br"} {
		os.Chtimes(filepath.Join(root, n), later, later)
	}
	os.Symlink(filepath.Dir(outside), filepath.Join(root, "updir"))
	return root, outside
}

func serve(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return srv
}

func do(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{Transport: &http.Transport{DisableCompression: true}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// raw sends a request line as-is (clients would clean the path).
func raw(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func TestStatic(t *testing.T) {
	root, _ := tree(t)
	srv := serve(t, Config{Root: root})
	tests := []struct {
		name, path string
		hdr        []string
		code       int
		body       string
		wantHdr    map[string]string
	}{
		{"file", "/hello.txt", nil, 200, "hello, world", map[string]string{"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "public, max-age=3600"}},
		{"index", "/", nil, 200, "<h1>home</h1>", map[string]string{"Cache-Control": "no-cache"}},
		{"dir index", "/docs/", nil, 200, "docs", nil},
		{"dir redirect", "/docs?x=1", nil, 301, "", map[string]string{"Location": "/docs/?x=1"}},
		{"no listing", "/empty/", nil, 404, "", nil},
		{"range 206", "/hello.txt", []string{"Range", "bytes=7-"}, 206, "world", map[string]string{"Content-Range": "bytes 7-11/12"}},
		{"range 416", "/hello.txt", []string{"Range", "bytes=100-"}, 416, "", nil},
		{"gzip sibling", "/app.js", []string{"Accept-Encoding", "gzip"}, 200, "GZ", map[string]string{"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}},
		{"br preferred", "/app.js", []string{"Accept-Encoding", "gzip, br"}, 200, "BR", map[string]string{"Content-Encoding": "br"}},
		{"br refused", "/app.js", []string{"Accept-Encoding", "br;q=0, gzip"}, 200, "GZ", nil},
		{"identity", "/app.js", nil, 200, strings.Repeat("console.log(1);", 50), map[string]string{"Content-Encoding": ""}},
		{"dotfile", "/.env", nil, 404, "", nil},
		{"well-known", "/.well-known/x.txt", nil, 200, "wk", nil},
		{"symlink inside", "/inside.txt", nil, 200, "hello, world", nil},
		{"symlink escape", "/escape.txt", nil, 403, "", nil},
		{"symlinked dir escape", "/updir/secret.txt", nil, 403, "", nil},
		{"missing", "/nope", nil, 404, "", nil},
		{"under file", "/hello.txt/x", nil, 404, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+tt.path, tt.hdr...)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d want %d (%q)", resp.StatusCode, tt.code, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body %q want %q", body, tt.body)
			}
			for k, v := range tt.wantHdr {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q want %q", k, got, v)
				}
			}
		})
	}
}

func TestConditional(t *testing.T) {
	root, _ := tree(t)
	srv := serve(t, Config{Root: root, Revalidate: 50 * time.Millisecond})
	resp, _ := do(t, "GET", srv.URL+"/hello.txt")
	et, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if et == "" || lm == "" {
		t.Fatalf("no validators: %v", resp.Header)
	}
	if r, _ := do(t, "GET", srv.URL+"/hello.txt", "If-None-Match", et); r.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", r.StatusCode)
	}
	if r, _ := do(t, "GET", srv.URL+"/hello.txt", "If-Modified-Since", lm); r.StatusCode != 304 {
		t.Errorf("If-Modified-Since: %d", r.StatusCode)
	}
	if r, _ := do(t, "GET", srv.URL+"/hello.txt", "If-None-Match", `"other"`); r.StatusCode != 200 {
		t.Errorf("stale ETag: %d", r.StatusCode)
	}
	// The gzip sibling has its own validator.
	rz, _ := do(t, "GET", srv.URL+"/app.js", "Accept-Encoding", "gzip")
	rp, _ := do(t, "GET", srv.URL+"/app.js")
	if rz.Header.Get("ETag") == rp.Header.Get("ETag") {
		t.Error("encoded and identity variants share an ETag")
	}
	// A changed file gets a new ETag once the cached metadata is revalidated.
	os.Chtimes(filepath.Join(root, "hello.txt"), time.Now(), time.Now().Add(time.Hour))
	time.Sleep(60 * time.Millisecond)
	if r, _ := do(t, "GET", srv.URL+"/hello.txt", "If-None-Match", et); r.StatusCode != 200 {
		t.Errorf("after change: %d", r.StatusCode)
	}
	if r, body := do(t, "HEAD", srv.URL+"/hello.txt"); r.StatusCode != 200 || body != "" || r.ContentLength != 12 {
		t.Errorf("HEAD: %d %q %d", r.StatusCode, body, r.ContentLength)
	}
}

func TestTraversalOnTheWire(t *testing.T) {
	root, _ := tree(t)
	srv := serve(t, Config{Root: root})
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, target := range []string{"/../secret.txt", "/%2e%2e/secret.txt", "/docs/../../secret.txt", "/..%2fsecret.txt", "/a\\..\\secret.txt"} {
		if code := raw(t, addr, target); code != 404 && code != 403 && code != 400 {
			t.Errorf("%s: %d", target, code)
		}
	}
}

func TestFallbackAndListing(t *testing.T) {
	root, _ := tree(t)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "app %s %s", r.Method, r.URL.Path) })
	srv := serve(t, Config{Root: root, Fallback: app, Listing: true})
	if _, body := do(t, "GET", srv.URL+"/users/42"); body != "app GET /users/42" {
		t.Errorf("fallback: %q", body)
	}
	if _, body := do(t, "GET", srv.URL+"/hello.txt"); body != "hello, world" {
		t.Errorf("file before fallback: %q", body)
	}
	if _, body := do(t, "POST", srv.URL+"/hello.txt"); body != "app POST /hello.txt" {
		t.Errorf("POST goes to the app: %q", body)
	}
	if r, body := do(t, "GET", srv.URL+"/empty/"); r.StatusCode != 200 || !strings.Contains(body, `href="readme.md"`) {
		t.Errorf("listing: %d %q", r.StatusCode, body)
	}
}

func BenchmarkSmallFile(b *testing.B) {
	root := b.TempDir()
	os.WriteFile(filepath.Join(root, "a.txt"), []byte("hello"), 0o644)
	h, _ := New(Config{Root: root})
	req := httptest.NewRequest("GET", "/a.txt", nil)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}

// Small files are served from memory between revalidations, and changes
// show up after the interval; with a negative interval, at once.
func TestSmallFileCache(t *testing.T) {
	for _, tt := range []struct {
		name       string
		revalidate time.Duration
		wait       time.Duration
	}{{"cached", 80 * time.Millisecond, 100 * time.Millisecond}, {"uncached", -1, 0}} {
		t.Run(tt.name, func(t *testing.T) {
			root, _ := tree(t)
			srv := serve(t, Config{Root: root, Revalidate: tt.revalidate})
			if _, body := do(t, "GET", srv.URL+"/hello.txt"); body != "hello, world" {
				t.Fatalf("%q", body)
			}
			p := filepath.Join(root, "hello.txt")
			os.WriteFile(p, []byte("changed content"), 0o644)
			os.Chtimes(p, time.Now(), time.Now().Add(time.Minute))
			if tt.revalidate > 0 {
				if _, body := do(t, "GET", srv.URL+"/hello.txt"); body != "hello, world" {
					t.Errorf("within the interval: %q", body)
				}
			}
			time.Sleep(tt.wait)
			if _, body := do(t, "GET", srv.URL+"/hello.txt"); body != "changed content" {
				t.Errorf("after revalidation: %q", body)
			}
			os.Remove(p)
			time.Sleep(tt.wait)
			if r, _ := do(t, "GET", srv.URL+"/hello.txt"); r.StatusCode != 404 {
				t.Errorf("removed file: %d", r.StatusCode)
			}
		})
	}
}

// Files above the small-file limit go through the sendfile path.
func TestLargeFileAndRange(t *testing.T) {
	root := t.TempDir()
	big := strings.Repeat("0123456789", 20000)
	os.WriteFile(filepath.Join(root, "big.txt"), []byte(big), 0o644)
	srv := serve(t, Config{Root: root})
	if _, body := do(t, "GET", srv.URL+"/big.txt"); body != big {
		t.Errorf("big file: %d bytes", len(body))
	}
	if r, body := do(t, "GET", srv.URL+"/big.txt", "Range", "bytes=100000-100009"); r.StatusCode != 206 || body != "0123456789" {
		t.Errorf("range: %d %q", r.StatusCode, body)
	}
}
