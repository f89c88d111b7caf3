package admin

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Host = "evil.example" // probes answer any Host: a kubelet sends the pod's IP
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

// The admin listener's probes follow the readiness: starting and draining are
// 503, ready is 200; /livez is 200 throughout; neither needs the token, while
// everything else still does.
func TestAdminProbesFollowReadiness(t *testing.T) {
	rd := &Readiness{}
	h := Handler(&fake{}, Config{Addr: "127.0.0.1:9", Token: "s3cret", Readiness: rd}, slog.New(slog.DiscardHandler))
	check := func(path string, code int, body string) {
		t.Helper()
		if c, b := get(t, h, "GET", path, nil); c != code || (body != "" && b != body) {
			t.Errorf("GET %s = %d %q, want %d %q", path, c, b, code, body)
		}
	}
	check("/readyz", 503, "starting\n")
	check("/livez", 200, "ok\n")
	rd.SetReady()
	check("/readyz", 200, "ok\n")
	if c, b := get(t, h, "HEAD", "/readyz", nil); c != 200 || b != "" {
		t.Errorf("HEAD /readyz = %d %q", c, b)
	}
	rd.Drain()
	check("/readyz", 503, "draining\n")
	check("/livez", 200, "ok\n")
	rd.SetReady() // a late SetReady does not undo a drain
	check("/readyz", 503, "draining\n")
	// The rest of the API is still guarded.
	check("/status", http.StatusMisdirectedRequest, "")
	if c, _ := get(t, h, "POST", "/readyz", map[string]string{ChangeHeader: "1"}); c == 200 {
		t.Error("POST /readyz answered 200: only GET and HEAD are probes")
	}
	for _, p := range []string{"/readyz/", "/readyzz", "/READYZ", "//readyz", "/readyz%00"} {
		if c, _ := get(t, h, "GET", p, nil); c == 200 || c == 503 {
			t.Errorf("GET %s = %d: only the exact paths are probes", p, c)
		}
	}
}

// Without a Readiness (an embedder's admin handler) /readyz is always 200.
func TestAdminProbesWithoutReadiness(t *testing.T) {
	h := Handler(&fake{}, Config{Addr: "127.0.0.1:9"}, slog.New(slog.DiscardHandler))
	if c, _ := get(t, h, "GET", "/readyz", nil); c != 200 {
		t.Errorf("GET /readyz = %d", c)
	}
}

// On an app's listener (health_path) the probes take only their two paths under
// the prefix; everything else reaches the app.
func TestProbesOnAnAppListener(t *testing.T) {
	rd := &Readiness{}
	rd.SetReady()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app "+r.URL.Path) })
	h := Probes("/_wasmsrv/", rd, app)
	for path, want := range map[string]string{"/_wasmsrv/readyz": "ok\n", "/_wasmsrv/livez": "ok\n", "/readyz": "app /readyz",
		"/_wasmsrv/other": "app /_wasmsrv/other", "/livez": "app /livez"} {
		if _, b := get(t, h, "GET", path, nil); b != want {
			t.Errorf("GET %s = %q, want %q", path, b, want)
		}
	}
	if _, b := get(t, h, "POST", "/_wasmsrv/readyz", nil); b != "app /_wasmsrv/readyz" {
		t.Errorf("POST went to %q: the app's own methods stay the app's", b)
	}
}
