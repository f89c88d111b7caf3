package host

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// nopWriter is a ResponseWriter that discards, so the benchmark measures the
// gateway and the guest, not a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// SetReadDeadline is there as on net/http's writer, for the body read-ahead.
func (w *nopWriter) SetReadDeadline(time.Time) error { return nil }

// loadHello builds samples/hello (with the given build tags) and loads it.
func loadHello(b *testing.B, tags ...string) *runtime.App { return loadHelloGated(b, nil, tags...) }

// loadHelloGated is loadHello with the app's guest calls through a CPU gate
// (nil: none).
func loadHelloGated(b *testing.B, gate *cpushare.Tenant, tags ...string) *runtime.App {
	ctx := context.Background()
	path, _, err := builder.Build(ctx, "../samples/hello", builder.Options{Tags: tags})
	if err != nil {
		b.Fatal(err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{}, log)
	if err != nil {
		b.Fatal(err)
	}
	app, err := eng.Load(ctx, runtime.AppConfig{Name: "hello", Wasm: bin, CPU: gate})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = app.Close(ctx) })
	return app
}

// benchHello drives h with the same small GET as the wrk benchmark, serially.
// syncHello is the gateway of a sync pool running samples/hello, closed when
// the benchmark ends.
func syncHello(b *testing.B, pc runtime.PoolConfig) http.Handler {
	return syncHelloWith(b, pc, GatewayConfig{App: "hello"})
}

func syncHelloWith(b *testing.B, pc runtime.PoolConfig, gc GatewayConfig) http.Handler {
	ctx := context.Background()
	pool, err := runtime.NewSyncPool(ctx, loadHello(b), pc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pool.Close(ctx) })
	return NewGateway(pool, gc, slog.New(slog.DiscardHandler))
}

// asyncHello is syncHello for the guest built for the async shape.
func asyncHello(b *testing.B, pc runtime.PoolConfig) http.Handler {
	return asyncHelloWith(b, pc, GatewayConfig{App: "hello"})
}

func asyncHelloWith(b *testing.B, pc runtime.PoolConfig, gc GatewayConfig) http.Handler {
	ctx := context.Background()
	pool, err := runtime.NewAsyncPool(ctx, loadHello(b, "wasmsrv_async"), pc, runtime.AsyncConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pool.Close(ctx) })
	return NewAsyncGateway(pool, AsyncGatewayConfig{GatewayConfig: gc}, slog.New(slog.DiscardHandler))
}

