package host

import (
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/metrics"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// BenchmarkGatewayHelloMetrics is BenchmarkGatewayHello without and with the
// app's metrics (the pool's Observer and the handler's counters, as serve and
// run --admin wire them): the A/B of the metrics' cost per request. Run the
// two interleaved: go test ./host -run '^$' -bench 'GatewayHelloMetrics' -count 8.
func BenchmarkGatewayHelloMetrics(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		benchHello(b, syncHello(b, runtime.PoolConfig{Workers: 1}))
	})
	b.Run("on", func(b *testing.B) {
		am := metrics.New().App("hello", "")
		benchHello(b, am.Wrap(syncHello(b, runtime.PoolConfig{Workers: 1, Observer: am})))
	})
}
