package bodybuf

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// echo answers with the body it read and the length it was told.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	w.Header().Set("X-Length", strconv.FormatInt(r.ContentLength, 10))
	w.Write(b)
})

func serve(t *testing.T, cfg Config, limit int64, next http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(Handler(cfg, limit, slog.New(slog.DiscardHandler), next))
	t.Cleanup(srv.Close)
	return srv
}

// nonLen hides a reader's length, so the client sends it chunked.
type nonLen struct{ io.Reader }

func TestBodies(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	srv := serve(t, Config{Memory: 1 << 10}, 1<<20, echo)
	big := make([]byte, 300<<10)
	rand.Read(big)
	for _, tt := range []struct {
		name    string
		body    io.Reader
		want    []byte
		wantLen int64
	}{
		{"small, in memory", strings.NewReader("hello body"), []byte("hello body"), 10},
		{"large, spilled to a file", bytes.NewReader(big), big, int64(len(big))},
		{"chunked, spilled: the length becomes known", nonLen{bytes.NewReader(big)}, big, int64(len(big))},
		{"chunked, small", nonLen{strings.NewReader("tiny")}, []byte("tiny"), 4},
		{"empty chunked", nonLen{strings.NewReader("")}, []byte{}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL, "application/octet-stream", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Equal(b, tt.want) {
				t.Errorf("%d, %d bytes back, want %d", resp.StatusCode, len(b), len(tt.want))
			}
			if got := resp.Header.Get("X-Length"); got != strconv.FormatInt(tt.wantLen, 10) {
				t.Errorf("the handler saw ContentLength %s, want %d", got, tt.wantLen)
			}
		})
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		t.Errorf("buffer file not unlinked: %s", e.Name())
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
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n", len(big))
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

func TestLimitsAndTimeout(t *testing.T) {
	srv := serve(t, Config{Memory: 1 << 10, Timeout: 200 * time.Millisecond}, 4<<10, echo)
	t.Run("chunked body over the limit: 413", func(t *testing.T) {
		resp, err := http.Post(srv.URL, "text/plain", nonLen{strings.NewReader(strings.Repeat("x", 5<<10))})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d, want 413", resp.StatusCode)
		}
	})
	t.Run("a MaxBytesReader outside (a route's max_body): 413", func(t *testing.T) {
		inner := Handler(Config{Memory: 1 << 10}, 0, slog.New(slog.DiscardHandler), echo)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, 100)
			inner.ServeHTTP(w, r)
		}))
		defer srv.Close()
		resp, err := http.Post(srv.URL, "text/plain", nonLen{strings.NewReader(strings.Repeat("x", 500))})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%d, want 413", resp.StatusCode)
		}
	})
	t.Run("stalled body: 408 and the connection closed", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
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
}

// Without a body limit, read-ahead stops at maxReadAhead and the rest
// streams: the whole body still arrives, in order.
func TestReadAheadCapWithoutLimit(t *testing.T) {
	srv := serve(t, Config{Memory: 64 << 10}, 0, echo)
	big := make([]byte, maxReadAhead+100<<10)
	rand.Read(big)
	for _, body := range []io.Reader{bytes.NewReader(big), nonLen{bytes.NewReader(big)}} {
		resp, err := http.Post(srv.URL, "application/octet-stream", body)
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

// The point of it all: a handler that holds a one-at-a-time worker while it
// reads a body is not held by a slow upload when bodies are read ahead.
func TestSlowUploadDoesNotReachHandler(t *testing.T) {
	worker := make(chan struct{}, 1) // one worker, like a sync instance
	held := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		worker <- struct{}{}
		defer func() { <-worker }()
		echo.ServeHTTP(w, r)
	})
	for _, tt := range []struct {
		name   string
		cfg    Config
		served bool
	}{{"read ahead", Config{Memory: 1 << 10}, true}, {"off (the control)", Config{}, false}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, tt.cfg, 0, held)
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
			time.Sleep(100 * time.Millisecond)
			client := &http.Client{Timeout: 500 * time.Millisecond}
			resp, err := client.Post(srv.URL, "text/plain", strings.NewReader("quick"))
			if served := err == nil; served != tt.served {
				t.Fatalf("another upload served during the slow one: %v (err %v), want %v", served, err, tt.served)
			}
			if err == nil {
				resp.Body.Close()
			}
			io.WriteString(c, "defghij")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err = http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			if string(b) != "abcdefghij" {
				t.Errorf("slow upload answered %q", b)
			}
		})
	}
}

// deadlineRecorder has SetReadDeadline, as net/http's writer does.
type deadlineRecorder struct{ *httptest.ResponseRecorder }

func (deadlineRecorder) SetReadDeadline(time.Time) error { return nil }

// Buffers are pooled: a small body costs no allocation of its own once warm.
func BenchmarkReadAhead(b *testing.B) {
	var p Pool
	body := strings.Repeat("x", 1<<10)
	w := deadlineRecorder{httptest.NewRecorder()}
	log := slog.New(slog.DiscardHandler)
	src := strings.NewReader(body)
	r := httptest.NewRequest("POST", "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(body)
		r.Body, r.ContentLength = io.NopCloser(src), int64(len(body))
		buf, ok := p.ReadAhead(w, r, Config{Memory: 64 << 10}, 1<<20, log)
		if !ok {
			b.Fatal("not buffered")
		}
		io.Copy(io.Discard, r.Body)
		p.Release(buf)
	}
}
