package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"time"
)

// The hostile-neighbour scenario measures samples/hello in `wasmsrv serve` while
// the tenants of three other apps in the same server attack it with the guests
// of runtime/testdata (raw WAT written from abi/SPEC.md): exponential recursion
// without a single loop (direct and through call_indirect) against a 2 s
// deadline, a start function armed to spin in every new instance (then the
// instance crashed on purpose, again and again), and table bombs (table.grow by
// 100 M entries, and growing every table until it fails) under a 16 MiB limit.
// The baseline is the same server with only the hello app: the attacks get 404.

const (
	hostileDeadline = 2 * time.Second
	hostileLimit    = 16 << 20
	// hostileInstances is the hostile apps' pool sizes together: their memory
	// limits bound what the attacks may add to the server's RSS.
	hostileInstances = 2 + 1 + 2
)

func hostileNeighbourScenario() Scenario {
	return Scenario{
		Name: "hostile-neighbour",
		Description: "samples/hello beside three hostile apps in one `wasmsrv serve`: loop-free recursion (2 s deadline), " +
			"a start function armed to spin (1 s start timeout, instance crashed every 1.5 s), table bombs (16 MiB limit)",
		Path:     "/",
		Expect:   Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:     Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline: "quiet",
		Subject:  "wasmsrv",
		Servers: []Server{
			wasmsrvSite("hello + recurse, startspin, tables apps under attack", hostileSite(true)),
			named("quiet", wasmsrvSite("hello alone: the attacks get 404", hostileSite(false))),
		},
		Background: attackNeighbours,
		Targets: []Target{
			{Row: "wasmsrv", Label: "hello errors", Limit: 0, AtMost: true, Format: formatCountValue,
				Measure: func(s, _ Result) (float64, bool) { return float64(s.Wrk.SocketErrors() + s.Wrk.Status), true }},
			{Row: "wasmsrv", Label: "slowest hello", Limit: float64(time.Second), AtMost: true, Format: formatDuration,
				Measure: func(s, _ Result) (float64, bool) { return float64(s.Wrk.Max), true }},
			extraAtMost("wasmsrv", "attack past its deadline", "overrun_max_ms", 100, formatMs),
			extraAtLeast("wasmsrv", "recursions", "recursions", 1),
			extraAtLeast("wasmsrv", "crashes with the start armed", "crashes", 1),
			extraAtLeast("wasmsrv", "table bombs", "table_bombs", 1),
			{Row: "quiet", Label: "RSS added by the attacks", Limit: hostileInstances * hostileLimit, AtMost: true, Format: formatMB,
				Measure: func(s, r Result) (float64, bool) { return float64(s.RSS - r.RSS), s.RSS > 0 && r.RSS > 0 }},
		},
	}
}

// extraAtLeast checks that an attack of the background actually ran.
func extraAtLeast(row, label, key string, limit float64) Target {
	return Target{
		Row: row, Label: label, Limit: limit, Format: formatCountValue,
		Measure: func(_, r Result) (float64, bool) { return r.Extra[key], r.Extra != nil },
	}
}

func formatDuration(v float64) string { return time.Duration(v).Round(time.Millisecond).String() }

func formatMs(v float64) string { return fmt.Sprintf("%.0f ms", v) }

// hostileSite serves samples/hello at / and, when attacked, the hostile apps
// under /r, /s and /t.
func hostileSite(attacked bool) siteConfig {
	return func(ctx context.Context, env LaunchEnv, admin string) (string, error) {
		hello, err := env.WS.WasmGuest(ctx, "./samples/hello")
		if err != nil {
			return "", err
		}
		cfg := siteHead(env, admin) + fmt.Sprintf("[apps.hello]\nmodule = %q\n\n", hello)
		if attacked {
			wat := func(name string) string {
				return filepath.Join(env.WS.Root, "runtime", "testdata", name, name+".wasm")
			}
			cfg += fmt.Sprintf(`[plugins]
kv_path = "kv.db"

[apps.recurse]
module = %q
pool_size = 2
memory_limit = "16MiB"
request_timeout = %q

[apps.startspin]
module = %q
pool_size = 1
memory_limit = "16MiB"
start_timeout = "1s"
grants = ["kv"]

[apps.tables]
module = %q
pool_size = 2
memory_limit = "16MiB"

[[routes]]
path = "/r"
app = "recurse"

[[routes]]
path = "/s"
app = "startspin"

[[routes]]
path = "/t"
app = "tables"

`, wat("recurse"), hostileDeadline.String(), wat("startspin"), wat("tables"))
		}
		return cfg + "[[routes]]\napp = \"hello\"\n", nil
	}
}

// attackNeighbours runs the three attacks until stopped and reports how far past
// its deadline the slowest recursing request ended, and how many attacks of
// each kind ran.
func attackNeighbours(ctx context.Context, addr string) (func() map[string]float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	c := &http.Client{Timeout: time.Minute}
	base := "http://" + addr
	get := func(path string) (int, time.Duration) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return 0, 0
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, time.Since(start)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	var mu sync.Mutex
	var overrun time.Duration
	counts := map[string]float64{}
	count := func(k string) {
		mu.Lock()
		counts[k]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	wg.Go(func() { // loop-free recursion, direct and through call_indirect
		for i := 0; ctx.Err() == nil; i++ {
			path := "/r/fib?90"
			if i%2 == 1 {
				path = "/r/indirect?90"
			}
			status, took := get(path)
			if status == http.StatusGatewayTimeout {
				count("recursions")
				mu.Lock()
				overrun = max(overrun, took-hostileDeadline)
				mu.Unlock()
			}
		}
	})
	wg.Go(func() { // arm the start function, then make the pool start instances
		get("/s/arm")
		for ctx.Err() == nil {
			if status, _ := get("/s/crash"); status == http.StatusInternalServerError {
				count("crashes")
			}
			select {
			case <-ctx.Done():
			case <-time.After(1500 * time.Millisecond):
			}
		}
	})
	wg.Go(func() { // table bombs
		for i := 0; ctx.Err() == nil; i++ {
			path := "/t/bomb"
			if i%2 == 1 {
				path = "/t/creep"
			}
			if status, _ := get(path); status == http.StatusOK {
				count("table_bombs")
			}
		}
	})
	return func() map[string]float64 {
		cancel()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		counts["overrun_max_ms"] = float64(overrun.Milliseconds())
		return counts
	}, nil
}
