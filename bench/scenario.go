package main

import (
	"context"
	"fmt"
	"sort"
	"time"
)

// Scenario is one comparison: the same requests against several servers, driven by
// wrk with the same parameters, one server at a time.
type Scenario struct {
	Name        string
	Description string
	// Path is the request path, e.g. "/".
	Path string
	// Expect is checked once against every server before its load run.
	Expect Expect
	// Load holds the scenario's own wrk defaults; command-line flags override them.
	Load Load
	// Baseline and Subject name the servers the ratio columns divide by: the reference
	// implementation (native Go) and the server under test (wasmsrv).
	Baseline string
	Subject  string
	Servers  []Server
	Targets  []Target
	// Background, when set, starts extra load on the server after the response
	// check and before the warm-up (e.g. slow uploads), and keeps it up through
	// the measured run; the function it returns stops it and reports what it
	// saw, into Result.Extra.
	Background func(ctx context.Context, addr string) (stop func() map[string]float64, err error)
	// Drive, when set, replaces the response check and the wrk run: it loads the
	// server itself (e.g. WebSockets, which wrk cannot speak) and fills the result.
	// pid is the server's process, for memory samples taken under load.
	Drive func(ctx context.Context, addr string, pid int, load Load) (Driven, error)
}

// Driven is what a custom Drive measured. Wrk carries the headline numbers in the
// usual columns (Requests over Duration is the "rps" column); Extra holds the rest
// for the scenario's targets.
type Driven struct {
	Wrk   WrkResult
	RSS   int64
	Procs int
	Extra map[string]float64
}

// Expect is what a correct response looks like.
type Expect struct {
	Status      int
	ContentType string
	Body        string
	// BodyPrefix, when set, replaces the exact Body check (long generated pages).
	BodyPrefix string
}

// Load is one wrk run's shape.
type Load struct {
	Threads  int
	Conns    int
	Duration time.Duration
	Warmup   time.Duration
	// Runs is how many measured runs each server gets (the median is kept); 0 means 1.
	Runs int
}

// Server is one peer in a scenario: a process that listens on the address it is given.
type Server struct {
	Name string
	// Note describes the configuration, shown beside the name (workers, flags).
	Note string
	// Requires lists the tools it needs; missing ones are installed or the server
	// is skipped.
	Requires []Tool
	// Upstreams are started before this server and stopped after it, e.g. the
	// backend behind a proxy. Their memory is not counted.
	Upstreams []Server
	// Launch builds what the server needs and says how to start it.
	Launch func(ctx context.Context, env LaunchEnv) (Command, error)
	// Ready, when set, reports whether the started server at addr is ready; by
	// default the harness waits for it to answer HTTP (a database does not).
	Ready func(ctx context.Context, addr string) error
	// StartTimeout bounds the start until ready (0: 60 s).
	StartTimeout time.Duration
}

// LaunchEnv is what a server's Launch gets to work with.
type LaunchEnv struct {
	WS *Workspace
	// Addr is the loopback host:port the server must listen on.
	Addr string
	// Upstreams holds the addresses of Server.Upstreams, in order.
	Upstreams []string
}

// Command is one process to start. Env entries are added to the harness's environment.
type Command struct {
	Argv []string
	Dir  string
	Env  []string
}

// scenarioFunc builds one scenario. Each scenario lives in its own file and adds its
// constructor to registry, so adding one touches a single line here.
type scenarioFunc func() Scenario

func registry() []scenarioFunc {
	return []scenarioFunc{
		helloScenario,
		helloMetricsScenario,
		asyncHelloScenario,
		wsHoldScenario,
		proxyScenario,
		staticScenario,
		cacheScenario,
		cacheHelloScenario,
		cHelloScenario,
		cgiScenario,
		slowUploadScenario,
		hostileNeighbourScenario,
		noisyNeighbourScenario,
		scaleToZeroScenario,
		todoScenario,
	}
}

// catalog indexes the registered scenarios by name and rejects duplicates.
func catalog(funcs []scenarioFunc) (map[string]Scenario, error) {
	out := make(map[string]Scenario, len(funcs))
	for _, f := range funcs {
		s := f()
		if _, dup := out[s.Name]; dup {
			return nil, fmt.Errorf("scenario %q registered twice", s.Name)
		}
		out[s.Name] = s
	}
	return out, nil
}

// selectScenarios returns the named scenarios, or all of them in name order when no
// name is given.
func selectScenarios(all map[string]Scenario, names []string) ([]Scenario, error) {
	if len(names) == 0 {
		for n := range all {
			names = append(names, n)
		}
		sort.Strings(names)
	}
	out := make([]Scenario, 0, len(names))
	for _, n := range names {
		s, ok := all[n]
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q (try -list)", n)
		}
		out = append(out, s)
	}
	return out, nil
}
