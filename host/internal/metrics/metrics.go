// Package metrics is wasmsrv's Prometheus exposition: one Registry per server
// process (no global registry), served at /metrics on the admin listener. Per
// app (App) it counts requests by method and status class, their durations and
// what the app's pool did (through runtime.Observer); the pools' gauges
// (instances, queue depth, linear memory), the upstream servers' health and the
// cache's figures are read at scrape time from the counters those parts keep
// anyway. Per-request work is a few atomic adds: no label lookup, no lock, no
// allocation (BenchmarkAppWrap). Every label takes values from a fixed set or
// from the config (app, group and server names): nothing a client sends
// becomes a label value. docs/metrics.md lists every metric; a test holds the
// two together.
package metrics

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wasmsrv/wasmsrv/host/internal/cache"
	"github.com/wasmsrv/wasmsrv/host/internal/limit"
)

// Namespace prefixes every metric of wasmsrv's own.
const Namespace = "wasmsrv"

// Registry holds the metrics of one server process.
type Registry struct {
	reg *prometheus.Registry
	d   descs

	mu     sync.Mutex
	apps   map[string]*App   // by name: an app's counters outlive reloads
	groups map[string]*Group // by name
	cache  func() cache.Stats

	// Rejected counts requests refused by a limit or a filter rule, by kind;
	// the site hands these counters to the limits it builds.
	Rejected Rejections
}

// Rejections are the counters of refused requests.
type Rejections struct {
	Limits limit.Counts
	Filter atomic.Int64 // denied by a filter rule
}

// New makes a Registry with the Go runtime and process collectors.
func New() *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), d: newDescs(), apps: map[string]*App{}, groups: map[string]*Group{}}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), (*collector)(r))
	return r
}

// Handler serves the exposition (text or protobuf, as the scraper asks).
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Gatherer is the underlying registry, for tests.
func (r *Registry) Gatherer() prometheus.Gatherer { return r.reg }

// App returns the metrics of the app called name, made on first use: a reload
// that reopens the app keeps counting on the same counters. Tenant is the
// customer it belongs to ("": the app is its own tenant, named by name).
func (r *Registry) App(name, tenant string) *App {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.apps[name]
	if a == nil {
		if tenant == "" {
			tenant = name
		}
		a = newApp(name, tenant)
		r.apps[name] = a
	}
	return a
}

// Forget drops the metrics of apps and upstream groups not named in keep:
// after a reload removed them, their series end.
func (r *Registry) Forget(apps, groups []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name := range r.apps {
		if !slices.Contains(apps, name) {
			delete(r.apps, name)
		}
	}
	for name := range r.groups {
		if !slices.Contains(groups, name) {
			delete(r.groups, name)
		}
	}
}

// SetCache makes stats the source of the cache metrics (nil: no cache).
func (r *Registry) SetCache(stats func() cache.Stats) {
	r.mu.Lock()
	r.cache = stats
	r.mu.Unlock()
}

// collector is the Registry as a prometheus.Collector: an unchecked one (its
// Describe sends nothing), since its series come and go with apps and groups.
type collector Registry

func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	r := (*Registry)(c)
	r.mu.Lock()
	apps := make([]*App, 0, len(r.apps))
	for _, a := range r.apps {
		apps = append(apps, a)
	}
	groups := make([]*Group, 0, len(r.groups))
	for _, g := range r.groups {
		groups = append(groups, g)
	}
	cacheStats := r.cache
	r.mu.Unlock()
	for _, a := range apps {
		a.collect(&r.d, ch)
	}
	for _, g := range groups {
		g.collect(&r.d, ch)
	}
	if cacheStats != nil {
		st := cacheStats()
		for _, x := range []struct {
			result string
			n      int64
		}{{"hit", st.Hits}, {"miss", st.Misses}, {"stale", st.Stale}, {"bypass", st.Bypass}} {
			ch <- prometheus.MustNewConstMetric(r.d.cacheRequests, prometheus.CounterValue, float64(x.n), x.result)
		}
		ch <- prometheus.MustNewConstMetric(r.d.cacheBytes, prometheus.GaugeValue, float64(st.Bytes))
		ch <- prometheus.MustNewConstMetric(r.d.cacheEntries, prometheus.GaugeValue, float64(st.Entries))
	}
	for _, x := range []struct {
		kind string
		n    *atomic.Int64
	}{{"rate", &r.Rejected.Limits.Rate}, {"conn_per_ip", &r.Rejected.Limits.ConnPerIP}, {"body", &r.Rejected.Limits.Body}, {"header", &r.Rejected.Limits.Header}, {"filter", &r.Rejected.Filter}} {
		ch <- prometheus.MustNewConstMetric(r.d.rejected, prometheus.CounterValue, float64(x.n.Load()), x.kind)
	}
}

