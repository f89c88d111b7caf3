package site

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The per-route and site-wide guards work through the assembled site:
// body limits (also for chunked uploads to an upstream), the filter, and
// compression of upstream answers.
func TestSiteGuards(t *testing.T) {
	text := strings.Repeat("compress me please ", 500)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/big" {
			io.WriteString(w, text)
			return
		}
		fmt.Fprintf(w, "read %d", n)
	}))
	defer up.Close()
	f := start(t, head+fmt.Sprintf(`
[upstreams.u]
servers = [{ url = %q }]

[[routes]]
path = "/small"
upstream = "u"
max_body = "10"
max_header = "1KiB"

[[routes]]
upstream = "u"

[[filter.rules]]
name = "no-admin"
path = "^/admin"
status = 404
`, up.URL), nil)
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	post := func(path string, body io.Reader, n int64) int {
		req, _ := http.NewRequest("POST", f.url+path, body)
		req.ContentLength = n
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name string
		got  func() int
		want int
	}{
		{"body within limit", func() int { return post("/small/x", strings.NewReader("12345"), 5) }, 200},
		{"declared body over limit", func() int { return post("/small/x", strings.NewReader(strings.Repeat("x", 50)), 50) }, 413},
		{"chunked body over limit", func() int { return post("/small/x", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))), -1) }, 413},
		{"other route has no limit", func() int { return post("/other", strings.NewReader(strings.Repeat("x", 5000)), 5000) }, 200},
		{"header over limit", func() int { c, _, _ := get(t, f.url+"/small/x", "X-Pad", strings.Repeat("p", 2000)); return c }, 431},
		{"filter", func() int { c, _, _ := get(t, f.url+"/admin/panel"); return c }, 404},
	}
	for _, tt := range tests {
		if got := tt.got(); got != tt.want {
			t.Errorf("%s: %d want %d", tt.name, got, tt.want)
		}
	}
	req, _ := http.NewRequest("GET", f.url+"/big", nil)
	req.Header.Set("Accept-Encoding", "zstd")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "zstd" || len(b) >= len(text)/4 {
		t.Errorf("upstream answer not compressed: %q, %d bytes", resp.Header.Get("Content-Encoding"), len(b))
	}
}
