package metrics

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/wasmsrv/wasmsrv/host/internal/cache"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// gather returns the registry's families by name.
func gather(t *testing.T, r *Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := r.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// value is the counter or gauge value of the series of family name whose
// labels include want (name=value pairs); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
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
		}
	}
	return -1
}

func status(code int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) })
}

// Each request is counted once, under its method and status class, with its
// duration; the pool's events and gauges come out as the app's series.
func TestAppCounts(t *testing.T) {
	r := New()
	a := r.App("hello", "")
	for _, c := range []struct {
		method string
		h      http.Handler
	}{
		{"GET", status(200)}, {"GET", status(204)}, {"POST", status(404)}, {"GET", status(503)},
		{"HEAD", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}, // nothing written: a 200
		{"PUT", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(103); w.WriteHeader(302) })},
	} {
		a.Wrap(c.h).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(c.method, "/", nil))
	}
	for _, ev := range []runtime.Event{
		{Kind: runtime.EventInstanceStarted}, {Kind: runtime.EventInstanceStarted},
		{Kind: runtime.EventInstanceCrashed, Reason: runtime.FailTrap},
		{Kind: runtime.EventInstanceCrashed, Reason: runtime.FailMemory},
		{Kind: runtime.EventInstanceCrashed, Reason: "made up"},
		{Kind: runtime.EventDeadlineKill, Err: runtime.ErrDeadline},
		{Kind: runtime.EventInstanceRecycled}, {Kind: runtime.EventInstanceStartFailed, Err: errors.New("x")},
		{Kind: runtime.EventGuestCall, Took: 1500 * time.Millisecond}, {Kind: runtime.EventGuestCall, Took: 500 * time.Millisecond},
		{Kind: runtime.EventQueueWait}, {Kind: runtime.EventQueueWait, Took: time.Millisecond},
	} {
		a.Observe(ev)
	}
	a.SetPool(func() (runtime.SyncStats, bool) {
		return runtime.SyncStats{Workers: 4, Live: 3, Idle: 2, Busy: 1, Waiting: 5, Memory: 3 << 20}, true
	})
	a.WebSocketOpened()
	a.WebSocketOpened()
	a.WebSocketClosed()
	a.WebSocketMessage(true)
	a.WebSocketMessage(false)
	a.WebSocketMessage(false)
	a.PluginCalls("kv").OK.Add(2)
	a.PluginCalls("kv").Error.Add(1)
	a.PluginCalls("http").Trap.Add(1)
	a.SetStored(func(ctx context.Context) map[string]int64 {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("a scrape asks the plugins without a deadline")
		}
		return map[string]int64{"kv": 42}
	})
	fams := gather(t, r)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wasmsrv_app_requests_total", []string{"method", "GET", "code", "2xx"}, 2},
		{"wasmsrv_app_requests_total", []string{"method", "GET", "code", "5xx"}, 1},
		{"wasmsrv_app_requests_total", []string{"method", "POST", "code", "4xx"}, 1},
		{"wasmsrv_app_requests_total", []string{"method", "HEAD", "code", "2xx"}, 1},
		{"wasmsrv_app_requests_total", []string{"method", "PUT", "code", "3xx"}, 1},
		{"wasmsrv_app_requests_total", []string{"method", "PUT", "code", "1xx"}, -1},
		{"wasmsrv_app_request_duration_seconds", nil, 6},
		{"wasmsrv_app_requests_in_flight", nil, 0},
		{"wasmsrv_app_instance_starts_total", nil, 2},
		{"wasmsrv_app_instance_start_failures_total", nil, 1},
		{"wasmsrv_app_instance_recycles_total", nil, 1},
		{"wasmsrv_app_instance_crashes_total", []string{"reason", "trap"}, 1},
		{"wasmsrv_app_instance_crashes_total", []string{"reason", "memory"}, 1},
		{"wasmsrv_app_instance_crashes_total", []string{"reason", "other"}, 1},
		{"wasmsrv_app_instance_crashes_total", []string{"reason", "exit"}, 0},
		{"wasmsrv_app_deadline_kills_total", nil, 1},
		{"wasmsrv_app_guest_calls_total", nil, 2},
		{"wasmsrv_app_guest_seconds_total", nil, 2},
		{"wasmsrv_app_queue_wait_seconds", nil, 2},
		{"wasmsrv_app_queue_depth", nil, 5},
		{"wasmsrv_app_instances", []string{"state", "idle"}, 2},
		{"wasmsrv_app_instances", []string{"state", "busy"}, 1},
		{"wasmsrv_app_instances", []string{"state", "starting"}, 1},
		{"wasmsrv_app_memory_bytes", nil, 3 << 20},
		{"wasmsrv_app_websockets_open", nil, 1},
		{"wasmsrv_app_websocket_messages_total", []string{"direction", "in"}, 1},
		{"wasmsrv_app_websocket_messages_total", []string{"direction", "out"}, 2},
		{"wasmsrv_app_plugin_calls_total", []string{"plugin", "kv", "result", "ok"}, 2},
		{"wasmsrv_app_plugin_calls_total", []string{"plugin", "kv", "result", "error"}, 1},
		{"wasmsrv_app_plugin_calls_total", []string{"plugin", "http", "result", "trap"}, 1},
		{"wasmsrv_app_plugin_calls_total", []string{"plugin", "http", "result", "ok"}, 0},
		{"wasmsrv_app_plugin_stored_bytes", []string{"plugin", "kv"}, 42},
	} {
		if got := value(fams, c.name, append([]string{"app", "hello"}, c.labels...)...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The 1.5 s call lands in the 2.5 s bucket, not below.
	for _, m := range fams["wasmsrv_app_request_duration_seconds"].Metric {
		if m.Histogram.GetSampleSum() < 0 {
			t.Error("negative duration sum")
		}
	}
}

// A client sending ten thousand invented methods (and every status) adds to
// OTHER: the series stay within 10 methods × 5 classes, whatever comes in.
func TestLabelsBounded(t *testing.T) {
	r := New()
	a := r.App("app", "")
	for i := range 10000 {
		m := "M" + strconv.Itoa(i)
		code := 100 + i%500
		if code == 101 {
			code = 200
		}
		a.Wrap(status(code)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/p"+strconv.Itoa(i)+"?q="+m, nil).WithContext(t.Context()))
		req := httptest.NewRequest("GET", "/", nil)
		req.Method = m
		a.Wrap(status(200)).ServeHTTP(httptest.NewRecorder(), req)
	}
	fams := gather(t, r)
	reqs := fams["wasmsrv_app_requests_total"]
	if len(reqs.Metric) > len(methods)*len(classes) {
		t.Fatalf("%d series", len(reqs.Metric))
	}
	if got := value(fams, "wasmsrv_app_requests_total", "method", "OTHER", "code", "2xx"); got != 10000 {
		t.Errorf("OTHER 2xx = %v, want 10000", got)
	}
	for _, m := range reqs.Metric {
		for _, l := range m.Label {
			if strings.Contains(l.GetValue(), "/") || strings.HasPrefix(l.GetValue(), "M") {
				t.Errorf("a label carries what the client sent: %s=%q", l.GetName(), l.GetValue())
			}
		}
	}
	// Every family's label values come from fixed sets or the app's name.
	total := 0
	for _, f := range fams {
		if strings.HasPrefix(f.GetName(), "wasmsrv_") {
			total += len(f.Metric)
		}
	}
	if total > 100 {
		t.Errorf("%d wasmsrv series for one app", total)
	}
}

// Wrapping a handler allocates nothing per request once warm.
func TestWrapAllocatesNothing(t *testing.T) {
	a := New().App("app", "")
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	w := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/", nil)
	h.ServeHTTP(w, req)
	if n := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) }); n > 0 {
		t.Errorf("%v allocations per request", n)
	}
	ev := runtime.Event{Kind: runtime.EventGuestCall, Took: time.Millisecond}
	if n := testing.AllocsPerRun(1000, func() { a.Observe(ev) }); n > 0 {
		t.Errorf("%v allocations per event", n)
	}
	g := New().Group("g", []string{"http://a", "http://b"})
	if n := testing.AllocsPerRun(1000, func() { g.Attempt(1, time.Millisecond, false) }); n > 0 {
		t.Errorf("%v allocations per upstream attempt", n)
	}
}

