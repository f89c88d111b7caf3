package wsorigin

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func req(host string, tlsOn bool, origins ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Host = host
	if tlsOn {
		r.TLS = &tls.ConnectionState{}
	}
	for _, o := range origins {
		r.Header.Add("Origin", o)
	}
	return r
}

func TestAllowed(t *testing.T) {
	for _, c := range []struct {
		name    string
		allow   []string
		host    string
		tls     bool
		origins []string
		want    bool
	}{
		{"no Origin: not a browser", nil, "app.example", false, nil, true},
		{"same origin", nil, "app.example:8080", false, []string{"http://app.example:8080"}, true},
		{"same origin, case differs", nil, "App.Example:8080", false, []string{"HTTP://APP.example:8080"}, true},
		{"same origin, default port written out", nil, "app.example", false, []string{"http://app.example:80"}, true},
		{"same origin over TLS", nil, "app.example", true, []string{"https://app.example"}, true},
		{"same origin over TLS, port in Host", nil, "app.example:443", true, []string{"https://app.example"}, true},
		{"foreign site", nil, "app.example", false, []string{"http://evil.example"}, false},
		{"foreign port", nil, "app.example:8080", false, []string{"http://app.example:9090"}, false},
		{"a subdomain is another origin", nil, "app.example", false, []string{"http://x.app.example"}, false},
		{"suffix trick", nil, "app.example", false, []string{"http://evilapp.example"}, false},
		{"host as prefix of the origin's", nil, "app.example", false, []string{"http://app.example.evil.test"}, false},
		{"http page to a TLS endpoint (downgrade)", nil, "app.example", true, []string{"http://app.example"}, false},
		{"https page behind a TLS-terminating proxy", nil, "app.example", false, []string{"https://app.example"}, true},
		{"https page, plain endpoint on an explicit port", nil, "app.example:8080", false, []string{"https://app.example:8080"}, false},
		{"https page, plain endpoint on port 80 written out", nil, "app.example:80", false, []string{"https://app.example"}, false},
		{"null origin", nil, "app.example", false, []string{"null"}, false},
		{"garbage origin", nil, "app.example", false, []string{"app.example"}, false},
		{"origin with a path", nil, "app.example", false, []string{"http://app.example/"}, false},
		{"origin with user info", nil, "app.example", false, []string{"http://app.example@evil.example"}, false},
		{"two Origin headers", nil, "app.example", false, []string{"http://app.example", "http://evil.example"}, false},
		{"empty Origin header", nil, "app.example", false, []string{""}, false},
		{"IPv6 same origin", nil, "[::1]:8080", false, []string{"http://[::1]:8080"}, true},
		{"IPv6 other port", nil, "[::1]:8080", false, []string{"http://[::1]:8081"}, false},
		{"exact allow-list entry", []string{"https://chat.example"}, "api.example", true, []string{"https://chat.example"}, true},
		{"exact entry: scheme matters", []string{"https://chat.example"}, "api.example", true, []string{"http://chat.example"}, false},
		{"exact entry: port matters", []string{"https://chat.example"}, "api.example", true, []string{"https://chat.example:8443"}, false},
		{"exact entry with port", []string{"http://localhost:3000"}, "api.example", false, []string{"http://localhost:3000"}, true},
		{"wildcard entry", []string{"https://*.example.com"}, "api.test", true, []string{"https://a.b.example.com"}, true},
		{"wildcard is not the apex", []string{"https://*.example.com"}, "api.test", true, []string{"https://example.com"}, false},
		{"wildcard at a label boundary", []string{"https://*.example.com"}, "api.test", true, []string{"https://badexample.com"}, false},
		{"wildcard: scheme matters", []string{"https://*.example.com"}, "api.test", true, []string{"http://a.example.com"}, false},
		{"entry without scheme: http", []string{"*.example.com"}, "api.test", true, []string{"http://a.example.com"}, true},
		{"entry without scheme: https", []string{"*.example.com"}, "api.test", true, []string{"https://a.example.com"}, true},
		{"entry without scheme: default port only", []string{"*.example.com"}, "api.test", true, []string{"https://a.example.com:8443"}, false},
		{"entry without scheme: other schemes", []string{"example.com"}, "api.test", true, []string{"ftp://example.com"}, false},
		{"entry without scheme, with port", []string{"example.com:8443"}, "api.test", true, []string{"https://example.com:8443"}, true},
		{"extension origin allowed exactly", []string{"chrome-extension://abcdef"}, "api.test", true, []string{"chrome-extension://abcdef"}, true},
		{"star allows all", []string{"*"}, "api.test", false, []string{"https://evil.example"}, true},
		{"star allows null", []string{"*"}, "api.test", false, []string{"null"}, true},
		{"allow-list keeps same origin", []string{"https://chat.example"}, "api.test", false, []string{"http://api.test"}, true},
	} {
		p, err := Parse(c.allow)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, _ := p.Allowed(req(c.host, c.tls, c.origins...))
		if got != c.want {
			t.Errorf("%s: Allowed = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, s := range []string{
		"", "https://", "https://a.example/", "https://a.example/path", "https://a.example?q", "https://u@a.example",
		"https://*", "https://a.*.example", "https://*example.com", "https://a.example:0", "https://a.example:65536",
		"https://a.example:x", "https://exämple.com", "::1", "https://[::1", "1https://a.example", "https://a..example",
		"https://.example", "*.", "https://a.example:080",
	} {
		if err := CheckEntry(s); err == nil {
			t.Errorf("CheckEntry(%q): no error", s)
		}
	}
	if _, err := Parse([]string{"*", "https://a.example"}); err == nil || !strings.Contains(err.Error(), "[0]") {
		t.Errorf(`Parse("*", ...): %v`, err)
	}
	if _, err := Parse([]string{"https://a.example", "https://b.example/x"}); err == nil || !strings.HasPrefix(err.Error(), "[1] ") {
		t.Errorf("Parse error does not name the entry: %v", err)
	}
	for _, s := range []string{"*", "https://a.example", "http://localhost:3000", "*.example.com", "https://[::1]:8080", "example.com:8443"} {
		if err := CheckEntry(s); err != nil {
			t.Errorf("CheckEntry(%q): %v", s, err)
		}
	}
}

func TestGuard(t *testing.T) {
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") })
	h := Guard(Policy{}, log, next)
	serve := func(r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	r := req("site.example", false, "http://evil.example")
	if w := serve(r); w.Code != http.StatusOK {
		t.Errorf("a plain request from another origin: %d (only upgrades are checked)", w.Code)
	}
	r.Header.Set("Upgrade", "WebSocket")
	r.Header.Set("Connection", "Upgrade")
	if w := serve(r); w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "upstream") {
		t.Errorf("a cross-origin upgrade: %d %q", w.Code, w.Body.String())
	}
	if !strings.Contains(logs.String(), "origin not allowed") || !strings.Contains(logs.String(), "evil.example") {
		t.Errorf("no log line for the refusal: %q", logs.String())
	}
	r = req("site.example", false, "http://site.example")
	r.Header.Set("Upgrade", "h2c, websocket")
	if w := serve(r); w.Code != http.StatusOK {
		t.Errorf("a same-origin upgrade: %d", w.Code)
	}
	all, _ := Parse([]string{"*"})
	r = req("site.example", false, "http://evil.example")
	r.Header.Set("Upgrade", "websocket")
	w := httptest.NewRecorder()
	Guard(all, log, next).ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf(`with "*", a cross-origin upgrade: %d`, w.Code)
	}
}
