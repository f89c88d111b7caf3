package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeSite writes config as site.toml in a fresh directory with a www/ of static
// files and returns the config's path.
func writeSite(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "www"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "www", "app.js"), strings.Repeat("console.log('compressible');\n", 100))
	writeFile(t, filepath.Join(dir, "www", "index.html"), "<h1>site</h1>")
	path := filepath.Join(dir, "site.toml")
	writeFile(t, path, config)
	return path
}

// Defects found by trying the docs as a new user: a compressed static file said
// Vary: Accept-Encoding twice; a POST to a GET-only route fell through to the
// catch-all route instead of 405; admin.addr = "" could not turn the admin off.
func TestE2EServeRoutesVaryAdminOff(t *testing.T) {
	cfg := writeSite(t, `
[admin]
addr = ""

[[listeners]]
addr = "127.0.0.1:0"

[[routes]]
path = "/api"
methods = ["GET"]
static = "www"

[[routes]]
path = "/"
redirect = "https://example.com{uri}"
`)
	s := startServe(t, cfg)
	if !strings.Contains(s.stdout.String(), "(admin off)") {
		t.Errorf("serving line does not say the admin is off: %q", s.stdout.String())
	}
	c := httpClient(t)

	req := mustRequest(t, http.MethodGet, s.URL+"/api/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, _ := do(t, c, req)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("GET a compressible file: %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
	}
	if v := resp.Header.Values("Vary"); len(v) != 1 || v[0] != "Accept-Encoding" {
		t.Errorf("Vary %q, want one Accept-Encoding", v)
	}

	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, body := do(t, c, mustRequest(t, method, s.URL+"/api/app.js", strings.NewReader("x")))
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s to a GET-only route: %d, Allow %q, %q; want 405 with Allow: GET, HEAD", method, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	if resp, _ := do(t, c, mustRequest(t, http.MethodHead, s.URL+"/api/app.js", nil)); resp.StatusCode != 200 {
		t.Errorf("HEAD on a GET route: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, mustRequest(t, http.MethodPost, s.URL+"/other", nil)); resp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("POST to the catch-all route: %d, want 308", resp.StatusCode)
	}
}
