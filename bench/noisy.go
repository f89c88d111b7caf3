package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The noisy-neighbour scenario measures tenant B's samples/hello in one `wasmsrv
// serve` while tenant A floods its own two apps: requests that spin in a loop
// until their deadline (runtime/testdata/hostile /loop, 1 s deadline, 4
// instances) and memory bombs (/bomb: allocate until the 64 MiB limit kills the
// instance). Rows: B alone (the attacks get 404), B under attack with the CPU
// fair share, and the same two on a plain `wasmsrv serve` built from git's
// main (-baseline-ref), the server as it was before the gate.

const (
	noisyDeadline  = time.Second
	noisySpinners  = 8 // concurrent spinning requests: twice the spin app's pool
	noisyBombers   = 2
	noisySpinPool  = 4
	noisyMemLimit  = "64MiB"
	noisyMainRef   = "f56a3c6" // main before fair share and scale to zero (issue 16)
	noisyTenantKey = "tenant"
)

func noisyNeighbourScenario() Scenario {
	return Scenario{
		Name: "noisy-neighbour",
		Description: "tenant B's samples/hello while tenant A floods its apps with requests that spin until their 1 s deadline " +
			"and with memory bombs (64 MiB limit): with the CPU fair share, alone, and on a plain serve built from " + noisyMainRef,
		Path:     "/",
		Expect:   Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:     Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline: "alone",
		Subject:  "wasmsrv",
		Servers: []Server{
			wasmsrvSite("B's hello beside tenant A under attack, fair share", noisySite(true, true)),
			named("alone", wasmsrvSite("B's hello alone: the attacks get 404", noisySite(false, true))),
			named("main", mainSite("plain serve of "+noisyMainRef+", B beside A under attack", noisySite(true, false))),
			named("main-alone", mainSite("plain serve of "+noisyMainRef+", B alone", noisySite(false, false))),
		},
		Background: floodNeighbour,
		Targets: []Target{
			{Row: "alone", Label: "B's rps vs alone", Limit: 0.8, Format: formatRatio,
				Measure: func(s, r Result) (float64, bool) { return s.Wrk.RPS() / r.Wrk.RPS(), r.Wrk.RPS() > 0 }},
			{Row: "alone", Label: "B's p99 vs alone", Limit: 2, AtMost: true, Format: formatRatio,
				Measure: func(s, r Result) (float64, bool) { return float64(s.Wrk.P99) / float64(r.Wrk.P99), r.Wrk.P99 > 0 }},
			{Row: "wasmsrv", Label: "B's errors", Limit: 0, AtMost: true, Format: formatCountValue,
				Measure: func(s, _ Result) (float64, bool) { return float64(s.Wrk.SocketErrors() + s.Wrk.Status), true }},
			extraAtLeast("wasmsrv", "spins to the deadline", "spins", 1),
			extraAtLeast("wasmsrv", "memory bombs", "bombs", 1),
		},
	}
}

// mainSite is wasmsrvSite with the binary built from git's main.
func mainSite(note string, cfg siteConfig) Server {
	s := wasmsrvSite(note, cfg)
	launch := s.Launch
	s.Launch = func(ctx context.Context, env LaunchEnv) (Command, error) {
		c, err := launch(ctx, env)
		if err != nil {
			return c, err
		}
		bin, err := env.WS.GoBinaryAt(ctx, noisyMainRef, "./cmd/wasmsrv")
		if err != nil {
			return Command{}, err
		}
		c.Argv[0] = bin
		return c, nil
	}
	return s
}

// noisySite serves B's hello at / and, when attacked, A's spin and bomb apps
// under /s and /m; tenants puts A's two apps in one tenant (a key main does
// not know: there each app is its own tenant, as it is here without it).
func noisySite(attacked, tenants bool) siteConfig {
	return func(ctx context.Context, env LaunchEnv, admin string) (string, error) {
		hello, err := env.WS.WasmGuest(ctx, "./samples/hello")
		if err != nil {
			return "", err
		}
		tenant := func(name string) string {
			if !tenants {
				return ""
			}
			return fmt.Sprintf("%s = %q\n", noisyTenantKey, name)
		}
		cfg := siteHead(env, admin) + fmt.Sprintf("[apps.hello]\nmodule = %q\n%s\n", hello, tenant("b"))
		if attacked {
			hostile, err := env.WS.WasmGuest(ctx, "./runtime/testdata/hostile")
			if err != nil {
				return "", err
			}
			for _, app := range []struct{ name, path string }{{"spin", "/s"}, {"bomb", "/m"}} {
				cfg += fmt.Sprintf("[apps.%s]\nmodule = %q\npool_size = %d\nmemory_limit = %q\nrequest_timeout = %q\n%s\n[[routes]]\npath = %q\napp = %q\n\n",
					app.name, hostile, noisySpinPool, noisyMemLimit, noisyDeadline.String(), tenant("a"), app.path, app.name)
			}
		}
		return cfg + "[[routes]]\napp = \"hello\"\n", nil
	}
}

// floodNeighbour keeps noisySpinners requests spinning and noisyBombers memory
// bombs going until stopped, and counts those that ended as they should (504
// at the deadline, 500 or 504 for the bomb).
func floodNeighbour(ctx context.Context, addr string) (func() map[string]float64, error) {
	ctx, cancel := context.WithCancel(ctx)
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: noisySpinners + noisyBombers}}
	get := func(path string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return 0
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var mu sync.Mutex
	counts := map[string]float64{"spins": 0, "bombs": 0}
	var wg sync.WaitGroup
	flood := func(n int, path string, key string, want ...int) {
		for range n {
			wg.Go(func() {
				for ctx.Err() == nil {
					if slices.Contains(want, get(path)) {
						mu.Lock()
						counts[key]++
						mu.Unlock()
					} else if ctx.Err() == nil {
						select { // a 404 (the quiet rows) or a refusal: do not spin on it
						case <-ctx.Done():
						case <-time.After(10 * time.Millisecond):
						}
					}
				}
			})
		}
	}
	flood(noisySpinners, "/s/loop", "spins", http.StatusGatewayTimeout)
	// A bomb ends at its memory limit (500), or at its deadline (504) when the
	// spins leave it too little CPU to fill 64 MiB in a second.
	flood(noisyBombers, "/m/bomb", "bombs", http.StatusInternalServerError, http.StatusGatewayTimeout)
	return func() map[string]float64 {
		cancel()
		wg.Wait()
		c.CloseIdleConnections()
		mu.Lock()
		defer mu.Unlock()
		return counts
	}, nil
}
