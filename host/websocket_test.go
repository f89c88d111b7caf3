package host

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	wshost "github.com/wasmsrv/wasmsrv/host/internal/websocket"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// The client side is gorilla/websocket, so the server's gobwas/ws framing is
// checked against an independent implementation.

func dial(t *testing.T, url string, protos ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func echo(t *testing.T, c *websocket.Conn, kind int, msg []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(kind, msg); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if k != kind || !bytes.Equal(got, msg) {
		t.Fatalf("echo: kind %d %q, want %d %q", k, trunc(got), kind, trunc(msg))
	}
}

func trunc(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// wsShapes runs a test against both shapes.
func wsShapes(t *testing.T, wc WSConfig, fn func(t *testing.T, url func(string) string)) {
	wsShapesHub(t, wc, func(t *testing.T, url func(string) string, _ *wshost.Hub) { fn(t, url) })
}

// wsShapesHub is wsShapes for tests that look at the gateway's WebSocket hub.
func wsShapesHub(t *testing.T, wc WSConfig, fn func(t *testing.T, url func(string) string, hub *wshost.Hub)) {
	t.Run("async", func(t *testing.T) {
		s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}, wc)
		fn(t, func(p string) string { return wsURL(s.srv, p) }, s.gw.ws)
	})
	t.Run("sync", func(t *testing.T) {
		_, srv := startSync(t, runtime.PoolConfig{Workers: 3}, wc)
		fn(t, func(p string) string { return wsURL(srv, p) }, srv.Config.Handler.(*Gateway).wsHub())
	})
}

