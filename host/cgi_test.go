package host_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// startCGI serves wasm CGI-style on a real loopback listener and returns its base URL.
func startCGI(t *testing.T, wasm []byte, pool runtime.PoolConfig, cfg host.CGIConfig) string {
	t.Helper()
	return startCGIMounts(t, wasm, pool, cfg, nil)
}

// startCGIMounts is startCGI with host directories mounted in the command.
func startCGIMounts(t *testing.T, wasm []byte, pool runtime.PoolConfig, cfg host.CGIConfig, mounts []runtime.Mount) string {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// The compiled code is cached across tests and runs (as the other host
	// tests do): a Go command compiles for over a minute under -race on a
	// loaded machine.
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: filepath.Join(os.TempDir(), "wasmsrv-test-cache", "wazero-host")}, log)
	if err != nil {
		t.Fatal(err)
	}
	app, err := eng.LoadCommand(ctx, runtime.AppConfig{Name: "cgi", Wasm: wasm, MemoryLimit: 16 << 20, Mounts: mounts}, pool)
	if err != nil {
		t.Fatal(err)
	}
	srv := host.NewServer(host.ServerConfig{Addr: "127.0.0.1:0"}, host.NewCGIHandler(app, cfg, log), log)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		_ = app.Close(ctx)
		_ = eng.Close(ctx)
	})
	return srv.URL()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildGoCommand builds a plain Go main package for wasip1 (the Go toolchain is
// always there when tests run).
func buildGoCommand(t *testing.T, pkg string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "cmd.wasm")
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return readFile(t, out)
}

// The same table runs against the Go and the C CGI samples: both must answer alike.
func TestCGISamples(t *testing.T) {
	guests := []struct {
		name string
		wasm func(t *testing.T) []byte
	}{
		{"c-cgi", func(t *testing.T) []byte { return readFile(t, "../samples/c-cgi/main.wasm") }},
		{"go-cgi", func(t *testing.T) []byte { return buildGoCommand(t, "../samples/cgi") }},
	}
	type tc struct {
		name, method, target, body string
		header                     http.Header
		status                     int
		wantHeader                 map[string]string
		wantBody                   []string // substrings, in order
		exactBody                  string
	}
	cases := []tc{
		{
			name: "get", method: "GET", target: "/hello/w%C3%B6rld?x=1&y=%20",
			header: http.Header{"X-Test": {"a", "b"}},
			status: 200, wantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Cgi": "1"},
			exactBody: "REQUEST_METHOD=GET\nPATH_INFO=/hello/wörld\nQUERY_STRING=x=1&y=%20\nCONTENT_TYPE=\nCONTENT_LENGTH=\n" +
				"SERVER_PROTOCOL=HTTP/1.1\nGATEWAY_INTERFACE=CGI/1.1\nHTTP_X_TEST=a, b\nbody=0\n",
		},
		{
			name: "post body on stdin", method: "POST", target: "/p", body: "hello\x00\xffbinary!",
			header: http.Header{"Content-Type": {"application/octet-stream"}},
			status: 200,
			wantBody: []string{"REQUEST_METHOD=POST\n", "CONTENT_TYPE=application/octet-stream\n", "CONTENT_LENGTH=14\n",
				"body=14\nhello\x00\xffbinary!"},
		},
		{
			name: "large body", method: "PUT", target: "/big", body: strings.Repeat("0123456789abcdef", 64<<10),
			status: 200, wantBody: []string{"CONTENT_LENGTH=1048576\n", "body=1048576\n0123456789abcdef0123"},
		},
		{name: "status header", method: "GET", target: "/?status=404", status: 404, wantBody: []string{"QUERY_STRING=status=404\n"}},
		{
			name: "location redirects", method: "GET", target: "/?redirect=/elsewhere", status: 302,
			wantHeader: map[string]string{"Location": "/elsewhere"},
		},
		{
			name: "NUL in the path stays encoded", method: "GET", target: "/a%00b",
			status: 200, wantBody: []string{"PATH_INFO=/a%00b\n"},
		},
		{
			name: "underscore and proxy headers dropped", method: "GET", target: "/",
			header: http.Header{"X_test": {"smuggled"}, "Proxy": {"http://evil"}},
			status: 200, wantBody: []string{"HTTP_X_TEST=\n"},
		},
	}
	for _, g := range guests {
		t.Run(g.name, func(t *testing.T) {
			url := startCGI(t, g.wasm(t), runtime.PoolConfig{Workers: 2}, host.CGIConfig{App: g.name})
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					req, err := http.NewRequest(c.method, url+c.target, strings.NewReader(c.body))
					if err != nil {
						t.Fatal(err)
					}
					for k, vs := range c.header {
						req.Header[k] = vs
					}
					client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					defer resp.Body.Close()
					body, err := io.ReadAll(resp.Body)
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != c.status {
						t.Fatalf("status %d, want %d; body %q", resp.StatusCode, c.status, body)
					}
					for k, v := range c.wantHeader {
						if got := resp.Header.Get(k); got != v {
							t.Errorf("header %s = %q, want %q", k, got, v)
						}
					}
					if c.exactBody != "" && string(body) != c.exactBody {
						t.Errorf("body\n%q\nwant\n%q", body, c.exactBody)
					}
					rest := string(body)
					for _, w := range c.wantBody {
						i := strings.Index(rest, w)
						if i < 0 {
							t.Fatalf("body lacks %q (in order); body:\n%.400q", w, body)
						}
						rest = rest[i+len(w):]
					}
				})
			}
		})
	}
}

