package admin

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fake struct {
	reloadErr error
	reloads   int
	purged    []string
}

func (f *fake) Reload(context.Context) error { f.reloads++; return f.reloadErr }
func (f *fake) Purge(p string) int           { f.purged = append(f.purged, p); return 3 }
func (f *fake) Status() any                  { return map[string]int{"generation": 7} }

func call(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if method != "GET" {
		req.Header.Set(ChangeHeader, "1")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdmin(t *testing.T) {
	f := &fake{}
	srv := httptest.NewServer(Handler(f, Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/health", 200, `"ok"`},
		{"GET", "/status", 200, `"generation": 7`},
		{"POST", "/reload", 200, `"reloaded": true`},
		{"GET", "/reload", 405, ""},
		{"POST", "/purge?key=http://x/a*", 200, `"purged": 3`},
		{"POST", "/purge", 400, "key="},
	}
	for _, tt := range tests {
		code, body := call(t, tt.method, srv.URL+tt.path, "")
		if code != tt.code || !strings.Contains(body, tt.body) {
			t.Errorf("%s %s: %d %q", tt.method, tt.path, code, body)
		}
	}
	f.reloadErr = errors.New("site.toml:3: routes[0].app: unknown app")
	if code, body := call(t, "POST", srv.URL+"/reload", ""); code != 422 || !strings.Contains(body, "site.toml:3") {
		t.Errorf("bad reload: %d %q", code, body)
	}
	if len(f.purged) != 1 || f.purged[0] != "http://x/a*" {
		t.Errorf("purged %v", f.purged)
	}
}

func TestToken(t *testing.T) {
	f := &fake{}
	srv := httptest.NewServer(Handler(f, Config{Addr: "127.0.0.1:0", Token: "s3cret"}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	for _, tt := range []struct {
		token string
		code  int
	}{{"", 401}, {"wrong", 401}, {"s3cret", 200}} {
		if code, _ := call(t, "POST", srv.URL+"/reload", tt.token); code != tt.code {
			t.Errorf("token %q: %d want %d", tt.token, code, tt.code)
		}
	}
	if f.reloads != 1 {
		t.Errorf("reloads %d: unauthenticated calls got through", f.reloads)
	}
}

// /metrics is behind the token and the guard like every other path, and absent
// (404) when no metrics handler is given.
func TestMetricsBehindToken(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "wasmsrv_up 1\n") })
	srv := httptest.NewServer(Handler(&fake{}, Config{Addr: "127.0.0.1:0", Token: "s3cret", Metrics: metrics}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	for _, tt := range []struct {
		token string
		code  int
	}{{"", 401}, {"wrong", 401}, {"s3cret", 200}} {
		if code, body := call(t, "GET", srv.URL+"/metrics", tt.token); code != tt.code || (code == 200) != strings.Contains(body, "wasmsrv_up 1") {
			t.Errorf("token %q: %d %q, want %d", tt.token, code, body, tt.code)
		}
	}
	// A page of another origin cannot read it through the operator's browser.
	req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site: %v %v, want 403", resp, err)
	} else {
		resp.Body.Close()
	}
	off := httptest.NewServer(Handler(&fake{}, Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler)))
	defer off.Close()
	if code, _ := call(t, "GET", off.URL+"/metrics", ""); code != http.StatusNotFound {
		t.Errorf("no metrics handler: %d, want 404", code)
	}
}
