package host

import (
	"bytes"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// BenchmarkAsyncWebSocketEcho: one text message echoed by the async test guest
// per op over a loopback WebSocket: a WS_MESSAGE event, ws_recv and ws_send, the
// guest parking again. The client's CPU time is in cpu-ns/op too.
func BenchmarkAsyncWebSocketEcho(b *testing.B) {
	s := startAsync(b, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{}, WSConfig{})
	c, _, err := websocket.DefaultDialer.Dial(wsURL(s.srv, "/ws"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := []byte("hello over a websocket")
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := testkit.CPUTime(b)
	for b.Loop() {
		if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
			b.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || !bytes.Equal(got, msg) {
			b.Fatalf("echo: %q %v", got, err)
		}
	}
	testkit.ReportCPU(b, cpu0)
}
