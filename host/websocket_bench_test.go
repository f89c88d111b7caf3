package host

import (
	"bufio"
	"bytes"
	"log/slog"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/abi"
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

// BenchmarkWebSocketReadFrame: the host's side of one small masked text frame
// from a client, read from a buffer: header, unmasking, UTF-8 check, the
// message handed to the inbox. No socket, no guest.
func BenchmarkWebSocketReadFrame(b *testing.B) {
	c := &wsConn{hub: newWSHub(WSConfig{}, slog.New(slog.DiscardHandler)), notify: func(int32, int64, int64) {}}
	msg := []byte("hello over a websocket")
	frame := []byte{0x81, 0x80 | byte(len(msg)), 1, 2, 3, 4}
	for i, ch := range msg {
		frame = append(frame, ch^byte(1+i%4))
	}
	const n = 1000
	data := bytes.Repeat(frame, n)
	r := bytes.NewReader(data)
	br := bufio.NewReaderSize(r, 4096)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%n == 0 {
			r.Reset(data)
			br.Reset(r)
		}
		if !c.readFrame(br) {
			b.Fatal("frame refused")
		}
		c.mu.Lock()
		c.inbox, c.inBytes = c.inbox[:0], 0
		c.mu.Unlock()
	}
}

// BenchmarkWebSocketSend: ws_send of one small text message up to the queue
// (framing, accounting); the writer is not running.
func BenchmarkWebSocketSend(b *testing.B) {
	c := &wsConn{hub: newWSHub(WSConfig{}, slog.New(slog.DiscardHandler)), notify: func(int32, int64, int64) {}}
	msg := []byte("hello over a websocket")
	b.ReportAllocs()
	for b.Loop() {
		if rc := c.send(abi.MessageText, msg, nil); rc != abi.OK {
			b.Fatal(rc)
		}
		c.mu.Lock()
		*c.out = (*c.out)[:0]
		c.mu.Unlock()
	}
}
