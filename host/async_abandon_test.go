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
// connections out; an instance that keeps more of them than its per-instance
// cap is recycled.
func TestAsyncAbandonedConnectionsFreeCaps(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     runtime.AsyncConfig
		recycle bool // the abandoned connections exceed MaxConnsPerInstance
	}{
		{"per-instance cap", runtime.AsyncConfig{MaxConnsPerInstance: 2}, true},
		{"per-app cap", runtime.AsyncConfig{MaxConns: 2}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startAsync(t, runtime.PoolConfig{Workers: 1, RequestTimeout: 300 * time.Millisecond}, tc.cfg, WSConfig{})
			conns := func() int { return s.pool.Stats().Waiting } // in flight over the app
			hello := func(when string) {
				t.Helper()
				if resp, body := get(t, s.srv.URL+"/"); resp.StatusCode != 200 || body != "hello\n" {
					t.Fatalf("%s: %d %q", when, resp.StatusCode, body)
				}
			}

			// Two requests the guest sleeps on for an hour, ignoring CANCEL: the
			// cap is full while they run, then the deadline answers 504 and frees
			// their places.
			for range 2 {
				if resp, _ := get(t, s.srv.URL+"/id?ms=3600000"); resp.StatusCode != 504 {
					t.Fatalf("hung request: %d, want 504", resp.StatusCode)
				}
			}
			waitUntil(t, "abandoned requests uncounted", 5*time.Second, func() bool { return conns() == 0 })
			hello("after two abandoned requests with a cap of 2")

			// WebSockets the guest sleeps on while their clients close: each stops
			// counting once closed.
			for range 2 {
				c := dial(t, wsURL(s.srv, "/ws"))
				echo(t, c, websocket.TextMessage, []byte("ping"))
				if err := c.WriteMessage(websocket.TextMessage, []byte("sleep:3600000")); err != nil {
					t.Fatal(err)
				}
				_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, "bye"), time.Now().Add(time.Second))
				c.Close()
				waitUntil(t, "closed WebSocket uncounted", 5*time.Second, func() bool { return conns() == 0 })
				hello("after an abandoned WebSocket")
			}

			// With a per-instance cap of 2, the first WebSocket was the third
			// abandoned connection of the instance: it was recycled, and the
			// second WebSocket landed on its replacement.
			recycled := 0
			if tc.recycle {
				recycled = 1
			}
			if st := s.pool.Stats(); st.Recycled != int64(recycled) || st.Discarded != 0 {
				t.Errorf("recycled %d, discarded %d; want %d and 0", st.Recycled, st.Discarded, recycled)
			}
			if logged := strings.Contains(s.logs.String(), "does not end abandoned connections"); logged != tc.recycle {
				t.Errorf("recycling logged: %v, want %v:\n%s", logged, tc.recycle, s.logs.String())
			}
		})
	}
}

// TestAsyncLateWebSocketAccept: an upgrade the guest accepts only after the
// request deadline gets 504; the guest's late accept fails with the deadline
// (ErrTimeout from the host), the connection left the caps at the deadline, and
// the instance carries on.
func TestAsyncLateWebSocketAccept(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1, RequestTimeout: 200 * time.Millisecond},
		runtime.AsyncConfig{MaxConnsPerInstance: 1}, WSConfig{})
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(s.srv, "/ws-slow-accept?ms=600"), nil)
	if err == nil || resp == nil || resp.StatusCode != 504 {
		t.Fatalf("late accept: %v %v, want a 504", err, resp)
	}
	// The guest still sleeps, yet the cap of one connection is free again.
	if resp, body := get(t, s.srv.URL+"/"); resp.StatusCode != 200 || body != "hello\n" {
		t.Fatalf("beside the pending accept: %d %q", resp.StatusCode, body)
	}
	waitUntil(t, "the late accept", 5*time.Second, func() bool {
		return strings.Contains(s.logs.String(), "late accept: wasmsrv: request deadline exceeded")
	})
	c := dial(t, wsURL(s.srv, "/ws"))
	echo(t, c, websocket.TextMessage, []byte("after"))
	if st := s.pool.Stats(); st.Discarded != 0 {
		t.Errorf("discarded %d", st.Discarded)
	}
}
