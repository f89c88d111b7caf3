package headers

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRequestEdits(t *testing.T) {
	var seen http.Header
	var host string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, host = r.Header.Clone(), r.Host
	})
	h, err := New(Config{Request: Rules{
		Set:    map[string]string{"X-Env": "prod", "Host": "backend.internal"},
		Add:    map[string]string{"X-Tag": "edge"},
		Remove: []string{"Cookie", "x-env"},
	}}, next)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second request must not see the first one's adds
		req := httptest.NewRequest("GET", "http://front.test/", nil)
		req.Header.Set("Cookie", "session=1")
		req.Header.Set("X-Env", "dev")
		req.Header.Set("X-Tag", "client")
		h.ServeHTTP(httptest.NewRecorder(), req)
		if seen.Get("Cookie") != "" {
			t.Errorf("Cookie not removed: %v", seen)
		}
		if got := seen.Values("X-Env"); !slices.Equal(got, []string{"prod"}) {
			t.Errorf("X-Env = %v: remove then set should leave only the set value", got)
		}
		if got := seen.Values("X-Tag"); !slices.Equal(got, []string{"client", "edge"}) {
			t.Errorf("X-Tag = %v", got)
		}
		if host != "backend.internal" || seen.Get("Host") != "" {
			t.Errorf("Host: r.Host %q, map %q", host, seen.Get("Host"))
		}
	}
}

func TestResponseEdits(t *testing.T) {
	cfg := Config{Response: Rules{
		Set:    map[string]string{"Strict-Transport-Security": "max-age=31536000", "Cache-Control": "no-store"},
		Add:    map[string]string{"Vary": "Origin"},
		Remove: []string{"Server", "X-Powered-By"},
	}}
	body := strings.Repeat("x", 100)
	mod := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		code   int
		empty  bool // the handler writes no body
	}{
		{"implicit 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Server", "app/1.0")
			w.Header().Set("Vary", "Accept-Encoding")
			io.WriteString(w, body)
		}, 200, false},
		{"explicit 404", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Powered-By", "php")
			w.Header().Set("Vary", "Accept-Encoding")
			w.WriteHeader(404)
			io.WriteString(w, body)
		}, 404, false},
		{"early hints then 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</a.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Vary", "Accept-Encoding")
			io.WriteString(w, body)
		}, 200, false},
		{"flush first", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
			w.(http.Flusher).Flush()
			io.WriteString(w, body)
		}, 200, false},
		{"nothing written (implicit 200)", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
		}, 200, true},
		{"ServeContent (ReadFrom, sendfile path)", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Accept-Encoding")
			http.ServeContent(w, r, "a.txt", mod, strings.NewReader(body))
		}, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(cfg, http.HandlerFunc(tt.handle))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			for range 2 {
				resp, err := http.Get(srv.URL + "/a.txt")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := body
				if tt.empty {
					want = ""
				}
				if resp.StatusCode != tt.code || string(b) != want {
					t.Fatalf("%d %q", resp.StatusCode, b)
				}
				hd := resp.Header
				if hd.Get("Strict-Transport-Security") != "max-age=31536000" || hd.Get("Cache-Control") != "no-store" {
					t.Errorf("set missing: %v", hd)
				}
				if hd.Get("Server") != "" || hd.Get("X-Powered-By") != "" {
					t.Errorf("remove ignored: %v", hd)
				}
				if got := hd.Values("Vary"); !slices.Equal(got, []string{"Accept-Encoding", "Origin"}) {
					t.Errorf("Vary = %v", got)
				}
			}
		})
	}
}

func TestValueTemplates(t *testing.T) {
	var seen http.Header
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
	})
	h, err := New(Config{
		Request: Rules{Set: map[string]string{"X-Real-Ip": "{client_ip}", "X-Orig": "{scheme}://{host}{uri}"}},
		Response: Rules{Set: map[string]string{
			"Report-To": `{{"group":"csp","endpoints":[{{"url":"https://{host}/r"}}]}}`,
			"X-Lang":    "{header:Accept-Language}",
		}},
		Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	}, next)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		peer, xff, want string
	}{{"192.0.2.1:1", "198.51.100.9", "192.0.2.1"}, {"10.1.2.3:1", "198.51.100.9", "198.51.100.9"}} {
		req := httptest.NewRequest("GET", "http://site.test/a?b=1", nil)
		req.RemoteAddr = tt.peer
		req.Header.Set("X-Forwarded-For", tt.xff)
		req.Header.Set("Accept-Language", "fr")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if got := seen.Get("X-Real-Ip"); got != tt.want {
			t.Errorf("peer %s: X-Real-IP %q, want %q (only a trusted peer's X-Forwarded-For counts)", tt.peer, got, tt.want)
		}
		if got := seen.Get("X-Orig"); got != "http://site.test/a?b=1" {
			t.Errorf("X-Orig %q", got)
		}
		if got := w.Header().Get("Report-To"); got != `{"group":"csp","endpoints":[{"url":"https://site.test/r"}]}` {
			t.Errorf("Report-To %q", got)
		}
		if got := w.Header().Get("X-Lang"); got != "fr" {
			t.Errorf("X-Lang %q", got)
		}
	}
}

func TestNoEditsIsNext(t *testing.T) {
	next := http.FileServer(http.Dir("."))
	h, err := New(Config{Response: Rules{Set: map[string]string{}}}, next)
	if err != nil {
		t.Fatal(err)
	}
	if h != next {
		t.Error("a config without edits should return next unwrapped")
	}
}

func TestBadRules(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{Response: Rules{Set: map[string]string{"Content-Length": "5"}}}, "Content-Length describes the message"},
		{Config{Request: Rules{Remove: []string{"connection"}}}, "Connection describes"},
		{Config{Response: Rules{Add: map[string]string{"Transfer-Encoding": "chunked"}}}, "Transfer-Encoding"},
		{Config{Response: Rules{Set: map[string]string{"Bad Name": "x"}}}, "not a valid header field name"},
		{Config{Request: Rules{Set: map[string]string{"X-A": "a\r\nX-Injected: 1"}}}, "control characters"},
		{Config{Response: Rules{Add: map[string]string{"X-A": "{nope}"}}}, "unknown variable {nope}"},
		{Config{Response: Rules{Set: map[string]string{"Report-To": `{"a":1}`}}}, "unknown variable"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg, http.NotFoundHandler())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err %v, want %q", tt.cfg, err, tt.want)
		}
	}
}
