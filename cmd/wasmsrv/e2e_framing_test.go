package main

import (
	"encoding/binary"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Framing belongs to the host (abi/SPEC.md §2.1, §4, §5): hostile guests that
// try to choose the response's framing (conflicting Content-Length fields, a
// body that disagrees with its declared length, 1xx and 101 status codes,
// hop-by-hop fields) are run through the real binary, and what a client reads
// is checked on the wire, over HTTP/1.1 and h2c, for the sync shape with
// responses held and streamed, the async shape and CGI commands.

// framingGuests is where the hostile guests live (their sources: *.wat).
var framingGuests = filepath.Join("..", "..", "host", "testdata", "framing")

// guestScript is a script for the puppet guests host/testdata/framing/{sync,async}.wat.
type guestScript []byte

func (s guestScript) op(op byte, a uint32, p []byte) guestScript {
	s = append(s, op)
	s = binary.LittleEndian.AppendUint32(s, a)
	s = binary.LittleEndian.AppendUint32(s, uint32(len(p)))
	return append(s, p...)
}

// start calls resp_start(status, block).
func (s guestScript) start(status int, block []byte) guestScript {
	return s.op('S', uint32(status), block)
}

// write calls resp_write(p, flags).
func (s guestScript) write(flags int32, p string) guestScript {
	return s.op('W', uint32(flags), []byte(p))
}

// fill calls resp_write with n bytes of guest memory.
func (s guestScript) fill(flags int32, n int) guestScript {
	s = s.op('B', uint32(flags), nil)
	binary.LittleEndian.PutUint32(s[len(s)-4:], uint32(n))
	return s
}

// ret returns code from the handler (ctx_done(code) in the async shape).
func (s guestScript) ret(code int32) guestScript {
	s = append(s, 'R')
	return binary.LittleEndian.AppendUint32(s, uint32(code))
}

// hdrs is a header block (SPEC §2.1) of name, value pairs, unchecked.
func hdrs(kv ...string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(kv)/2))
	for _, s := range kv {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

const (
	end     = abi.WriteEnd
	noFlush = abi.WriteNoFlush
	flush   = int32(0)
)

var okScript = guestScript(nil).start(200, hdrs("content-type", "text/plain")).write(end, "ok")

// want is what a client must see.
type want struct {
	status int    // 0: the response is cut (HTTP/1: connection ends inside the body; h2: RST_STREAM)
	either bool   // async: a 500 or a cut are both right (the head may have left before the guest's fault)
	body   string // checked when set
	cl     []string
	absent []string // fields that must not be on the wire
	log    string   // in the server log after the request
}

var cutResponse = want{status: 0}

func internalError(log string) want { return want{status: 500, log: log} }

type framingCase struct {
	name     string
	method   string
	script   guestScript
	held     want // sync, responses held (wasmsrv run's default)
	stream   want // sync with --buffer-response 0, and the async shape
	syncOnly bool // writes larger than the async shape takes at once (the puppet does not wait for WRITABLE)
}

func same(w want) (want, want) { return w, w }

func framingCases() []framingCase {
	x20 := strings.Repeat("x", 20)
	x10 := strings.Repeat("x", 10)
	c := func(name string, s guestScript, held, stream want) framingCase {
		return framingCase{name: name, method: "POST", script: s, held: held, stream: stream}
	}
	c2 := func(name string, s guestScript, w want) framingCase {
		h, st := same(w)
		return c(name, s, h, st)
	}
	okCL := func(body string, cl ...string) want { return want{status: 200, body: body, cl: cl} }
	cases := []framingCase{
		c2("two-content-lengths", guestScript(nil).start(200, hdrs("content-length", "2", "content-length", "20")).write(end, x20),
			internalError("conflicting Content-Length")),
		c2("same-content-length-twice", guestScript(nil).start(200, hdrs("content-length", "2", "Content-Length", "2")).write(end, "ok"),
			okCL("ok", "2")),
		c2("content-length-list", guestScript(nil).start(200, hdrs("content-length", "2, 2")).write(end, "ok"), internalError("invalid Content-Length")),
		c2("content-length-padded", guestScript(nil).start(200, hdrs("content-length", " 2\t")).write(end, "ok"), okCL("ok", "2")),
		c2("declared-2-wrote-20", guestScript(nil).start(200, hdrs("content-length", "2")).write(end, x20),
			internalError("more than its Content-Length")),
		c2("declared-0-wrote-1", guestScript(nil).start(200, hdrs("content-length", "0")).write(end, "x"),
			internalError("more than its Content-Length")),
		c("declared-2-buffered-then-20", guestScript(nil).start(200, hdrs("content-length", "2")).write(noFlush, "a").write(end, x20),
			internalError("more than its Content-Length"), cutResponse),
		c2("declared-20-wrote-2", guestScript(nil).start(200, hdrs("content-length", "20")).write(end, "ok"),
			internalError("less than its Content-Length")),
		c2("declared-20-flushed-10-returned", guestScript(nil).start(200, hdrs("content-length", "20")).write(flush, x10),
			want{status: 0, log: "less than its Content-Length"}),
		c2("declared-20-flushed-10-wrote-20", guestScript(nil).start(200, hdrs("content-length", "20")).write(flush, x10).write(end, x20),
			want{status: 0, log: "more than its Content-Length"}),
		c("declared-20-buffered-10-returned", guestScript(nil).start(200, hdrs("content-length", "20")).write(noFlush, x10),
			internalError("less than its Content-Length"), want{status: 0, log: "less than its Content-Length"}),
		c2("declared-10-streamed-exactly", guestScript(nil).start(200, hdrs("content-length", "10")).write(flush, "01234").write(end, "56789"),
			okCL("0123456789", "10")),
		c2("returned-101", guestScript(nil).ret(101), internalError("app returned an error code")),
		c2("returned-100", guestScript(nil).ret(100), internalError("app returned an error code")),
		c2("returned-199", guestScript(nil).ret(199), internalError("app returned an error code")),
		c2("resp-start-100", guestScript(nil).start(100, hdrs()).write(end, "ok"), internalError("status 100")),
		c2("resp-start-103", guestScript(nil).start(103, hdrs("link", "</a.css>; rel=preload")).write(end, "ok"), internalError("status 103")),
		c2("resp-start-101", guestScript(nil).start(101, hdrs("upgrade", "websocket", "connection", "upgrade")).write(end, "ok"),
			internalError("status 101")),
		c2("resp-start-101-then-200", guestScript(nil).start(101, hdrs()).start(200, hdrs("x-a", "1")).write(end, "ok"), okCL("ok", "2")),
		c2("resp-start-empty-block", guestScript(nil).start(404, nil).write(end, "ok"), want{status: 404, body: "ok", cl: []string{"2"}}),
		c2("refused-head-replaces-held-one", guestScript(nil).start(200, hdrs("x-a", "1")).start(200, hdrs("content-length", "x")).write(end, "ok"),
			internalError("invalid Content-Length")),
		c2("guest-chunked", guestScript(nil).start(200, hdrs("transfer-encoding", "chunked")).write(end, "5\r\nhello\r\n0\r\n\r\n"),
			want{status: 200, body: "5\r\nhello\r\n0\r\n\r\n", cl: []string{"15"}, absent: []string{"transfer-encoding"}}),
		c2("hop-by-hop", guestScript(nil).start(200, hdrs("connection", "close, x-hidden", "x-hidden", "1", "keep-alive", "timeout=1",
			"proxy-connection", "close", "upgrade", "h2c", "te", "trailers", "trailer", "x-t", "proxy-authenticate", "Basic",
			"x-kept", "1")).write(end, "ok"),
			want{status: 200, body: "ok", absent: []string{"x-hidden", "keep-alive", "proxy-connection", "upgrade", "te", "trailer", "proxy-authenticate"}}),
		{name: "head-with-length", method: "HEAD", script: guestScript(nil).start(200, hdrs("content-length", "5")).write(end, "hello"),
			held: want{status: 200, cl: []string{"5"}}, stream: want{status: 200, cl: []string{"5"}}},
		c2("204-with-length-and-body", guestScript(nil).start(204, hdrs("content-length", "5")).write(end, "hello"),
			want{status: 204, absent: []string{"content-length"}}),
		c2("304-with-body", guestScript(nil).start(304, hdrs("etag", `"a"`)).write(end, "hello"), want{status: 304}),
	}
	// Past the hold (256 KiB) a held response is written through.
	large := []framingCase{
		c2("held-then-through", guestScript(nil).start(200, hdrs("content-length", "300000")).fill(noFlush, 100000).fill(noFlush, 100000).fill(end, 100000),
			want{status: 200, cl: []string{"300000"}}),
		// Every declared byte went out before the overflow: the client has a
		// whole body, and then the connection ends (HTTP/1) or the stream is
		// reset (HTTP/2), so nothing after it is taken as a response.
		c2("held-then-through-overflow", guestScript(nil).start(200, hdrs("content-length", "300000")).fill(noFlush, 100000).fill(noFlush, 100000).fill(noFlush, 100000).fill(end, 10),
			want{status: 0, log: "more than its Content-Length"}),
		c2("held-then-through-short", guestScript(nil).start(200, hdrs("content-length", "300000")).fill(noFlush, 100000).fill(noFlush, 100000).fill(noFlush, 90000),
			want{status: 0, log: "less than its Content-Length"}),
		// Held when the overflow comes: nothing was sent, a clean 500.
		c("held-overflow", guestScript(nil).start(200, hdrs("content-length", "300000")).fill(noFlush, 130000).fill(noFlush, 130000).fill(noFlush, 50000),
			internalError("more than its Content-Length"), want{status: 0, log: "more than its Content-Length"}),
	}
	for i := range large {
		large[i].syncOnly = true
	}
	cases = append(cases, large...)
	for _, v := range []string{"abc", "-1", "+2", "0x2", "2 2", "", "2,3", "99999999999999999999"} {
		cases = append(cases, c2("invalid-content-length-"+v, guestScript(nil).start(200, hdrs("content-length", v)).write(end, "ok"),
			internalError("Content-Length")))
	}
	return cases
}

// framingRequest is the HTTP/1.1 request carrying a script.
func framingRequest(method, name string, body []byte) string {
	return fmt.Sprintf("%s /%s HTTP/1.1\r\nHost: framing\r\nContent-Length: %d\r\n\r\n%s", method, url.PathEscape(name), len(body), body)
}

// checkWire compares a wire response on c with w. A cut response is one
// whose body is short when the connection ends, or, when every declared byte
// came, whose connection ends right after it.
func checkWire(t *testing.T, c *rawConn, r *wireResponse, w want) {
	t.Helper()
	if len(r.interim) > 0 {
		t.Errorf("interim responses %v reached the client", r.interim)
	}
	if w.status == 0 && w.either && !r.cut && r.status == 500 {
		return // the fault came before the head left
	}
	if w.status == 0 {
		if !r.cut {
			if closed, more := c.closed(5 * time.Second); !closed {
				t.Fatalf("response complete and the connection goes on (%q), want it cut: %v", more, r)
			}
			r.cut = true
		}
		return
	}
	if r.cut || r.status != w.status {
		t.Fatalf("got %v, want status %d", r, w.status)
	}
	if w.body != "" && string(r.body) != w.body {
		t.Errorf("body %q, want %q", r.body, w.body)
	}
	if w.cl != nil && !slices.Equal(r.values("Content-Length"), w.cl) {
		t.Errorf("Content-Length fields %q, want %q (lines %q)", r.values("Content-Length"), w.cl, r.lines)
	}
	if cl := r.values("Content-Length"); len(cl) > 1 {
		t.Errorf("several Content-Length fields: %q", cl)
	}
	if te := r.values("Transfer-Encoding"); len(te) > 0 && len(r.values("Content-Length")) > 0 {
		t.Errorf("both Transfer-Encoding and Content-Length: %q", r.lines)
	}
	for _, k := range w.absent {
		if v := r.values(k); len(v) > 0 {
			t.Errorf("field %s reached the client: %q", k, v)
		}
	}
	if r.closeDelimited {
		t.Errorf("response delimited by closing the connection: %v", r)
	}
}

func checkH2(t *testing.T, r h2Result, w want) {
	t.Helper()
	if w.status == 0 && w.either && !r.reset && r.status == 500 {
		return
	}
	if w.status == 0 {
		if !r.reset {
			t.Fatalf("stream ended cleanly, want it reset: %v", r)
		}
		if r.timeout {
			t.Fatalf("no answer: %v", r)
		}
		return
	}
	if r.reset || r.status != w.status {
		t.Fatalf("got %v, want status %d", r, w.status)
	}
	if w.body != "" && string(r.body) != w.body {
		t.Errorf("body %q, want %q", r.body, w.body)
	}
	if w.cl != nil && !slices.Equal(r.values("content-length"), w.cl) {
		t.Errorf("content-length fields %q, want %q", r.values("content-length"), w.cl)
	}
	for _, k := range w.absent {
		if v := r.values(k); len(v) > 0 {
			t.Errorf("field %s reached the client: %q", k, v)
		}
	}
	if cl := r.values("content-length"); len(cl) == 1 && w.status != 304 && w.status != 204 && r.status != 0 {
		if w.cl == nil && fmt.Sprint(len(r.body)) != cl[0] {
			t.Errorf("content-length %s but %d body bytes", cl[0], len(r.body))
		}
	}
}

// waitLog waits for s's log, from offset on, to contain sub.
func waitLog(t *testing.T, s *server, from int, sub string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		logs := s.logs()
		if strings.Contains(logs[from:], sub) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("log lacks %q:\n%s", sub, tail(logs[from:], 3000))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestE2EFramingHostileGuests(t *testing.T) {
	shapes := []struct {
		name   string
		wasm   string
		args   []string
		stream bool
		async  bool
	}{
		{"sync-held", "sync.wasm", nil, false, false},
		{"sync-streamed", "sync.wasm", []string{"--buffer-response", "0"}, true, false},
		{"async", "async.wasm", nil, true, true},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			t.Parallel()
			srv := startServer(t, filepath.Join(framingGuests, shape.wasm), append([]string{"--workers", "2", "--timeout", "10s"}, shape.args...)...)
			for _, tc := range framingCases() {
				if shape.async && tc.syncOnly {
					continue
				}
				w := tc.held
				if shape.stream {
					w = tc.stream
				}
				if shape.async && w.status == 0 {
					w.either = true
				}
				t.Run("h1/"+tc.name, func(t *testing.T) {
					from := len(srv.logs())
					c := dialRaw(t, srv.Addr)
					r := c.roundTrip(t, tc.method, framingRequest(tc.method, tc.name, tc.script))
					checkWire(t, c, r, w)
					if w.log != "" && (w.status != 0 || r.cut) {
						waitLog(t, srv, from, w.log)
					}
					if r.cut {
						return
					}
					// The connection is still in step: the next request on it is answered.
					next := c.roundTrip(t, "POST", framingRequest("POST", "next", okScript))
					if next.cut || next.status != 200 || string(next.body) != "ok" {
						t.Fatalf("next request on the connection: %v", next)
					}
				})
				t.Run("h2/"+tc.name, func(t *testing.T) {
					h := dialH2(t, srv.Addr)
					r := h.do([][2]string{{":method", tc.method}, {":scheme", "http"}, {":authority", "framing"}, {":path", "/" + url.PathEscape(tc.name)}}, tc.script)
					checkH2(t, r, w)
					next := h.do([][2]string{{":method", "POST"}, {":scheme", "http"}, {":authority", "framing"}, {":path", "/next"}}, okScript)
					if next.reset || next.status != 200 || string(next.body) != "ok" {
						t.Fatalf("next request on the connection: %v", next)
					}
				})
			}
			// The access log records the status the client got, never a 1xx.
			if logs := srv.logs(); strings.Contains(logs, "status=1") {
				t.Errorf("the access log records an interim status:\n%s", grepLines(logs, "status=1"))
			}
		})
	}
}

