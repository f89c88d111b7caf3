package site

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// Route header edits over real sockets: the upstream sees the request
// edits, the client the response edits, on proxied, static, rate-limited
// and cached answers alike; a reload changes them.
func TestRouteHeaders(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "backend/1.0")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "host=%s env=%s cookie=%q", r.Host, r.Header.Get("X-Env"), r.Header.Get("Cookie"))
	}))
	defer up.Close()
	cfg := func(hsts string) string {
		return head + fmt.Sprintf(`
[upstreams.back]
servers = [{ url = %q }]

[[routes]]
path = "/api"
upstream = "back"
[routes.headers.request]
set = { "X-Env" = "prod", "Host" = "api.internal" }
remove = ["Cookie"]
[routes.headers.response]
set = { "Strict-Transport-Security" = %q }
add = { "X-Served-By" = "wasmsrv" }
remove = ["Server"]
[routes.cache]
ttl = { 200 = "1m" }
[routes.rate_limit]
rate = 0.001
burst = 3

[[routes]]
path = "/"
static = "www"
[routes.headers.response]
set = { "X-Frame-Options" = "DENY" }
`, up.URL, hsts)
	}
	f := start(t, cfg("max-age=31536000"), nil)

	for i, want := range []struct {
		code  int
		cache string
	}{{200, "MISS"}, {200, "HIT"}, {200, "HIT"}, {429, ""}} {
		code, h, body := get(t, f.url+"/api/x", "Cookie", "session=secret")
		if code != want.code {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
		if h.Get("Strict-Transport-Security") != "max-age=31536000" || !slices.Equal(h.Values("X-Served-By"), []string{"wasmsrv"}) {
			t.Errorf("request %d (%d): response edits missing: %v", i, code, h)
		}
		if h.Get("Server") != "" {
			t.Errorf("request %d: Server not removed: %q", i, h.Get("Server"))
		}
		if code == 200 {
			if body != `host=api.internal env=prod cookie=""` {
				t.Errorf("request %d: the upstream saw %s", i, body)
			}
			if h.Get("X-Cache") != want.cache {
				t.Errorf("request %d: X-Cache %q, want %q", i, h.Get("X-Cache"), want.cache)
			}
		}
	}
	code, h, body := get(t, f.url+"/hello.txt", "Range", "bytes=0-4")
	if code != http.StatusPartialContent || body != "hello" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("static: %d %q %v", code, body, h)
	}
	if h.Get("Strict-Transport-Security") != "" {
		t.Error("the /api route's edits leaked into the static route")
	}

	if code, body := f.reload(t, cfg("max-age=60")); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	_, h, _ = get(t, f.url+"/api/y")
	if got := h.Get("Strict-Transport-Security"); got != "max-age=60" {
		t.Errorf("after reload: %q", got)
	}
	if code, body := f.reload(t, strings.Replace(cfg("x"), `"X-Frame-Options" = "DENY"`, `"Connection" = "close"`, 1)); code != 422 || !strings.Contains(body, "routes[1].headers.response.set.Connection") {
		t.Errorf("bad reload: %d %s", code, body)
	}
}
