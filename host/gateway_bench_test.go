package host

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/wasmsrv/wasmsrv/builder"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// nopWriter is a ResponseWriter that discards, so the benchmark measures the
// gateway and the guest, not a recorder.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkGatewayHello(b *testing.B) {
	ctx := context.Background()
	path, _, err := builder.Build(ctx, "../samples/hello", builder.Options{})
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
	app, err := eng.Load(ctx, runtime.AppConfig{Name: "hello", Wasm: bin})
	if err != nil {
		b.Fatal(err)
	}
	pool, err := runtime.NewSyncPool(ctx, app, runtime.PoolConfig{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close(ctx)
	gw := NewGateway(pool, GatewayConfig{App: "hello"}, log)
	req := httptest.NewRequest("GET", "/hello?x=1", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		clear(w.h)
		gw.ServeHTTP(w, req)
	}
}
