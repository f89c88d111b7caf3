package host

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestAsyncEventDeadline: a guest stuck in a loop is stopped by the per-event
// deadline; only its instance's requests fail, and the pool recovers.
func TestAsyncEventDeadline(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{EventTimeout: 300 * time.Millisecond}, WSConfig{})
	other := dial(t, wsURL(s.srv, "/ws")) // lands on the other instance than /spin below
	echo(t, other, websocket.TextMessage, []byte("before"))
	start := time.Now()
	resp, _ := get(t, s.srv.URL+"/spin")
	if resp.StatusCode != 500 {
		t.Fatalf("spin: %d, want 500", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("spin stopped after %s", d)
	}
	echo(t, other, websocket.TextMessage, []byte("after"))
	waitUntil(t, "replacement", 10*time.Second, func() bool { return s.pool.Stats().Live == 2 })
	if !strings.Contains(s.logs.String(), "deadline") {
		t.Errorf("log does not mention the deadline:\n%s", s.logs.String())
	}
}

// TestAsyncLimits: the per-app cap answers 503 beyond it (like uvicorn's
// --limit-concurrency), and so does an instance in backpressure when it is the only one.
func TestAsyncLimits(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{MaxConns: 3}, WSConfig{})
	codes := slowGets(t, s.srv.URL, 6)()
	n200, n503 := codes[200], codes[503]
	if n200 != 3 || n503 != 3 {
		t.Errorf("200s %d, 503s %d; want 3 and 3", n200, n503)
	}

	c := dial(t, wsURL(s.srv, "/ws"))
	echo(t, c, websocket.TextMessage, []byte("bp:on"))
	if resp, _ := get(t, s.srv.URL+"/"); resp.StatusCode != 503 {
		t.Errorf("with backpressure on: %d, want 503", resp.StatusCode)
	}
	echo(t, c, websocket.TextMessage, []byte("bp:off"))
	if resp, _ := get(t, s.srv.URL+"/"); resp.StatusCode != 200 {
		t.Errorf("with backpressure off: %d, want 200", resp.StatusCode)
	}
}

// TestAsyncBlockedGuest: app code that blocks on its own channel (forbidden in the
// async shape) makes Go report a deadlock at once: the instance traps, its requests
// get 500, the pool goes on.
func TestAsyncBlockedGuest(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{}, WSConfig{})
	start := time.Now()
	if resp, _ := get(t, s.srv.URL+"/block"); resp.StatusCode != 500 {
		t.Fatalf("block: %d, want 500", resp.StatusCode)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s: the deadlock should be reported at once", d)
	}
	if resp, body := get(t, s.srv.URL+"/"); resp.StatusCode != 200 || body != "hello\n" {
		t.Fatalf("after: %d %q", resp.StatusCode, body)
	}
	if !strings.Contains(s.logs.String(), "all goroutines are asleep") {
		t.Errorf("log lacks Go's deadlock report:\n%s", s.logs.String())
	}
}
