package main

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkReport is a wrk Lua script whose done() prints one machine-readable line, so
// the harness does not parse wrk's human summary (units vary: us, ms, s, k, M).
// Defining only done() keeps wrk on its fast path (no per-request Lua).
const wrkReport = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    math.floor(latency:percentile(50)), math.floor(latency:percentile(90)),
    math.floor(latency:percentile(99)), latency.max))
end
`

// WrkResult is one wrk run, parsed.
type WrkResult struct {
	Requests int64
	Duration time.Duration
	Bytes    int64
	// Socket errors by kind, and responses with status >= 400 (wrk's "Non-2xx or 3xx").
	Connect, Read, Write, Timeout, Status int64
	P50, P90, P99, Max                    time.Duration
	Raw                                   string
}

// RPS is requests per second over the measured duration.
func (r WrkResult) RPS() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Duration.Seconds()
}

// SocketErrors sums wrk's connect, read, write and timeout errors.
func (r WrkResult) SocketErrors() int64 { return r.Connect + r.Read + r.Write + r.Timeout }

// runWrk drives url with load; script is the path of the wrkReport script.
func runWrk(ctx context.Context, script, url string, load Load, d time.Duration) (WrkResult, error) {
	args := []string{
		"-t" + strconv.Itoa(load.Threads), "-c" + strconv.Itoa(load.Conns),
		"-d" + wrkDuration(d), "--latency", "-s", script, url,
	}
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, tail(out, 1000))
	}
	res, err := parseWrk(string(out))
	if err != nil {
		return WrkResult{}, fmt.Errorf("wrk output: %w: %s", err, tail(out, 1000))
	}
	return res, nil
}

// wrkDuration renders d in whole seconds, wrk's finest unit, at least 1s.
func wrkDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	return strconv.FormatInt(max(s, 1), 10) + "s"
}

// parseWrk finds the WRKRESULT line and reads its key=value fields.
func parseWrk(out string) (WrkResult, error) {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "WRKRESULT ")
		if !ok {
			continue
		}
		res, err := parseWrkFields(rest)
		res.Raw = out
		return res, err
	}
	return WrkResult{}, fmt.Errorf("no WRKRESULT line")
}

func parseWrkFields(line string) (WrkResult, error) {
	var r WrkResult
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	fields := map[string]func(int64){
		"requests": func(v int64) { r.Requests = v }, "duration_us": func(v int64) { r.Duration = us(v) },
		"bytes": func(v int64) { r.Bytes = v }, "connect": func(v int64) { r.Connect = v },
		"read": func(v int64) { r.Read = v }, "write": func(v int64) { r.Write = v },
		"status": func(v int64) { r.Status = v }, "timeout": func(v int64) { r.Timeout = v },
		"p50_us": func(v int64) { r.P50 = us(v) }, "p90_us": func(v int64) { r.P90 = us(v) },
		"p99_us": func(v int64) { r.P99 = us(v) }, "max_us": func(v int64) { r.Max = us(v) },
	}
	seen := 0
	for _, kv := range strings.Fields(line) {
		k, v, ok := strings.Cut(kv, "=")
		set, known := fields[k]
		if !ok || !known {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return WrkResult{}, fmt.Errorf("field %s: %w", k, err)
		}
		set(n)
		seen++
	}
	if seen != len(fields) {
		return WrkResult{}, fmt.Errorf("WRKRESULT has %d of %d fields", seen, len(fields))
	}
	return r, nil
}
