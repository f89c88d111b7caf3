package upstream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// backend is a real upstream server on 127.0.0.1 that can be stopped and
// restarted on the same address.
type backend struct {
	name    string
	addr    string
	hits    atomic.Int64
	delay   time.Duration
	healthy atomic.Bool
	mu      sync.Mutex
	srv     *http.Server
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{name: name}
	b.healthy.Store(true)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.serve(ln)
	t.Cleanup(b.stop)
	return b
}

func (b *backend) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if !b.healthy.Load() {
			http.Error(w, "sick", 500)
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			msg, op, err := wsutil.ReadClientData(conn)
			if err != nil {
				return
			}
			if err := wsutil.WriteServerMessage(conn, op, append([]byte(b.name+":"), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if b.delay > 0 {
			time.Sleep(b.delay)
		}
		w.Header().Set("X-Backend", b.name)
		fmt.Fprintf(w, "%s xff=%s proto=%s xhost=%s host=%s path=%s", b.name, r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Host, r.URL.Path)
	})
	b.mu.Lock()
	b.srv = &http.Server{Handler: mux}
	srv := b.srv
	b.mu.Unlock()
	go srv.Serve(ln)
}

func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.Close()
		b.srv = nil
	}
}

func (b *backend) restart(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b.serve(ln)
}

func (b *backend) url() string { return "http://" + b.addr }

func newFront(t *testing.T, cfg Config) (*Group, *httptest.Server) {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test"
	}
	g, err := New(cfg, quiet())
	if err != nil {
		t.Fatal(err)
	}
	g.Start(context.Background())
	front := httptest.NewServer(g)
	t.Cleanup(func() { front.Close(); g.Close() })
	return g, front
}

func get(t *testing.T, c *http.Client, url string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestWeightedRoundRobin(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	_, front := newFront(t, Config{Servers: []ServerConfig{{URL: a.url(), Weight: 3}, {URL: b.url(), Weight: 1}}})
	for range 400 {
		if code, body, _ := get(t, http.DefaultClient, front.URL+"/"); code != 200 {
			t.Fatalf("%d %s", code, body)
		}
	}
	if a.hits.Load() != 300 || b.hits.Load() != 100 {
		t.Errorf("weights 3:1 gave a=%d b=%d, want 300/100", a.hits.Load(), b.hits.Load())
	}
}

// With one slow server, load-aware policies send it less than its share.
func TestLoadAwarePolicies(t *testing.T) {
	for _, policy := range []string{"least_conn", "p2c"} {
		t.Run(policy, func(t *testing.T) {
			slow, f1, f2 := startBackend(t, "slow"), startBackend(t, "f1"), startBackend(t, "f2")
			slow.delay = 100 * time.Millisecond
			_, front := newFront(t, Config{Policy: policy, Servers: []ServerConfig{{URL: slow.url()}, {URL: f1.url()}, {URL: f2.url()}}})
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 40 {
						get(t, http.DefaultClient, front.URL+"/")
					}
				})
			}
			wg.Wait()
			total := slow.hits.Load() + f1.hits.Load() + f2.hits.Load()
			if total != 320 {
				t.Fatalf("total %d", total)
			}
			// Round-robin would give the slow one a third (107).
			if slow.hits.Load() > total/5 {
				t.Errorf("slow server got %d of %d (fast: %d, %d)", slow.hits.Load(), total, f1.hits.Load(), f2.hits.Load())
			}
			if f1.hits.Load() < total/4 || f2.hits.Load() < total/4 {
				t.Errorf("fast servers unevenly used: %d, %d", f1.hits.Load(), f2.hits.Load())
			}
		})
	}
}

