package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The scale-to-zero scenario configures many apps in one `wasmsrv serve`:
// stzC C apps (samples/c-hello) and stzGo Go apps (samples/hello), of which
// stzBusy Go apps are then kept busy. With pool_idle_timeout and pool_min = 0,
// idle apps hold no instance; it measures the first request to an app after
// its instances were given back (Go and C), the server's RSS once idle, and
// its RSS while the busy apps are loaded. The baseline is the same site on a
// plain serve built from git's main, where every app holds its whole pool.
const (
	stzC        = 1000
	stzGo       = 100
	stzBusy     = 10
	stzIdle     = 2 * time.Second // pool_idle_timeout
	stzSamples  = 9               // apps probed per language for the first-request latency
	stzMainRef  = noisyMainRef
	stzStartMax = 15 * time.Minute
)

func scaleToZeroScenario() Scenario {
	return Scenario{
		Name: "scale-to-zero",
		Description: fmt.Sprintf("%d C apps and %d Go apps in one serve, %d Go apps busy: pool_idle_timeout %v, pool_min 0, "+
			"vs a plain serve of %s holding every pool whole. rps = the busy apps' rate; RSS while they are busy",
			stzC, stzGo, stzBusy, stzIdle, stzMainRef),
		Path:     "/g0/",
		Load:     Load{Threads: 1, Conns: 40, Duration: 5 * time.Second},
		Baseline: "main",
		Subject:  "wasmsrv",
		Servers: []Server{
			{Name: "wasmsrv", Note: "scale to zero after " + stzIdle.String(), StartTimeout: stzStartMax,
				Launch: wasmsrvSite("", manyAppsSite(true)).Launch},
			{Name: "main", Note: "plain serve of " + stzMainRef + ": every pool whole (2×CPU+1 instances each)", StartTimeout: stzStartMax,
				Launch: mainSite("", manyAppsSite(false)).Launch},
		},
		Drive: driveScaleToZero,
		Targets: []Target{
			{Row: "main", Label: "RSS with 10 busy vs main", Limit: 0.5, AtMost: true, Format: formatRatio,
				Measure: func(s, r Result) (float64, bool) { return ratio(float64(s.RSS), float64(r.RSS)) }},
			{Row: "main", Label: "RSS once idle vs main", Limit: 0.5, AtMost: true, Format: formatRatio,
				Measure: func(s, r Result) (float64, bool) { return ratio(s.Extra["rss_idle_mib"], r.Extra["rss_idle_mib"]) }},
			extraAtMost("wasmsrv", "first Go request after idling", "first_go_ms", 50, formatMsFrac),
			extraAtMost("wasmsrv", "first C request after idling", "first_c_ms", 20, formatMsFrac),
			extraAtMost("wasmsrv", "busy apps' errors", "errors", 0, formatCountValue),
		},
	}
}

func formatMsFrac(v float64) string { return fmt.Sprintf("%.2f ms", v) }

// manyAppsSite routes /cN/ to C app cN and /gN/ to Go app gN.
func manyAppsSite(scale bool) siteConfig {
	return func(ctx context.Context, env LaunchEnv, admin string) (string, error) {
		goWasm, err := env.WS.WasmGuest(ctx, "./samples/hello")
		if err != nil {
			return "", err
		}
		cWasm := filepath.Join(env.WS.Root, "samples", "c-hello", "main.wasm")
		if _, err := os.Stat(cWasm); err != nil {
			return "", err
		}
		var b strings.Builder
		b.WriteString(siteHead(env, admin))
		scaling := ""
		if scale {
			scaling = fmt.Sprintf("pool_idle_timeout = %q\npool_min = 0\n", stzIdle.String())
		}
		app := func(name, wasm string) {
			fmt.Fprintf(&b, "[apps.%s]\nmodule = %q\n%s\n[[routes]]\npath = \"/%s/\"\napp = %q\n\n", name, wasm, scaling, name, name)
		}
		for i := range stzGo {
			app(fmt.Sprintf("g%d", i), goWasm)
		}
		for i := range stzC {
			app(fmt.Sprintf("c%d", i), cWasm)
		}
		return b.String(), nil
	}
}

// driveScaleToZero waits for the pools to go idle, probes first requests, then
// loads the busy apps and samples the RSS under that load.
func driveScaleToZero(ctx context.Context, addr string, pid int, load Load) (Driven, error) {
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: load.Conns}}
	defer c.CloseIdleConnections()
	get := func(path string) (time.Duration, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return 0, err
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return time.Since(start), nil
	}
	// One request opens a keep-alive connection, so the probes below time the
	// server, not the dial.
	if _, err := get("/g0/"); err != nil {
		return Driven{}, err
	}
	select {
	case <-time.After(stzIdle*2 + time.Second):
	case <-ctx.Done():
		return Driven{}, ctx.Err()
	}
	idleRSS, _, err := TreeRSS("/proc", pid)
	if err != nil {
		return Driven{}, err
	}
	probe := func(prefix string, n int) (first, warm float64, err error) {
		var f, w []float64
		for i := range stzSamples {
			path := fmt.Sprintf("/%s%d/", prefix, (i*7+1)%n) // spread over the apps
			d1, err := get(path)
			if err != nil {
				return 0, 0, err
			}
			d2, err := get(path)
			if err != nil {
				return 0, 0, err
			}
			f, w = append(f, ms(d1)), append(w, ms(d2))
		}
		return medianOf(f), medianOf(w), nil
	}
	firstGo, warmGo, err := probe("g", stzGo)
	if err != nil {
		return Driven{}, err
	}
	firstC, warmC, err := probe("c", stzC)
	if err != nil {
		return Driven{}, err
	}
	// The busy apps: load.Conns clients spread over stzBusy Go apps.
	var served, failed atomic.Int64
	var lat []time.Duration
	var mu sync.Mutex
	lctx, cancel := context.WithTimeout(ctx, load.Duration)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range load.Conns {
		wg.Go(func() {
			path := fmt.Sprintf("/g%d/", i%stzBusy)
			var mine []time.Duration
			for lctx.Err() == nil {
				d, err := get(path)
				switch {
				case err == nil:
					served.Add(1)
					mine = append(mine, d)
				case lctx.Err() == nil:
					failed.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	// RSS under the load, once it has run for most of its time.
	select {
	case <-time.After(load.Duration * 4 / 5):
	case <-ctx.Done():
	}
	busyRSS, procs, err := TreeRSS("/proc", pid)
	wg.Wait()
	took := time.Since(start)
	if err != nil {
		return Driven{}, err
	}
	slices.Sort(lat)
	res := WrkResult{Requests: served.Load(), Duration: took}
	if len(lat) > 0 {
		res.P50, res.P90, res.P99, res.Max = lat[len(lat)/2], lat[len(lat)*9/10], lat[len(lat)*99/100], lat[len(lat)-1]
	}
	extra := map[string]float64{
		"first_go_ms": firstGo, "warm_go_ms": warmGo, "first_c_ms": firstC, "warm_c_ms": warmC,
		"rss_idle_mib": float64(idleRSS) / (1 << 20), "rss_busy_mib": float64(busyRSS) / (1 << 20), "errors": float64(failed.Load()),
	}
	fmt.Fprintf(os.Stderr, "scale-to-zero: %v\n", extra) // the figures the table has no column for
	return Driven{Wrk: res, RSS: busyRSS, Procs: procs, Extra: extra}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