func benchHello(b *testing.B, h http.Handler) {
	req := httptest.NewRequest("GET", "/hello?x=1", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.CPUTime(b)
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	testkit.ReportCPU(b, cpu0)
}

// benchHelloParallel drives h from 64 goroutines at once, like wrk -c64: with
// the default pools (sync 2×CPU+1 instances, async CPU instances) requests
// queue for instances, as they do under load.
func benchHelloParallel(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	b.SetParallelism((64 + goruntime.GOMAXPROCS(0) - 1) / goruntime.GOMAXPROCS(0))
	b.ResetTimer()
	cpu0 := testkit.CPUTime(b)
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest("GET", "/hello?x=1", nil)
		req.Header.Set("User-Agent", "bench")
		req.Header.Set("Accept", "*/*")
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
	testkit.ReportCPU(b, cpu0)
}

func BenchmarkGatewayHello(b *testing.B) {
	benchHello(b, syncHello(b, runtime.PoolConfig{Workers: 1}))
}

// BenchmarkGatewayHelloGate is the hello path without and with the CPU
// fair-share gate (one tenant: every call takes the fast path), serially and
// from 64 goroutines; -count N interleaves the two.
func BenchmarkGatewayHelloGate(b *testing.B) {
	for _, gated := range []bool{false, true} {
		name := "off"
		var gate *cpushare.Tenant
		if gated {
			name = "on"
			gate, _ = cpushare.New(cpushare.Config{}).Tenant("hello", cpushare.TenantConfig{})
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			pool, err := runtime.NewSyncPool(ctx, loadHelloGated(b, gate), runtime.PoolConfig{Workers: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { pool.Close(ctx) })
			benchHello(b, NewGateway(pool, GatewayConfig{App: "hello"}, slog.New(slog.DiscardHandler)))
		})
		b.Run(name+"-parallel", func(b *testing.B) {
			ctx := context.Background()
			pool, err := runtime.NewSyncPool(ctx, loadHelloGated(b, gate), runtime.PoolConfig{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { pool.Close(ctx) })
			benchHelloParallel(b, NewGateway(pool, GatewayConfig{App: "hello"}, slog.New(slog.DiscardHandler)))
		})
	}
}

// BenchmarkGatewayHelloHeld is BenchmarkGatewayHello with responses held
// until the guest finishes (wasmsrv run's default): the cost of holding.
func BenchmarkGatewayHelloHeld(b *testing.B) {
	benchHello(b, syncHelloWith(b, runtime.PoolConfig{Workers: 1}, GatewayConfig{App: "hello", ResponseBuffer: 256 << 10}))
}

// BenchmarkAsyncGatewayHello is BenchmarkGatewayHello for the same guest built for
// the async shape: the difference is the cost of the event machinery (SDK
// goroutine hand-offs, ctx_done, the exchange's hand-off to the request goroutine).
func BenchmarkAsyncGatewayHello(b *testing.B) {
	benchHello(b, asyncHello(b, runtime.PoolConfig{Workers: 1}))
}

// BenchmarkGatewayPost is a 1 KiB POST to the hello guest, with the body
// read ahead (the default) and streamed: the cost of request buffering.
func BenchmarkGatewayPost(b *testing.B) {
	body := strings.Repeat("x", 1<<10)
	for _, bc := range []struct {
		name   string
		buffer bodybuf.Config
	}{{"buffered", bodybuf.Config{Memory: 64 << 10}}, {"streamed", bodybuf.Config{}}} {
		b.Run(bc.name, func(b *testing.B) {
			h := syncHelloWith(b, runtime.PoolConfig{Workers: 1}, GatewayConfig{App: "hello", Buffer: bc.buffer})
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			cpu0 := testkit.CPUTime(b)
			for b.Loop() {
				clear(w.h)
				req := httptest.NewRequest("POST", "/hello", strings.NewReader(body))
				h.ServeHTTP(w, req)
			}
			testkit.ReportCPU(b, cpu0)
		})
	}
}

func BenchmarkGatewayHelloParallel(b *testing.B) {
	benchHelloParallel(b, syncHello(b, runtime.PoolConfig{}))
}

func BenchmarkAsyncGatewayHelloParallel(b *testing.B) {
	benchHelloParallel(b, asyncHello(b, runtime.PoolConfig{}))
}

// benchServeLoopback serves h on a loopback socket and drives it like wrk -c64:
// 64 keep-alive connections, each writing one small GET and reading the whole
// response before the next. The client is minimal (it learns the response size
// from the first one, the responses being identical but for the Date value of
// fixed length), so most of the CPU time per request is the server's.
func benchServeLoopback(b *testing.B, h http.Handler) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	const conns = 64
	req := []byte("GET /hello?x=1 HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	cs := make([]net.Conn, conns)
	size := 0
	for i := range cs {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
		if i == 0 {
			resp, err := roundTrip(c, req)
			if err != nil {
				b.Fatal(err)
			}
			size = len(resp)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.CPUTime(b)
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for next.Add(1) <= int64(b.N) {
				if _, err := c.Write(req); err != nil {
					b.Error(err)
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	testkit.ReportCPU(b, cpu0)
}

// roundTrip sends req and returns the raw bytes of the one response, which must
// have a Content-Length.
func roundTrip(c net.Conn, req []byte) ([]byte, error) {
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		got = append(got, buf[:n]...)
		head, body, ok := bytes.Cut(got, []byte("\r\n\r\n"))
		if !ok {
			continue
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), nil)
		if err != nil {
			return nil, err
		}
		if resp.ContentLength < 0 {
			return nil, fmt.Errorf("no Content-Length in %q", head)
		}
		if int64(len(body)) >= resp.ContentLength {
			return got, nil
		}
	}
}

func BenchmarkServeHello(b *testing.B) {
	benchServeLoopback(b, syncHello(b, runtime.PoolConfig{}))
}

func BenchmarkAsyncServeHello(b *testing.B) {
	benchServeLoopback(b, asyncHello(b, runtime.PoolConfig{}))
}

// BenchmarkGatewayHelloTraced is BenchmarkGatewayHello with traces on: every
// request sampled, its spans (request, queue wait, guest call) batched to an
// exporter that drops them. Against BenchmarkGatewayHello: what the spans cost.
func BenchmarkGatewayHelloTraced(b *testing.B) {
	benchHello(b, tracing.Server(discardingTracer(b), syncHelloWith(b, runtime.PoolConfig{Workers: 1}, GatewayConfig{App: "hello", Traced: true})))
}

// BenchmarkAsyncGatewayHelloTraced is BenchmarkGatewayHelloTraced for the async shape.
func BenchmarkAsyncGatewayHelloTraced(b *testing.B) {
	benchHello(b, tracing.Server(discardingTracer(b), asyncHelloWith(b, runtime.PoolConfig{Workers: 1}, GatewayConfig{App: "hello", Traced: true})))
}

func discardingTracer(b *testing.B) *sdktrace.TracerProvider {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discardSpans{}))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }
