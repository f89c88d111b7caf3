package host

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// serveSyncWith serves the sync test guest on one instance through a
// gateway configured by gc.
func serveSyncWith(t *testing.T, gc GatewayConfig) *httptest.Server {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	app, err := testEngine(t).Load(context.Background(), runtime.AppConfig{Name: "wsapp-sync", Wasm: buildWSApp(t, false), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := runtime.NewSyncPool(context.Background(), app, runtime.PoolConfig{Workers: 1, RequestTimeout: 10 * time.Second})
	if err != nil {
		_ = app.Close(context.Background())
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewGateway(pool, gc, log))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pool.Close(ctx)
		_ = app.Close(context.Background())
	})
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
		buffer      BodyBuffer
		servedEarly bool
	}{
		{"buffered", BodyBuffer{Memory: 64 << 10}, true},
		{"streamed (buffer off)", BodyBuffer{}, false},
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

// nonLen hides a reader's length, so the client sends it chunked.
type nonLen struct{ io.Reader }

func TestBufferedBodies(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	srv := serveSyncWith(t, GatewayConfig{App: "wsapp-sync", Buffer: BodyBuffer{Memory: 1 << 10}, BodyLimit: 1 << 20})
	big := make([]byte, 300<<10)
	rand.Read(big)
	for _, tt := range []struct {
		name string
		body io.Reader
		want []byte
	}{
		{"small, in memory", strings.NewReader("hello body"), []byte("hello body")},
		{"large, spilled to a file", bytes.NewReader(big), big},
		{"chunked, spilled", nonLen{bytes.NewReader(big)}, big},
		{"chunked, small", nonLen{strings.NewReader("tiny")}, []byte("tiny")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL+"/echo", "application/octet-stream", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(b, tt.want) {
				t.Errorf("%d, %d bytes back, want %d", resp.StatusCode, len(b), len(tt.want))
			}
		})
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "wasmsrv-body-") {
			t.Errorf("buffer file not unlinked: %s", e.Name())
		}
	}
	if n := openBodyFiles(t); n != 0 {
		t.Errorf("%d buffer files still open after the requests", n)
	}

	// While a large upload is half in, its overflow sits in a file.
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", len(big))
	c.Write(big[:200<<10])
	deadline := time.Now().Add(5 * time.Second)
	for openBodyFiles(t) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := openBodyFiles(t); n != 1 {
		t.Errorf("half an upload in: %d buffer files open, want 1", n)
	}
	c.Write(big[200<<10:])
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !bytes.Equal(b, big) {
		t.Errorf("%d bytes back", len(b))
	}
}

// openBodyFiles counts this process's open body buffer files (Linux).
func openBodyFiles(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.Contains(target, "wasmsrv-body-") {
			n++
		}
	}
	return n
}

func TestBufferedBodyLimitsAndTimeout(t *testing.T) {
	srv := serveSyncWith(t, GatewayConfig{App: "wsapp-sync", Buffer: BodyBuffer{Memory: 1 << 10, Timeout: 200 * time.Millisecond}, BodyLimit: 4 << 10})
	t.Run("chunked body over the limit: 413", func(t *testing.T) {
		resp, err := http.Post(srv.URL+"/echo", "text/plain", nonLen{strings.NewReader(strings.Repeat("x", 5<<10))})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d, want 413", resp.StatusCode)
		}
	})
	t.Run("stalled body: 408 and the connection closed", func(t *testing.T) {
		up := startUpload(t, srv)
		up.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(up)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%d, want 408", resp.StatusCode)
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("connection still open after 408: %v", err)
		}
	})
	t.Run("the instance is free afterwards", func(t *testing.T) {
		resp, err := http.Get(srv.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello\n" {
			t.Errorf("%q", b)
		}
	})
}

// Without a body limit, read-ahead stops at maxReadAhead and the rest
// streams: the whole body still arrives, in order.
func TestReadAheadCapWithoutLimit(t *testing.T) {
	srv := serveSyncWith(t, GatewayConfig{App: "wsapp-sync", Buffer: BodyBuffer{Memory: 64 << 10}})
	big := make([]byte, maxReadAhead+100<<10)
	rand.Read(big)
	for _, body := range []io.Reader{bytes.NewReader(big), nonLen{bytes.NewReader(big)}} {
		resp, err := http.Post(srv.URL+"/echo", "application/octet-stream", body)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !bytes.Equal(b, big) {
			t.Errorf("%d, %d bytes back, want %d", resp.StatusCode, len(b), len(big))
		}
	}
}
