package host

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	ws "github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/host/internal/websocket"
)

// connOf returns the hub's connection for the client connection client.
func connOf(t *testing.T, hub *websocket.Hub, client net.Conn) *websocket.Conn {
	t.Helper()
	addr := client.LocalAddr().String()
	var found *websocket.Conn
	waitUntil(t, "the server side of "+addr, 10*time.Second, func() bool {
		for _, c := range hub.Conns() {
			if c.State().Remote == addr {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// waitClosedWith waits until c is closed with code.
func waitClosedWith(t *testing.T, c *websocket.Conn, code int32) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("the connection closed with %d", code), 60*time.Second, func() bool {
		return c.State().Closed
	})
	if got := c.State().CloseCode; got != code {
		t.Fatalf("closed with %d, want %d", got, code)
	}
}

// TestWebSocketSlowReader: a client that never reads while the guest sends as
// fast as it can. What the host holds for it stays within the send buffer (its
// own accounting, not RSS), the guest's sends wait and then fail, the client
// is closed with 1013 — it finds the close frame behind the data once it reads
// — and a second client of the same app echoes throughout.
func TestWebSocketSlowReader(t *testing.T) {
	const sendBuffer = 64 << 10
	wc := WSConfig{SendBuffer: sendBuffer, WriteTimeout: 500 * time.Millisecond, CloseTimeout: 30 * time.Second}
	wsShapesHub(t, wc, func(t *testing.T, url func(string) string, hub *websocket.Hub) {
		other := dial(t, url("/ws"))
		echo(t, other, ws.TextMessage, []byte("before"))

		base := "http" + strings.TrimPrefix(url(""), "ws")
		slow := rawDial(t, base, "/ws-flood?n=1000000&size=16384", "")
		c := connOf(t, hub, slow)
		waitClosedWith(t, c, 1013)
		echo(t, other, ws.TextMessage, []byte("while the slow one is cut off"))
		if peak := hub.PeakHeld(); peak > sendBuffer {
			t.Errorf("the host held %d bytes for one client, over the %d-byte send buffer", peak, sendBuffer)
		} else if peak < sendBuffer/2 {
			t.Errorf("the host held at most %d bytes: the guest never filled the send buffer", peak)
		}
		// The guest learned: its blocked send failed and its handler ended.
		waitUntil(t, "the flooding guest to give up", 20*time.Second, func() bool {
			return c.State().GuestGone
		})
		// The client reads at last: whole frames, then the close frame.
		frames := slow.expectClose(t, 1013)
		for i, f := range frames {
			if f.op != 2 || len(f.payload) != 16384 {
				t.Fatalf("frame %d: opcode %d, %d bytes: a frame was cut", i, f.op, len(f.payload))
			}
		}
		t.Logf("%d messages reached the client before the close; peak held %d bytes", len(frames), hub.PeakHeld())
		echo(t, other, ws.TextMessage, []byte("after"))
	})
}

// TestWebSocketSlowReaderBigMessages: messages bigger than the send buffer go
// one at a time, so one message is what the host holds at most.
func TestWebSocketSlowReaderBigMessages(t *testing.T) {
	const sendBuffer, size = 16 << 10, 100 << 10
	wc := WSConfig{SendBuffer: sendBuffer, WriteTimeout: 500 * time.Millisecond, CloseTimeout: 30 * time.Second}
	wsShapesHub(t, wc, func(t *testing.T, url func(string) string, hub *websocket.Hub) {
		base := "http" + strings.TrimPrefix(url(""), "ws")
		slow := rawDial(t, base, fmt.Sprintf("/ws-flood?n=1000000&size=%d", size), "")
		waitClosedWith(t, connOf(t, hub, slow), 1013)
		if peak := hub.PeakHeld(); peak > size+14 {
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
	wsShapesHub(t, wc, func(t *testing.T, url func(string) string, hub *websocket.Hub) {
		base := "http" + strings.TrimPrefix(url(""), "ws")
		slow := rawDial(t, base, "/ws", "")
		c := connOf(t, hub, slow)
		ping := wireFrame{Fin: true, Op: 9, Payload: bytes.Repeat([]byte{'p'}, 125)}.Bytes()
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
		if peak := hub.PeakHeld(); peak > sendBuffer+2+125 {
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
			if err := c.WriteMessage(ws.TextMessage, []byte(req)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				kind, msg, err := c.ReadMessage()
				if err != nil {
					t.Fatalf("%s: %v", req, err)
				}
				if kind == ws.BinaryMessage {
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
		if err := c.WriteMessage(ws.TextMessage, []byte("close:4000")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *ws.CloseError
		if !errors.As(err, &ce) || ce.Code != 4000 {
			t.Fatalf("after close:4000: %v", err)
		}
	})
}
