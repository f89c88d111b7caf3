package host

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestWebSocketOrigin: a browser page of another origin cannot open a
// WebSocket to the app (cross-site WebSocket hijacking: the browser would send
// the user's cookies); same-origin pages, allow-listed origins and clients
// that send no Origin (not browsers) can. The client is gorilla/websocket.
func TestWebSocketOrigin(t *testing.T) {
	allow, err := wsorigin.Parse([]string{"https://chat.example", "http://*.allowed.test"})
	if err != nil {
		t.Fatal(err)
	}
	wsShapes(t, WSConfig{Origins: allow}, func(t *testing.T, url func(string) string) {
		self := "http://" + strings.TrimPrefix(url(""), "ws://")
		open := func(origin string) (int, string) {
			t.Helper()
			h := http.Header{}
			if origin != "" {
				h.Set("Origin", origin)
			}
			c, resp, err := websocket.DefaultDialer.Dial(url("/ws"), h)
			if err == nil {
				defer c.Close()
				echo(t, c, websocket.TextMessage, []byte("hi from "+origin))
				return resp.StatusCode, ""
			}
			if resp == nil {
				t.Fatalf("origin %q: %v", origin, err)
			}
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		for _, o := range []string{"", self, strings.ToUpper(self), "https://chat.example", "http://a.allowed.test", "http://b.c.allowed.test"} {
			if code, body := open(o); code != http.StatusSwitchingProtocols {
				t.Errorf("origin %q: %d %q, want 101", o, code, body)
			}
		}
		for _, o := range []string{"http://evil.example", "https://" + strings.TrimPrefix(self, "http://") + ".evil.example",
			"http://chat.example", "https://allowed.test", "http://allowed.test", "null", "file://"} {
			if code, body := open(o); code != http.StatusForbidden || !strings.Contains(body, "cross-origin") {
				t.Errorf("origin %q: %d %q, want 403", o, code, body)
			}
		}
	})
}

// TestWebSocketOriginLogged: a refused upgrade is logged with its origin (the
// guest, which accepts every upgrade on /ws, never saw it).
func TestWebSocketOriginLogged(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{}, WSConfig{})
	h := http.Header{"Origin": {"https://attacker.example"}}
	_, resp, err := websocket.DefaultDialer.Dial(wsURL(s.srv, "/ws"), h)
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-origin upgrade: %v %v", err, resp)
	}
	logs := s.logs.String()
	if !strings.Contains(logs, "websocket upgrade refused: origin not allowed") || !strings.Contains(logs, "origin=https://attacker.example") {
		t.Errorf("no log line for the refusal:\n%s", logs)
	}
}
