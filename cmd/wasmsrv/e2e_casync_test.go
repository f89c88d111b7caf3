package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestE2ESampleCAsync serves the C SDK's async sample (samples/c-async-hello, the
// callback API of sdk/c/wasmsrv.h under WASMSRV_ASYNC) on one instance, so every
// request below shares one guest and its connection table: c-hello's answer under
// 200 concurrent requests, then 200 concurrent /later requests that each wait on a
// 50 ms host timer (TIMER events drive the answer), after clients that left with
// their timer still armed; and WebSocket echo through the SDK's ws wrappers.
func TestE2ESampleCAsync(t *testing.T) {
	srv := startServer(t, sample("c-async-hello/main.wasm"), "--workers", "1")
	if out := srv.stdout.String(); !strings.Contains(out, "(async mode)") {
		t.Fatalf("stdout does not name async mode:\n%s", out)
	}
	const clients = 200
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	// Clients that leave while /later waits: the guest gets DISCONNECT, ends the
	// connection and disarms its timer, so a handle the host reuses later never
	// answers early on a stale timer (the >= 50 ms check below would catch it).
	for range 20 {
		conn, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(conn, "GET /later HTTP/1.1\r\nHost: t\r\n\r\n")
		conn.Close()
	}

	for _, tc := range []struct{ name, path string }{{"now", "/"}, {"timer", "/later"}} {
		path := tc.path
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan string, clients)
			start := time.Now()
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					resp, err := c.Get(fmt.Sprintf("%s%s?i=%d", srv.URL, path, i))
					if err != nil {
						errs <- fmt.Sprintf("client %d: %v", i, err)
						return
					}
					b, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					took := time.Since(t0)
					switch {
					case err != nil:
						errs <- fmt.Sprintf("client %d: reading body: %v", i, err)
					case resp.StatusCode != http.StatusOK || string(b) != "Hello from wasmsrv!\n" ||
						resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.ContentLength != int64(len(b)):
						errs <- fmt.Sprintf("client %d: status %d, Content-Type %q, Content-Length %d, body %q", i,
							resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, b)
					case path == "/later" && took < 50*time.Millisecond:
						errs <- fmt.Sprintf("client %d: /later answered after %v, before its 50 ms timer", i, took)
					}
				}()
			}
			wg.Wait()
			close(errs)
			failures := 0
			for e := range errs {
				if failures++; failures <= 10 {
					t.Error(e)
				}
			}
			if failures > 0 {
				t.Fatalf("%d of %d requests failed\nserver log tail:\n%s", failures, clients, tail(srv.logs(), 2000))
			}
			// One instance waiting on 200 timers at once: concurrent, not 200 × 50 ms.
			if d := time.Since(start); path == "/later" && d > 8*time.Second {
				t.Errorf("%d /later requests took %v", clients, d)
			}
		})
	}

	t.Run("websocket", func(t *testing.T) {
		ws := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
		conns := make([]*websocket.Conn, 20)
		for i := range conns {
			conns[i] = wsDial(t, ws)
		}
		// Interleaved across connections, so one instance carries them all at once;
		// the large message makes the SDK grow its receive buffer (needed-length
		// protocol of ws_recv).
		big := strings.Repeat("0123456789abcdef", 8192)
		for round, msg := range []string{"hello", "caf\u00e9", big} {
			for i, c := range conns {
				m := fmt.Sprintf("%d/%d %s", round, i, msg)
				if got := wsRoundTrip(t, c, websocket.TextMessage, m); got != m {
					t.Fatalf("conn %d round %d: echo of %d bytes came back as %d bytes", i, round, len(m), len(got))
				}
				if got := wsRoundTrip(t, c, websocket.BinaryMessage, "\x00\xff"+m); got != "\x00\xff"+m {
					t.Fatalf("conn %d round %d: binary echo differs", i, round)
				}
			}
		}
		for _, c := range conns {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"),
				time.Now().Add(5*time.Second))
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, _, err := c.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				t.Errorf("after close: %v, want the echoed close 1000", err)
			}
		}
		// The instance is still healthy after the WebSockets ended.
		resp, body := get(t, c, srv.URL+"/")
		if resp.StatusCode != http.StatusOK || body != "Hello from wasmsrv!\n" {
			t.Fatalf("after WebSockets: %d %q", resp.StatusCode, body)
		}
	})
}
