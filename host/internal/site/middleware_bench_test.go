package site

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// BenchmarkHelloMiddleware is samples/hello through the whole site handler,
// on a route without middleware ("plain") and on one with a header-rewriting
// http-wasm middleware in front (the Traefik-style plugin of
// internal/httpwasm/testdata: a request header from its JSON config, a
// response header): what the middleware adds per request. Both routes share
// the app's pool; run with -count to interleave them.
func BenchmarkHelloMiddleware(b *testing.B) {
	ctx := context.Background()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: filepath.Join(os.TempDir(), "wasmsrv-test-cache", "wazero")}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(ctx)
	hello, _ := filepath.Abs(filepath.Join("..", "..", "..", "samples", "hello"))
	plugin, _ := filepath.Abs(filepath.Join("..", "..", "..", "internal", "httpwasm", "testdata", "plugin", "plugin.wasm"))
	cfg := head + fmt.Sprintf(`
[apps.hello]
package = %q
pool_size = 1

[[routes]]
path = "/plain"
app = "hello"

[[routes]]
path = "/mw"
app = "hello"
[[routes.middleware]]
module = %q
pool_size = 1
config = { headers = { X-Foo = "Bar" }, responseHeaders = { X-Plugin = "on" } }
`, hello, plugin)
	path := filepath.Join(b.TempDir(), "site.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	s, err := New(ctx, Options{ConfigPath: path, Engine: eng, BuildCacheDir: testkit.BuildCache(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close(ctx)
	for _, route := range []string{"plain", "mw"} {
		b.Run(route, func(b *testing.B) {
			req := httptest.NewRequest("GET", "http://front.test/"+route+"/", nil)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, req)
			if w.Code != 200 || (route == "mw") != (w.Header().Get("X-Plugin") == "on") {
				b.Fatalf("%s: status %d, headers %v", route, w.Code, w.Header())
			}
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
		})
	}
}
