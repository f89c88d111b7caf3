package websocket

import (
	"bufio"
	"bytes"
	"log/slog"
	"testing"

	"github.com/wasmsrv/wasmsrv/abi"
)

// BenchmarkWebSocketReadFrame: the host's side of one small masked text frame
// from a client, read from a buffer: header, unmasking, UTF-8 check, the
// message handed to the inbox. No socket, no guest.
func BenchmarkWebSocketReadFrame(b *testing.B) {
	c := NewHub(Config{}, slog.New(slog.DiscardHandler)).NewConn(func(int32, int64, int64) {})
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
	c := NewHub(Config{}, slog.New(slog.DiscardHandler)).NewConn(func(int32, int64, int64) {})
	msg := []byte("hello over a websocket")
	b.ReportAllocs()
	for b.Loop() {
		if rc := c.Send(abi.MessageText, msg, nil); rc != abi.OK {
			b.Fatal(rc)
		}
		c.mu.Lock()
		*c.out = (*c.out)[:0]
		c.mu.Unlock()
	}
}
