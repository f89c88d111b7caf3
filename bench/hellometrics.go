package main

import "time"

// helloMetricsScenario is hello with and without the metrics: `wasmsrv run` on
// samples/hello plain, and with --admin (which turns the app's metrics on: the
// pool's observer and the request counters). Issue 14's target: the metrics
// cost at most 3% CPU per request.
func helloMetricsScenario() Scenario {
	plain := wasmsrvServer("samples/hello, default pool, --access-log=false", goGuest("./samples/hello"))
	plain.Name = "wasmsrv-plain"
	metrics := wasmsrvServer("the same, --admin 127.0.0.1:0 (metrics on)", goGuest("./samples/hello"), "--admin", "127.0.0.1:0")
	metrics.Name = "wasmsrv-metrics"
	return Scenario{
		Name:        "hello-metrics",
		Description: "hello with and without Prometheus metrics (wasmsrv run --admin)",
		Path:        "/",
		Expect:      Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "wasmsrv-plain",
		Subject:     "wasmsrv-metrics",
		Servers:     []Server{plain, metrics},
		Targets: []Target{
			cpuPerRequestAtMost("wasmsrv-plain", 1.03),
			rpsAtLeast("wasmsrv-plain", 0.97),
		},
	}
}

// cpuPerRequestAtMost: the subject's CPU time per request is at most x times the
// peer's.
func cpuPerRequestAtMost(peer string, x float64) Target {
	perReq := func(r Result) float64 {
		if r.Wrk.Requests <= 0 {
			return 0
		}
		return float64(r.CPU) / float64(r.Wrk.Requests)
	}
	return Target{
		Row: peer, Label: "CPU/request", Limit: x, AtMost: true, Format: formatRatio,
		Measure: func(s, r Result) (float64, bool) { return ratio(perReq(s), perReq(r)) },
	}
}
