package host

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// dialSlowReader opens a connection whose receive buffer is tiny and that
// reads nothing until told: a client on a slow link.
func dialSlowReader(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A slow reader of a large response must not hold the only instance: the
// response is held by the host and the instance goes back to the pool; with
// holding off (the control) the next client waits.
func TestHeldResponseFreesInstance(t *testing.T) {
	const n = 8000 // KB: more than the kernel buffers for a reader that does not read (tcp_wmem max 4 MiB)
	for _, tt := range []struct {
		name, path string
		hold       int
		served     bool
	}{
		{"held", "/big", 16 << 20, true},
		{"written through (the control)", "/big", 0, false},
		{"X-Accel-Buffering: no from the app", "/big-nohold", 16 << 20, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveSyncWith(t, GatewayConfig{App: "wsapp-sync", ResponseBuffer: tt.hold})
			slow := dialSlowReader(t, srv.Listener.Addr().String())
			if _, err := io.WriteString(slow, "GET "+tt.path+"?n=8000 HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // the guest has answered (or is blocked writing)
			client := &http.Client{Timeout: 2 * time.Second}
			resp, err := client.Get(srv.URL + "/")
			if served := err == nil; served != tt.served {
				t.Fatalf("another request served while a slow client reads: %v (%v), want %v", served, err, tt.served)
			}
			if err == nil {
				resp.Body.Close()
			}
			// The slow client still gets the whole answer, with its length.
			slow.SetReadDeadline(time.Now().Add(10 * time.Second))
			resp, err = http.ReadResponse(bufio.NewReader(slow), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || len(b) != n*1000 || !bytes.HasPrefix(b, []byte("abcdefghij")) {
				t.Fatalf("slow client got %d bytes (%v)", len(b), err)
			}
			if tt.served && resp.ContentLength != n*1000 {
				t.Errorf("held response: Content-Length %d, want %d", resp.ContentLength, n*1000)
			}
			if v := resp.Header.Get("X-Accel-Buffering"); v != "" {
				t.Errorf("X-Accel-Buffering %q reached the client", v)
			}
		})
	}
}

// A guest that dies after passing on part of a response: with the response
// held, nothing reached the client and it gets a clean 500; written through,
// the head is out and the response is cut.
func TestHeldResponseTurnsTrapInto500(t *testing.T) {
	for _, tt := range []struct {
		name string
		hold int
		want int // 0: cut
	}{{"held", 1 << 20, http.StatusInternalServerError}, {"written through", 0, 0}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveSyncWith(t, GatewayConfig{App: "wsapp-sync", ResponseBuffer: tt.hold})
			resp, err := http.Get(srv.URL + "/big-then-exit")
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if tt.want == 0 {
				if err == nil {
					t.Fatalf("response completed (%d, %d bytes); want it cut", resp.StatusCode, len(body))
				}
				return
			}
			if err != nil || resp.StatusCode != tt.want {
				t.Fatalf("got %v %v, want %d", resp, err, tt.want)
			}
		})
	}
}
