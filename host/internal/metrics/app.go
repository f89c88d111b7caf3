package metrics

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/statuswriter"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// methods are the values of the method label: the registered methods a
// server sees, and OTHER for the rest, so a client inventing methods cannot
// grow the label set.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER"}

func methodIndex(m string) int {
	switch m {
	case http.MethodGet:
		return 0
	case http.MethodHead:
		return 1
	case http.MethodPost:
		return 2
	case http.MethodPut:
		return 3
	case http.MethodDelete:
		return 4
	case http.MethodPatch:
		return 5
	case http.MethodOptions:
		return 6
	case http.MethodConnect:
		return 7
	case http.MethodTrace:
		return 8
	}
	return 9
}

// classes are the values of the code label.
var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func classIndex(status int) int {
	if status < 100 || status > 599 {
		return 4 // never written by net/http; count it as a server error
	}
	return status/100 - 1
}

// reasons are the values of instance_crashes_total's reason label.
var reasons = [...]string{"trap", "exit", "memory", "abi", "other"}

func reasonIndex(kind string) int {
	switch kind {
	case runtime.FailTrap:
		return 0
	case runtime.FailExit:
		return 1
	case runtime.FailMemory:
		return 2
	case runtime.FailABI:
		return 3
	}
	return 4
}

// App is the metrics of one app. It is the app's runtime.Observer (set it in
// its PoolConfig) and wraps its handler (Wrap); SetPool gives it the pool
// whose gauges a scrape reads.
type App struct {
	labels []string  // values of appLabels
	epoch  time.Time // durations are differences of time.Since(epoch): one clock read each

	requests  [len(methods)][len(classes)]atomic.Uint64
	inFlight  atomic.Int64
	duration  hist
	queueWait hist

	starts, startFailures, recycles, deadlineKills atomic.Uint64
	crashes                                        [len(reasons)]atomic.Uint64
	guestCalls                                     atomic.Uint64
	guestNanos                                     atomic.Int64

	wsOpen     atomic.Int64
	wsMessages [2]atomic.Uint64 // in, out

	pool    atomic.Pointer[poolSource]
	writers sync.Pool // *statuswriter.Writer

	mu      sync.Mutex
	plugins map[string]*registry.Calls // by plugin name: the build's plugins, a bounded set
	stored  func(ctx context.Context) map[string]int64
}

// SetStored makes stored the source of the app's plugin stored-bytes gauge (kv),
// read at scrape time; a reload that reopens the app sets its new one.
func (a *App) SetStored(stored func(ctx context.Context) map[string]int64) {
	a.mu.Lock()
	a.stored = stored
	a.mu.Unlock()
}

// PluginCalls returns the counters of the app's calls into plugin (give it as
// apps.Spec.PluginCalls); a reopened app keeps counting on the same ones.
func (a *App) PluginCalls(plugin string) *registry.Calls {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.plugins == nil {
		a.plugins = map[string]*registry.Calls{}
	}
	c := a.plugins[plugin]
	if c == nil {
		c = &registry.Calls{}
		a.plugins[plugin] = c
	}
	return c
}

// poolSource reads a pool's counters; ok is false for apps without standing
// instances (CGI).
type poolSource struct {
	stats func() (runtime.SyncStats, bool)
}

func newApp(name, tenant string) *App {
	a := &App{labels: []string{name, tenant}, epoch: time.Now()}
	a.writers.New = func() any { return new(statuswriter.Writer) }
	return a
}

// SetPool makes stats the source of the pool gauges (instances, queue depth,
// memory); a reload that reopens the app sets its new pool.
func (a *App) SetPool(stats func() (runtime.SyncStats, bool)) {
	a.pool.Store(&poolSource{stats: stats})
}

