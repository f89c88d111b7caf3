package limit

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// node is one wasmsrv node's rate-limited route: its own connection to the
// shared Redis and its own fallback bucket.
func node(t *testing.T, url string, cfg RateConfig) (*httptest.Server, *RedisBuckets) {
	t.Helper()
	b, err := NewRedisBuckets(url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	cfg.Shared, cfg.Key = b, "route|/api"
	cfg.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	srv := httptest.NewServer(NewRate(cfg, ok))
	t.Cleanup(srv.Close)
	return srv, b
}

// count sends n requests, alternating over the nodes, and counts the answers
// by status.
func count(t *testing.T, n int, client string, nodes ...*httptest.Server) map[int]int {
	t.Helper()
	got := map[int]int{}
	for i := range n {
		code, h := status(t, nodes[i%len(nodes)].URL, "X-Forwarded-For", client)
		if code == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		got[code]++
	}
	return got
}

// TestSharedBucketHoldsAcrossNodes: two nodes sharing Redis let through the
// burst once between them, not once each; other clients and other routes
// have buckets of their own.
func TestSharedBucketHoldsAcrossNodes(t *testing.T) {
	r := testkit.StartRedis(t)
	// A refill of one request per 1000 s: nothing comes back during the test.
	cfg := RateConfig{Rate: 0.001, Burst: 10, PerIP: true}
	a, _ := node(t, r.URL, cfg)
	b, _ := node(t, r.URL, cfg)
	got := count(t, 30, "198.51.100.1", a, b)
	if got[200] != 10 || got[429] != 20 {
		t.Errorf("two nodes, one client: %v, want 10 × 200 and 20 × 429 (the burst once)", got)
	}
	if got := count(t, 12, "198.51.100.2", a, b); got[200] != 10 {
		t.Errorf("a second client: %v, want a burst of its own", got)
	}
	// The same limit without Redis: each node lets the burst through.
	local := []*httptest.Server{httptest.NewServer(NewRate(RateConfig{Rate: 0.001, Burst: 10, PerIP: true}, ok)), httptest.NewServer(NewRate(RateConfig{Rate: 0.001, Burst: 10, PerIP: true}, ok))}
	for _, s := range local {
		defer s.Close()
	}
	if got := count(t, 30, "", local...); got[200] != 20 {
		t.Errorf("per-node limits: %v, want 20 × 200 (the comparison the shared bucket must beat)", got)
	}
}

// TestSharedBucketHoldsTheRate: under a steady stream through two nodes, the
// requests let through stay within burst + rate × elapsed of the cluster.
func TestSharedBucketHoldsTheRate(t *testing.T) {
	r := testkit.StartRedis(t)
	cfg := RateConfig{Rate: 20, Burst: 2, PerIP: false}
	a, _ := node(t, r.URL, cfg)
	b, _ := node(t, r.URL, cfg)
	start := time.Now()
	got := map[int]int{}
	for time.Since(start) < 1500*time.Millisecond {
		merge(got, count(t, 10, "", a, b))
		time.Sleep(5 * time.Millisecond) // a stream, not a busy loop on a shared machine
	}
	elapsed := time.Since(start).Seconds()
	limit := float64(cfg.Burst) + cfg.Rate*elapsed
	if float64(got[200]) > limit+1 || got[200] < cfg.Burst || got[200]+got[429] != sum(got) {
		t.Errorf("%v in %.2fs: want at most %.0f let through (burst %d + %v/s), every other one 429", got, elapsed, limit, cfg.Burst, cfg.Rate)
	}
	t.Logf("%d let through, %d refused in %.2fs (limit %.0f)", got[200], got[429], elapsed, limit)
}

func merge(into, from map[int]int) {
	for k, v := range from {
		into[k] += v
	}
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestSharedFallsBackToNodeLimit: with Redis gone each node applies the limit
// alone (429s, never an error), and once Redis is back the limit is shared
// again.
func TestSharedFallsBackToNodeLimit(t *testing.T) {
	r := testkit.StartRedis(t)
	cfg := RateConfig{Rate: 0.001, Burst: 3, PerIP: true}
	a, ba := node(t, r.URL, cfg)
	b, bb := node(t, r.URL, cfg)
	if got := count(t, 8, "198.51.100.1", a, b); got[200] != 3 {
		t.Fatalf("shared: %v", got)
	}
	r.Stop(t)
	// Each node: its own bucket of 3 for the client, whatever Redis had.
	got := count(t, 16, "198.51.100.1", a, b)
	if got[200] != 6 || got[429] != 10 || len(got) != 2 {
		t.Errorf("Redis down: %v, want 3 × 200 per node and 429 for the rest, nothing else", got)
	}

	r.Start(t)
	// Redis is tried again after the back-off: wait until a Take reaches it
	// (bounded), then the buckets in Redis decide again (a new client: its
	// shared bucket is fresh).
	for _, bk := range []*RedisBuckets{ba, bb} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, _, err := bk.Take(context.Background(), "probe", 1000, 1000); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the limiter did not reach Redis again within 30s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := count(t, 8, "198.51.100.9", a, b); got[200] != 3 {
		t.Errorf("after Redis came back: %v, want the shared burst of 3", got)
	}
}

// TestSharedStoreSkippedDuringBackoff: after a failure the store is not asked
// again until the back-off passes, so a dead Redis does not add a dial to
// every request.
func TestSharedStoreSkippedDuringBackoff(t *testing.T) {
	b, err := NewRedisBuckets("redis://127.0.0.1:1/0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	b.Backoff = time.Hour
	if _, _, err := b.Take(context.Background(), "k", 1, 1); err == nil || err == ErrSkipped {
		t.Fatalf("first take on a closed port: %v", err)
	}
	if _, _, err := b.Take(context.Background(), "k", 1, 1); err != ErrSkipped {
		t.Fatalf("second take during the back-off: %v, want ErrSkipped", err)
	}
	if _, err := NewRedisBuckets("mysql://x", nil); err == nil {
		t.Error("a non-Redis URL was accepted")
	}
}

// BenchmarkRateCheck compares one limit check on this node with one through
// the shared store (a Redis round trip on loopback), the cost shared = true
// adds to a request.
func BenchmarkRateCheck(b *testing.B) {
	r := testkit.StartRedis(b)
	shared, err := NewRedisBuckets(r.URL, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer shared.Close()
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, bc := range []struct {
		name string
		cfg  RateConfig
	}{
		{"node", RateConfig{Rate: 1e9, Burst: 1e9, PerIP: true}},
		{"shared", RateConfig{Rate: 1e9, Burst: 1e9, PerIP: true, Shared: shared, Key: "bench"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := NewRate(bc.cfg, next)
			req := httptest.NewRequest("GET", "/", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
