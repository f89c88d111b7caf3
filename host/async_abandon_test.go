package host

import (
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestAsyncAbandonedConnectionsFreeCaps: connections whose client was answered
// (504 at the request deadline) or is gone (a closed WebSocket) stop counting
// toward the caps even though the guest never ends them, so they cannot lock new
// connections out; an instance that keeps too many of them is recycled.
func TestAsyncAbandonedConnectionsFreeCaps(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1, RequestTimeout: 300 * time.Millisecond},
		runtime.AsyncConfig{MaxConnsPerInstance: 2}, WSConfig{})
	conns := func() int {
		n := 0
		for _, c := range s.pool.Stats().Conns {
			n += c
		}
		return n
	}

	// Two requests the guest sleeps on for an hour, ignoring CANCEL: the caps
	// are full while they run, then the deadline answers 504 and frees them.
	for range 2 {
		if resp, _ := get(t, s.srv.URL+"/id?ms=3600000"); resp.StatusCode != 504 {
			t.Fatalf("hung request: %d, want 504", resp.StatusCode)
		}
	}
	waitUntil(t, "abandoned requests uncounted", 5*time.Second, func() bool { return conns() == 0 })
	if resp, body := get(t, s.srv.URL+"/"); resp.StatusCode != 200 || body != "hello\n" {
		t.Fatalf("after two abandoned requests with a cap of 2: %d %q", resp.StatusCode, body)
	}

	// WebSockets the guest sleeps on while their clients close: each stops
	// counting once closed. The first of them is the third abandoned connection
	// of the instance, over MaxConnsPerInstance: it is recycled, and the next
	// WebSocket lands on its replacement.
	for i := range 2 {
		c := dial(t, wsURL(s.srv, "/ws"))
		echo(t, c, websocket.TextMessage, []byte("ping"))
		if err := c.WriteMessage(websocket.TextMessage, []byte("sleep:3600000")); err != nil {
			t.Fatal(err)
		}
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second))
		c.Close()
		waitUntil(t, "closed WebSocket uncounted", 5*time.Second, func() bool { return conns() == 0 })
		if i == 0 {
			waitUntil(t, "recycling", 5*time.Second, func() bool { return s.pool.Stats().Recycled == 1 })
		}
	}
	for range 3 {
		if resp, body := get(t, s.srv.URL+"/"); resp.StatusCode != 200 || body != "hello\n" {
			t.Fatalf("after abandoned WebSockets: %d %q", resp.StatusCode, body)
		}
	}
	if st := s.pool.Stats(); st.Recycled != 1 || st.Discarded != 0 {
		t.Errorf("recycled %d, discarded %d; want 1 and 0", st.Recycled, st.Discarded)
	}
	if !strings.Contains(s.logs.String(), "does not end abandoned connections") {
		t.Errorf("log does not say why the instance was recycled:\n%s", s.logs.String())
	}
}
