package host

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestUnreadBodyKeepsConnection: a guest that answers without reading the
// whole request body (here: it stops at the body limit) must not break the
// connection. With full duplex on, net/http panicked reading the next request
// ("invalid concurrent Body.Read call", golang/go#68560) and dropped the
// connection, in about two runs of three. A raw client sends a chunked body over
// the limit, reads the answer, then asks again on the same connection.
func TestUnreadBodyKeepsConnection(t *testing.T) {
	gc := GatewayConfig{App: "wsapp", BodyLimit: 1000}
	for _, shape := range []struct {
		name string
		srv  func(t *testing.T) *httptest.Server
	}{
		{"sync", func(t *testing.T) *httptest.Server { return serveSyncWith(t, gc) }},
		{"async", func(t *testing.T) *httptest.Server {
			return serveAsync(t, "wsapp", buildWSApp(t, true), 0, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{}, gc).srv
		}},
	} {
		t.Run(shape.name, func(t *testing.T) {
			srv := shape.srv(t)
			for round := range 5 {
				c, err := net.Dial("tcp", srv.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				_ = c.SetDeadline(time.Now().Add(20 * time.Second))
				br := bufio.NewReader(c)
				chunk := strings.Repeat("x", 5000)
				fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(chunk), chunk)
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode < 400 {
					t.Fatalf("round %d: %d for a body over the limit", round, resp.StatusCode)
				}
				if resp.Close {
					c.Close()
					continue // closed on purpose, and said so
				}
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
				resp, err = http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("round %d: the kept-alive connection broke after the unread body: %v", round, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("round %d: second request %d", round, resp.StatusCode)
				}
				c.Close()
			}
		})
	}
}