// BenchmarkAppWrap is what the metrics add to one request, alone: "bare" is
// a handler that writes a status; "metrics" is the same wrapped, plus the two
// events a sync pool sends per request (queue wait, guest call) and the clock
// reads around the guest call. The difference is the cost per request.
func BenchmarkAppWrap(b *testing.B) {
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	a := New().App("app", "")
	var obs runtime.Observer = a
	epoch := time.Now() // as the sync pool times a guest call: two monotonic reads
	wrapped := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obs.Observe(runtime.Event{Kind: runtime.EventQueueWait, App: "app"})
		start := time.Since(epoch)
		w.WriteHeader(200)
		obs.Observe(runtime.Event{Kind: runtime.EventGuestCall, App: "app", Took: time.Since(epoch) - start})
	}))
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"metrics", wrapped}} {
		b.Run(c.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/", nil)
			b.ReportAllocs()
			for b.Loop() {
				c.h.ServeHTTP(w, req)
			}
		})
	}
}

// A WebSocket handshake (the handler hijacks the connection) counts as a 1xx;
// Flush and the other controller calls reach the real writer.
func TestHijackCountsAs101(t *testing.T) {
	r := New()
	a := r.App("ws", "")
	srv := httptest.NewServer(a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		c.Close()
	})))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := value(gather(t, r), "wasmsrv_app_requests_total", "app", "ws", "method", "GET", "code", "1xx"); got != 1 {
		t.Errorf("1xx = %v, want 1", got)
	}
}

