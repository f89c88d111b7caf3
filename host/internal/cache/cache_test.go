package cache

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/route"
)

// backend is a scripted origin: it answers with whatever the test sets.
type backend struct {
	calls   atomic.Int64
	mu      sync.Mutex
	status  int
	body    string
	headers map[string]string
	delay   time.Duration
}

func (b *backend) set(status int, body string, hdr ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.status, b.body, b.headers = status, body, map[string]string{}
	for i := 0; i+1 < len(hdr); i += 2 {
		b.headers[hdr[i]] = hdr[i+1]
	}
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := b.calls.Add(1)
	b.mu.Lock()
	status, body, hdr, delay := b.status, b.body, b.headers, b.delay
	b.mu.Unlock()
	time.Sleep(delay)
	for k, v := range hdr {
		w.Header().Set(k, v)
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, "%s#%d lang=%s", body, n, r.Header.Get("Accept-Language"))
}

func setup(t *testing.T, p Policy, maxBytes int64) (*backend, *Store, *httptest.Server) {
	t.Helper()
	b := &backend{}
	b.set(200, "v1")
	st := NewStore(maxBytes)
	h, err := New(st, p, b, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return b, st, srv
}

func fetch(t *testing.T, method, url string, hdr ...string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Cache"), string(body)
}

var minute = map[int]time.Duration{200: time.Minute, 404: time.Minute}

func TestHitMiss(t *testing.T) {
	b, st, srv := setup(t, Policy{TTL: minute}, 1<<20)
	steps := []struct {
		method, path, xcache, body string
		code                       int
	}{
		{"GET", "/a", "MISS", "v1#1", 200},
		{"GET", "/a", "HIT", "v1#1", 200},
		{"HEAD", "/a", "HIT", "", 200},
		{"GET", "/a?x=1", "MISS", "v1#2", 200},
		{"POST", "/a", "BYPASS", "v1#3", 200},
		{"GET", "/a", "HIT", "v1#1", 200},
	}
	for _, s := range steps {
		code, xc, body := fetch(t, s.method, srv.URL+s.path)
		if code != s.code || xc != s.xcache || !strings.HasPrefix(body, s.body) {
			t.Errorf("%s %s: %d %s %q, want %d %s %q", s.method, s.path, code, xc, body, s.code, s.xcache, s.body)
		}
	}
	if b.calls.Load() != 3 {
		t.Errorf("backend calls %d want 3", b.calls.Load())
	}
	// Every answer is counted once, by what X-Cache said.
	if got := st.Stats(); got.Hits != 3 || got.Misses != 2 || got.Stale != 0 || got.Bypass != 1 || got.Entries != 2 || got.Bytes <= 0 {
		t.Errorf("stats %+v, want 3 hits, 2 misses, 1 bypass, 2 entries", got)
	}
}

func TestCacheControlAndStatus(t *testing.T) {
	tests := []struct {
		name   string
		status int
		hdr    []string
		cached bool
	}{
		{"ttl by status", 404, nil, true},
		{"status without ttl", 500, nil, false},
		{"no-store", 200, []string{"Cache-Control", "no-store"}, false},
		{"private", 200, []string{"Cache-Control", "private, max-age=60"}, false},
		{"no-cache", 200, []string{"Cache-Control", "no-cache"}, false},
		{"max-age 0", 200, []string{"Cache-Control", "max-age=0"}, false},
		{"s-maxage beats max-age 0", 200, []string{"Cache-Control", "max-age=0, s-maxage=60"}, true},
		{"max-age makes 302 cacheable", 302, []string{"Cache-Control", "max-age=60", "Location", "/x"}, true},
		{"set-cookie", 200, []string{"Set-Cookie", "a=b"}, false},
		{"vary star", 200, []string{"Vary", "*"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _, srv := setup(t, Policy{TTL: minute}, 1<<20)
			b.set(tt.status, "x", tt.hdr...)
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			for range 2 {
				resp, err := c.Get(srv.URL + "/p")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if got := b.calls.Load() == 1; got != tt.cached {
				t.Errorf("cached=%v want %v (calls %d)", got, tt.cached, b.calls.Load())
			}
		})
	}
}

func TestVary(t *testing.T) {
	b, st, srv := setup(t, Policy{TTL: minute}, 1<<20)
	b.set(200, "v", "Vary", "Accept-Language")
	for _, lang := range []string{"en", "fr", "en", "fr"} {
		_, _, body := fetch(t, "GET", srv.URL+"/", "Accept-Language", lang)
		if !strings.HasSuffix(body, "lang="+lang) {
			t.Errorf("lang %s got %q", lang, body)
		}
	}
	if b.calls.Load() != 2 || st.Len() != 2 {
		t.Errorf("calls %d entries %d, want 2 and 2", b.calls.Load(), st.Len())
	}
}

func TestSingleFlight(t *testing.T) {
	b, _, srv := setup(t, Policy{TTL: minute}, 1<<20)
	b.delay = 100 * time.Millisecond
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 20 {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/hot")
			if err != nil {
				bad.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(body), "v1#1") {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if b.calls.Load() != 1 || bad.Load() != 0 {
		t.Errorf("backend calls %d (want 1), bad responses %d", b.calls.Load(), bad.Load())
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	b, _, srv := setup(t, Policy{TTL: map[int]time.Duration{200: 100 * time.Millisecond}, StaleWhileRevalidate: 5 * time.Second}, 1<<20)
	fetch(t, "GET", srv.URL+"/")
	time.Sleep(150 * time.Millisecond)
	b.set(200, "v2")
	b.delay = 50 * time.Millisecond
	start := time.Now()
	if _, xc, body := fetch(t, "GET", srv.URL+"/"); xc != "STALE" || !strings.HasPrefix(body, "v1#1") {
		t.Errorf("want stale v1, got %s %q", xc, body)
	}
	if time.Since(start) > 40*time.Millisecond {
		t.Error("stale answer waited for the refresh")
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, xc, body := fetch(t, "GET", srv.URL+"/")
		if xc == "HIT" && strings.HasPrefix(body, "v2#2") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never refreshed: %s %q", xc, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b.calls.Load() != 2 {
		t.Errorf("calls %d: refresh not single", b.calls.Load())
	}
}

func TestStaleIfError(t *testing.T) {
	b, st, srv := setup(t, Policy{TTL: map[int]time.Duration{200: 100 * time.Millisecond}, StaleIfError: 5 * time.Second}, 1<<20)
	fetch(t, "GET", srv.URL+"/")
	time.Sleep(150 * time.Millisecond)
	b.set(503, "down")
	if code, xc, body := fetch(t, "GET", srv.URL+"/"); code != 200 || xc != "STALE" || !strings.HasPrefix(body, "v1#1") {
		t.Errorf("backend down: %d %s %q, want stale v1", code, xc, body)
	}
	b.set(200, "v3")
	if code, xc, body := fetch(t, "GET", srv.URL+"/"); code != 200 || xc != "MISS" || !strings.HasPrefix(body, "v3") {
		t.Errorf("backend back: %d %s %q", code, xc, body)
	}
	if _, xc, _ := fetch(t, "GET", srv.URL+"/"); xc != "HIT" {
		t.Errorf("fresh entry not stored: %s", xc)
	}
	if got := st.Stats(); got.Stale != 1 || got.Misses != 2 || got.Hits != 1 {
		t.Errorf("stats %+v, want 1 stale, 2 misses, 1 hit", got)
	}
}

func TestLRUBoundAndPurge(t *testing.T) {
	b, st, srv := setup(t, Policy{TTL: minute}, 64<<10)
	b.set(200, strings.Repeat("x", 4000))
	for i := range 40 {
		fetch(t, "GET", fmt.Sprintf("%s/item/%d", srv.URL, i))
	}
	if st.Used() > 64<<10 {
		t.Errorf("used %d > bound", st.Used())
	}
	if _, xc, _ := fetch(t, "GET", srv.URL+"/item/0"); xc != "MISS" {
		t.Errorf("oldest entry should have been evicted: %s", xc)
	}
	if _, xc, _ := fetch(t, "GET", srv.URL+"/item/39"); xc != "HIT" {
		t.Errorf("newest entry missing: %s", xc)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	if n := st.Purge("http://" + host + "/item/39"); n != 1 {
		t.Errorf("exact purge removed %d", n)
	}
	if n := st.Purge("http://" + host + "/item/*"); n == 0 {
		t.Error("wildcard purge removed nothing")
	}
	if st.Len() != 0 {
		t.Errorf("%d entries left", st.Len())
	}
}

func TestKeyTemplate(t *testing.T) {
	h, err := New(NewStore(1<<20), Policy{Key: "{method}|{host}{path}|{header:X-Tenant}|{cookie:v}", TTL: minute}, http.NotFoundHandler(), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("HEAD", "http://Example.com/a?q=1", nil)
	r.Header.Set("X-Tenant", "t1")
	r.AddCookie(&http.Cookie{Name: "v", Value: "b"})
	if got := h.Key(r); got != "GET|example.com/a|t1|b" {
		t.Errorf("key %q", got)
	}
	// Under a mount, the key keeps the full path.
	h2, _ := New(NewStore(1<<20), Policy{Key: "{path}|{uri}", TTL: minute}, http.NotFoundHandler(), nil)
	m := route.Mount(httptest.NewRequest("GET", "http://x/api/p?q=1", nil), "/api")
	if got := h2.Key(m); got != "/api/p|/api/p?q=1" {
		t.Errorf("mounted key %q", got)
	}
	if _, err := New(NewStore(1), Policy{Key: "{nope}"}, http.NotFoundHandler(), nil); err == nil {
		t.Error("bad template accepted")
	}
}

func BenchmarkHit(b *testing.B) {
	be := &backend{}
	be.set(200, "hello")
	h, _ := New(NewStore(1<<20), Policy{TTL: minute}, be, nil)
	req := httptest.NewRequest("GET", "http://x/a", nil)
	h.ServeHTTP(httptest.NewRecorder(), req)
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
}
