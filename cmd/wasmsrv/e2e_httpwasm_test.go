package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The http-wasm guests of internal/httpwasm: a Traefik-style plugin in C (its
// config as JSON through get_config) and the WAT probe of the host functions.
var (
	httpWasmPlugin = filepath.Join("..", "..", "internal", "httpwasm", "testdata", "plugin", "plugin.wasm")
	httpWasmProbe  = filepath.Join("..", "..", "internal", "httpwasm", "testdata", "probe.wasm")
)

// `wasmsrv run` detects an http-wasm guest and serves it: the plugin answers
// from its JSON config, denies what its config denies, and a request it passes
// on gets the default status (404, or --default-status).
func TestE2EHTTPWasmRun(t *testing.T) {
	cfg := `{"responseHeaders": {"X-Plugin": "on"}, "deny": "/admin", "reply": "hello from a plugin\n"}`
	srv := startServer(t, httpWasmPlugin, "--workers", "2", "--http-wasm-config", cfg)
	if out := srv.stdout.String(); !strings.Contains(out, "(http-wasm mode)") {
		t.Errorf("stdout does not name http-wasm mode:\n%s", out)
	}
	c := httpClient(t)
	resp, body := get(t, c, srv.URL+"/hi")
	if resp.StatusCode != 200 || body != "hello from a plugin\n" || resp.Header.Get("X-Plugin") != "on" || resp.ContentLength != int64(len(body)) {
		t.Errorf("status %d body %q headers %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, c, srv.URL+"/admin/users")
	if resp.StatusCode != 403 || body != "denied\n" {
		t.Errorf("deny: status %d body %q", resp.StatusCode, body)
	}

	// The config from a file (@FILE), a plugin that passes on: the default status.
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"headers": {"X-Foo": "Bar"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv = startServer(t, httpWasmPlugin, "--workers", "1", "--http-wasm-config", "@"+file)
	if resp, _ := get(t, c, srv.URL+"/"); resp.StatusCode != 404 {
		t.Errorf("a request passed on: status %d, want the default 404", resp.StatusCode)
	}
	srv = startServer(t, httpWasmPlugin, "--workers", "1", "--default-status", "204")
	if resp, _ := get(t, c, srv.URL+"/"); resp.StatusCode != 204 {
		t.Errorf("--default-status 204: got %d", resp.StatusCode)
	}
}

// A plugin whose config is not JSON fails at start, with the reason in the log,
// and the server does not start.
func TestE2EHTTPWasmBadConfig(t *testing.T) {
	r := runWasmsrv(t, 2*time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache,
		"--start-timeout", "5s", "--http-wasm-config", "{not json", httpWasmPlugin)
	if r.code == 0 || !strings.Contains(r.stderr, "config: bad JSON") {
		t.Errorf("exit %d, stderr:\n%s", r.code, tail(r.stderr, 2000))
	}
}

// The host functions answer through the real server: method, URI, protocol,
// the client's address; HTTP/2 (h2c) shows as HTTP/2.0.
func TestE2EHTTPWasmProbe(t *testing.T) {
	srv := startServer(t, httpWasmProbe, "--workers", "1", "--http-wasm-config", "r")
	for _, tc := range []struct {
		c     *http.Client
		proto string
	}{{httpClient(t), "HTTP/1.1"}, {h2cClient(t), "HTTP/2.0"}} {
		resp, _ := get(t, tc.c, srv.URL+"/p%2Fq?a=1")
		if resp.Header.Get("X-Method") != "GET" || resp.Header.Get("X-Uri") != "/p%2Fq?a=1" ||
			resp.Header.Get("X-Proto") != tc.proto || !strings.HasPrefix(resp.Header.Get("X-Source"), "127.0.0.1:") {
			t.Errorf("%s: headers %v", tc.proto, resp.Header)
		}
	}
	// A guest that loops forever costs its request (504) and its instance only.
	loop := startServer(t, httpWasmProbe, "--workers", "1", "--timeout", "1s", "--http-wasm-config", "o")
	c := httpClient(t)
	if resp, _ := get(t, c, loop.URL+"/"); resp.StatusCode != 504 {
		t.Errorf("loop: status %d, want 504", resp.StatusCode)
	}
	if resp, _ := get(t, c, srv.URL+"/"); resp.StatusCode != 200 {
		t.Errorf("the other server: status %d", resp.StatusCode)
	}
}

// `wasmsrv serve` runs [[routes.middleware]] before each kind of target: the
// Traefik-style plugin (its config a TOML table, given to it as JSON) before an
// upstream, with a deny rule; two middleware in order before a Wasm app, the
// second reading and rewriting the app's response (buffer_response); a
// middleware before a static directory.
func TestE2EHTTPWasmMiddleware(t *testing.T) {
	var seen struct {
		sync.Mutex
		foo, early string
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Lock()
		seen.foo, seen.early = r.Header.Get("X-Foo"), r.Header.Get("X-Early")
		seen.Unlock()
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}))
	defer up.Close()
	plugin, err := filepath.Abs(httpWasmPlugin)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := filepath.Abs(httpWasmProbe)
	if err != nil {
		t.Fatal(err)
	}
	hello, err := filepath.Abs(sample("c-hello/main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = ""

[[listeners]]
addr = "127.0.0.1:0"

[apps.hello]
module = %[3]q
pool_size = 1

[upstreams.backend]
servers = [{ url = %[1]q }]

[[routes]]
path = "/api"
strip_prefix = false
upstream = "backend"
[[routes.middleware]]
module = %[2]q
pool_size = 2
config = { headers = { X-Foo = "Bar" }, responseHeaders = { X-Plugin = "on" }, deny = "/api/admin" }

[[routes]]
path = "/hello"
app = "hello"
[[routes.middleware]]
module = %[2]q
pool_size = 1
config = '{"responseHeaders": {"X-First": "1"}}'
[[routes.middleware]]
module = %[4]q
pool_size = 1
config = "R"

[[routes]]
path = "/"
static = "www"
[[routes.middleware]]
module = %[2]q
pool_size = 1
config = { responseHeaders = { X-Static = "seen" } }
`, up.URL, plugin, hello, probe))
	s := startServe(t, cfg)
	c := httpClient(t)

	resp, body := get(t, c, s.URL+"/api/users")
	seen.Lock()
	foo := seen.foo
	seen.Unlock()
	if resp.StatusCode != 200 || body != "upstream /api/users" || resp.Header.Get("X-Plugin") != "on" || foo != "Bar" {
		t.Errorf("upstream route: status %d body %q X-Plugin %q, upstream saw X-Foo %q", resp.StatusCode, body, resp.Header.Get("X-Plugin"), foo)
	}
	resp, body = get(t, c, s.URL+"/api/admin/x")
	if resp.StatusCode != 403 || body != "denied\n" {
		t.Errorf("denied path: status %d body %q", resp.StatusCode, body)
	}

	// The probe wraps the app's answer: status+1 and a prefix; the plugin before
	// it added its header.
	resp, body = get(t, c, s.URL+"/hello")
	if resp.StatusCode != 201 || body != "wrapped:Hello from wasmsrv!\n" || resp.Header.Get("X-First") != "1" ||
		resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.ContentLength != int64(len(body)) {
		t.Errorf("app route: status %d body %q headers %v", resp.StatusCode, body, resp.Header)
	}

	resp, body = get(t, c, s.URL+"/index.html")
	if resp.StatusCode != 200 || body != "<h1>site</h1>" || resp.Header.Get("X-Static") != "seen" {
		t.Errorf("static route: status %d body %q headers %v", resp.StatusCode, body, resp.Header)
	}
}

// A middleware that is not an http-wasm module is refused with its key.
func TestE2EHTTPWasmMiddlewareNotHTTPWasm(t *testing.T) {
	hello, err := filepath.Abs(sample("c-hello/main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = ""
[[listeners]]
addr = "127.0.0.1:0"
[[routes]]
path = "/"
static = "www"
[[routes.middleware]]
module = %q
`, hello))
	r := runWasmsrv(t, 2*time.Minute, nil, "serve", "-c", cfg, "--cache-dir", e2eCache)
	if r.code == 0 || !strings.Contains(r.stderr, "routes[0].middleware[0]") || !strings.Contains(r.stderr, "http-wasm") {
		t.Errorf("exit %d, stderr:\n%s", r.code, tail(r.stderr, 2000))
	}
}

// Middleware bodies and failures through the real server: a middleware with
// buffer_request reads a POST body and the upstream still gets all of it; a
// middleware that loops forever costs its requests a 504 and its instance,
// while the other routes keep answering.
func TestE2EHTTPWasmMiddlewareBodiesAndFailures(t *testing.T) {
	got := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case got <- string(b):
		default:
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer up.Close()
	probe, err := filepath.Abs(httpWasmProbe)
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = ""
[[listeners]]
addr = "127.0.0.1:0"
[upstreams.backend]
servers = [{ url = %[1]q }]

[[routes]]
path = "/upload"
upstream = "backend"
[[routes.middleware]]
module = %[2]q
pool_size = 1
config = "b"

[[routes]]
path = "/loop"
upstream = "backend"
[[routes.middleware]]
module = %[2]q
pool_size = 1
request_timeout = "1s"
config = "o"

[[routes]]
path = "/"
static = "www"
`, up.URL, probe))
	s := startServe(t, cfg)
	c := httpClient(t)
	payload := strings.Repeat("0123456789abcdef", 8192) // 128 KiB: past the in-memory read-ahead
	resp, body := do(t, c, mustRequest(t, http.MethodPost, s.URL+"/upload", strings.NewReader(payload)))
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("upload: status %d body %q", resp.StatusCode, body)
	}
	if b := <-got; b != payload {
		t.Errorf("the upstream got %d bytes, want %d", len(b), len(payload))
	}
	for range 2 {
		if resp, _ := get(t, c, s.URL+"/loop"); resp.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("loop: status %d, want 504", resp.StatusCode)
		}
	}
	if resp, body := get(t, c, s.URL+"/index.html"); resp.StatusCode != 200 || body != "<h1>site</h1>" {
		t.Errorf("static route after the loops: status %d body %q", resp.StatusCode, body)
	}
	s.stop()
	if logs := s.logs(); !strings.Contains(logs, "request deadline exceeded") {
		t.Errorf("the log does not say what happened:\n%s", tail(logs, 2000))
	}
}
