package host

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// connOf returns the hub's connection for the client connection client.
func connOf(t *testing.T, hub *wsHub, client net.Conn) *wsConn {
	t.Helper()
	addr := client.LocalAddr().String()
	return findConn(t, hub, "the server side of "+addr, 10*time.Second, func(c *wsConn) bool {
		return c.conn != nil && c.conn.RemoteAddr().String() == addr
	})
}

// waitClosedWith waits until c is closed with code.
func waitClosedWith(t *testing.T, c *wsConn, code int32) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("the connection closed with %d", code), 60*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.closed
	})
	c.mu.Lock()
	got := c.closeCode
	c.mu.Unlock()
	if got != code {
		t.Fatalf("closed with %d, want %d", got, code)
	}
}

// findConn returns the hub's connection for which match holds (under its lock),
// waiting up to timeout.
func findConn(t *testing.T, hub *wsHub, what string, timeout time.Duration, match func(c *wsConn) bool) *wsConn {
	t.Helper()
	var found *wsConn
	waitUntil(t, what, timeout, func() bool {
		hub.mu.Lock()
		defer hub.mu.Unlock()
		for c := range hub.conns {
			c.mu.Lock()
			ok := match(c)
			c.mu.Unlock()
			if ok {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// TestWebSocketSlowReader: a client that never reads while the guest sends as
// fast as it can. What the host holds for it stays within the send buffer (its
// own accounting, not RSS), the guest's sends wait and then fail, the client
// is closed with 1013 — it finds the close frame behind the data once it reads
// — and a second client of the same app echoes throughout.
func TestWebSocketSlowReader(t *testing.T) {
	const sendBuffer = 64 << 10
	wc := WSConfig{SendBuffer: sendBuffer, WriteTimeout: 500 * time.Millisecond, CloseTimeout: 30 * time.Second}
	wsShapesHub(t, wc, func(t *testing.T, url func(string) string, hub *wsHub) {
		other := dial(t, url("/ws"))
		echo(t, other, websocket.TextMessage, []byte("before"))

		base := "http" + strings.TrimPrefix(url(""), "ws")
		slow := rawDial(t, base, "/ws-flood?n=1000000&size=16384", "")
		c := connOf(t, hub, slow)
		waitClosedWith(t, c, 1013)
		echo(t, other, websocket.TextMessage, []byte("while the slow one is cut off"))
		if peak := hub.peakHeld.Load(); peak > sendBuffer {
			t.Errorf("the host held %d bytes for one client, over the %d-byte send buffer", peak, sendBuffer)
		} else if peak < sendBuffer/2 {
			t.Errorf("the host held at most %d bytes: the guest never filled the send buffer", peak)
		}
		// The guest learned: its blocked send failed and its handler ended.
		waitUntil(t, "the flooding guest to give up", 20*time.Second, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.guestGone
		})
		// The client reads at last: whole frames, then the close frame.
		frames := slow.expectClose(t, 1013)
		for i, f := range frames {
			if f.op != 2 || len(f.payload) != 16384 {
				t.Fatalf("frame %d: opcode %d, %d bytes: a frame was cut", i, f.op, len(f.payload))
			}
		}
		t.Logf("%d messages reached the client before the close; peak held %d bytes", len(frames), hub.peakHeld.Load())
		echo(t, other, websocket.TextMessage, []byte("after"))
	})
}

// TestWebSocketSlowReaderBigMessages: messages bigger than the send buffer go
// one at a time, so one message is what the host holds at most.
func TestWebSocketSlowReaderBigMessages(t *testing.T) {
	const sendBuffer, size = 16 << 10, 100 << 10
	wc := WSConfig{SendBuffer: sendBuffer, WriteTimeout: 500 * time.Millisecond, CloseTimeout: 30 * time.Second}
	wsShapesHub(t, wc, func(t *testing.T, url func(string) string, hub *wsHub) {
		base := "http" + strings.TrimPrefix(url(""), "ws")
		slow := rawDial(t, base, fmt.Sprintf("/ws-flood?n=1000000&size=%d", size), "")
		waitClosedWith(t, connOf(t, hub, slow), 1013)
		if peak := hub.peakHeld.Load(); peak > size+14 {
			t.Errorf("the host held %d bytes for one client: more than one %d-byte message", peak, size)
		}
		slow.expectClose(t, 1013)
	})
}

// TestWebSocketPongFlood: a client that pings without reading cannot make the
// host queue pongs without bound: the host stops reading it once the send
// buffer is full, and closes it with 1013.
func TestWebSocketPongFlood(t *testing.T) {
	const sendBuffer = 32 << 10
	wc := WSConfig{SendBuffer: sendBuffer, WriteTimeout: 500 * time.Millisecond, CloseTimeout: 30 * time.Second}
	wsShapesHub(t, wc, func(t *testing.T, url func(string) string, hub *wsHub) {
		base := "http" + strings.TrimPrefix(url(""), "ws")
		slow := rawDial(t, base, "/ws", "")
		c := connOf(t, hub, slow)
		ping := wireFrame{fin: true, op: 9, payload: bytes.Repeat([]byte{'p'}, 125)}.bytes()
		batch := bytes.Repeat(ping, 1000)
		done, stop := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			// Pings until the host has closed the connection, stops reading
			// them (the write deadline), or hangs up (a client that went on
			// would be reset: the host reads a bounded amount after closing).
			for range 1000 {
				select {
				case <-stop:
					return
				default:
				}
				_ = slow.SetWriteDeadline(time.Now().Add(3 * time.Second))
				if _, err := slow.Write(batch); err != nil {
					return
				}
			}
		}()
		waitClosedWith(t, c, 1013)
		close(stop)
		<-done
		if peak := hub.peakHeld.Load(); peak > sendBuffer+2+125 {
			t.Errorf("the host held %d bytes of pongs, over the %d-byte send buffer and one pong", peak, sendBuffer)
		}
		frames := slow.expectClose(t, 1013)
		for _, f := range frames {
			if f.op != 10 || len(f.payload) != 125 {
				t.Fatalf("want pongs only, got opcode %d with %d bytes", f.op, len(f.payload))
			}
		}
	})
}

// TestWebSocketSendLimits: what the guest may not send is refused to it, the
// connection stays open.
func TestWebSocketSendLimits(t *testing.T) {
	wsShapes(t, WSConfig{SendBuffer: 16 << 10, MaxMessage: 64 << 10}, func(t *testing.T, url func(string) string) {
		c := dial(t, url("/ws-limits"))
		ask := func(req, want string) {
			t.Helper()
			if err := c.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				kind, msg, err := c.ReadMessage()
				if err != nil {
					t.Fatalf("%s: %v", req, err)
				}
				if kind == websocket.BinaryMessage {
					continue // the message a "big:" request sent
				}
				if got := string(msg); got != req+" -> "+want {
					t.Fatalf("%q, want %q", got, req+" -> "+want)
				}
				return
			}
		}
		ask("big:65536", "ok")                                                        // over the send buffer, within the message limit: alone
		ask("big:65537", "wasmsrv: message over the host's limit")                    // over both
		ask("bad-text", "wasmsrv: text message is not UTF-8")                         // a client would fail the connection (1007)
		ask("close:1005", "wasmsrv: close code may not be sent, or reason not UTF-8") // reports only, never on the wire
		ask("close:999", "wasmsrv: close code may not be sent, or reason not UTF-8")  // below the range
		ask("close:2999", "wasmsrv: close code may not be sent, or reason not UTF-8") // reserved for extensions
		ask("close:5000", "wasmsrv: close code may not be sent, or reason not UTF-8") // beyond the range
		if err := c.WriteMessage(websocket.TextMessage, []byte("close:4000")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4000 {
			t.Fatalf("after close:4000: %v", err)
		}
	})
}
