package plugins_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wasmsrv/wasmsrv/internal/registry"
)

// BenchmarkChatFanout is the chat sample end to end: `clients` WebSocket clients in one
// room on a two-instance async pool; one op is one message sent by a client and
// received by every client (through pubsub and the relays). msgs/s counts deliveries.
func BenchmarkChatFanout(b *testing.B) {
	const clients = 50
	reg := testRegistry(b, "", "")
	defer reg.Close()
	// A deep queue: the sender bursts far faster than a chat client types, and a
	// full queue drops the oldest messages by design.
	s := serveMode(b, reg, "chat", "../samples/chat", "async", registry.Grants{"pubsub": {"queue": 8192}}, 2)
	wsURL := "ws" + strings.TrimPrefix(s.url, "http") + "/ws?room=bench"

	conns := make([]net.Conn, clients)
	for i := range conns {
		c, _, _, err := ws.Dial(context.Background(), wsURL)
		if err != nil {
			b.Fatal(err, s.log.String())
		}
		defer c.Close()
		conns[i] = c
	}
	// Wait until every relay is subscribed: probe messages until all clients hear one.
	probe := func() bool {
		if err := wsutil.WriteClientText(conns[0], []byte("probe")); err != nil {
			b.Fatal(err)
		}
		ok := true
		for _, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := wsutil.ReadServerText(c); err != nil {
				ok = false
			}
		}
		return ok
	}
	for deadline := time.Now().Add(10 * time.Second); !probe(); {
		if time.Now().After(deadline) {
			b.Fatal("clients never all joined the room")
		}
	}
	// Drain stray probes.
	for _, c := range conns {
		for {
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := wsutil.ReadServerText(c); err != nil {
				break
			}
		}
		_ = c.SetReadDeadline(time.Time{})
	}

	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			for i := 0; i < b.N; i++ {
				if _, err := wsutil.ReadServerText(c); err != nil {
					errs <- fmt.Errorf("after %d messages: %w", i, err)
					return
				}
			}
		}()
	}
	for i := 0; i < b.N; i++ {
		if err := wsutil.WriteClientText(conns[i%clients], []byte("hello room")); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*clients)/time.Since(start).Seconds(), "msgs/s")
}
