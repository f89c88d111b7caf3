package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBounds are the upper bounds of every duration histogram: from a hello
// request's 100 µs to a deadline's 30 s (Prometheus' defaults start at 5 ms, too
// coarse for a guest call). Never written.
var latencyBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// hist is a duration histogram kept with atomics: Observe is a short scan and
// two atomic adds, no lock and no allocation; the scrape reads it into a
// constant Prometheus histogram.
type hist struct {
	counts [len(latencyBounds) + 1]atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	nanos  atomic.Int64
}

func (h *hist) Observe(d time.Duration) {
	i := 0
	for i < len(latencyBounds) && d > latencyBounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.nanos.Add(int64(d))
}

// metric is the histogram as a constant metric for one scrape.
func (h *hist) metric(desc *prometheus.Desc, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(latencyBounds))
	var n uint64
	for i, le := range latencyBounds {
		n += h.counts[i].Load()
		buckets[le.Seconds()] = n
	}
	n += h.counts[len(latencyBounds)].Load()
	return prometheus.MustNewConstHistogram(desc, n, time.Duration(h.nanos.Load()).Seconds(), buckets, labels...)
}
