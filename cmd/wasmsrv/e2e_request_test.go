package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// The request side of framing: what a client sends never reaches an app, a
// CGI command or an upstream server in a form they could read differently
// from wasmsrv (request smuggling), over HTTP/1.1, h2c and h2 over TLS.

// rawUpstream is an HTTP/1.1 server that records every request line as it
// arrived, before any parsing could refuse it, and answers "ok".
type rawUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
	heads []textproto.MIMEHeader
}

func startRawUpstream(t *testing.T) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go u.serve(c)
		}
	}()
	return u
}

func (u *rawUpstream) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	tp := textproto.NewReader(br)
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.lines = append(u.lines, line)
		u.mu.Unlock()
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.heads = append(u.heads, h)
		u.mu.Unlock()
		if h.Get("Transfer-Encoding") == "chunked" {
			if _, err := io.Copy(io.Discard, httputil.NewChunkedReader(br)); err != nil {
				return
			}
			if _, err := tp.ReadMIMEHeader(); err != nil { // trailers and the last CRLF
				return
			}
		} else if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil {
			if _, err := io.CopyN(io.Discard, br, n); err != nil {
				return
			}
		}
		if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); err != nil {
			return
		}
	}
}

func (u *rawUpstream) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.lines...)
}

// siteServer is a `wasmsrv serve` with an app (the framing puppet), a CGI command,
// an upstream (a rawUpstream), static files, on a cleartext listener and a
// TLS one.
type siteServer struct {
	*server
	up     *rawUpstream
	tlsURL string
}

