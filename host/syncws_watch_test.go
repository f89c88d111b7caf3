package host

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// A sync app whose WebSockets hold every instance makes the next WebSocket wait
// and time out: the log says so once, naming async mode — not once per connection.
func TestSyncWebSocketsFillThePool(t *testing.T) {
	logs := &testkit.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	app, err := testEngine(t).Load(context.Background(), runtime.AppConfig{Name: "wsapp-sync", Wasm: buildWSApp(t, false), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := runtime.NewSyncPool(context.Background(), app, runtime.PoolConfig{Workers: 2, QueueWait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	gw := NewGateway(pool, GatewayConfig{App: "wsapp-sync"}, log)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		gw.Close()
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pool.Close(ctx)
	})
	const warning = "every instance of this sync app holds a WebSocket"

	// As many WebSockets as instances: each is served, nothing to say.
	for range 2 {
		c := dial(t, wsURL(srv, "/ws"))
		echo(t, c, websocket.TextMessage, []byte("hi"))
	}
	if strings.Contains(logs.String(), warning) {
		t.Fatalf("warned before the pool was full:\n%s", logs.String())
	}
	// More than the pool holds: each waits for an instance and gets 503.
	for range 3 {
		_, resp, err := websocket.DefaultDialer.Dial(wsURL(srv, "/ws"), nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			status := 0
			if resp != nil {
				status = resp.StatusCode
			}
			t.Fatalf("WebSocket beyond the pool: err %v, status %d; want 503", err, status)
		}
	}
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "--mode async") || !strings.Contains(logs.String(), "websockets=2 workers=2") {
		t.Errorf("warning does not name --mode async and the counts:\n%s", logs.String())
	}
}
