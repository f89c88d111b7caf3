package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Result is one server's outcome in one scenario.
type Result struct {
	Server Server
	// Skipped says why the server did not run (a tool could not be installed).
	Skipped string
	// Err is a failure: it did not build, start, answer correctly, or survive the load.
	Err error
	Wrk WrkResult
	RSS int64
	// CPU is the server tree's CPU time during the measured run (0: not measured).
	CPU   time.Duration
	Procs int
	// Extra holds a custom Drive's other measurements.
	Extra map[string]float64
}

// OK reports whether the server was measured.
func (r Result) OK() bool { return r.Skipped == "" && r.Err == nil }

// Runner measures scenarios, one server at a time.
type Runner struct {
	WS      *Workspace
	Inst    *Installer
	Log     *slog.Logger
	Script  string // path of the wrkReport script
	Verbose bool
	// Only, when not empty, limits the run to these server names.
	Only map[string]bool
}

// prepared is a server with everything built and addresses assigned, ready to start.
type prepared struct {
	server    Server
	cmd       Command
	addr      string
	upstreams []prepared
}

// Run measures every server of sc under load. Builds and installs all happen first,
// so none of them overlaps a measurement. With load.Runs > 1 the servers take turns
// (A B C, A B C, ...) so a change in machine load hits all of them alike, and each
// server's median run by rps is kept.
func (r *Runner) Run(ctx context.Context, sc Scenario, load Load) []Result {
	results := make([]Result, 0, len(sc.Servers))
	var ready []prepared
	for _, s := range sc.Servers {
		if len(r.Only) > 0 && !r.Only[s.Name] {
			continue
		}
		p, res := r.prepare(ctx, s)
		results = append(results, res)
		if res.OK() {
			ready = append(ready, p)
		}
	}
	samples := make(map[string][]Result, len(ready))
	for round := 0; round < max(load.Runs, 1) && ctx.Err() == nil; round++ {
		for _, p := range ready {
			samples[p.server.Name] = append(samples[p.server.Name], r.measure(ctx, sc, load, p))
		}
	}
	for i := range results {
		if runs, ok := samples[results[i].Server.Name]; ok {
			results[i] = median(runs)
		}
	}
	return results
}

// median returns the run with the median rps (the lower one for an even count), or
// the first failed run: a server that failed once failed.
func median(runs []Result) Result {
	for _, r := range runs {
		if !r.OK() {
			return r
		}
	}
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b Result) int { return cmp.Compare(a.Wrk.RPS(), b.Wrk.RPS()) })
	return sorted[(len(sorted)-1)/2]
}

func (r *Runner) prepare(ctx context.Context, s Server) (prepared, Result) {
	res := Result{Server: s}
	if err := r.Inst.Ensure(ctx, requirements(s)); err != nil {
		res.Skipped = "skipped: " + err.Error()
		r.Log.Warn(res.Skipped, "server", s.Name)
		return prepared{}, res
	}
	p, err := r.launch(ctx, s)
	if err != nil {
		res.Err = err
		r.Log.Error("prepare failed", "server", s.Name, "err", err)
	}
	return p, res
}

// requirements collects the tools of a server and its upstreams.
func requirements(s Server) []Tool {
	tools := append([]Tool(nil), s.Requires...)
	for _, u := range s.Upstreams {
		tools = append(tools, requirements(u)...)
	}
	return tools
}

func (r *Runner) launch(ctx context.Context, s Server) (prepared, error) {
	p := prepared{server: s}
	env := LaunchEnv{WS: r.WS}
	for _, u := range s.Upstreams {
		up, err := r.launch(ctx, u)
		if err != nil {
			return prepared{}, fmt.Errorf("upstream %s: %w", u.Name, err)
		}
		p.upstreams = append(p.upstreams, up)
		env.Upstreams = append(env.Upstreams, up.addr)
	}
	addr, err := freeAddr()
	if err != nil {
		return prepared{}, err
	}
	p.addr, env.Addr = addr, addr
	if p.cmd, err = s.Launch(ctx, env); err != nil {
		return prepared{}, fmt.Errorf("launch %s: %w", s.Name, err)
	}
	return p, nil
}