// Hostile and broken commands cost their own request only; the server answers each
// with a clear status and keeps serving.
func TestCGIFailures(t *testing.T) {
	cases := []struct {
		file   string
		status int // 0: the response must be cut after the head
	}{
		{"loop.wasm", 504},
		{"silent.wasm", 500},
		{"garbage.wasm", 500},
		{"exit3.wasm", 500},
		{"bighead.wasm", 500},
		{"trap.wasm", 0},
		{"headtrap.wasm", 500}, // the head was held: no body byte yet, so still a 500
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			url := startCGI(t, readFile(t, "testdata/cgi/"+c.file),
				runtime.PoolConfig{Workers: 1, RequestTimeout: 300 * time.Millisecond}, host.CGIConfig{MaxHeaderBytes: 8 << 10})
			for i := range 2 { // a second request proves the server survived the first
				resp, err := http.Get(url + "/")
				if c.status == 0 {
					if err == nil {
						_, err = io.ReadAll(resp.Body)
						resp.Body.Close()
					}
					if err == nil {
						t.Fatalf("request %d: response complete, want it cut", i)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != c.status {
					t.Fatalf("request %d: status %d, want %d; body %q", i, resp.StatusCode, c.status, body)
				}
			}
		})
	}
}

func TestCGIBodyLimit(t *testing.T) {
	url := startCGI(t, readFile(t, "../samples/c-cgi/main.wasm"), runtime.PoolConfig{Workers: 1}, host.CGIConfig{BodyLimit: 1000})
	for _, c := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"at limit", 1000, false, 200},
		{"declared over", 1001, false, 413},
		{"chunked at limit", 1000, true, 200},
		{"chunked over", 5000, true, 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(strings.Repeat("x", c.size))
			if c.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			resp, err := http.Post(url+"/", "text/plain", body)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d; body %.200q", resp.StatusCode, c.status, b)
			}
			if c.status == 413 && !resp.Close {
				t.Error("413 without Connection: close: the unread body would be drained first")
			}
			if c.status == 200 && !strings.Contains(string(b), fmt.Sprintf("body=%d\n", c.size)) {
				t.Fatalf("body %.200q lacks body=%d", b, c.size)
			}
		})
	}
}