// Upstream series: one per server of the config, health read at scrape time;
// cache and rejection series from their counters.
func TestUpstreamCacheRejections(t *testing.T) {
	r := New()
	g := r.Group("api", []string{"http://10.0.0.1:80", "http://10.0.0.2:80"})
	g.SetHealth(func(i int) bool { return i == 0 })
	g.Attempt(0, time.Millisecond, false)
	g.Attempt(1, 2*time.Millisecond, true)
	g.Retried()
	g.Attempt(0, time.Millisecond, false)
	g.Ejected(1)
	st := cache.NewStore(1 << 20)
	r.SetCache(st.Stats)
	r.Rejected.Limits.Rate.Add(3)
	r.Rejected.Filter.Add(1)
	fams := gather(t, r)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wasmsrv_upstream_requests_total", []string{"server", "http://10.0.0.1:80"}, 2},
		{"wasmsrv_upstream_requests_total", []string{"server", "http://10.0.0.2:80"}, 1},
		{"wasmsrv_upstream_errors_total", []string{"server", "http://10.0.0.2:80"}, 1},
		{"wasmsrv_upstream_errors_total", []string{"server", "http://10.0.0.1:80"}, 0},
		{"wasmsrv_upstream_ejections_total", []string{"server", "http://10.0.0.2:80"}, 1},
		{"wasmsrv_upstream_up", []string{"server", "http://10.0.0.1:80"}, 1},
		{"wasmsrv_upstream_up", []string{"server", "http://10.0.0.2:80"}, 0},
		{"wasmsrv_upstream_response_seconds", []string{"server", "http://10.0.0.1:80"}, 2},
		{"wasmsrv_upstream_retries_total", nil, 1},
		{"wasmsrv_cache_requests_total", []string{"result", "hit"}, 0},
		{"wasmsrv_cache_bytes", nil, 0},
		{"wasmsrv_rejected_requests_total", []string{"kind", "rate"}, 3},
		{"wasmsrv_rejected_requests_total", []string{"kind", "filter"}, 1},
		{"wasmsrv_rejected_requests_total", []string{"kind", "body"}, 0},
	} {
		labels := c.labels
		if strings.HasPrefix(c.name, "wasmsrv_upstream") {
			labels = append([]string{"group", "api"}, labels...)
		}
		if got := value(fams, c.name, labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, labels, got, c.want)
		}
	}
	// A reload that drops the group and the app ends their series.
	r.App("gone", "")
	r.Forget(nil, nil)
	fams = gather(t, r)
	if fams["wasmsrv_upstream_requests_total"] != nil || fams["wasmsrv_app_guest_calls_total"] != nil {
		t.Error("series of removed apps or groups remain")
	}
	// The same name with the same servers keeps its counters across a reload.
	g2 := r.Group("api", []string{"http://10.0.0.1:80"})
	if g2 == g {
		t.Error("a group with other servers reuses the old slots")
	}
	if r.Group("api", []string{"http://10.0.0.1:80"}) != g2 {
		t.Error("an unchanged group got new counters")
	}
}

