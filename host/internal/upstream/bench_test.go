package upstream

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// BenchmarkProxyHello measures the proxy's own cost per request: the group's
// ServeHTTP against a real keep-alive upstream on loopback, with the client
// side in memory (a recorder), so the figure is the proxy and upstream
// exchange without the front listener.
func BenchmarkProxyHello(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	up := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "Hello from wasmsrv!\n")
	})}
	go up.Serve(ln)
	defer up.Close()
	g, err := New(Config{Name: "back", Servers: []ServerConfig{{URL: "http://" + ln.Addr().String()}}}, quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	req := httptest.NewRequest("GET", "http://front.test/", nil)
	req.Header.Set("User-Agent", "bench")
	req.Header.Set("Accept", "*/*")
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.CPUTime(b)
	for range b.N {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != 200 || w.Body.Len() != 20 {
			b.Fatalf("%d %q", w.Code, w.Body.String())
		}
	}
	testkit.ReportCPU(b, cpu0)
}