// With one worker and a queue of one, a third concurrent request is refused with 503
// while two slow commands hold the slot and the queue.
func TestCGIConcurrencyCap(t *testing.T) {
	url := startCGI(t, readFile(t, "testdata/cgi/loop.wasm"),
		runtime.PoolConfig{Workers: 1, QueueSize: 1, QueueWait: 5 * time.Second, RequestTimeout: time.Second}, host.CGIConfig{})
	var wg sync.WaitGroup
	statuses := make(chan int, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 100 * time.Millisecond)
			resp, err := http.Get(url + "/")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
			if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		}()
	}
	wg.Wait()
	close(statuses)
	got := map[int]int{}
	for s := range statuses {
		got[s]++
	}
	if got[503] != 1 || got[504] != 2 {
		t.Fatalf("statuses %v, want one 503 and two 504", got)
	}
}

// A raw HTTP/1.1 client checks what net/http's client would hide: the exact status
// line and header bytes of a CGI response.
func TestCGIRawWire(t *testing.T) {
	url := startCGI(t, readFile(t, "../samples/c-cgi/main.wasm"), runtime.PoolConfig{Workers: 1}, host.CGIConfig{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /x?status=418 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n")
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if line != "HTTP/1.1 418 I'm a teapot\r\n" {
		t.Fatalf("status line %q", line)
	}
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "X-Cgi: 1\r\n") || !strings.Contains(string(rest), "PATH_INFO=/x\n") {
		t.Fatalf("response %q", rest)
	}
}

func TestCGIEnv(t *testing.T) {
	r, err := http.NewRequest("POST", "http://example.test:8080/app/a%2Fb/c?q=1", strings.NewReader("abc"))
	if err != nil {
		t.Fatal(err)
	}
	r.RequestURI = "/app/a%2Fb/c?q=1"
	r.RemoteAddr = "[::1]:5555"
	r.Header.Set("Content-Type", "text/plain")
	r.Header.Set("Content-Length", "3")
	r.Header["Cookie"] = []string{"a=1", "b=2"}
	r.Header.Set("User-Agent", "t")
	env := host.CGIEnv(r, "/app", "127.0.0.1:9000")
	want := map[string]string{
		"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/app", "PATH_INFO": "/a/b/c", "X_RAW_PATH_INFO": "/a%2Fb/c",
		"QUERY_STRING": "q=1", "SERVER_NAME": "example.test", "SERVER_PORT": "9000", "REMOTE_ADDR": "::1",
		"REMOTE_PORT": "5555", "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "3", "HTTP_COOKIE": "a=1; b=2",
		"HTTP_USER_AGENT": "t", "HTTP_HOST": "example.test:8080", "GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_URI": "/app/a%2Fb/c?q=1",
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Errorf("duplicate %s", k)
		}
		got[k] = v
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTPS"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s should not be set", k)
		}
	}
}

// A client that stops sending its body cannot hold a command past the deadline: the
// blocked stdin read is cut off and the client gets 504.
func TestCGISlowBody(t *testing.T) {
	url := startCGI(t, readFile(t, "../samples/c-cgi/main.wasm"),
		runtime.PoolConfig{Workers: 1, RequestTimeout: 300 * time.Millisecond}, host.CGIConfig{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly ten b")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("answered after %v", d)
	}
	// The slot is free again.
	resp2, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Fatalf("next request: status %d", resp2.StatusCode)
	}
}

// A command printing events with sleeps between them streams: each event reaches a
// client reading the socket while the command still sleeps, not all at its exit.
func TestCGIStreaming(t *testing.T) {
	goCmd := buildGoCommand(t, "./testdata/cgistream")
	t.Run("go", func(t *testing.T) { testCGIStreaming(t, goCmd, "") })
	// Between writes the command computes instead of sleeping: the flush timer
	// sends what it wrote.
	t.Run("go computing", func(t *testing.T) { testCGIStreaming(t, goCmd, "&spin=1") })
	// C's stdio holds stdout until exit unless the command flushes: this one does.
	t.Run("c", func(t *testing.T) { testCGIStreaming(t, readFile(t, "testdata/cgi/stream.wasm"), "") })
}