// Observe counts what the app's pool reports (runtime.Observer).
func (a *App) Observe(ev runtime.Event) {
	switch ev.Kind {
	case runtime.EventInstanceStarted:
		a.starts.Add(1)
	case runtime.EventInstanceStartFailed:
		a.startFailures.Add(1)
	case runtime.EventInstanceRecycled:
		a.recycles.Add(1)
	case runtime.EventInstanceCrashed:
		a.crashes[reasonIndex(ev.Reason)].Add(1)
	case runtime.EventDeadlineKill:
		a.deadlineKills.Add(1)
	case runtime.EventGuestCall:
		a.guestCalls.Add(1)
		a.guestNanos.Add(int64(ev.Took))
	case runtime.EventQueueWait:
		a.queueWait.Observe(ev.Took)
	}
}

// WebSocketOpened and WebSocketClosed count open WebSockets; WebSocketMessage
// counts one message, in (from the client) or out.
func (a *App) WebSocketOpened() { a.wsOpen.Add(1) }
func (a *App) WebSocketClosed() { a.wsOpen.Add(-1) }
func (a *App) WebSocketMessage(in bool) {
	if in {
		a.wsMessages[0].Add(1)
	} else {
		a.wsMessages[1].Add(1)
	}
}

// Wrap counts each request h answers: by method and status class, its
// duration, and the requests in flight.
func (a *App) Wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Since(a.epoch) // one monotonic clock read (time.Now reads two clocks)
		a.inFlight.Add(1)
		sw := a.writers.Get().(*statuswriter.Writer)
		sw.Reset(w)
		defer func() {
			status := sw.Status()
			if status == 0 {
				status = http.StatusOK // what net/http sends for a handler that wrote nothing
			}
			sw.ResponseWriter = nil
			a.writers.Put(sw)
			a.inFlight.Add(-1)
			a.requests[methodIndex(r.Method)][classIndex(status)].Add(1)
			a.duration.Observe(time.Since(a.epoch) - start)
		}()
		h.ServeHTTP(sw, r)
	})
}

func (a *App) collect(d *descs, ch chan<- prometheus.Metric) {
	l := a.labels
	counter := func(desc *prometheus.Desc, v uint64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), append(l[:len(l):len(l)], extra...)...)
	}
	gauge := func(desc *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(l[:len(l):len(l)], extra...)...)
	}
	for m := range methods {
		for c := range classes {
			if n := a.requests[m][c].Load(); n > 0 {
				counter(d.requests, n, methods[m], classes[c])
			}
		}
	}
	ch <- a.duration.metric(d.duration, l...)
	gauge(d.inFlight, float64(a.inFlight.Load()))
	ch <- a.queueWait.metric(d.queueWait, l...)
	counter(d.starts, a.starts.Load())
	counter(d.startFailures, a.startFailures.Load())
	counter(d.recycles, a.recycles.Load())
	for i, reason := range reasons {
		counter(d.crashes, a.crashes[i].Load(), reason)
	}
	counter(d.deadline, a.deadlineKills.Load())
	counter(d.guestCalls, a.guestCalls.Load())
	ch <- prometheus.MustNewConstMetric(d.guestSeconds, prometheus.CounterValue, time.Duration(a.guestNanos.Load()).Seconds(), l...)
	gauge(d.wsOpen, float64(a.wsOpen.Load()))
	counter(d.wsMessages, a.wsMessages[0].Load(), "in")
	counter(d.wsMessages, a.wsMessages[1].Load(), "out")
	a.mu.Lock()
	for name, c := range a.plugins {
		counter(d.pluginCalls, c.OK.Load(), name, "ok")
		counter(d.pluginCalls, c.Error.Load(), name, "error")
		counter(d.pluginCalls, c.Trap.Load(), name, "trap")
	}
	stored := a.stored
	a.mu.Unlock()
	if stored != nil {
		// A backend across the network (Redis) gets a bound, not the scrape's life.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for name, n := range stored(ctx) {
			gauge(d.storedBytes, float64(n), name)
		}
		cancel()
	}
	if src := a.pool.Load(); src != nil {
		if st, ok := src.stats(); ok {
			gauge(d.queueDepth, float64(st.Waiting))
			gauge(d.instances, float64(st.Live-st.Busy), "idle")
			gauge(d.instances, float64(st.Busy), "busy")
			gauge(d.instances, float64(max(st.Workers-st.Live, 0)), "starting")
			gauge(d.memory, float64(st.Memory))
		}
	}
}
