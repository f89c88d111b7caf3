package host_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// cgiHello is the CGI handler of bench/apps/cgi_hello.wasm, closed when the
// benchmark ends.
func cgiHello(b *testing.B) http.Handler {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { eng.Close(ctx) })
	app, err := eng.LoadCommand(ctx, runtime.AppConfig{Name: "cgi", Wasm: readFile(b, "../bench/apps/cgi_hello.wasm")}, runtime.PoolConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Close(ctx) })
	return host.NewCGIHandler(app, host.CGIConfig{}, log)
}

// BenchmarkCGIHandler is one CGI-mode request through the handler, without the
// network: environment, fresh instance, stdout parsing, response.
func BenchmarkCGIHandler(b *testing.B) {
	h := cgiHello(b)
	req := httptest.NewRequest("GET", "http://127.0.0.1:8080/", nil)
	req.Header.Set("User-Agent", "bench")
	b.ReportAllocs()
	cpu0 := testkit.CPUTime(b)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
	}
	// Process CPU time (GC included) is steadier than wall time on a busy machine.
	testkit.ReportCPU(b, cpu0)
}

// BenchmarkCGIServer is one CGI-mode hello request over a real loopback socket
// (keep-alive), so the response's syscalls and framing count too.
func BenchmarkCGIServer(b *testing.B) {
	srv := httptest.NewServer(cgiHello(b))
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