// everything is a registry with one of each source, so every metric of
// wasmsrv's own has a series.
func everything(t *testing.T) map[string]*dto.MetricFamily {
	r := New()
	a := r.App("app", "")
	a.Wrap(status(200)).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	a.SetPool(func() (runtime.SyncStats, bool) { return runtime.SyncStats{}, true })
	a.PluginCalls("kv").OK.Add(1)
	a.SetStored(func(context.Context) map[string]int64 { return map[string]int64{"kv": 1} })
	g := r.Group("g", []string{"http://127.0.0.1:1"})
	g.SetHealth(func(int) bool { return true })
	r.SetCache(cache.NewStore(1).Stats)
	return gather(t, r)
}

// docRow is a metric row of docs/metrics.md: | `name` | type | labels | unit | meaning |
var docRow = regexp.MustCompile("^\\| `(wasmsrv_[a-z_]+)` \\| (counter|gauge|histogram) \\| ([^|]*) \\|")

// docs/metrics.md and the registry list the same metrics, with the same types
// and labels: the doc cannot rot.
func TestDocMatchesRegistry(t *testing.T) {
	f, err := os.Open("../../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := map[string]bool{}
	fams := everything(t)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := docRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		name, typ := m[1], m[2]
		documented[name] = true
		fam := fams[name]
		if fam == nil {
			t.Errorf("docs/metrics.md lists %s, which the registry does not have", name)
			continue
		}
		if got := strings.ToLower(fam.GetType().String()); got != typ {
			t.Errorf("%s: documented as a %s, is a %s", name, typ, got)
		}
		var want []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.TrimSpace(l); l != "" && l != "—" {
				want = append(want, l)
			}
		}
		var got []string
		for _, l := range fam.Metric[0].Label {
			got = append(got, l.GetName())
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: documented labels %v, has %v", name, want, got)
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, Namespace+"_") && !documented[name] {
			t.Errorf("%s is not in docs/metrics.md", name)
		}
	}
	for _, std := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[std] == nil {
			t.Errorf("no %s: the Go and process collectors are missing", std)
		}
	}
}

// Every query of the Grafana dashboard names only metrics the registry has
// (a histogram's _bucket, _sum and _count included), and the dashboard is
// valid JSON with panels.
func TestDashboardUsesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("../../../deploy/grafana/wasmsrv.json")
	if err != nil {
		t.Fatal(err)
	}
	exprs := dashboardExprs(t, b)
	if len(exprs) < 10 {
		t.Fatalf("%d queries in the dashboard", len(exprs))
	}
	fams := everything(t)
	name := regexp.MustCompile(`\b(wasmsrv|go|process)_[a-z_]+`)
	used := map[string]bool{}
	for _, e := range exprs {
		names := name.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("query %q names no metric", e)
		}
		for _, n := range names {
			base := n
			if fams[n] == nil {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(n, suf); ok && fams[b] != nil && fams[b].GetType() == dto.MetricType_HISTOGRAM {
						base = b
					}
				}
			}
			if fams[base] == nil {
				t.Errorf("query %q: no metric %s", e, n)
			}
			used[base] = true
		}
	}
	for n := range fams {
		if strings.HasPrefix(n, Namespace+"_") && !used[n] {
			t.Errorf("the dashboard shows nothing of %s", n)
		}
	}
}

// dashboardExprs are the "expr" fields of every target (and templating query)
// in a Grafana dashboard.
func dashboardExprs(t *testing.T, b []byte) []string {
	t.Helper()
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "expr" || (k == "query" && strings.Contains(s, "("))) {
					out = append(out, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return out
}
