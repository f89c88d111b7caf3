package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads /metrics from the admin listener with a real Prometheus text
// parser.
func scrape(t *testing.T, base, token string) map[string]*dto.MetricFamily {
	t.Helper()
	return scrapeWith(t, httpClient(t), base, token)
}

// scrapeWith is scrape through client (a test that scrapes often keeps one
// client, and so one connection).
func scrapeWith(t *testing.T, client *http.Client, base, token string) map[string]*dto.MetricFamily {
	t.Helper()
	req := mustRequest(t, http.MethodGet, base+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, body := do(t, client, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v\n%s", err, body)
	}
	return fams
}

// sample is the value of the series of family name with exactly the labels
// given (name=value pairs; tenant is app's name unless given): a counter or gauge's value, a histogram's count;
// -1 when there is no such series.
func sampleOf(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	if _, ok := want["tenant"]; !ok && want["app"] != "" {
		want["tenant"] = want["app"] // an app without a tenant is its own
	}
next:
	for _, m := range f.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// series is one series and its exact value.
type series struct {
	name   string
	labels []string
	value  float64
}

// checkAll compares each series with its value; settle lists the ones the
// server reaches in the background (a replacement instance, a WebSocket's
// close): those are scraped again until they match, within a bound.
func checkAll(t *testing.T, base, token string, wants []series) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams := scrape(t, base, token)
		var wrong []string
		for _, w := range wants {
			if got := sampleOf(fams, w.name, w.labels...); got != w.value {
				wrong = append(wrong, fmt.Sprintf("%s%v = %v, want %v", w.name, w.labels, got, w.value))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the scripted load:\n%s", strings.Join(wrong, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// closedPort is a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// The "done when" of issue 14: after a scripted load through the real binary
// — hello requests, a crash, a deadline kill, a WebSocket with messages, a
// proxied request (and one to a dead server), a cache hit, a rate-limit
// refusal — /metrics, read with Prometheus' own parser, has each counter at its
// exact value.
func TestE2EServeMetrics(t *testing.T) {
	hostile := filepath.Join(samplesDir, "..", "runtime", "testdata", "hostile")
	if warmBin != "" {
		// Compile the guests without the race detector first (see warmBin).
		for _, app := range []struct{ dir, mode string }{{sample("hello"), "sync"}, {hostile, "sync"}, {sample("ws"), "async"}} {
			if firstWarmUp(app.dir, []string{"--mode", app.mode}) {
				warmUp(t, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, "--mode", app.mode, app.dir)
			}
		}
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend %s\n", r.URL.Path)
	}))
	defer backend.Close()
	dead := "http://" + closedPort(t)
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = "127.0.0.1:0"
token = "s3cret"

[[listeners]]
addr = "127.0.0.1:0"

[apps.hello]
package = %q
pool_size = 1

[apps.hostile]
package = %q
pool_size = 1
request_timeout = "1s"
memory_limit = "16MiB"

[apps.ws]
package = %q
mode = "async"
pool_size = 1

[upstreams.backend]
servers = [{ url = %q }]

[upstreams.dead]
servers = [{ url = %q }]
max_fails = 1
fail_timeout = "10m"

[[routes]]
path = "/hostile"
app = "hostile"

[[routes]]
path = "/ws"
app = "ws"

[[routes]]
path = "/up"
upstream = "backend"

[[routes]]
path = "/dead"
upstream = "dead"

[[routes]]
path = "/cached"
app = "hello"
[routes.cache]
ttl = { 200 = "60s" }

[[routes]]
path = "/limited"
app = "hello"
[routes.rate_limit]
rate = 0.001
burst = 1
per = "route"

[[routes]]
path = "/"
app = "hello"
`, sample("hello"), hostile, sample("ws"), backend.URL, dead))
	s := startServe(t, cfg)
	admin := adminURL(t, s)
	if resp, _ := adminGet(t, admin, "", "/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", resp.StatusCode)
	}
	c := httpClient(t)
	expect := func(path string, code int) {
		t.Helper()
		resp, body := get(t, c, s.URL+path)
		if resp.StatusCode != code {
			t.Fatalf("GET %s: %d %q, want %d", path, resp.StatusCode, body, code)
		}
	}
	// hello: three requests, one more behind a rate limit (the second is refused)
	// and one behind the cache (the second is a hit, which the app never sees).
	for range 3 {
		expect("/", 200)
	}
	expect("/limited", 200)
	expect("/limited", 429)
	expect("/cached", 200)
	expect("/cached", 200)
	// hostile: one good request, a crash (a Go panic: a trap), a deadline kill.
	expect("/hostile/ok", 200)
	expect("/hostile/gopanic", 500)
	expect("/hostile/loop", 504)
	// A proxied request, and one to a server that refuses (ejected: max_fails 1).
	expect("/up/x", 200)
	expect("/dead/x", 502)
	// A WebSocket with three messages each way.
	ws := wsDial(t, "ws://"+s.Addr+"/ws/echo")
	for i := range 3 {
		if got := wsRoundTrip(t, ws, websocket.TextMessage, fmt.Sprint("m", i)); got != fmt.Sprint("m", i) {
			t.Fatalf("echo %q", got)
		}
	}
	checkAll(t, admin, "s3cret", []series{{"wasmsrv_app_websockets_open", []string{"app", "ws"}, 1}})
	ws.Close()

	hello, hostileApp, wsApp := []string{"app", "hello"}, []string{"app", "hostile"}, []string{"app", "ws"}
	l := func(base []string, more ...string) []string { return append(append([]string{}, base...), more...) }
	checkAll(t, admin, "s3cret", []series{
		{"wasmsrv_app_requests_total", l(hello, "method", "GET", "code", "2xx"), 5},
		{"wasmsrv_app_request_duration_seconds", hello, 5},
		{"wasmsrv_app_requests_in_flight", hello, 0},
		{"wasmsrv_app_guest_calls_total", hello, 5},
		{"wasmsrv_app_queue_wait_seconds", hello, 5},
		{"wasmsrv_app_instance_starts_total", hello, 1},
		{"wasmsrv_app_instance_crashes_total", l(hello, "reason", "trap"), 0},
		{"wasmsrv_app_instances", l(hello, "state", "idle"), 1},
		{"wasmsrv_app_instances", l(hello, "state", "busy"), 0},
		{"wasmsrv_app_queue_depth", hello, 0},

		{"wasmsrv_app_requests_total", l(hostileApp, "method", "GET", "code", "2xx"), 1},
		{"wasmsrv_app_requests_total", l(hostileApp, "method", "GET", "code", "5xx"), 2},
		{"wasmsrv_app_instance_crashes_total", l(hostileApp, "reason", "trap"), 1},
		{"wasmsrv_app_instance_crashes_total", l(hostileApp, "reason", "exit"), 0},
		{"wasmsrv_app_deadline_kills_total", hostileApp, 1},
		{"wasmsrv_app_guest_calls_total", hostileApp, 3},
		{"wasmsrv_app_instance_starts_total", hostileApp, 3}, // the first, and a replacement for each lost one
		{"wasmsrv_app_instance_recycles_total", hostileApp, 0},
		{"wasmsrv_app_instances", l(hostileApp, "state", "idle"), 1},

		{"wasmsrv_app_requests_total", l(wsApp, "method", "GET", "code", "1xx"), 1},
		{"wasmsrv_app_websockets_open", wsApp, 0},
		{"wasmsrv_app_websocket_messages_total", l(wsApp, "direction", "in"), 3},
		{"wasmsrv_app_websocket_messages_total", l(wsApp, "direction", "out"), 3},
		{"wasmsrv_app_instance_starts_total", wsApp, 1},

		{"wasmsrv_upstream_requests_total", []string{"group", "backend", "server", backend.URL}, 1},
		{"wasmsrv_upstream_errors_total", []string{"group", "backend", "server", backend.URL}, 0},
		{"wasmsrv_upstream_response_seconds", []string{"group", "backend", "server", backend.URL}, 1},
		{"wasmsrv_upstream_up", []string{"group", "backend", "server", backend.URL}, 1},
		{"wasmsrv_upstream_requests_total", []string{"group", "dead", "server", dead}, 1},
		{"wasmsrv_upstream_errors_total", []string{"group", "dead", "server", dead}, 1},
		{"wasmsrv_upstream_ejections_total", []string{"group", "dead", "server", dead}, 1},
		{"wasmsrv_upstream_up", []string{"group", "dead", "server", dead}, 0},
		{"wasmsrv_upstream_retries_total", []string{"group", "dead"}, 0},

		{"wasmsrv_cache_requests_total", []string{"result", "hit"}, 1},
		{"wasmsrv_cache_requests_total", []string{"result", "miss"}, 1},
		{"wasmsrv_cache_requests_total", []string{"result", "stale"}, 0},
		{"wasmsrv_cache_entries", nil, 1},
		{"wasmsrv_rejected_requests_total", []string{"kind", "rate"}, 1},
		{"wasmsrv_rejected_requests_total", []string{"kind", "filter"}, 0},
	})
	fams := scrape(t, admin, "s3cret")
	if sampleOf(fams, "wasmsrv_app_memory_bytes", hello...) <= 0 {
		t.Error("no linear memory reported for hello")
	}
	if sampleOf(fams, "wasmsrv_cache_bytes") <= 0 {
		t.Error("the cache holds no bytes")
	}
	for _, std := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[std] == nil {
			t.Errorf("no %s", std)
		}
	}
	// Series carry no path, no client address.
	for name, f := range fams {
		for _, m := range f.Metric {
			for _, lp := range m.Label {
				if v := lp.GetValue(); strings.HasPrefix(v, "/") || (strings.Contains(v, "127.0.0.1") && lp.GetName() != "server") {
					t.Errorf("%s: label %s=%q", name, lp.GetName(), v)
				}
			}
		}
	}
}

// `wasmsrv run --admin` serves the same per-app metrics for its one app.
func TestE2ERunMetrics(t *testing.T) {
	hostile := filepath.Join(samplesDir, "..", "runtime", "testdata", "hostile")
	srv := startServer(t, hostile, "--admin", "127.0.0.1:0", "--admin-token", "t0k", "--timeout", "1s", "--workers", "1", "--memory-limit", "16MiB", "--name", "h")
	admin := adminURL(t, srv)
	if resp, _ := adminGet(t, admin, "", "/metrics"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/metrics without the token: %d, want 401", resp.StatusCode)
	}
	c := httpClient(t)
	for _, r := range []struct {
		method, path string
		code         int
	}{{"GET", "/ok", 200}, {"GET", "/ok", 200}, {"POST", "/ok", 200}, {"GET", "/exit", 500}, {"GET", "/gopanic", 500}, {"GET", "/loop", 504}, {"BREW", "/ok", 200}} {
		resp, body := do(t, c, mustRequest(t, r.method, srv.URL+r.path, nil))
		if resp.StatusCode != r.code {
			t.Fatalf("%s %s: %d %q, want %d", r.method, r.path, resp.StatusCode, body, r.code)
		}
	}
	h := []string{"app", "h"}
	l := func(more ...string) []string { return append(append([]string{}, h...), more...) }
	checkAll(t, admin, "t0k", []series{
		{"wasmsrv_app_requests_total", l("method", "GET", "code", "2xx"), 2},
		{"wasmsrv_app_requests_total", l("method", "POST", "code", "2xx"), 1},
		{"wasmsrv_app_requests_total", l("method", "OTHER", "code", "2xx"), 1},
		{"wasmsrv_app_requests_total", l("method", "GET", "code", "5xx"), 3},
		{"wasmsrv_app_request_duration_seconds", h, 7},
		{"wasmsrv_app_instance_crashes_total", l("reason", "trap"), 1},
		{"wasmsrv_app_instance_crashes_total", l("reason", "exit"), 1},
		{"wasmsrv_app_instance_crashes_total", l("reason", "memory"), 0},
		{"wasmsrv_app_deadline_kills_total", h, 1},
		{"wasmsrv_app_guest_calls_total", h, 7},
		{"wasmsrv_app_queue_wait_seconds", h, 7},
		{"wasmsrv_app_instance_starts_total", h, 4},
		{"wasmsrv_app_instances", l("state", "idle"), 1},
	})
}

// Plugin calls count by plugin and result: the counter sample's first hit
// finds no key (one kv error) and swaps it in, the second reads and swaps, a
// peek reads; kv then holds "hits" = "2", five bytes.
func TestE2ERunPluginMetrics(t *testing.T) {
	srv := startServer(t, sample("counter"), "--admin", "127.0.0.1:0", "--grant", "kv",
		"--kv-path", filepath.Join(t.TempDir(), "kv.db"), "--workers", "1", "--name", "counter")
	admin := adminURL(t, srv)
	c := httpClient(t)
	for i, path := range []string{"/", "/", "/peek"} {
		resp, body := get(t, c, srv.URL+path)
		if want := []string{"1\n", "2\n", "2\n"}[i]; resp.StatusCode != 200 || body != want {
			t.Fatalf("GET %s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}
	kv := func(result string) []string { return []string{"app", "counter", "plugin", "kv", "result", result} }
	checkAll(t, admin, "", []series{
		{"wasmsrv_app_plugin_calls_total", kv("ok"), 4},
		{"wasmsrv_app_plugin_calls_total", kv("error"), 1},
		{"wasmsrv_app_plugin_calls_total", kv("trap"), 0},
		{"wasmsrv_app_plugin_stored_bytes", []string{"app", "counter", "plugin", "kv"}, float64(len("hits") + len("2"))},
		{"wasmsrv_app_requests_total", []string{"app", "counter", "method", "GET", "code", "2xx"}, 3},
	})
}
