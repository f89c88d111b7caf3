package main

import (
	"fmt"
	"math"
)

// Target is a goal for the scenario's subject, printed beside the row of the server
// it compares against.
type Target struct {
	// Row names the server whose row shows the target.
	Row   string
	Label string
	// Measure derives the checked number from the subject's and the row's results;
	// ok is false when either did not run.
	Measure func(subject, row Result) (v float64, ok bool)
	Limit   float64
	AtMost  bool
	// Format renders a measured value or the limit, e.g. "0.93×" or "12.4 MiB".
	Format func(float64) string
}

// Verdict is a target checked against one run.
type Verdict struct {
	Target Target
	Value  float64
	Known  bool
	Met    bool
}

// String renders e.g. "rps ≥ 0.9×: 0.95× ✓".
func (v Verdict) String() string {
	op := "≥"
	if v.Target.AtMost {
		op = "≤"
	}
	head := fmt.Sprintf("%s %s %s", v.Target.Label, op, v.Target.Format(v.Target.Limit))
	if !v.Known {
		return head + ": n/a"
	}
	mark := "✓"
	if !v.Met {
		mark = "✗"
	}
	return fmt.Sprintf("%s: %s %s", head, v.Target.Format(v.Value), mark)
}

// Check evaluates t with the results of one scenario.
func (t Target) Check(subject string, results []Result) Verdict {
	v := Verdict{Target: t}
	s, sok := findResult(results, subject)
	r, rok := findResult(results, t.Row)
	if !sok || !rok {
		return v
	}
	v.Value, v.Known = t.Measure(s, r)
	if v.Known {
		v.Met = v.Value >= t.Limit
		if t.AtMost {
			v.Met = v.Value <= t.Limit
		}
	}
	return v
}

func findResult(results []Result, name string) (Result, bool) {
	for _, r := range results {
		if r.Server.Name == name && r.OK() {
			return r, true
		}
	}
	return Result{}, false
}

func formatRatio(v float64) string { return fmt.Sprintf("%.2f×", v) }

func formatMB(v float64) string { return fmt.Sprintf("%.1f MiB", v/(1<<20)) }

// ratio is a/b, not ok when b is zero.
func ratio(a, b float64) (float64, bool) {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return 0, false
	}
	return a / b, true
}

// rpsAtLeast: the subject serves at least x times the peer's requests per second.
func rpsAtLeast(peer string, x float64) Target {
	return Target{
		Row: peer, Label: "rps", Limit: x, Format: formatRatio,
		Measure: func(s, r Result) (float64, bool) { return ratio(s.Wrk.RPS(), r.Wrk.RPS()) },
	}
}

// p99AtMost: the subject's 99th percentile latency is at most x times the peer's.
func p99AtMost(peer string, x float64) Target {
	return Target{
		Row: peer, Label: "p99", Limit: x, AtMost: true, Format: formatRatio,
		Measure: func(s, r Result) (float64, bool) { return ratio(float64(s.Wrk.P99), float64(r.Wrk.P99)) },
	}
}

// rssAtMost: a server's resident memory after the run is at most limit bytes.
func rssAtMost(server string, limit int64) Target {
	return Target{
		Row: server, Label: "RSS", Limit: float64(limit), AtMost: true, Format: formatMB,
		Measure: func(_, r Result) (float64, bool) { return float64(r.RSS), r.RSS > 0 },
	}
}