// measure starts p (and its upstreams), checks one response, warms up, runs wrk,
// samples memory while the server is still up, and stops everything.
func (r *Runner) measure(ctx context.Context, sc Scenario, load Load, p prepared) (res Result) {
	res = Result{Server: p.server}
	log := r.Log.With("scenario", sc.Name, "server", p.server.Name)
	var started []*Process
	defer func() { r.stopAll(started) }()
	proc, err := r.startTree(ctx, p, &started)
	if err != nil {
		res.Err = err
		log.Error("start failed", "err", err)
		return res
	}
	if sc.Drive != nil {
		d, err := sc.Drive(ctx, p.addr, proc.Pid(), load)
		if err != nil {
			res.Err = err
			log.Error("load run failed", "err", err)
			return res
		}
		res.Wrk, res.RSS, res.Procs, res.Extra = d.Wrk, d.RSS, d.Procs, d.Extra
		log.Info("measured", "rate", int(res.Wrk.RPS()), "rss_mb", res.RSS>>20, "extra", res.Extra)
		return res
	}
	url := "http://" + p.addr + sc.Path
	if err := checkResponse(ctx, url, sc.Expect); err != nil {
		res.Err = fmt.Errorf("wrong response: %w", err)
		log.Error("correctness check failed", "err", err)
		return res
	}
	if sc.Background != nil {
		stop, err := sc.Background(ctx, p.addr)
		if err != nil {
			res.Err = fmt.Errorf("background load: %w", err)
			log.Error("background load failed", "err", err)
			return res
		}
		defer func() { res.Extra = stop() }() // res is the named result: the report sees it
	}
	if res.Wrk, res.CPU, err = r.drive(ctx, url, load, proc.Pid()); err != nil {
		res.Err = err
		log.Error("load run failed", "err", err)
		return res
	}
	if res.RSS, res.Procs, err = TreeRSS("/proc", proc.Pid()); err != nil {
		res.Err = fmt.Errorf("rss after run (did it crash?): %w: %s", err, proc.Output())
		return res
	}
	log.Info("measured", "rps", int(res.Wrk.RPS()), "p99", res.Wrk.P99, "rss_mb", res.RSS>>20, "procs", res.Procs)
	return res
}

// drive warms the server up, then runs the measured wrk pass and reports the
// CPU time the server's process tree spent during it.
func (r *Runner) drive(ctx context.Context, url string, load Load, pid int) (WrkResult, time.Duration, error) {
	if load.Warmup > 0 {
		if _, err := runWrk(ctx, r.Script, url, load, load.Warmup); err != nil {
			return WrkResult{}, 0, fmt.Errorf("warm-up: %w", err)
		}
	}
	cpu0, err := TreeCPU("/proc", pid)
	if err != nil {
		return WrkResult{}, 0, fmt.Errorf("cpu before the run: %w", err)
	}
	res, err := runWrk(ctx, r.Script, url, load, load.Duration)
	if err != nil {
		return WrkResult{}, 0, err
	}
	cpu1, err := TreeCPU("/proc", pid)
	if err != nil {
		return WrkResult{}, 0, fmt.Errorf("cpu after the run (did it crash?): %w", err)
	}
	if r.Verbose {
		r.Log.Info("wrk output\n" + res.Raw)
	}
	return res, cpu1 - cpu0, nil
}

// startTree starts p's upstreams (recursively) then p, each answering before the next
// starts, and records every started process in started.
func (r *Runner) startTree(ctx context.Context, p prepared, started *[]*Process) (*Process, error) {
	for _, u := range p.upstreams {
		if _, err := r.startTree(ctx, u, started); err != nil {
			return nil, fmt.Errorf("upstream %s: %w", u.server.Name, err)
		}
	}
	proc, err := Start(ctx, p.cmd)
	if err != nil {
		return nil, err
	}
	*started = append(*started, proc)
	wait := p.server.StartTimeout
	if wait <= 0 {
		wait = 60 * time.Second
	}
	if ready := p.server.Ready; ready != nil {
		err = proc.WaitFor(ctx, func(ctx context.Context) error { return ready(ctx, p.addr) }, wait)
	} else {
		err = proc.WaitReady(ctx, "http://"+p.addr+"/", wait)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.server.Name, err)
	}
	return proc, nil
}

// stopAll stops processes in reverse start order.
func (r *Runner) stopAll(procs []*Process) {
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(10 * time.Second); err != nil {
			r.Log.Warn("stop", "err", err)
		}
	}
}

// checkResponse makes one request and compares status, Content-Type and body.
func checkResponse(ctx context.Context, url string, want Expect) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != want.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, want.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != want.ContentType {
		return fmt.Errorf("Content-Type %q, want %q", ct, want.ContentType)
	}
	if want.BodyPrefix != "" {
		if !strings.HasPrefix(string(body), want.BodyPrefix) {
			return fmt.Errorf("body %.80q..., want it to start with %q", body, want.BodyPrefix)
		}
	} else if string(body) != want.Body {
		return fmt.Errorf("body %q, want %q", body, want.Body)
	}
	return nil
}
