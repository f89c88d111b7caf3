package site

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// wsOpen dials a WebSocket with an optional Origin (gorilla/websocket) and
// returns the handshake status; an open socket gets one echo round trip.
func wsOpen(t *testing.T, url, origin string) int {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.DefaultDialer.Dial(url, h)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s (origin %q): %v", url, origin, err)
		}
		return resp.StatusCode
	}
	defer c.Close()
	if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ReadMessage(); err != nil {
		t.Fatalf("echo through %s: %v", url, err)
	}
	return resp.StatusCode
}

// Proxied WebSocket routes check the Origin too: same-origin by default, the
// route's ws_origins beyond, "*" to leave it to the upstream; a static route
// that falls back to an upstream checks with its own list. Plain requests from
// other origins are not affected.
func TestProxiedWebSocketOrigin(t *testing.T) {
	back := backend(t, "b")
	f := start(t, head+fmt.Sprintf(`
[upstreams.back]
servers = [{ url = %q }]

[[routes]]
path = "/strict"
upstream = "back"

[[routes]]
path = "/listed"
upstream = "back"
ws_origins = ["https://chat.example", "https://*.partner.example"]

[[routes]]
path = "/open"
upstream = "back"
ws_origins = ["*"]

[[routes]]
path = "/"
static = "www"
fallback = "back"
ws_origins = ["https://chat.example"]
`, back.URL), nil)
	ws := "ws" + strings.TrimPrefix(f.url, "http")
	self := f.url // http://127.0.0.1:port: the site's own origin
	for _, c := range []struct {
		path, origin string
		want         int
	}{
		{"/strict/ws", "", 101},
		{"/strict/ws", self, 101},
		{"/strict/ws", "https://evil.example", 403},
		{"/strict/ws", "https://chat.example", 403},
		{"/listed/ws", "https://chat.example", 101},
		{"/listed/ws", "https://a.partner.example", 101},
		{"/listed/ws", "https://partner.example", 403},
		{"/listed/ws", "https://evil.example", 403},
		{"/listed/ws", self, 101},
		{"/open/ws", "https://evil.example", 101},
		{"/ws", "https://chat.example", 101}, // static, no such file: the upstream fallback
		{"/ws", "https://evil.example", 403},
	} {
		if got := wsOpen(t, ws+c.path, c.origin); got != c.want {
			t.Errorf("%s with Origin %q: %d, want %d", c.path, c.origin, got, c.want)
		}
	}
	if code, _, body := get(t, f.url+"/strict/x", "Origin", "https://evil.example"); code != 200 || !strings.Contains(body, "b /x") {
		t.Errorf("a plain cross-origin request: %d %q", code, body)
	}
}

// An app's ws_origins: samples/ws behind `serve`, same-origin by default.
func TestAppWebSocketOrigin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go guest")
	}
	ctx := context.Background()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: filepath.Join(t.TempDir(), "wazero")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	wsDir, _ := filepath.Abs("../../../samples/ws")
	f := start(t, head+fmt.Sprintf(`
[apps.strict]
package = %[1]q
mode = "async"

[apps.listed]
package = %[1]q
mode = "async"
ws_origins = ["https://chat.example"]
ws_send_buffer = "64KiB"

[[routes]]
path = "/strict"
app = "strict"

[[routes]]
path = "/listed"
app = "listed"
`, wsDir), eng)
	ws := "ws" + strings.TrimPrefix(f.url, "http")
	for _, c := range []struct {
		path, origin string
		want         int
	}{
		{"/strict/echo", "", 101},
		{"/strict/echo", f.url, 101},
		{"/strict/echo", "https://chat.example", 403},
		{"/listed/echo", "https://chat.example", 101},
		{"/listed/echo", "https://evil.example", 403},
		{"/listed/echo", f.url, 101},
	} {
		if got := wsOpen(t, ws+c.path, c.origin); got != c.want {
			t.Errorf("%s with Origin %q: %d, want %d", c.path, c.origin, got, c.want)
		}
	}
}
