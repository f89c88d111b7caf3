package plugins_test

import (
	"bufio"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkReceiveLatency: one op is a publish (an HTTP request to the app) and its
// delivery to a subscriber parked in Receive on the same one-instance async pool,
// read by the subscriber's client: the latency a waiting receive adds on top of
// two HTTP exchanges. p50-µs is the median op.
func BenchmarkReceiveLatency(b *testing.B) {
	reg := testRegistry(b, "", "")
	defer reg.Close()
	s := serveMode(b, reg, "rx-bench", guest, "async", allGrants(), 1)
	resp, err := http.Get(s.url + "/sub?t=bench&n=" + strconv.Itoa(b.N))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "subscribed" {
		b.Fatalf("subscriber: %q %v", sc.Text(), sc.Err())
	}
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		r, err := http.Get(s.url + "/pub?t=bench&m=x")
		if err != nil {
			b.Fatal(err)
		}
		r.Body.Close()
		if !sc.Scan() || sc.Text() != "x" {
			b.Fatalf("round %d: %q %v", i, sc.Text(), sc.Err())
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[b.N/2].Microseconds()), "p50-µs")
}
