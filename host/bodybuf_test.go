package host

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// serveSyncWith serves the sync test guest on one instance through a
// gateway configured by gc.
func serveSyncWith(t *testing.T, gc GatewayConfig) *httptest.Server {
	t.Helper()
	_, srv := startSyncWith(t, runtime.PoolConfig{Workers: 1, RequestTimeout: 10 * time.Second}, gc)
	return srv
}

// startUpload sends a request head announcing a 10-byte body and the first
// 3 bytes of it, then stalls.
func startUpload(t *testing.T, srv *httptest.Server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	return c
}

// A slow upload must not hold the only instance: with buffering another
// client is served meanwhile; without it (the control) it waits.
func TestSlowUploadDoesNotHoldInstance(t *testing.T) {
	for _, tt := range []struct {
		name        string
		buffer      bodybuf.Config
		servedEarly bool
	}{
		{"buffered", bodybuf.Config{Memory: 64 << 10}, true},
		{"streamed (buffer off)", bodybuf.Config{}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := serveSyncWith(t, GatewayConfig{App: "wsapp-sync", Buffer: tt.buffer, BodyLimit: 1 << 20})
			up := startUpload(t, srv)
			time.Sleep(100 * time.Millisecond) // the upload's head is in
			got := make(chan string, 1)
			go func() {
				resp, err := http.Get(srv.URL + "/")
				if err != nil {
					got <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				got <- string(b)
			}()
			select {
			case b := <-got:
				if !tt.servedEarly {
					t.Fatalf("served %q while the upload held the instance: the control cannot fail", b)
				}
				if b != "hello\n" {
					t.Fatalf("other client got %q", b)
				}
			case <-time.After(700 * time.Millisecond):
				if tt.servedEarly {
					t.Fatal("another client waited for the slow upload: it holds the instance")
				}
			}
			if _, err := io.WriteString(up, "defghij"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(up), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != "abcdefghij" {
				t.Errorf("upload answered %d %q", resp.StatusCode, b)
			}
			if !tt.servedEarly {
				if b := <-got; b != "hello\n" {
					t.Errorf("other client got %q", b)
				}
			}
		})
	}
}