// grepLines returns the lines of s containing sub.
func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "")
}

// cgiOutput is the stdin of host/testdata/framing/cgi.wasm: each part is
// written to stdout with its own fd_write.
func cgiOutput(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

func TestE2EFramingCGI(t *testing.T) {
	t.Parallel()
	srv := startServer(t, filepath.Join(framingGuests, "cgi.wasm"), "--workers", "2", "--timeout", "10s")
	x20 := strings.Repeat("x", 20)
	cases := []struct {
		name   string
		method string
		out    []byte
		want   want
	}{
		{"two-content-lengths", "POST", cgiOutput("Content-Length: 2\r\nContent-Length: 20\r\n\r\n" + x20), internalError("Content-Length")},
		{"same-content-length-twice", "POST", cgiOutput("Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), want{status: 200, body: "hello", cl: []string{"5"}}},
		{"invalid-content-length", "POST", cgiOutput("Content-Length: abc\r\n\r\nhello"), internalError("Content-Length")},
		{"declared-2-wrote-20", "POST", cgiOutput("Content-Length: 2\r\n\r\n" + x20), internalError("more than its Content-Length")},
		{"declared-20-then-more", "POST", cgiOutput("Content-Length: 20\r\n\r\n"+x20[:10], x20), want{status: 0, log: "more than its Content-Length"}},
		{"declared-20-wrote-2", "POST", cgiOutput("Content-Length: 20\r\n\r\nok"), want{status: 0, log: "less than its Content-Length"}},
		{"declared-5-exactly", "POST", cgiOutput("Content-Length: 5\r\n\r\nhel", "lo"), want{status: 200, body: "hello", cl: []string{"5"}}},
		{"status-101", "POST", cgiOutput("Status: 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"), internalError("Status")},
		{"status-100", "POST", cgiOutput("Status: 100 Continue\r\n\r\nok"), internalError("Status")},
		{"status-103", "POST", cgiOutput("Status: 103\r\nLink: </a>\r\n\r\nok"), internalError("Status")},
		{"chunked", "POST", cgiOutput("Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
			want{status: 200, body: "5\r\nhello\r\n0\r\n\r\n", absent: []string{"transfer-encoding"}}},
		{"hop-by-hop", "POST", cgiOutput("Connection: x-hidden\r\nX-Hidden: 1\r\nKeep-Alive: 5\r\nProxy-Authenticate: Basic\r\nX-Kept: 1\r\n\r\nok"),
			want{status: 200, body: "ok", absent: []string{"x-hidden", "keep-alive", "connection", "proxy-authenticate"}}},
		{"head-with-length", "HEAD", cgiOutput("Content-Length: 5\r\n\r\nhello"), want{status: 200, cl: []string{"5"}}},
		{"204-with-length", "POST", cgiOutput("Status: 204\r\nContent-Length: 5\r\n\r\n"), want{status: 204, absent: []string{"content-length"}}},
	}
	for _, tc := range cases {
		t.Run("h1/"+tc.name, func(t *testing.T) {
			from := len(srv.logs())
			c := dialRaw(t, srv.Addr)
			r := c.roundTrip(t, tc.method, framingRequest(tc.method, tc.name, tc.out))
			checkWire(t, c, r, tc.want)
			if tc.want.log != "" {
				waitLog(t, srv, from, tc.want.log)
			}
			if r.cut {
				return
			}
			next := c.roundTrip(t, "POST", framingRequest("POST", "next", cgiOutput("Content-Type: text/plain\r\n\r\nok")))
			if next.cut || next.status != 200 || string(next.body) != "ok" {
				t.Fatalf("next request on the connection: %v", next)
			}
		})
		t.Run("h2/"+tc.name, func(t *testing.T) {
			h := dialH2(t, srv.Addr)
			r := h.do([][2]string{{":method", tc.method}, {":scheme", "http"}, {":authority", "framing"}, {":path", "/" + url.PathEscape(tc.name)}}, tc.out)
			checkH2(t, r, tc.want)
		})
	}
	if logs := srv.logs(); strings.Contains(logs, "status=1") {
		t.Errorf("the access log records an interim status:\n%s", grepLines(logs, "status=1"))
	}
}