func testCGIStreaming(t *testing.T, wasm []byte, query string) {
	gate := t.TempDir()
	url := startCGIMounts(t, wasm, runtime.PoolConfig{Workers: 1, QueueWait: 3 * time.Second, RequestTimeout: 60 * time.Second}, host.CGIConfig{},
		[]runtime.Mount{{HostDir: gate, GuestDir: "/gate", ReadOnly: true}})

	// The command writes each event after the first only once the file of its
	// number is in /gate, which the test creates when it read the event before:
	// an event held until the command's exit (or its next write) never reaches
	// the client, the command never goes on, and the request fails at its
	// deadline. So the test needs no clock, however slow the machine.
	t.Run("events arrive as written", func(t *testing.T) {
		resp, err := http.Get(url + "/?n=3&gap=20&gate=1" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		br := bufio.NewReader(resp.Body)
		for i := 1; i <= 3; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v: the command waits for the client to see event %d first, so it was held back", i, err, i-1)
			}
			if want := fmt.Sprintf("data: %d\n", i); line != want {
				t.Fatalf("line %q, want %q", line, want)
			}
			if blank, err := br.ReadString('\n'); err != nil || blank != "\n" {
				t.Fatalf("after event %d: %q, %v", i, blank, err)
			}
			if err := os.WriteFile(filepath.Join(gate, strconv.Itoa(i+1)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
			t.Fatalf("after the events: %q, %v", rest, err)
		}
	})

	t.Run("failure before the first body byte is a 500", func(t *testing.T) {
		resp, err := http.Get(url + "/?fail=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || resp.Header.Get("Content-Type") == "text/event-stream" {
			t.Fatalf("status %d, Content-Type %q, body %q: want the held head replaced by a 500",
				resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	t.Run("client gone stops the command", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		// 100 events 200 ms apart: 20 s, far past the next request's queue wait.
		fmt.Fprintf(conn, "GET /?n=100&gap=200%s HTTP/1.1\r\nHost: t\r\n\r\n", query)
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("before the first event: %v", err)
			}
			if strings.HasPrefix(line, "data: 1") {
				break
			}
		}
		conn.Close()
		// The only worker is free again once the command noticed.
		start := time.Now()
		resp, err := http.Get(url + "/?n=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "data: 1\n\n" {
			t.Fatalf("next request: status %d, body %q after %v", resp.StatusCode, body, time.Since(start))
		}
	})
}

// With buffering, a slow upload waits outside the only run slot, and a
// chunked body reaches the command with its length known.
func TestCGIBufferedBody(t *testing.T) {
	url := startCGI(t, readFile(t, "../samples/c-cgi/main.wasm"),
		runtime.PoolConfig{Workers: 1, QueueSize: 1, QueueWait: 100 * time.Millisecond}, host.CGIConfig{Buffer: bodybuf.Config{Memory: 1 << 10}})
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nonly")
	time.Sleep(100 * time.Millisecond)
	resp, err := http.Get(url + "/") // would get 503 (queue wait) if the upload held the slot
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("another request during a slow upload: %d", resp.StatusCode)
	}
	fmt.Fprint(conn, " ten!!")
	resp, err = http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "CONTENT_LENGTH=10\n") || !strings.Contains(string(b), "body=10\n") {
		t.Errorf("upload: %d %q", resp.StatusCode, b)
	}

	resp, err = http.Post(url+"/", "text/plain", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "CONTENT_LENGTH=5000\n") || !strings.Contains(string(b), "body=5000\n") {
		t.Errorf("chunked upload: %d %q", resp.StatusCode, b)
	}
}