func TestWebSocketEcho(t *testing.T) {
	wsShapes(t, WSConfig{}, func(t *testing.T, url func(string) string) {
		c := dial(t, url("/ws"), "chat", "echo")
		if c.Subprotocol() != "echo" {
			t.Errorf("subprotocol %q, want echo", c.Subprotocol())
		}
		echo(t, c, websocket.TextMessage, []byte("hello"))
		echo(t, c, websocket.BinaryMessage, []byte{0, 1, 2, 255})
		echo(t, c, websocket.TextMessage, []byte(""))
		echo(t, c, websocket.BinaryMessage, bytes.Repeat([]byte("x"), 300<<10)) // over the send buffer
		// Fragmented: a small client write buffer splits the message into frames.
		d := websocket.Dialer{WriteBufferSize: 64}
		fc, _, err := d.Dial(url("/ws"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer fc.Close()
		echo(t, fc, websocket.TextMessage, []byte(strings.Repeat("fragmented message ", 100)))
	})
}

func TestWebSocketPingPong(t *testing.T) {
	wsShapes(t, WSConfig{}, func(t *testing.T, url func(string) string) {
		c := dial(t, url("/ws"))
		pong := make(chan string, 1)
		c.SetPongHandler(func(s string) error { pong <- s; return nil })
		if err := c.WriteControl(websocket.PingMessage, []byte("p1"), time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		// Control frames are answered by the host, in the middle of the message flow.
		if err := c.WriteMessage(websocket.TextMessage, []byte("after ping")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, msg, err := c.ReadMessage() // runs the pong handler first
		if err != nil || string(msg) != "after ping" {
			t.Fatalf("read: %q %v", msg, err)
		}
		select {
		case p := <-pong:
			if p != "p1" {
				t.Errorf("pong %q", p)
			}
		default:
			t.Error("no pong")
		}
	})
}

func TestWebSocketClose(t *testing.T) {
	wsShapes(t, WSConfig{}, func(t *testing.T, url func(string) string) {
		// Server-initiated, with code and reason.
		c := dial(t, url("/ws"))
		if err := c.WriteMessage(websocket.TextMessage, []byte("close")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4000 || ce.Text != "bye" {
			t.Fatalf("server close: %v", err)
		}
		// Client-initiated: the host echoes the code.
		c2 := dial(t, url("/ws"))
		echo(t, c2, websocket.TextMessage, []byte("x"))
		msg := websocket.FormatCloseMessage(4001, "client bye")
		if err := c2.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err = c2.ReadMessage()
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("close reply: %v", err)
		}
	})
}

func TestWebSocketTooBig(t *testing.T) {
	wsShapes(t, WSConfig{MaxMessage: 1000}, func(t *testing.T, url func(string) string) {
		c := dial(t, url("/ws"))
		echo(t, c, websocket.BinaryMessage, make([]byte, 1000))
		if err := c.WriteMessage(websocket.BinaryMessage, make([]byte, 1001)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 1009 {
			t.Fatalf("oversize: %v, want close 1009", err)
		}
	})
}

func TestWebSocketDeny(t *testing.T) {
	wsShapes(t, WSConfig{}, func(t *testing.T, url func(string) string) {
		_, resp, err := websocket.DefaultDialer.Dial(url("/ws-deny"), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("deny: %v %v", err, resp)
		}
		_, resp, err = websocket.DefaultDialer.Dial(url("/ws-deny-custom"), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("custom deny: %v %v", err, resp)
		}
	})
}

// TestWebSocketIdleTimeout: a client that answers the server's pings stays
// connected; one that does not is closed with 1001 "ping timeout". The silent
// client speaks WebSocket by hand and never answers (a library client answers
// pings whenever it reads), so the test reads it from the start instead of
// sleeping past the timeout. The reading client's pongs have PingTimeout (3 s)
// to arrive: far more than a loaded machine delays a goroutine, so only a
// server that ignores pongs closes it.
func TestWebSocketIdleTimeout(t *testing.T) {
	wsShapes(t, WSConfig{PingInterval: 150 * time.Millisecond, PingTimeout: 3 * time.Second}, func(t *testing.T, url func(string) string) {
		// A client that reads answers pings and stays connected.
		alive := dial(t, url("/ws"))
		done := make(chan error, 1)
		go func() {
			_ = alive.SetReadDeadline(time.Now().Add(60 * time.Second))
			_, _, err := alive.ReadMessage()
			done <- err
		}()
		// A client that never answers: it gets pings, then the close frame.
		dead := rawDial(t, url(""), "/ws", "")
		_ = dead.SetReadDeadline(time.Now().Add(60 * time.Second))
		pings := 0
		for {
			f, err := dead.readFrame()
			if err != nil {
				t.Fatalf("silent client: %v after %d pings, want a close frame 1001 \"ping timeout\"", err, pings)
			}
			if f.op == 0x9 {
				pings++
				continue
			}
			if f.op != 0x8 || len(f.payload) < 2 || binary.BigEndian.Uint16(f.payload) != 1001 || string(f.payload[2:]) != "ping timeout" {
				t.Fatalf("silent client: frame op %#x %q, want a close frame 1001 \"ping timeout\"", f.op, f.payload)
			}
			break
		}
		if pings == 0 {
			t.Errorf("the silent client was closed without a ping")
		}
		select {
		case err := <-done:
			t.Fatalf("the reading client was closed too: %v", err)
		default:
		}
		if err := alive.WriteMessage(websocket.TextMessage, []byte("still here")); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("reading client: %v", err)
		}
	})
}

func TestWebSocketCompression(t *testing.T) {
	wsShapes(t, WSConfig{Compression: true}, func(t *testing.T, url func(string) string) {
		d := websocket.Dialer{EnableCompression: true}
		c, resp, err := d.Dial(url("/ws"), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if ext := resp.Header.Get("Sec-Websocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
			t.Fatalf("extensions %q", ext)
		}
		echo(t, c, websocket.TextMessage, []byte(strings.Repeat("compress me ", 500)))
		echo(t, c, websocket.BinaryMessage, []byte{1, 2, 3})
	})
}

// TestWebSocketManySpread: connections spread over the instances and all echo.
func TestWebSocketManySpread(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}, WSConfig{})
	const n = 400
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dial(t, wsURL(s.srv, "/ws"))
	}
	loads := s.pool.Stats().Conns
	if len(loads) != 2 || loads[0] < n/4 || loads[1] < n/4 {
		t.Fatalf("connections per instance %v: not spread", loads)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("conn %d", i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				errs <- err
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, got, err := c.ReadMessage()
			if err != nil || string(got) != msg {
				errs <- fmt.Errorf("%s: %q %v", msg, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWebSocketTrapIsolation: a guest that traps while holding connections closes
// only its own (1011); the other instance's connections keep working, and the pool
// gets its instance back.
func TestWebSocketTrapIsolation(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}, WSConfig{})
	const n = 40
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dial(t, wsURL(s.srv, "/ws"))
		echo(t, conns[i], websocket.TextMessage, []byte("hi"))
	}
	if err := conns[0].WriteMessage(websocket.TextMessage, []byte("trap")); err != nil {
		t.Fatal(err)
	}
	closed, alive := 0, 0
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if i > 0 {
			if err := c.WriteMessage(websocket.TextMessage, []byte("ping?")); err != nil {
				closed++
				continue
			}
		}
		_, msg, err := c.ReadMessage()
		var ce *websocket.CloseError
		switch {
		case err == nil && string(msg) == "ping?":
			alive++
		case errors.As(err, &ce) && ce.Code == 1011:
			closed++
		default:
			t.Errorf("conn %d: %q %v", i, msg, err)
		}
	}
	if closed < n/4 || alive < n/4 {
		t.Fatalf("closed %d, alive %d of %d: a trap must cost only its instance's connections", closed, alive, n)
	}
	waitUntil(t, "replacement instance", 10*time.Second, func() bool { return s.pool.Stats().Live == 2 })
	c := dial(t, wsURL(s.srv, "/ws"))
	echo(t, c, websocket.TextMessage, []byte("after"))
}
