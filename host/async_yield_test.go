package host

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestAsyncYieldForever: a guest that answers every POLL with YIELD (each call
// short, so no event overruns its deadline) cannot keep a core busy for good: the
// POLLs of one YIELD streak share one event deadline, and the instance is
// discarded past it. What the guest wrote before reaches the client at once (the
// request's goroutine does not stay trapped running the guest), other requests
// are served meanwhile, and the CPU goes quiet afterwards.
// The guest is raw WAT (runtime/testdata/yield).
func TestAsyncYieldForever(t *testing.T) {
	bin, err := os.ReadFile("../runtime/testdata/yield/yield.wasm")
	if err != nil {
		t.Fatal(err)
	}
	const eventTimeout = 500 * time.Millisecond
	s := serveAsync(t, "yield", bin, 0, runtime.PoolConfig{Workers: 1, RequestTimeout: 20 * time.Second},
		runtime.AsyncConfig{EventTimeout: eventTimeout}, GatewayConfig{App: "yield"})

	start := time.Now()
	resp, err := http.Get(s.srv.URL + "/yield")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	headAt := time.Since(start)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "partial\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if headAt > 3*time.Second {
		t.Errorf("what the guest wrote took %v to arrive", headAt)
	}
	// Served meanwhile, by the same (only) instance between POLLs.
	if r, body := get(t, s.srv.URL+"/"); r.StatusCode != 200 || body != "ok\n" {
		t.Errorf("request during the yield: %d %q", r.StatusCode, body)
	}
	// The streak overruns its deadline: the instance goes, the response is cut.
	_, err = io.ReadAll(resp.Body)
	if err == nil {
		t.Error("the yielding response completed cleanly; want it cut")
	}
	took := time.Since(start)
	if took > eventTimeout+5*time.Second {
		t.Errorf("the yielding request ended %v after it started (event timeout %v)", took, eventTimeout)
	}
	waitUntil(t, "the discard in the log", 5*time.Second, func() bool {
		return strings.Contains(s.logs.String(), "kept answering YIELD")
	})
	// No core stays busy: over the next half second the process is nearly idle
	// (it spun at 100% before).
	waitUntil(t, "a replacement", 5*time.Second, func() bool { return len(s.pool.Stats().Conns) == 1 })
	cpu0, wall0 := testkit.CPUTime(t), time.Now()
	time.Sleep(500 * time.Millisecond)
	if cpu, wall := testkit.CPUTime(t)-cpu0, time.Since(wall0); cpu > wall/2 {
		t.Errorf("%v of CPU in %v after the discard: something still spins", cpu, wall)
	}
	if r, body := get(t, s.srv.URL+"/"); r.StatusCode != 200 || body != "ok\n" {
		t.Errorf("after the discard: %d %q", r.StatusCode, body)
	}
}