func TestConsistentHash(t *testing.T) {
	bs := []*backend{startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c"), startBackend(t, "d")}
	var servers []ServerConfig
	for _, b := range bs {
		servers = append(servers, ServerConfig{URL: b.url()})
	}
	tests := []struct {
		kind, name string
		hdr        func(k string) []string
	}{
		{"header", "X-User", func(k string) []string { return []string{"X-User", k} }},
		{"cookie", "sid", func(k string) []string { return []string{"Cookie", "sid=" + k} }},
		{"ip", "", func(k string) []string { return []string{"X-Forwarded-For", "10.0.0." + k[1:]} }},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			_, front := newFront(t, Config{Policy: "hash", HashKind: tt.kind, HashName: tt.name, Servers: servers, Trusted: trusted})
			owner := map[string]string{}
			perServer := map[string]int{}
			for i := range 200 {
				k := fmt.Sprintf("u%d", i)
				_, _, h := get(t, http.DefaultClient, front.URL+"/", tt.hdr(k)...)
				owner[k] = h.Get("X-Backend")
				perServer[owner[k]]++
				// Same key, same server.
				if _, _, h2 := get(t, http.DefaultClient, front.URL+"/", tt.hdr(k)...); h2.Get("X-Backend") != owner[k] {
					t.Fatalf("key %s moved from %s to %s", k, owner[k], h2.Get("X-Backend"))
				}
			}
			for _, b := range bs {
				if perServer[b.name] < 25 {
					t.Errorf("hash spread uneven: %v", perServer)
				}
			}
			// Remove "b": only b's keys may move.
			var fewer []ServerConfig
			for _, b := range bs {
				if b.name != "b" {
					fewer = append(fewer, ServerConfig{URL: b.url()})
				}
			}
			_, front2 := newFront(t, Config{Policy: "hash", HashKind: tt.kind, HashName: tt.name, Servers: fewer, Trusted: trusted})
			moved := 0
			for k, was := range owner {
				_, _, h := get(t, http.DefaultClient, front2.URL+"/", tt.hdr(k)...)
				if now := h.Get("X-Backend"); now != was {
					if was != "b" {
						t.Errorf("key %s moved %s→%s though %s stayed", k, was, now, was)
					}
					moved++
				}
			}
			if moved != perServer["b"] {
				t.Errorf("moved %d keys, b owned %d", moved, perServer["b"])
			}
		})
	}
}

