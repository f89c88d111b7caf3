package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Group is the metrics of one upstream group, one slot per server in the
// group's config order. It is the group's upstream.Observer; SetHealth gives it
// the servers' state for the up gauge.
type Group struct {
	name    string
	servers []string
	stats   []serverStats
	retries atomic.Uint64
	health  atomic.Pointer[func(i int) bool]
}

type serverStats struct {
	requests, errors, ejections atomic.Uint64
	took                        hist
}

// Group returns the metrics of the upstream group name with servers (their
// URLs, in config order), made anew when the servers changed.
func (r *Registry) Group(name string, servers []string) *Group {
	r.mu.Lock()
	defer r.mu.Unlock()
	if g := r.groups[name]; g != nil && equal(g.servers, servers) {
		return g
	}
	g := &Group{name: name, servers: servers, stats: make([]serverStats, len(servers))}
	r.groups[name] = g
	return g
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// SetHealth makes up(i) the source of server i's up gauge.
func (g *Group) SetHealth(up func(i int) bool) { g.health.Store(&up) }

// Attempt counts one attempt on server i: how long it took, whether it failed.
func (g *Group) Attempt(i int, took time.Duration, failed bool) {
	s := &g.stats[i]
	s.requests.Add(1)
	if failed {
		s.errors.Add(1)
	}
	s.took.Observe(took)
}

// Ejected counts an ejection of server i.
func (g *Group) Ejected(i int) { g.stats[i].ejections.Add(1) }

// Retried counts a retry.
func (g *Group) Retried() { g.retries.Add(1) }

func (g *Group) collect(d *descs, ch chan<- prometheus.Metric) {
	up := g.health.Load()
	for i, srv := range g.servers {
		s := &g.stats[i]
		ch <- prometheus.MustNewConstMetric(d.upRequests, prometheus.CounterValue, float64(s.requests.Load()), g.name, srv)
		ch <- prometheus.MustNewConstMetric(d.upErrors, prometheus.CounterValue, float64(s.errors.Load()), g.name, srv)
		ch <- prometheus.MustNewConstMetric(d.upEjections, prometheus.CounterValue, float64(s.ejections.Load()), g.name, srv)
		ch <- s.took.metric(d.upDuration, g.name, srv)
		if up != nil {
			v := 0.0
			if (*up)(i) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(d.upUp, prometheus.GaugeValue, v, g.name, srv)
		}
	}
	ch <- prometheus.MustNewConstMetric(d.upRetries, prometheus.CounterValue, float64(g.retries.Load()), g.name)
}