func startSite(t *testing.T) *siteServer {
	t.Helper()
	dir := t.TempDir()
	up := startRawUpstream(t)
	static := filepath.Join(dir, "public")
	if err := os.MkdirAll(static, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(static, "index.html"), []byte("<p>hi</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cert, key, _ := testkit.SelfSigned(t, dir)
	guests, err := filepath.Abs(framingGuests)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
tls_cert = %q
tls_key = %q
[apps.puppet]
module = %q
pool_size = 2
[apps.cgi]
module = %q
mode = "cgi"
pool_size = 2
[upstreams.up]
servers = [{ url = "http://%s" }]
retries = 0
[[routes]]
path = "/app"
app = "puppet"
[[routes]]
path = "/cgi"
app = "cgi"
[[routes]]
path = "/up"
upstream = "up"
[[routes]]
path = "/static"
static = %q
`, cert, key, filepath.Join(guests, "sync.wasm"), filepath.Join(guests, "cgi.wasm"), up.ln.Addr(), static)
	path := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &siteServer{server: startServe(t, path), up: up}
	out := s.stdout.String()
	i := strings.Index(out, "https://")
	if i < 0 {
		t.Fatalf("no TLS listener in %q", out)
	}
	s.tlsURL = strings.FieldsFunc(out[i:], func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })[0]
	return s
}

// smugglingAttempts are requests a front proxy that frames by Content-Length
// (or ignores Transfer-Encoding on HTTP/1.0) reads differently from net/http,
// each followed by a pipelined request that must never be served.
func smugglingAttempts(target string) []struct{ name, raw string } {
	next := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	return []struct{ name, raw string }{
		{"content-length and chunked", "POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next},
		{"chunked and content-length", "POST " + target + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + next},
		{"content-length and chunked on a GET", "GET " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next},
		{"HTTP/1.0 chunked", "POST " + target + " HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n" + next},
		{"HTTP/1.0 chunked with a length", "POST " + target + " HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + next},
	}
}

// checkClosesAfter sends raw and checks that exactly one response comes back,
// saying Connection: close (on HTTP/1.1), and that the connection then ends.
func checkClosesAfter(t *testing.T, addr, raw string) {
	t.Helper()
	c := dialRaw(t, addr)
	r := c.roundTrip(t, "POST", raw)
	if r.cut || r.status == 0 {
		t.Fatalf("no complete response: %v", r)
	}
	if strings.Contains(raw[:strings.Index(raw, "\r\n")], "HTTP/1.1") && !strings.EqualFold(strings.Join(r.values("Connection"), ","), "close") {
		t.Errorf("response does not say Connection: close: %v", r)
	}
	if closed, more := c.closed(10 * time.Second); !closed {
		t.Fatalf("the connection goes on after the response (read %q)", more)
	}
}

func TestE2ERequestSmugglingRun(t *testing.T) {
	t.Parallel()
	srv := startServer(t, filepath.Join(framingGuests, "sync.wasm"), "--workers", "2")
	for _, a := range smugglingAttempts("/app") {
		t.Run(a.name, func(t *testing.T) { checkClosesAfter(t, srv.Addr, a.raw) })
	}
	// A plain keep-alive connection is not closed: two pipelined requests, two answers.
	c := dialRaw(t, srv.Addr)
	pipelined := framingRequest("POST", "one", okScript) + framingRequest("POST", "two", okScript)
	if r := c.roundTrip(t, "POST", pipelined); r.cut || r.status != 200 || len(r.values("Connection")) > 0 {
		t.Fatalf("first pipelined request: %v", r)
	}
	if r := readWire(c.r, "POST"); r.cut || r.status != 200 {
		t.Fatalf("second pipelined request: %v", r)
	}
	time.Sleep(100 * time.Millisecond) // let the access log catch up with the last request
	if strings.Contains(srv.logs(), "/smuggled") {
		t.Errorf("a smuggled request was served:\n%s", grepLines(srv.logs(), "/smuggled"))
	}
}

func TestE2ERequestSmugglingServe(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	for _, target := range []string{"/app/x", "/cgi/x", "/up/x", "/static/index.html"} {
		for _, a := range smugglingAttempts(target) {
			t.Run(target+"/"+a.name, func(t *testing.T) { checkClosesAfter(t, s.Addr, a.raw) })
		}
	}
	for _, l := range s.up.requests() {
		if strings.Contains(l, "smuggled") {
			t.Errorf("the upstream received a smuggled request: %q", l)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if strings.Contains(s.logs(), "/smuggled") {
		t.Errorf("a smuggled request was served:\n%s", grepLines(s.logs(), "/smuggled"))
	}
}

// hostileH2 are HTTP/2 requests whose pseudo-header or header fields could not
// be written into an HTTP/1.1 request unchanged; prefix is the route.
func hostileH2(prefix string) []struct {
	name   string
	fields [][2]string
} {
	ok := func(method, path, authority string, extra ...[2]string) [][2]string {
		f := [][2]string{{":method", method}, {":scheme", "http"}, {":authority", authority}, {":path", path}}
		return append(f, extra...)
	}
	p := prefix + "/a"
	return []struct {
		name   string
		fields [][2]string
	}{
		{"method with a space and a path", ok("GET /evil", p, "x")},
		{"method with a tab", ok("GET\t", p, "x")},
		{"method with a paren", ok("G(ET", p, "x")},
		{"method with a slash", ok("GET/", p, "x")},
		{"empty method", ok("", p, "x")},
		{"method with CRLF", ok("GET\r\nX: 1", p, "x")},
		{"method with NUL", ok("GET\x00", p, "x")},
		{"path with a space", ok("GET", p+" HTTP/1.1", "x")},
		{"query with a space", ok("GET", p+"?x y", "x")},
		{"path with CRLF", ok("GET", p+"\r\nX-Injected: 1", "x")},
		{"path with NUL", ok("GET", p+"\x00", "x")},
		{"path with DEL", ok("GET", p+"\x7f", "x")},
		{"path with a tab", ok("GET", p+"\tx", "x")},
		{"authority with a space", ok("GET", p, "a b")},
		{"authority with CRLF", ok("GET", p, "a\r\nX-Injected: 1")},
		{"authority with DEL", ok("GET", p, "a\x7f")},
		{"header value with CRLF", ok("GET", p, "x", [2]string{"x-a", "1\r\nX-Injected: 1"})},
		{"header value with NUL", ok("GET", p, "x", [2]string{"x-a", "1\x00"})},
		{"header name in upper case", ok("GET", p, "x", [2]string{"X-A", "1"})},
		{"header name with a space", ok("GET", p, "x", [2]string{"x a", "1"})},
		{"connection header", ok("GET", p, "x", [2]string{"connection", "close"})},
		{"transfer-encoding header", ok("GET", p, "x", [2]string{"transfer-encoding", "chunked"})},
	}
}

func checkRefused(t *testing.T, r h2Result) {
	t.Helper()
	if r.timeout {
		t.Fatalf("no answer: %v", r)
	}
	if !r.reset && r.status != http.StatusBadRequest {
		t.Fatalf("got %v, want 400 or a reset stream", r)
	}
}

func TestE2ERequestHostileHTTP2(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	tlsAddr := strings.TrimPrefix(s.tlsURL, "https://")
	dialTLS := func(t *testing.T) *h2Conn {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr,
			&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
		if err != nil {
			t.Fatal(err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
			t.Fatalf("negotiated %q, want h2", p)
		}
		return newH2Conn(t, c)
	}
	transports := []struct {
		name string
		dial func(t *testing.T) *h2Conn
	}{
		{"h2c", func(t *testing.T) *h2Conn { return dialH2(t, s.Addr) }},
		{"h2", dialTLS},
	}
	for _, tr := range transports {
		for _, prefix := range []string{"/up", "/app", "/cgi", "/static"} {
			for _, h := range hostileH2(prefix) {
				t.Run(tr.name+prefix+"/"+h.name, func(t *testing.T) {
					c := tr.dial(t)
					checkRefused(t, c.do(h.fields, nil))
					// The connection still serves well-formed requests.
					r := c.do([][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/up/fine"}}, nil)
					if r.reset || r.status != 200 || string(r.body) != "ok" {
						t.Fatalf("next request on the connection: %v", r)
					}
				})
			}
		}
	}
	// Only the well-formed requests reached the upstream, as clean request lines.
	for _, l := range s.up.requests() {
		if l != "GET /fine HTTP/1.1" {
			t.Errorf("the upstream received %q", l)
		}
	}
	time.Sleep(100 * time.Millisecond)
	for _, l := range strings.Split(s.logs(), "\n") {
		if strings.Contains(l, "msg=request") && strings.Contains(l, "status=200") && !strings.Contains(l, "path=/up/fine") {
			t.Errorf("a hostile request was served: %s", l)
		}
	}
}

// HTTP/1.1 requests with the same tricks never get past net/http's parser.
func TestE2ERequestHostileHTTP1(t *testing.T) {
	t.Parallel()
	s := startSite(t)
	for _, raw := range []string{
		"GET /evil /up/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"G(ET /up/a HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /up/a?x y HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /up/a\x7f HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /up/a\tb HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /up/a HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /up/a HTTP/1.1\r\nHost: x\r\nX-A: 1\x00\r\n\r\n",
		"GET /up/a HTTP/1.1\r\nHost: x\r\nX A: 1\r\n\r\n",
		"GET /up/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
		"GET /up/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	} {
		c := dialRaw(t, s.Addr)
		r := c.roundTrip(t, "GET", raw)
		if r.status/100 != 4 && r.status/100 != 5 {
			t.Errorf("%q: %v, want an error status", raw, r)
		}
	}
	if got := s.up.requests(); len(got) > 0 {
		t.Errorf("the upstream received %q", got)
	}
}
