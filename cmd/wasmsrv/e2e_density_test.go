package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// densityStatus is what these tests read of the admin /status.
type densityStatus struct {
	CPUSlots int `json:"cpu_slots"`
	Tenants  map[string]struct {
		Weight, Running, Waiting int
		Calls, Waited, Refused   int64
		UsedMS                   int64 `json:"used_ms"`
	}
	Pools map[string]struct {
		Workers, Live int
		MinWorkers    int    `json:"min_workers"`
		ScaledDown    int64  `json:"scaled_down"`
		Tenant        string `json:"tenant"`
		GuestMS       int64  `json:"guest_ms"`
	}
}

func readStatus(t *testing.T, c *http.Client, admin string) densityStatus {
	t.Helper()
	_, body := get(t, c, admin+"/status")
	var st densityStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status %q: %v", body, err)
	}
	return st
}

// awaitStatus polls /status until cond holds (bounded: 30 s).
func awaitStatus(t *testing.T, c *http.Client, admin, what string, cond func(densityStatus) bool) densityStatus {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := readStatus(t, c, admin)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startDensitySite runs `wasmsrv serve` on conf with GOMAXPROCS=2, so the CPU
// gate has two slots whatever the machine.
func startDensitySite(t *testing.T, conf string) *adminSite {
	t.Helper()
	path := filepath.Join(t.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startWasmsrv(t, []string{"GOMAXPROCS=2"}, path, "serve", "-c", path, "--cache-dir", e2eCache)
	for _, line := range strings.Split(s.stdout.String(), "\n") {
		if m := adminSiteLine.FindStringSubmatch(line); m != nil {
			return &adminSite{server: s, Admin: m[2]}
		}
	}
	t.Fatalf("no admin URL in the serving line:\n%s", s.stdout.String())
	return nil
}

// TestE2ETenantFairShare: tenant "noisy" keeps four requests recursing without
// end (a WAT guest, 2 min deadline) on its four instances, beyond the CPU
// gate's two slots (it was alone when they started); tenant "quiet"'s requests
// are admitted at once, never queued behind it, and served while the spins go
// on, accounted to each tenant. Nothing here is timed but a generous bound per
// request.
func TestE2ETenantFairShare(t *testing.T) {
	srv := startDensitySite(t, fmt.Sprintf(`
[server]
shutdown_timeout = "1s"
[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[apps.spin]
module = %q
pool_size = 4
request_timeout = "2m"
tenant = "noisy"
[apps.hello]
module = %q
tenant = "quiet"
[[routes]]
path = "/r"
app = "spin"
[[routes]]
app = "hello"
`, hostileWasm("recurse"), sample("c-hello/main.wasm")))
	c := httpClient(t)
	spins := &http.Client{Timeout: 3 * time.Minute}
	var wg sync.WaitGroup
	defer wg.Wait() // the server's stop ends the spins
	for range 4 {
		wg.Go(func() {
			resp, err := spins.Get(srv.URL + "/r/fib?90")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	defer srv.stop()
	st := awaitStatus(t, c, srv.Admin, "the spinner's four calls running", func(st densityStatus) bool {
		return st.Tenants["noisy"].Running == 4
	})
	if st.CPUSlots != 2 || st.Pools["spin"].Tenant != "noisy" || st.Pools["hello"].Tenant != "quiet" {
		t.Fatalf("status: %+v", st)
	}
	slow := &http.Client{Timeout: 30 * time.Second}
	for i := range 20 {
		resp, err := slow.Get(srv.URL + "/")
		if err != nil {
			t.Fatalf("neighbour request %d while the spinner holds the slots: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "Hello") {
			t.Fatalf("neighbour request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	st = readStatus(t, c, srv.Admin)
	q, n := st.Tenants["quiet"], st.Tenants["noisy"]
	if q.Calls < 20 || q.Waited != 0 {
		t.Errorf("quiet: %+v, want its 20 calls admitted with none queued", q)
	}
	if n.Running != 4 || n.Waiting != 0 || n.Calls != 4 {
		t.Errorf("noisy: %+v, want its 4 spins running throughout", n)
	}
	if st.Pools["spin"].GuestMS != 0 {
		t.Errorf("spin: guest time %d ms accounted before any call ended", st.Pools["spin"].GuestMS)
	}
}

// TestE2ETenantCPUBudget: a tenant that used its CPU budget for the minute gets
// 503 with a Retry-After of the minute's rest, from every app of it; another
// tenant is served.
func TestE2ETenantCPUBudget(t *testing.T) {
	srv := startDensitySite(t, fmt.Sprintf(`
[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[apps.spin]
module = %q
pool_size = 1
request_timeout = "300ms"
tenant = "small"
cpu_budget = "100ms"
[apps.other]
module = %q
tenant = "small"
cpu_budget = "100ms"
[apps.hello]
module = %q
[[routes]]
path = "/r"
app = "spin"
[[routes]]
path = "/o"
app = "other"
[[routes]]
app = "hello"
`, hostileWasm("recurse"), sample("c-hello/main.wasm"), sample("c-hello/main.wasm")))
	c := httpClient(t)
	if resp, _ := get(t, c, srv.URL+"/r/fib?90"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("the spin: %d, want 504 at its deadline", resp.StatusCode)
	}
	for _, path := range []string{"/r/fib?5", "/o/"} {
		resp, body := get(t, c, srv.URL+path)
		retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusServiceUnavailable || err != nil || retry < 1 || retry > 60 || !strings.Contains(body, "CPU budget") {
			t.Fatalf("%s over budget: %d Retry-After %q %q", path, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
	}
	if resp, body := get(t, c, srv.URL+"/"); resp.StatusCode != 200 {
		t.Fatalf("another tenant: %d %q", resp.StatusCode, body)
	}
	st := readStatus(t, c, srv.Admin)
	if s := st.Tenants["small"]; s.Refused != 2 || s.UsedMS < 100 {
		t.Fatalf("small: %+v", s)
	}
}

// TestE2EScaleToZero: an app idle for pool_idle_timeout gives its instances
// back (live 0 in /status); the next requests start them again, waiting for
// them rather than refused, up to pool_size at once, and they go again. Both
// shapes: a sync C guest and an async one.
func TestE2EScaleToZero(t *testing.T) {
	for _, tc := range []struct{ name, module string }{
		{"sync", "c-hello/main.wasm"},
		{"async", "c-async-hello/main.wasm"},
	} {
		t.Run(tc.name, func(t *testing.T) { testScaleToZero(t, sample(tc.module)) })
	}
}

func testScaleToZero(t *testing.T, module string) {
	srv := startDensitySite(t, fmt.Sprintf(`
[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[apps.hello]
module = %q
pool_size = 3
pool_min = 0
pool_idle_timeout = "500ms"
[[routes]]
app = "hello"
`, module))
	c := httpClient(t)
	idle := func(st densityStatus) bool { return st.Pools["hello"].Live == 0 }
	st := awaitStatus(t, c, srv.Admin, "the idle pool given back", idle)
	if p := st.Pools["hello"]; p.Workers != 3 || p.MinWorkers != 0 || p.ScaledDown < 1 {
		t.Fatalf("pool: %+v", p)
	}
	for round := range 2 {
		before := readStatus(t, c, srv.Admin).Pools["hello"].ScaledDown
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Go(func() {
				resp, err := c.Get(srv.URL + "/")
				if err != nil {
					t.Errorf("round %d request %d: %v", round, i, err)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "Hello") {
					t.Errorf("round %d request %d after idling: %d %q", round, i, resp.StatusCode, body)
				}
			})
		}
		wg.Wait()
		st := awaitStatus(t, c, srv.Admin, "the pool given back again", idle)
		if got := st.Pools["hello"].ScaledDown; got <= before {
			t.Fatalf("round %d: scaled down %d, was %d: no instance came and went", round, got, before)
		}
	}
}