// descs describe every metric of wasmsrv's own (docs/metrics.md lists them).
type descs struct {
	requests, duration, inFlight                                  *prometheus.Desc
	queueDepth, queueWait                                         *prometheus.Desc
	instances, starts, startFailures, recycles, crashes, deadline *prometheus.Desc
	guestCalls, guestSeconds, memory                              *prometheus.Desc
	wsOpen, wsMessages, pluginCalls, storedBytes                  *prometheus.Desc

	upRequests, upErrors, upDuration, upUp, upRetries, upEjections *prometheus.Desc

	cacheRequests, cacheBytes, cacheEntries *prometheus.Desc
	rejected                                *prometheus.Desc
}

// appLabels are the labels of every per-app metric, in App.labels' order.
// (A tenant label joins here, and its value in newApp, once tenants exist.)
var appLabels = []string{"app", "tenant"}

func newDescs() descs {
	app := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_app_"+name, help, append(slices.Clip(appLabels), extra...), nil)
	}
	up := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_upstream_"+name, help, labels, nil)
	}
	return descs{
		requests:      app("requests_total", "HTTP requests the app answered, by method (GET … TRACE, OTHER) and status class (1xx … 5xx).", "method", "code"),
		duration:      app("request_duration_seconds", "Time from the request reaching the app to its handler returning (a WebSocket: its whole life)."),
		inFlight:      app("requests_in_flight", "Requests the app is handling now."),
		queueDepth:    app("queue_depth", "Requests waiting for a free instance now."),
		queueWait:     app("queue_wait_seconds", "Time a request waited for an instance (0 when one was free)."),
		instances:     app("instances", "Instances by state: idle, busy, starting (being replaced or started).", "state"),
		starts:        app("instance_starts_total", "Instances started (pre-warm and replacements)."),
		startFailures: app("instance_start_failures_total", "Replacement instances that failed to start."),
		recycles:      app("instance_recycles_total", "Healthy instances retired after their request budget (max_requests)."),
		crashes:       app("instance_crashes_total", "Instances discarded because their guest failed, by reason: trap, exit, memory, abi, other.", "reason"),
		deadline:      app("deadline_kills_total", "Guest calls stopped at their deadline (the instance is discarded)."),
		guestCalls:    app("guest_calls_total", "Calls into the guest (a sync request, an async event, a CGI run)."),
		guestSeconds:  app("guest_seconds_total", "Wall time spent inside guest calls."),
		memory:        app("memory_bytes", "Linear memory of the app's live instances, as last seen."),
		wsOpen:        app("websockets_open", "WebSocket connections open now."),
		wsMessages:    app("websocket_messages_total", "WebSocket messages, by direction: in (from the client), out (to it).", "direction"),
		storedBytes:   app("plugin_stored_bytes", "Bytes a plugin holds for the app (kv: its keys and values), by plugin.", "plugin"),
		pluginCalls:   app("plugin_calls_total", "Calls into plugins' host functions, by plugin and result: ok, error (a negative status), trap.", "plugin", "result"),

		upRequests:  up("requests_total", "Attempts sent to an upstream server (a retry is another attempt).", "group", "server"),
		upErrors:    up("errors_total", "Attempts that failed: no response, or 502/503/504.", "group", "server"),
		upDuration:  up("response_seconds", "Time from sending an attempt to its response head (or its failure).", "group", "server"),
		upUp:        up("up", "1 when the server may get requests (healthy and not ejected), else 0.", "group", "server"),
		upRetries:   up("retries_total", "Attempts that were retries of a failed one.", "group"),
		upEjections: up("ejections_total", "Times the server was ejected after max_fails failures.", "group", "server"),

		cacheRequests: prometheus.NewDesc(Namespace+"_cache_requests_total", "Requests on cached routes, by result: hit, miss, stale, bypass.", []string{"result"}, nil),
		cacheBytes:    prometheus.NewDesc(Namespace+"_cache_bytes", "Bytes of responses the cache holds.", nil, nil),
		cacheEntries:  prometheus.NewDesc(Namespace+"_cache_entries", "Responses the cache holds.", nil, nil),
		rejected:      prometheus.NewDesc(Namespace+"_rejected_requests_total", "Requests refused by a limit or filter, by kind: rate, conn_per_ip, body, header, filter.", []string{"kind"}, nil),
	}
}
