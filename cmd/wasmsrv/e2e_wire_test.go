package main

// Wire-level clients for the framing tests: an HTTP/1 response reader that keeps
// every byte the server sent (duplicate fields, interim responses, a body cut
// short), and an HTTP/2 client on x/net/http2's Framer and hpack that sends
// whatever pseudo-header fields it is given, hostile ones included.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// wireResponse is one HTTP/1 response as the client received it.
type wireResponse struct {
	interim []int    // 1xx responses before the final one
	status  int      // 0: no response head at all
	lines   []string // header lines, exactly as sent
	body    []byte
	// cut: the connection ended (or failed) before the body its framing
	// announced was complete, or before any response.
	cut bool
	// closeDelimited: no Content-Length and no chunking: the body ran to
	// the connection's end.
	closeDelimited bool
}

// values returns the values of the fields named name (case-insensitive).
func (r *wireResponse) values(name string) []string {
	var vs []string
	for _, l := range r.lines {
		k, v, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			vs = append(vs, strings.TrimSpace(v))
		}
	}
	return vs
}

func (r *wireResponse) String() string {
	return fmt.Sprintf("interim %v, status %d, cut %v, lines %q, body %.80q", r.interim, r.status, r.cut, r.lines, r.body)
}

// readWire reads one response from br. A response that cannot be read to the
// end its framing announces is returned with cut set, not as an error: that
// is what the framing tests look for.
func readWire(br *bufio.Reader, method string) *wireResponse {
	r := &wireResponse{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			r.cut = true
			return r
		}
		f := strings.Fields(line)
		if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
			r.cut = true
			r.lines = append(r.lines, "bad status line: "+line)
			return r
		}
		code, _ := strconv.Atoi(f[1])
		r.lines = r.lines[:0]
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				r.cut = true
				return r
			}
			l = strings.TrimRight(l, "\r\n")
			if l == "" {
				break
			}
			r.lines = append(r.lines, l)
		}
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			r.interim = append(r.interim, code)
			continue
		}
		r.status = code
		break
	}
	if method == http.MethodHead || r.status == http.StatusNoContent || r.status == http.StatusNotModified || r.status == http.StatusSwitchingProtocols {
		return r
	}
	if te := r.values("Transfer-Encoding"); len(te) > 0 {
		body, err := io.ReadAll(strictChunked(br))
		r.body, r.cut = body, err != nil
		return r
	}
	if cl := r.values("Content-Length"); len(cl) > 0 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || len(cl) > 1 {
			r.cut = true // unusable framing: what follows cannot be trusted
			return r
		}
		r.body = make([]byte, n)
		m, err := io.ReadFull(br, r.body)
		r.body, r.cut = r.body[:m], err != nil
		return r
	}
	r.closeDelimited = true
	r.body, _ = io.ReadAll(br)
	return r
}

// strictChunked reads a chunked body and fails on anything malformed or cut.
func strictChunked(br *bufio.Reader) io.Reader {
	return &chunkedBody{br: br}
}

type chunkedBody struct {
	br   *bufio.Reader
	left int64
	done bool
}

func (c *chunkedBody) Read(p []byte) (int, error) {
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		line, err := c.br.ReadString('\n')
		if err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		size, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), ";")
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad chunk size line %q", line)
		}
		if n == 0 {
			for { // trailers, then the blank line
				l, err := c.br.ReadString('\n')
				if err != nil {
					return 0, io.ErrUnexpectedEOF
				}
				if strings.TrimRight(l, "\r\n") == "" {
					break
				}
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if err != nil {
		return n, io.ErrUnexpectedEOF
	}
	if c.left == 0 {
		if crlf, err := c.br.ReadString('\n'); err != nil || strings.TrimRight(crlf, "\r\n") != "" {
			return n, errors.New("chunk not followed by CRLF")
		}
	}
	return n, nil
}

// roundTrip writes raw and reads one response.
func (c *rawConn) roundTrip(t testing.TB, method, raw string) *wireResponse {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return &wireResponse{cut: true}
	}
	return readWire(c.r, method)
}

// closed reports whether the server closed the connection (EOF) with nothing
// more to read, waiting at most d.
func (c *rawConn) closed(d time.Duration) (bool, string) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, string(b)
	}
	return len(b) == 0, string(b)
}

// h2Conn is a raw HTTP/2 client connection (prior knowledge, cleartext or
// over a TLS connection that negotiated h2).
type h2Conn struct {
	t      testing.TB
	c      net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	encBuf bytes.Buffer
	dec    *hpack.Decoder
	nextID uint32
}

// h2Result is what came back on one stream.
type h2Result struct {
	status  int
	fields  []hpack.HeaderField
	body    []byte
	reset   bool // RST_STREAM (or GOAWAY) instead of END_STREAM
	code    http2.ErrCode
	goaway  bool
	timeout bool
}

func (r h2Result) String() string {
	return fmt.Sprintf("status %d, reset %v (%v), goaway %v, fields %v, body %.80q", r.status, r.reset, r.code, r.goaway, r.fields, r.body)
}

func (r h2Result) values(name string) []string {
	var vs []string
	for _, f := range r.fields {
		if f.Name == name {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

func dialH2(t testing.TB, addr string) *h2Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return newH2Conn(t, c)
}

func newH2Conn(t testing.TB, c net.Conn) *h2Conn {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	h := &h2Conn{t: t, c: c, fr: http2.NewFramer(c, c), nextID: 1}
	h.enc = hpack.NewEncoder(&h.encBuf)
	h.dec = hpack.NewDecoder(4096, nil)
	h.fr.ReadMetaHeaders = nil // raw HEADERS frames: decoded here, nothing validated
	if err := h.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 24}); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteWindowUpdate(0, 1<<24); err != nil {
		t.Fatal(err)
	}
	return h
}

// do sends one request with the given fields (pseudo-header fields first, in
// order, as given) and body, and reads the stream to its end.
func (h *h2Conn) do(fields [][2]string, body []byte) h2Result {
	h.t.Helper()
	id := h.nextID
	h.nextID += 2
	h.encBuf.Reset()
	for _, f := range fields {
		_ = h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	_ = h.c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.encBuf.Bytes(),
		EndHeaders: true, EndStream: len(body) == 0}); err != nil {
		h.t.Fatalf("write HEADERS: %v", err)
	}
	if len(body) > 0 {
		if err := h.fr.WriteData(id, true, body); err != nil {
			h.t.Fatalf("write DATA: %v", err)
		}
	}
	var res h2Result
	for {
		f, err := h.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			res.timeout = errors.As(err, &ne) && ne.Timeout()
			res.reset = true
			return res
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = h.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = h.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			res.goaway, res.reset, res.code = true, true, f.ErrCode
			if f.LastStreamID >= id {
				continue // our stream may still complete
			}
			return res
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				res.reset, res.code = true, f.ErrCode
				return res
			}
		case *http2.HeadersFrame:
			if f.StreamID != id {
				continue
			}
			fs, err := h.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				h.t.Fatalf("hpack: %v", err)
			}
			for _, hf := range fs {
				if hf.Name == ":status" {
					res.status, _ = strconv.Atoi(hf.Value)
					continue
				}
				res.fields = append(res.fields, hf)
			}
			if f.StreamEnded() {
				return res
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			res.body = append(res.body, f.Data()...)
			if n := len(f.Data()); n > 0 {
				_ = h.fr.WriteWindowUpdate(0, uint32(n))
				_ = h.fr.WriteWindowUpdate(id, uint32(n))
			}
			if f.StreamEnded() {
				return res
			}
		}
	}
}
