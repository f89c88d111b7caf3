package host

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// BenchmarkAccessLogHello measures what the access log and the request id
// cost on the hello path (samples/hello on a sync pool of one, served
// serially): "none" is the gateway alone (the baseline), "off" adds Observe
// with the records off (the request id only), "json", "text" and "combined"
// write every record (to io.Discard, through slog's handlers or as a combined
// line). Each request comes without an id, so one is made every time.
//
//	go test ./host -run '^$' -bench AccessLogHello -count 8 | benchstat -col /log -
func BenchmarkAccessLogHello(b *testing.B) {
	gw := syncHello(b, runtime.PoolConfig{Workers: 1})
	for _, v := range []struct {
		name string
		h    http.Handler
	}{
		{"none", gw},
		{"off", Observe(gw, AccessLogConfig{Off: true})},
		{"json", Observe(gw, AccessLogConfig{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})},
		{"text", Observe(gw, AccessLogConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})},
		{"combined", Observe(gw, AccessLogConfig{Format: AccessLogCombined, Out: io.Discard})},
	} {
		b.Run("log="+v.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/hello?x=1", nil)
			req.Header.Set("User-Agent", "bench")
			req.Header.Set("Accept", "*/*")
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := testkit.CPUTime(b)
			for b.Loop() {
				clear(w.h)
				delete(req.Header, "X-Request-Id")
				v.h.ServeHTTP(w, req)
			}
			testkit.ReportCPU(b, cpu0)
		})
	}
}

// BenchmarkAccessLogServeHello is the same A/B through net/http on loopback
// sockets (64 keep-alive connections, as wrk -c64): the cost of a record
// against a whole served request.
//
//	go test ./host -run '^$' -bench AccessLogServeHello -count 8 | benchstat -col /log -
func BenchmarkAccessLogServeHello(b *testing.B) {
	gw := syncHello(b, runtime.PoolConfig{})
	for _, v := range []struct {
		name string
		h    http.Handler
	}{
		{"none", gw},
		{"off", Observe(gw, AccessLogConfig{Off: true})},
		{"json", Observe(gw, AccessLogConfig{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})},
		{"combined", Observe(gw, AccessLogConfig{Format: AccessLogCombined, Out: io.Discard})},
	} {
		b.Run("log="+v.name, func(b *testing.B) { benchServeLoopback(b, v.h) })
	}
}
