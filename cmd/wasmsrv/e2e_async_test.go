package main

// End-to-end tests of the async shape and of WebSockets: the samples ws, clock and
// ws-sync (and the net/http adapter built for the async shape) served by the real
// binary, spoken to with gorilla/websocket and net/http over loopback sockets.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func wsDial(t *testing.T, url string, protos ...string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: protos, HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, nil)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func wsRoundTrip(t *testing.T, c *websocket.Conn, kind int, msg string) string {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := c.WriteMessage(kind, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	k, got, err := c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	if k != kind {
		t.Fatalf("message kind %d, want %d", k, kind)
	}
	return string(got)
}

func TestE2ESampleWS(t *testing.T) {
	srv := startServer(t, sample("ws"), "--mode", "async", "--workers", "2")
	if !strings.Contains(srv.stdout.String(), "(async mode)") {
		t.Errorf("startup line does not say async mode: %q", srv.stdout.String())
	}
	base := "ws://" + srv.Addr
	c := wsDial(t, base+"/echo", "echo")
	if c.Subprotocol() != "echo" {
		t.Errorf("subprotocol %q, want echo", c.Subprotocol())
	}
	if got := wsRoundTrip(t, c, websocket.TextMessage, "hello"); got != "hello" {
		t.Errorf("text echo %q", got)
	}
	if got := wsRoundTrip(t, c, websocket.BinaryMessage, "\x00\x01\xff"); got != "\x00\x01\xff" {
		t.Errorf("binary echo %q", got)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("close")); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 4000 || ce.Text != "bye" {
		t.Errorf("close: %v, want 4000 bye", err)
	}
	// Not accepted: 403.
	if _, resp, err := websocket.DefaultDialer.Dial(base+"/nope", nil); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("upgrade on /nope: %v %v, want 403", err, resp)
	}
	// Many at once, each with its own answer.
	const n = 300
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = wsDial(t, base+"/echo")
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := fmt.Sprintf("client %d", i)
			if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Error(err)
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if _, got, err := c.ReadMessage(); err != nil || string(got) != msg {
				t.Errorf("%s: %q %v", msg, got, err)
			}
		}()
	}
	wg.Wait()
	// The page is plain HTTP on the same app.
	resp, body := get(t, httpClient(t), srv.URL+"/")
	if resp.StatusCode != 200 || !strings.Contains(body, "new WebSocket") {
		t.Errorf("GET /: %d %q", resp.StatusCode, body)
	}
}

func TestE2ESampleClock(t *testing.T) {
	srv := startServer(t, sample("clock"), "--mode", "async", "--workers", "1")
	const clients, events = 500, 3
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(fmt.Sprintf("%s/events?n=%d&interval=300ms", srv.URL, events))
			if err != nil {
				mu.Lock()
				failures++
				mu.Unlock()
				t.Errorf("client %d: %v", i, err)
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			ok := resp.StatusCode == 200 && resp.Header.Get("Content-Type") == "text/event-stream" &&
				strings.Count(body, "event: tick\n") == events && strings.Contains(body, fmt.Sprintf("id: %d\n", events))
			if !ok {
				mu.Lock()
				failures++
				mu.Unlock()
				t.Errorf("client %d: %d %q", i, resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	// 500 streams of two 300 ms sleeps on one instance: concurrent, not 500 × 0.6 s.
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("%d streams took %s", clients, d)
	}
	if failures > 0 {
		t.Fatalf("%d of %d streams failed", failures, clients)
	}
}

func TestE2ESampleWSSync(t *testing.T) {
	srv := startServer(t, sample("ws-sync"), "--workers", "1", "--queue-wait", "300ms")
	c := wsDial(t, "ws://"+srv.Addr+"/")
	if got := wsRoundTrip(t, c, websocket.TextMessage, "hi"); got != "#1 hi" {
		t.Errorf("first reply %q", got)
	}
	if got := wsRoundTrip(t, c, websocket.TextMessage, "again"); got != "#2 again" {
		t.Errorf("second reply %q", got)
	}
	// The open WebSocket holds the only instance (the sync shape's limitation):
	// a plain request waits for an instance and gets 503.
	resp, _ := get(t, httpClient(t), srv.URL+"/")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("request while the WebSocket holds the instance: %d, want 503", resp.StatusCode)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("bye")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != 1000 || ce.Text != "bye after 3" {
		t.Errorf("close: %v, want 1000 \"bye after 3\"", err)
	}
	// The instance is free again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, body := get(t, httpClient(t), srv.URL+"/")
		if resp.StatusCode == 426 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after close: %d %q, want 426", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2EMuxAsync: the net/http adapter works unchanged in the async shape.
func TestE2EMuxAsync(t *testing.T) {
	srv := startServer(t, sample("mux"), "--mode", "async")
	c := httpClient(t)
	resp, body := get(t, c, srv.URL+"/books/2")
	if resp.StatusCode != 200 || !strings.Contains(body, "WebAssembly: The Definitive Guide") {
		t.Errorf("GET /books/2: %d %q", resp.StatusCode, body)
	}
	req := mustRequest(t, "POST", srv.URL+"/sum", strings.NewReader("[1,2,3.5]"))
	resp, body = do(t, c, req)
	var sum struct{ Sum float64 }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &sum) != nil || sum.Sum != 6.5 {
		t.Errorf("POST /sum: %d %q", resp.StatusCode, body)
	}
}
