package host

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http/httpguts"

	"github.com/wasmsrv/wasmsrv/internal/framing"
)

// block encodes a header block (SPEC §2.1) without any check.
func block(kv ...string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(kv)/2))
	for _, s := range kv {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func TestGuestHeaders(t *testing.T) {
	cases := []struct {
		name   string
		status int32
		block  []byte
		want   http.Header // nil: refused
		length int64
	}{
		{"empty block", 200, nil, http.Header{}, -1},
		{"no fields", 200, block(), http.Header{}, -1},
		{"plain", 200, block("content-type", "text/plain", "X-A", "1", "x-a", "2"),
			http.Header{"Content-Type": {"text/plain"}, "X-A": {"1", "2"}}, -1},
		{"length", 200, block("content-length", "5"), http.Header{"Content-Length": {"5"}}, 5},
		{"length twice", 200, block("content-length", "5", "Content-Length", "5"), http.Header{"Content-Length": {"5"}}, 5},
		{"length list", 200, block("content-length", "5, 5"), nil, -1},
		{"length leading zero", 200, block("content-length", "05"), http.Header{"Content-Length": {"5"}}, 5},
		{"lengths conflict", 200, block("content-length", "5", "content-length", "6"), nil, -1},
		{"length list conflict", 200, block("content-length", "5, 6"), nil, -1},
		{"length signed", 200, block("content-length", "+5"), nil, -1},
		{"length empty", 200, block("content-length", ""), nil, -1},
		{"length huge", 200, block("content-length", "9999999999999999999"), nil, -1},
		{"length on 204", 204, block("content-length", "5", "x", "1"), http.Header{"X": {"1"}}, -1},
		{"length on 304", 304, block("content-length", "5"), http.Header{"Content-Length": {"5"}}, 5},
		{"length on 101", 101, block("content-length", "0"), nil, -1},
		{"hop-by-hop dropped", 200, block("Transfer-Encoding", "chunked", "connection", "close", "keep-alive", "1", "TE", "trailers",
			"trailer", "x", "upgrade", "h2c", "proxy-connection", "x", "Proxy-Authenticate", "Basic", "proxy-authorization", "x",
			"http2-settings", "x", "x-ok", "1"), http.Header{"X-Ok": {"1"}}, -1},
		{"connection names fields", 200, block("connection", "x-a, X-B", "x-a", "1", "x-b", "2", "x-c", "3"), http.Header{"X-C": {"3"}}, -1},
		{"connection names the length", 200, block("connection", "content-length", "content-length", "5"), nil, -1},
		{"name not a token", 200, block("x a", "1"), nil, -1},
		{"empty name", 200, block("", "1"), nil, -1},
		{"value with LF", 200, block("x", "a\nb"), nil, -1},
		{"value with CR", 200, block("x", "a\rb"), nil, -1},
		{"value with NUL", 200, block("x", "a\x00b"), nil, -1},
		{"truncated", 200, block("x", "1")[:10], nil, -1},
		{"trailing bytes", 200, append(block("x", "1"), 0), nil, -1},
		{"count too large", 200, []byte{0xff, 0xff, 0xff, 0xff}, nil, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := http.Header{}
			n, err := guestHeaders(h, c.block, c.status)
			if c.want == nil {
				if err == nil {
					t.Fatalf("accepted: %v", h)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != c.length || fmt.Sprint(h) != fmt.Sprint(c.want) {
				t.Errorf("got %v (length %d), want %v (length %d)", h, n, c.want, c.length)
			}
		})
	}
}

// FuzzGuestHeaders feeds resp_start header blocks (SPEC §2.1) to the host's
// decoding: it never panics, and what it accepts is a head that net/http's
// strict response parser reads back unchanged, with one Content-Length that
// matches the declared length and no hop-by-hop field.
func FuzzGuestHeaders(f *testing.F) {
	f.Add(block("content-type", "text/plain", "content-length", "2"), uint16(200))
	f.Add(block("content-length", "2", "content-length", "20"), uint16(200))
	f.Add(block("content-length", "2, 2", "connection", "x-a", "x-a", "1"), uint16(200))
	f.Add(block("transfer-encoding", "chunked", "upgrade", "websocket"), uint16(101))
	f.Add(block("content-length", "0"), uint16(204))
	f.Add(block("set-cookie", "a=1", "Set-Cookie", "b=2", "x", " padded "), uint16(404))
	f.Add([]byte{}, uint16(100))
	f.Fuzz(func(t *testing.T, b []byte, code uint16) {
		status := int32(code % 1000)
		h := http.Header{}
		n, err := guestHeaders(h, b, status)
		if err != nil {
			return
		}
		for k, vv := range h {
			if !httpguts.ValidHeaderFieldName(k) || k != textproto.CanonicalMIMEHeaderKey(k) {
				t.Fatalf("key %q", k)
			}
			if framing.IsHopByHop(k) {
				t.Fatalf("hop-by-hop field %q kept", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("value %q of %s", v, k)
				}
			}
		}
		cl := h["Content-Length"]
		switch {
		case len(cl) > 1:
			t.Fatalf("several Content-Length fields %q", cl)
		case len(cl) == 1:
			if m, err := strconv.ParseInt(cl[0], 10, 64); err != nil || m != n || m < 0 {
				t.Fatalf("Content-Length %q, declared %d", cl[0], n)
			}
		case n >= 0 && status != http.StatusNoContent:
			t.Fatalf("declared %d but no Content-Length field", n)
		}
		if status < 200 {
			return // refused by resp_start before the block (checkStatus)
		}
		// Differential: net/http reads the head back as written.
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "HTTP/1.1 %03d X\r\n", status)
		if err := h.Write(&raw); err != nil {
			t.Fatal(err)
		}
		raw.WriteString("\r\n")
		if n > 0 && n < 1<<20 {
			raw.Write(make([]byte, n))
		}
		resp, err := http.ReadResponse(bufio.NewReader(&raw), &http.Request{Method: http.MethodGet})
		if err != nil {
			if n >= 1<<20 {
				return // not written: the body would be too large to build
			}
			t.Fatalf("net/http refuses the head: %v\n%q", err, raw.String())
		}
		defer resp.Body.Close()
		if n >= 0 && framing.BodyAllowed(int(status)) && resp.ContentLength != n {
			t.Fatalf("net/http reads length %d, declared %d", resp.ContentLength, n)
		}
		for k, vv := range h {
			if k == "Content-Length" && !framing.BodyAllowed(int(status)) {
				continue
			}
			got := resp.Header[k]
			want := make([]string, len(vv))
			for i, v := range vv {
				want[i] = strings.Trim(v, " \t")
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: net/http reads %q, host sends %q", k, got, want)
			}
		}
	})
}

// FuzzCGIHead feeds CGI header sections to the host's parser (cgiStdout.parseHead,
// docs/cgi.md): it never panics, and what it accepts is a head with a final
// status, no hop-by-hop field and at most one Content-Length, which net/http's
// strict response parser reads back unchanged.
func FuzzCGIHead(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/plain",
		"Status: 404 Not Found\nContent-Type: text/html",
		"Location: /elsewhere",
		"Content-Length: 5\r\nContent-Length: 5",
		"Content-Length: 5\r\nContent-Length: 6",
		"Status: 101\r\nUpgrade: websocket\r\nConnection: Upgrade",
		"Connection: x-a, keep-alive\r\nX-A: 1\r\nX-B: 2",
		"Status: 204\r\nContent-Length: 3",
		"Transfer-Encoding: chunked",
		"X: \x01",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		w := httptest.NewRecorder()
		o := &cgiStdout{w: w, method: http.MethodGet, length: -1}
		if err := o.parseHead(head); err != nil {
			return
		}
		if o.status < 200 || o.status > 999 {
			t.Fatalf("status %d", o.status)
		}
		h := w.Header()
		for k, vv := range h {
			if !httpguts.ValidHeaderFieldName(k) || framing.IsHopByHop(k) {
				t.Fatalf("field %q", k)
			}
			for _, v := range vv {
				if !httpguts.ValidHeaderFieldValue(v) {
					t.Fatalf("value %q of %s", v, k)
				}
			}
		}
		if cl := h["Content-Length"]; len(cl) > 1 {
			t.Fatalf("several Content-Length fields %q", cl)
		}
		var raw bytes.Buffer
		fmt.Fprintf(&raw, "HTTP/1.1 %03d X\r\n", o.status)
		if err := h.Write(&raw); err != nil {
			t.Fatal(err)
		}
		raw.WriteString("\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(&raw), &http.Request{Method: http.MethodHead})
		if err != nil {
			t.Fatalf("net/http refuses the head: %v\n%q", err, raw.String())
		}
		resp.Body.Close()
		for k, vv := range h {
			if k == "Content-Length" && !framing.BodyAllowed(o.status) {
				continue
			}
			if got := resp.Header[k]; !slices.Equal(got, vv) {
				t.Fatalf("%s: net/http reads %q, host sends %q", k, got, vv)
			}
		}
	})
}
