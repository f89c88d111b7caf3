package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// TestE2ESharedRateLimit: two `wasmsrv serve` processes (two nodes) with one
// site file and one Redis hold a route's rate limit once between them
// (rate_limit.shared); with Redis killed each node applies the limit alone —
// clients see 200s and 429s, nothing else — and once Redis is back the limit
// is shared again, without a restart.
func TestE2ESharedRateLimit(t *testing.T) {
	r := testkit.StartRedis(t)
	route := func(path string) string {
		return fmt.Sprintf("\n[[routes]]\npath = %q\napp = \"hello\"\n[routes.rate_limit]\nrate = 0.001\nburst = 5\nshared = true\n", path)
	}
	cfg := writeSite(t, fmt.Sprintf("[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[plugins]\nredis_url = %q\n\n[apps.hello]\nmodule = %q\npool_size = 1\n",
		r.URL, sample("c-hello/main.wasm"))+route("/a")+route("/b"))
	nodes := []*server{startServe(t, cfg), startServe(t, cfg)}
	c := httpClient(t)
	count := func(path string, n int) map[int]int {
		got := map[int]int{}
		for i := range n {
			resp, _ := get(t, c, nodes[i%2].URL+path)
			got[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Errorf("%s: 429 without Retry-After", path)
			}
		}
		return got
	}

	sent, passed := 0, 0
	got := count("/a", 20)
	sent, passed = sent+20, passed+got[200]
	if got[200] != 5 || got[429] != 15 {
		t.Fatalf("two nodes sharing Redis: %v, want the burst of 5 once", got)
	}

	r.Stop(t)
	got = count("/a", 20)
	sent, passed = sent+20, passed+got[200]
	if got[200] != 10 || got[429] != 10 {
		t.Errorf("Redis killed: %v, want each node's own burst of 5 and 429s, no other status", got)
	}
	for i, n := range nodes {
		if !strings.Contains(n.logs(), "rate limit store unreachable") {
			t.Errorf("node %d did not log the lost store:\n%s", i, n.logs())
		}
	}

	r.Start(t)
	// Each node tries Redis again after its back-off; a request to /a shows
	// it (a 429 from either source), bounded.
	deadline := time.Now().Add(30 * time.Second)
	for i, n := range nodes {
		for !strings.Contains(n.logs(), "rate limit store reachable again") {
			if time.Now().After(deadline) {
				t.Fatalf("node %d did not reach Redis again within 30s:\n%s", i, n.logs())
			}
			resp, _ := get(t, c, n.URL+"/a")
			sent++
			if resp.StatusCode == http.StatusOK {
				passed++
			} else if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("while Redis came back: %d", resp.StatusCode)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	got = count("/b", 20)
	sent, passed = sent+20, passed+got[200]
	if got[200] != 5 || got[429] != 15 {
		t.Errorf("Redis back: %v, want the shared burst of 5 once", got)
	}
	t.Logf("%d requests sent, %d let through, the rest 429; no other status", sent, passed)
}
