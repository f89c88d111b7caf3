package site

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// BenchmarkSiteProxy is one proxied request through the whole site handler
// (generation, router, route middleware, upstream group) to a real upstream,
// with the client side in memory: the per-request cost wasmsrv adds in front
// of the upstream exchange.
func BenchmarkSiteProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello from wasmsrv!\n")
	}))
	defer up.Close()
	dir := b.TempDir()
	path := filepath.Join(dir, "site.toml")
	cfg := head + fmt.Sprintf("[upstreams.back]\nservers = [{ url = %q }]\n[[routes]]\nupstream = \"back\"\n", up.URL)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := New(context.Background(), Options{ConfigPath: path, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(context.Background())
	req := httptest.NewRequest("GET", "http://front.test/", nil)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.CPUTime(b)
	for range b.N {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
	testkit.ReportCPU(b, cpu0)
}
