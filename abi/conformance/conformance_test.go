package conformance_test

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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// bodyLimit is the server's request body limit in the suite.
const bodyLimit = 8 << 20

// guests are the implementations of the conformance app (README.md): the suite
// holds each to the same table, so it tests the spec rather than one SDK.
var guests = []struct{ name, source string }{
	{"go-native", "testdata/gonative"},
	{"go-http", "testdata/gohttp"},
	{"c", "testdata/conform-c.wasm"},
}

// buildCache is shared with other packages' tests (builds are keyed by content), so
// each Go guest builds once.
func buildCache() string { return filepath.Join(os.TempDir(), "wasmsrv-test-cache", "builds") }

// serve starts the real server (apps.Open + host.Server, as `wasmsrv run` does) on a
// loopback port and returns its address.
func serve(t *testing.T, source string) string {
	t.Helper()
	if strings.HasSuffix(source, "/gonative") || strings.HasSuffix(source, "/gohttp") {
		if _, err := exec.LookPath("go"); err != nil {
			t.Skip("Go guests need the go command")
		}
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		t.Fatal(err)
	}
	app, err := apps.Open(ctx, eng, apps.Spec{
		Source:        source,
		BuildCacheDir: buildCache(),
		Pool:          runtime.PoolConfig{Workers: 2, RequestTimeout: 10 * time.Second},
		MemoryLimit:   64 << 20,
		BodyLimit:     bodyLimit,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := host.NewServer(host.ServerConfig{Addr: "127.0.0.1:0"}, app.Handler, log)
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
	return strings.TrimPrefix(srv.URL(), "http://")
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// scenario is one HTTP exchange and what the spec says the client must see.
type scenario struct {
	name    string
	method  string
	target  string      // request target, sent byte for byte
	headers [][2]string // sent in this order
	body    []byte
	chunked bool // send the body with Transfer-Encoding: chunked

	status      int
	wantHeaders map[string][]string // every value, in order
	noHeaders   []string            // must be absent
	wantBody    []byte              // nil: not checked (see check)
	check       func(t *testing.T, r *result)
}

type result struct {
	resp *http.Response
	body []byte
	// firstAt and endAt time the first body line and the end of the body.
	firstAt, endAt time.Time
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func allBytes(repeat int) []byte {
	b := make([]byte, 0, 256*repeat)
	for range repeat {
		for i := range 256 {
			b = append(b, byte(i))
		}
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func scenarios() []scenario {
	textPlain := []string{"text/plain; charset=utf-8"}
	octets := []string{"application/octet-stream"}
	big := randomBytes(4 << 20)
	var out []scenario
	for _, code := range []int{200, 201, 299, 404, 418, 500, 503, 599} {
		out = append(out, scenario{
			name: fmt.Sprintf("status %d", code), method: "GET", target: fmt.Sprintf("/status/%d", code),
			status: code, wantHeaders: map[string][]string{"Content-Type": textPlain},
			wantBody: fmt.Appendf(nil, "status %d\n", code),
		})
	}
	for _, code := range []int{200, 404, 405} {
		out = append(out, scenario{
			name: fmt.Sprintf("returned %d", code), method: "GET", target: fmt.Sprintf("/return/%d", code),
			status: code, wantBody: []byte{}, wantHeaders: map[string][]string{"Content-Length": {"0"}},
		})
	}
	out = append(out,
		scenario{
			name: "hello", method: "GET", target: "/hello", status: 200,
			wantHeaders: map[string][]string{"Content-Type": textPlain, "Content-Length": {"20"}},
			wantBody:    []byte("Hello from wasmsrv!\n"),
		},
		scenario{
			name: "HEAD has no body", method: "HEAD", target: "/hello", status: 200,
			wantHeaders: map[string][]string{"Content-Type": textPlain}, wantBody: []byte{},
		},
		scenario{
			name: "no content", method: "GET", target: "/status/204", status: 204,
			noHeaders: []string{"Content-Length"}, wantBody: []byte{},
		},
		scenario{
			name: "unknown route", method: "GET", target: "/nope", status: 404, wantBody: []byte{},
		},
		scenario{
			name: "request head, query and header duplicates", method: "GET",
			target: "/req?a=1&b=%20&c=%E2%82%AC&&d",
			// Sent out of order: the host sorts names and keeps each name's order.
			headers: [][2]string{{"X-Zeta", "last"}, {"X-Dup", "1"}, {"X-Alpha", "first"}, {"X-Dup", "2"}, {"X-Dup", "1"}},
			status:  200, wantHeaders: map[string][]string{"Content-Type": textPlain},
			wantBody: []byte("method=GET\npath=/req\nquery=a=1&b=%20&c=%E2%82%AC&&d\nroot=\nproto=HTTP/1.1\ncontent-length=0\n" +
				"h:x-alpha=first\nh:x-dup=1\nh:x-dup=2\nh:x-dup=1\nh:x-zeta=last\n"),
		},
		scenario{
			name: "raw header bytes", method: "GET", target: "/req",
			headers: [][2]string{{"X-Bytes", "caf\xc3\xa9 \x80\xff"}, {"X-Empty", ""}},
			status:  200,
			wantBody: []byte("method=GET\npath=/req\nquery=\nroot=\nproto=HTTP/1.1\ncontent-length=0\n" +
				"h:x-bytes=caf\xc3\xa9 \x80\xff\nh:x-empty=\n"),
		},
		scenario{
			name: "percent-encoded non-ASCII path", method: "GET", target: "/req/caf%C3%A9/%2F%20x", status: 200,
			wantBody: []byte("method=GET\npath=/req/caf%C3%A9/%2F%20x\nquery=\nroot=\nproto=HTTP/1.1\ncontent-length=0\n"),
		},
		scenario{
			name: "raw UTF-8 path", method: "GET", target: "/req/café/日本", status: 200,
			wantBody: []byte("method=GET\npath=/req/café/日本\nquery=\nroot=\nproto=HTTP/1.1\ncontent-length=0\n"),
		},
		scenario{
			name: "method and declared length", method: "PATCH", target: "/req", body: []byte("12345"), status: 200,
			wantBody: []byte("method=PATCH\npath=/req\nquery=\nroot=\nproto=HTTP/1.1\ncontent-length=5\n"),
		},
		scenario{
			name: "chunked request has unknown length", method: "POST", target: "/req", body: []byte("12345"), chunked: true,
			status: 200, wantBody: []byte("method=POST\npath=/req\nquery=\nroot=\nproto=HTTP/1.1\ncontent-length=-1\n"),
		},
		scenario{
			// Bigger than any SDK's first head buffer: exercises the needed-length retry.
			name: "head larger than the guest's buffer", method: "GET", target: "/req",
			headers: [][2]string{{"X-Big", strings.Repeat("b", 20000)}}, status: 200,
			wantBody: []byte("method=GET\npath=/req\nquery=\nroot=\nproto=HTTP/1.1\ncontent-length=0\nh:x-big=" +
				strings.Repeat("b", 20000) + "\n"),
		},
		scenario{
			name: "response header order and duplicates", method: "GET", target: "/resp-headers", status: 200,
			wantHeaders: map[string][]string{
				"X-Multi": {"one", "two", "three"}, "Set-Cookie": {"a=1", "b=2"}, "X-Bytes": {"caf\xc3\xa9"},
				"Content-Type": textPlain,
			},
			wantBody: []byte("ok\n"),
		},
		scenario{
			name: "head replaced before the first byte", method: "GET", target: "/replace", status: 503,
			wantHeaders: map[string][]string{"X-Second": {"2"}}, noHeaders: []string{"X-First"},
			wantBody: []byte("replaced\n"),
		},
		scenario{
			name: "binary body", method: "GET", target: "/binary", status: 200,
			wantHeaders: map[string][]string{"Content-Type": octets, "Content-Length": {"256"}}, wantBody: allBytes(1),
		},
		scenario{
			name: "empty body", method: "GET", target: "/empty", status: 200,
			wantHeaders: map[string][]string{"Content-Length": {"0"}}, wantBody: []byte{},
		},
		scenario{name: "large body", method: "GET", target: "/large?n=3000000", status: 200, wantBody: pattern(3000000)},
		scenario{name: "large body of zero bytes", method: "GET", target: "/large?n=0", status: 200, wantBody: []byte{}},
		scenario{
			name: "echo binary", method: "POST", target: "/echo", body: allBytes(1000), status: 200,
			wantHeaders: map[string][]string{"Content-Type": octets}, wantBody: allBytes(1000),
		},
		scenario{name: "echo empty", method: "POST", target: "/echo", body: []byte{}, status: 200, wantBody: []byte{}},
		scenario{name: "echo 4 MiB", method: "PUT", target: "/echo", body: big, status: 200, wantBody: big},
		scenario{name: "echo chunked", method: "POST", target: "/echo", body: big[:300000], chunked: true, status: 200, wantBody: big[:300000]},
		scenario{
			name: "body read 7 bytes at a time", method: "POST", target: "/chunks?size=7", body: big[:10007],
			status: 200, wantBody: big[:10007],
		},
		scenario{
			name: "body read 1 byte at a time", method: "POST", target: "/chunks?size=1", body: allBytes(2),
			status: 200, wantBody: allBytes(2),
		},
		scenario{
			name: "declared body over the limit", method: "POST", target: "/echo", body: make([]byte, bodyLimit+1),
			status: 413,
		},
		scenario{
			name: "application error", method: "GET", target: "/fail", status: 500,
		},
		scenario{
			name: "start hook ran before traffic", method: "GET", target: "/started", status: 200,
			wantBody: []byte("started\n"),
		},
		scenario{
			name: "streaming flushes each write", method: "GET", target: "/stream?n=3", status: 200,
			noHeaders: []string{"Content-Length"},
			wantBody:  []byte("chunk 0\nchunk 1\nchunk 2\n"),
			check: func(t *testing.T, r *result) {
				// The guest sleeps 100 ms between writes: the first line must arrive
				// well before the end, not all at once when the handler returns.
				if gap := r.endAt.Sub(r.firstAt); gap < 150*time.Millisecond {
					t.Errorf("first chunk arrived only %v before the end: not streamed", gap)
				}
			},
		},
	)
	return out
}

// do sends s over a fresh TCP connection, writing the request by hand so targets,
// header order and bytes go out exactly as written, and reads the response with
// net/http's parser.
func do(t *testing.T, addr string, s scenario) *result {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: conformance.test\r\n", s.method, s.target)
	for _, h := range s.headers {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
	}
	switch {
	case s.chunked:
		req.WriteString("Transfer-Encoding: chunked\r\n")
	case s.body != nil:
		fmt.Fprintf(&req, "Content-Length: %d\r\n", len(s.body))
	}
	req.WriteString("Connection: close\r\n\r\n")
	go func() {
		// Written concurrently: an echo streams back while the body is still going up.
		if _, err := conn.Write(req.Bytes()); err != nil {
			return
		}
		if s.chunked {
			for b := s.body; len(b) > 0; {
				n := min(len(b), 8000)
				fmt.Fprintf(conn, "%x\r\n", n)
				conn.Write(b[:n])
				conn.Write([]byte("\r\n"))
				b = b[n:]
			}
			conn.Write([]byte("0\r\n\r\n"))
		} else {
			conn.Write(s.body)
		}
	}()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: s.method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return readResult(t, resp)
}

// doH2 sends s over cleartext HTTP/2 (prior knowledge) on a fresh connection. The
// target goes out as :path unchanged; a "chunked" body is sent without a length.
func doH2(t *testing.T, addr string, s scenario) *result {
	t.Helper()
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true) // prior knowledge: no Upgrade, no TLS
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	var body io.Reader
	if s.body != nil {
		body = bytes.NewReader(s.body)
		if s.chunked {
			body = io.MultiReader(body) // hides the length
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, s.method, "http://"+addr+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = s.target // sent as :path byte for byte
	req.Host = "conformance.test"
	for _, h := range s.headers {
		req.Header[h[0]] = append(req.Header[h[0]], h[1])
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("h2 round trip: %v", err)
	}
	return readResult(t, resp)
}

// readResult reads the body, timing the first line and the end.
func readResult(t *testing.T, resp *http.Response) *result {
	t.Helper()
	defer resp.Body.Close()
	r := &result{resp: resp}
	var body bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 && r.firstAt.IsZero() && bytes.IndexByte(buf[:n], '\n') >= 0 {
			r.firstAt = time.Now()
		}
		body.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading body: %v (after %d bytes)", err, body.Len())
		}
	}
	r.endAt = time.Now()
	r.body = body.Bytes()
	return r
}

// transports are the ways the suite speaks to the server; every scenario runs on each.
var transports = []struct {
	name  string
	do    func(t *testing.T, addr string, s scenario) *result
	proto string // as the guest reports it in /req
}{
	{"http1", do, "HTTP/1.1"},
	{"h2c", doH2, "HTTP/2.0"},
}

func TestConformance(t *testing.T) {
	table := scenarios()
	for _, g := range guests {
		t.Run(g.name, func(t *testing.T) {
			addr := serve(t, g.source)
			for _, tr := range transports {
				t.Run(tr.name, func(t *testing.T) {
					for _, s := range table {
						t.Run(s.name, func(t *testing.T) { check(t, s, tr.do(t, addr, s), tr.proto) })
					}
				})
			}
		})
	}
}

// requestIDLine is a /req report's line for the request id the host made.
var requestIDLine = regexp.MustCompile(`(?m)^h:x-request-id=[0-9a-f]{32}\n`)

// check holds r to what s requires; proto replaces HTTP/1.1 in expected /req reports.
func check(t *testing.T, s scenario, r *result, proto string) {
	t.Helper()
	if r.resp.StatusCode != s.status {
		t.Fatalf("status %d, want %d; body %.200q", r.resp.StatusCode, s.status, r.body)
	}
	for k, want := range s.wantHeaders {
		if got := r.resp.Header.Values(k); !slices.Equal(got, want) {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	for _, k := range s.noHeaders {
		if v, ok := r.resp.Header[k]; ok {
			t.Errorf("header %s = %q, want none", k, v)
		}
	}
	want := s.wantBody
	if want != nil && strings.HasPrefix(s.target, "/req") {
		want = bytes.Replace(want, []byte("proto=HTTP/1.1\n"), []byte("proto="+proto+"\n"), 1)
		// Every request reaches the guest with a request id the host made
		// (SPEC §3): one x-request-id line, a fresh 32-hex value, compared
		// apart from the scenario's own headers.
		ids := requestIDLine.FindAll(r.body, -1)
		if len(ids) != 1 {
			t.Errorf("the guest saw %d x-request-id headers, want 1: %.300q", len(ids), r.body)
		}
		r.body = requestIDLine.ReplaceAll(r.body, nil)
	}
	if want != nil && !bytes.Equal(r.body, want) {
		t.Errorf("body (%d bytes) %.300q\nwant (%d bytes) %.300q", len(r.body), r.body, len(want), want)
	}
	if s.check != nil {
		s.check(t, r)
	}
}

// TestRawGuest drives the host functions directly from a hand-written WAT guest
// (testdata/raw.wat): needed-length and status-code behaviour, and traps for every
// contract violation, each costing only its own request.
func TestRawGuest(t *testing.T) {
	addr := serve(t, "testdata/raw.wasm")
	ok := scenario{
		method: "POST", target: "/", body: []byte("0"), status: 200,
		wantHeaders: map[string][]string{"X-Raw": {"1"}}, wantBody: []byte("ok"),
	}
	cases := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"checks", "0", 200, "ok"},
		{"resp_write out of bounds traps", "1", 500, ""},
		{"req_head out of bounds traps", "2", 500, ""},
		{"unknown request handle traps", "3", 500, ""},
		{"body_read region overflow traps", "4", 500, ""},
		{"resp_start region partly outside traps", "5", 500, ""},
		{"returned status", "6", 404, ""},
		{"returned app error", "7", 500, ""},
		{"unreachable", "8", 500, ""},
		{"body read 1 byte per call", "aHello, raw guest! \x00\xff", 200, "Hello, raw guest! \x00\xff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, addr, scenario{method: "POST", target: "/", body: []byte(c.body)})
			if r.resp.StatusCode != c.status {
				if c.status == 200 && r.resp.StatusCode > 550 && r.resp.StatusCode < 599 {
					t.Fatalf("check %d failed", r.resp.StatusCode-550)
				}
				t.Fatalf("status %d, want %d; body %q", r.resp.StatusCode, c.status, r.body)
			}
			if c.want != "" && string(r.body) != c.want {
				t.Fatalf("body %q, want %q", r.body, c.want)
			}
			// The instance that trapped is gone; the next request still works.
			r = do(t, addr, ok)
			if r.resp.StatusCode != 200 || string(r.body) != "ok" || r.resp.Header.Get("X-Raw") != "1" {
				t.Fatalf("after %s: status %d, body %q", c.name, r.resp.StatusCode, r.body)
			}
		})
	}
	// Without a body the selector defaults to the checks.
	if r := do(t, addr, scenario{method: "GET", target: "/"}); r.resp.StatusCode != 200 {
		t.Fatalf("GET without body: status %d", r.resp.StatusCode)
	}
}
