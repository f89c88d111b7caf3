package host_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// BenchmarkCGIHandler is one CGI-mode request through the handler, without the
// network: environment, fresh instance, stdout parsing, response.
func BenchmarkCGIHandler(b *testing.B) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(ctx)
	app, err := eng.LoadCommand(ctx, runtime.AppConfig{Name: "cgi", Wasm: readFile(b, "../bench/apps/cgi_hello.wasm")}, runtime.PoolConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close(ctx)
	h := host.NewCGIHandler(app, host.CGIConfig{}, log)
	req := httptest.NewRequest("GET", "http://127.0.0.1:8080/", nil)
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	// Process CPU time (GC included) is steadier than wall time on a busy machine.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Skipf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCGIServer is one CGI-mode hello request over a real loopback socket
// (keep-alive), so the response's syscalls and framing count too.
func BenchmarkCGIServer(b *testing.B) {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(ctx)
	app, err := eng.LoadCommand(ctx, runtime.AppConfig{Name: "cgi", Wasm: readFile(b, "../bench/apps/cgi_hello.wasm")}, runtime.PoolConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close(ctx)
	srv := httptest.NewServer(host.NewCGIHandler(app, host.CGIConfig{}, log))
	defer srv.Close()
	client := srv.Client()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Get(srv.URL + "/")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