func TestKilledUpstreamRetriesEjectsRestores(t *testing.T) {
	a, b, c := startBackend(t, "a"), startBackend(t, "b"), startBackend(t, "c")
	g, front := newFront(t, Config{
		Servers:  []ServerConfig{{URL: a.url()}, {URL: b.url()}, {URL: c.url()}},
		MaxFails: 1, FailTimeout: 300 * time.Millisecond, Retries: 2, RetryBudget: 1,
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var failed, total atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := client.Get(front.URL + "/")
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(150 * time.Millisecond)
	b.stop() // killed mid-load
	time.Sleep(100 * time.Millisecond)
	if !g.servers[1].ejected(time.Now()) {
		t.Error("b not ejected after failing")
	}
	hitsWhileDown := a.hits.Load() + c.hits.Load()
	time.Sleep(150 * time.Millisecond)
	if a.hits.Load()+c.hits.Load() == hitsWhileDown {
		t.Error("no traffic to the live servers")
	}
	b.restart(t)
	before := b.hits.Load()
	time.Sleep(600 * time.Millisecond) // > fail_timeout: b is tried again
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d idempotent requests failed", failed.Load(), total.Load())
	}
	if b.hits.Load() == before {
		t.Error("b got no traffic after it came back")
	}
	t.Logf("%d requests, a=%d b=%d c=%d", total.Load(), a.hits.Load(), b.hits.Load(), c.hits.Load())
}

func TestNoRetryForPOSTAndUsefulErrors(t *testing.T) {
	a := startBackend(t, "a")
	// A server that accepts and hangs up at once: always failing, and its
	// port cannot be taken over by someone else's listener mid-test.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	deadURL := "http://" + ln.Addr().String()
	_, front := newFront(t, Config{Name: "grp", Servers: []ServerConfig{{URL: deadURL}, {URL: a.url()}}, Retries: 1, MaxFails: 100})
	// Round-robin starts on "dead": the POST must not be retried.
	resp, err := http.Post(front.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 502 || a.hits.Load() != 0 {
		t.Errorf("POST: %d %q, a hits %d; want 502 without retry", resp.StatusCode, body, a.hits.Load())
	}
	if !strings.Contains(string(body), `upstream group "grp": tried `+ln.Addr().String()) {
		t.Errorf("502 body not useful: %q", body)
	}
	// GET on the dead server is retried on a.
	if code, body, _ := get(t, http.DefaultClient, front.URL+"/"); code != 200 {
		t.Errorf("GET: %d %q", code, body)
	}
}

func TestTimeoutGives504(t *testing.T) {
	a := startBackend(t, "a")
	a.delay = 500 * time.Millisecond
	_, front := newFront(t, Config{Servers: []ServerConfig{{URL: a.url()}}, ResponseHeaderTimeout: 50 * time.Millisecond, Retries: 0})
	code, body, _ := get(t, http.DefaultClient, front.URL+"/")
	if code != 504 || !strings.Contains(body, "timeout") {
		t.Errorf("%d %q", code, body)
	}
}

func TestActiveHealth(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	g, front := newFront(t, Config{Servers: []ServerConfig{{URL: a.url()}, {URL: b.url()}},
		Health: HealthConfig{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: time.Second, Passes: 2, Fails: 2}})
	b.healthy.Store(false)
	waitFor(t, func() bool { return g.servers[1].down.Load() })
	before := b.hits.Load()
	for range 20 {
		get(t, http.DefaultClient, front.URL+"/")
	}
	if b.hits.Load() != before {
		t.Errorf("unhealthy b got %d requests", b.hits.Load()-before)
	}
	b.healthy.Store(true)
	waitFor(t, func() bool { return !g.servers[1].down.Load() })
	for range 20 {
		get(t, http.DefaultClient, front.URL+"/")
	}
	if b.hits.Load() == before {
		t.Error("b not used after recovering")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestForwardedHeaders(t *testing.T) {
	a := startBackend(t, "a")
	tests := []struct {
		name    string
		trusted []netip.Prefix
		want    string
	}{
		{"untrusted peer: inbound ignored", nil, "xff=127.0.0.1 proto=http xhost=site.test host=site.test"},
		{"trusted peer: inbound kept", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "xff=203.0.113.9, 127.0.0.1 proto=https xhost=orig.test host=site.test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, front := newFront(t, Config{Servers: []ServerConfig{{URL: a.url()}}, Trusted: tt.trusted})
			_, body, _ := get(t, http.DefaultClient, front.URL+"/p", "Host", "site.test",
				"X-Forwarded-For", "203.0.113.9", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "orig.test")
			if !strings.Contains(body, tt.want) {
				t.Errorf("got %q want %q", body, tt.want)
			}
		})
	}
}

func TestWebSocketPassThrough(t *testing.T) {
	a := startBackend(t, "a")
	g, front := newFront(t, Config{Servers: []ServerConfig{{URL: a.url()}}})
	conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(front.URL, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i := range 3 {
		msg := fmt.Sprintf("hello %d", i)
		if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := wsutil.ReadServerText(conn)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "a:"+msg {
			t.Errorf("got %q", got)
		}
	}
	if g.servers[0].Active() != 1 {
		t.Errorf("open tunnel should count as in flight, got %d", g.servers[0].Active())
	}
}

// observed records what a group tells its Observer.
type observed struct {
	mu                        sync.Mutex
	attempts, failed, ejected [2]int
	retries                   int
}

func (o *observed) Attempt(i int, took time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attempts[i]++
	if failed {
		o.failed[i]++
	}
}
func (o *observed) Ejected(i int) { o.mu.Lock(); o.ejected[i]++; o.mu.Unlock() }
func (o *observed) Retried()      { o.mu.Lock(); o.retries++; o.mu.Unlock() }

// The Observer hears each attempt on its server, the failed one, the ejection
// and the retry that followed (the lean plain-HTTP path; the ReverseProxy
// path calls the Observer at the same points of its own loop).
func TestObserverCountsAttemptsRetriesEjections(t *testing.T) {
	live := startBackend(t, "live")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "http://" + ln.Addr().String()
	ln.Close() // refuses
	o := &observed{}
	_, front := newFront(t, Config{
		Servers:  []ServerConfig{{URL: deadURL}, {URL: live.url()}},
		MaxFails: 1, FailTimeout: time.Minute, Retries: 1, RetryBudget: 1, Observer: o,
	})
	// Round robin starts at either server: two requests see both.
	for range 2 {
		if code, body, _ := get(t, http.DefaultClient, front.URL+"/"); code != 200 {
			t.Fatalf("%d %q", code, body)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.attempts[0] != 1 || o.failed[0] != 1 || o.ejected[0] != 1 || o.attempts[1] != 2 || o.failed[1] != 0 || o.retries != 1 {
		t.Errorf("observed %+v: want dead 1 attempt, 1 failed, 1 ejection; live 2 attempts; 1 retry", o)
	}
}
