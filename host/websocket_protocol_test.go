package host

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The protocol tests speak WebSocket by hand over a raw TCP connection: the
// hostile frames are built byte by byte here, not by a WebSocket library, so
// nothing between the test and the server's frame reader repairs them. Each
// case asserts the exact close code RFC 6455 (and RFC 7692) asks for, as the
// Autobahn testsuite's cases 1–7 and 12–13 check it.

// rawWS is a hand-driven WebSocket client connection.
type rawWS struct {
	net.Conn
	br *bufio.Reader
}

// rawDial opens a WebSocket to path on the server at base (http://host:port)
// with a hand-written handshake; ext is a Sec-WebSocket-Extensions offer or "".
func rawDial(t *testing.T, base, path, ext string) *rawWS {
	t.Helper()
	addr := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "ws://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if ext != "" {
		req += "Sec-WebSocket-Extensions: " + ext + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %s", resp.Status)
	}
	// RFC 6455 §1.3: base64(SHA-1(key + GUID)) for the RFC's own sample key.
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	if ext != "" && !strings.Contains(resp.Header.Get("Sec-WebSocket-Extensions"), "permessage-deflate") {
		t.Fatalf("permessage-deflate not agreed: %q", resp.Header.Get("Sec-WebSocket-Extensions"))
	}
	return &rawWS{Conn: conn, br: br}
}

// wireFrame describes one client frame as it goes on the wire.
type wireFrame struct {
	fin      bool
	rsv      byte // RSV1..3 as 0x4, 0x2, 0x1
	op       byte
	payload  []byte
	unmasked bool
	lenForm  int   // 0: shortest; 126 or 127: force that length encoding
	declared int64 // with noBody: the length announced, the payload never sent
	noBody   bool
}

var testMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// bytes encodes f: RFC 6455 §5.2, written out by hand.
func (f wireFrame) bytes() []byte {
	b0 := f.op & 0xf
	if f.fin {
		b0 |= 0x80
	}
	b0 |= (f.rsv & 0x7) << 4
	n := int64(len(f.payload))
	if f.noBody {
		n = f.declared
	}
	out := []byte{b0}
	maskBit := byte(0x80)
	if f.unmasked {
		maskBit = 0
	}
	form := f.lenForm
	if form == 0 {
		switch {
		case n < 126:
		case n <= 0xffff:
			form = 126
		default:
			form = 127
		}
	}
	switch form {
	case 126:
		out = append(out, maskBit|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	case 127:
		out = append(out, maskBit|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	default:
		out = append(out, maskBit|byte(n))
	}
	if f.noBody {
		return append(out, testMask[:]...)
	}
	if f.unmasked {
		return append(out, f.payload...)
	}
	out = append(out, testMask[:]...)
	for i, c := range f.payload {
		out = append(out, c^testMask[i%4])
	}
	return out
}

func textFrame(s string) wireFrame   { return wireFrame{fin: true, op: 0x1, payload: []byte(s)} }
func binaryFrame(p []byte) wireFrame { return wireFrame{fin: true, op: 0x2, payload: p} }
func closeFrame(code uint16, reason string) wireFrame {
	return wireFrame{fin: true, op: 0x8, payload: append(binary.BigEndian.AppendUint16(nil, code), reason...)}
}

// send writes frames; small ones a byte at a time, so the server's reader sees
// every split a slow network can make.
func (c *rawWS) send(t *testing.T, frames ...wireFrame) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for _, f := range frames {
		b := f.bytes()
		if len(b) > 300 {
			if _, err := c.Write(b); err != nil {
				t.Fatalf("write: %v", err)
			}
			continue
		}
		for i := range b {
			if _, err := c.Write(b[i : i+1]); err != nil {
				t.Fatalf("write: %v", err)
			}
		}
	}
}

// serverFrame is a frame from the server (never masked, never fragmented by this
// host).
type serverFrame struct {
	fin     bool
	rsv     byte
	op      byte
	payload []byte
}

func (c *rawWS) readFrame() (serverFrame, error) {
	var f serverFrame
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return f, err
	}
	f.fin, f.rsv, f.op = h[0]&0x80 != 0, (h[0]>>4)&7, h[0]&0xf
	if h[1]&0x80 != 0 {
		return f, errors.New("server frame is masked")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	f.payload = make([]byte, n)
	_, err := io.ReadFull(c.br, f.payload)
	return f, err
}

// expectClose reads until the server's close frame and checks its code, then
// that the server hangs up. It returns the data frames read before.
func (c *rawWS) expectClose(t *testing.T, code int) []serverFrame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var before []serverFrame
	for {
		f, err := c.readFrame()
		if err != nil {
			t.Fatalf("want a close frame %d, got %v after %d frames", code, err, len(before))
		}
		if f.op != 0x8 {
			before = append(before, f)
			continue
		}
		if len(f.payload) < 2 {
			t.Fatalf("close frame without a code, want %d", code)
		}
		if got := int(binary.BigEndian.Uint16(f.payload)); got != code {
			t.Fatalf("close code %d (%q), want %d", got, f.payload[2:], code)
		}
		break
	}
	if _, err := c.readFrame(); err == nil {
		t.Fatal("a frame after the close frame")
	} else if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !isReset(err) {
		t.Fatalf("after the close frame: %v, want the server to hang up", err)
	}
	return before
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && strings.Contains(oe.Err.Error(), "reset")
}

// deflateRaw compresses p as one permessage-deflate message (RFC 7692 §7.2.1:
// the trailing empty block's 00 00 ff ff removed).
func deflateRaw(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(p)
	w.Flush()
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		t.Fatal("flate output without the sync marker")
	}
	return out[:len(out)-4]
}

const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// protocolCase is a client's violation of RFC 6455 (or RFC 7692) and the close
// code it must get.
type protocolCase struct {
	name    string
	deflate bool // permessage-deflate agreed
	frames  func(t testing.TB) []wireFrame
	code    int
}

// protocolMaxMessage is the message limit the protocol cases run under.
const protocolMaxMessage = 64 << 10

// protocolCases are the violations the protocol test sends and the fuzz target
// starts from.
func protocolCases() []protocolCase {
	const maxMsg = protocolMaxMessage
	type tc = protocolCase
	fr := func(fs ...wireFrame) func(testing.TB) []wireFrame {
		return func(testing.TB) []wireFrame { return fs }
	}
	cases := []tc{
		{name: "unmasked client frame", frames: fr(wireFrame{fin: true, op: 1, payload: []byte("hi"), unmasked: true}), code: 1002},
		{name: "length not in shortest form (126)", frames: fr(wireFrame{fin: true, op: 1, payload: []byte("hi"), lenForm: 126}), code: 1002},
		{name: "length not in shortest form (127)", frames: fr(wireFrame{fin: true, op: 2, payload: make([]byte, 300), lenForm: 127}), code: 1002},
		{name: "length with the top bit set", frames: fr(wireFrame{fin: true, op: 2, noBody: true, declared: -1, lenForm: 127}), code: 1002},
		{name: "RSV1 without an extension", frames: fr(wireFrame{fin: true, rsv: 4, op: 1, payload: []byte("hi")}), code: 1002},
		{name: "RSV2", frames: fr(wireFrame{fin: true, rsv: 2, op: 1, payload: []byte("hi")}), code: 1002},
		{name: "RSV3", frames: fr(wireFrame{fin: true, rsv: 1, op: 2, payload: []byte("hi")}), code: 1002},
		{name: "RSV on a ping", frames: fr(wireFrame{fin: true, rsv: 2, op: 9}), code: 1002},
		{name: "ping over 125 bytes", frames: fr(wireFrame{fin: true, op: 9, payload: make([]byte, 126)}), code: 1002},
		{name: "close over 125 bytes", frames: fr(wireFrame{fin: true, op: 8, payload: append([]byte{3, 0xe8}, make([]byte, 124)...)}), code: 1002},
		{name: "fragmented ping", frames: fr(wireFrame{op: 9, payload: []byte("a")}, wireFrame{fin: true, op: 0, payload: []byte("b")}), code: 1002},
		{name: "fragmented close", frames: fr(wireFrame{op: 8, payload: []byte{3, 0xe8}}), code: 1002},
		{name: "continuation without a start", frames: fr(wireFrame{fin: true, op: 0, payload: []byte("x")}), code: 1002},
		{name: "text inside a fragmented binary", frames: fr(wireFrame{op: 2, payload: []byte("a")}, textFrame("b")), code: 1002},
		{name: "binary inside a fragmented text", frames: fr(wireFrame{op: 1, payload: []byte("a")}, binaryFrame([]byte("b"))), code: 1002},
		{name: "invalid UTF-8 text", frames: fr(textFrame("caf\xc3")), code: 1007},
		{name: "overlong UTF-8", frames: fr(textFrame("\xc0\xaf")), code: 1007},
		{name: "UTF-16 surrogate in text", frames: fr(textFrame("\xed\xa0\x80")), code: 1007},
		{name: "code point above U+10FFFF", frames: fr(textFrame("\xf4\x90\x80\x80")), code: 1007},
		{name: "invalid UTF-8 fails fast in the first fragment", frames: fr(wireFrame{op: 1, payload: []byte("ok \xff")}), code: 1007},
		{name: "surrogate prefix fails fast at the fragment's end", frames: fr(wireFrame{op: 1, payload: []byte("ok \xed\xa0")}), code: 1007},
		{name: "character broken across fragments", frames: fr(wireFrame{op: 1, payload: []byte("\xe2\x82")}, wireFrame{fin: true, op: 0, payload: []byte("A")}), code: 1007},
		{name: "above U+10FFFF across fragments", frames: fr(wireFrame{op: 1, payload: []byte("\xf4")}, wireFrame{fin: true, op: 0, payload: []byte("\x90\x80\x80")}), code: 1007},
		{name: "text ends inside a character", frames: fr(wireFrame{op: 1, payload: []byte("\xe2\x82")}, wireFrame{fin: true, op: 0, payload: nil}), code: 1007},
		{name: "message header over the limit", frames: fr(wireFrame{fin: true, op: 2, noBody: true, declared: maxMsg + 1}), code: 1009},
		{name: "fragments over the limit", frames: fr(wireFrame{op: 2, payload: make([]byte, maxMsg/2+1)}, wireFrame{fin: true, op: 0, payload: make([]byte, maxMsg/2)}), code: 1009},
		{name: "close with a 1-byte payload", frames: fr(wireFrame{fin: true, op: 8, payload: []byte{3}}), code: 1002},
		{name: "close reason not UTF-8", frames: fr(closeFrame(1000, "bye \xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80")), code: 1007},
		// permessage-deflate agreed (RFC 7692).
		{name: "deflate: RSV1 on a ping", deflate: true, frames: fr(wireFrame{fin: true, rsv: 4, op: 9}), code: 1002},
		{name: "deflate: RSV1 on a close", deflate: true, frames: fr(wireFrame{fin: true, rsv: 4, op: 8, payload: []byte{3, 0xe8}}), code: 1002},
		{name: "deflate: RSV1 on a continuation", deflate: true, frames: func(t testing.TB) []wireFrame {
			z := deflateRaw(t, []byte("hello hello hello"))
			return []wireFrame{{rsv: 4, op: 1, payload: z[:3]}, {fin: true, rsv: 4, op: 0, payload: z[3:]}}
		}, code: 1002},
		{name: "deflate: RSV2 on a data frame", deflate: true, frames: fr(wireFrame{fin: true, rsv: 6, op: 1, payload: []byte{1}}), code: 1002},
		{name: "deflate: corrupt data", deflate: true, frames: fr(wireFrame{fin: true, rsv: 4, op: 2, payload: []byte{0xff, 0xff, 0xff, 0xff, 0x01}}), code: 1007},
		{name: "deflate: bomb over the limit", deflate: true, frames: func(t testing.TB) []wireFrame {
			return []wireFrame{{fin: true, rsv: 4, op: 2, payload: deflateRaw(t, make([]byte, 4*maxMsg))}}
		}, code: 1009},
		{name: "deflate: invalid UTF-8 inside compressed text", deflate: true, frames: func(t testing.TB) []wireFrame {
			return []wireFrame{{fin: true, rsv: 4, op: 1, payload: deflateRaw(t, []byte("abc\xff"))}}
		}, code: 1007},
	}
	for op := byte(3); op <= 7; op++ {
		cases = append(cases, tc{name: fmt.Sprintf("reserved data opcode %#x", op), frames: fr(wireFrame{fin: true, op: op, payload: []byte("x")}), code: 1002})
	}
	for op := byte(0xb); op <= 0xf; op++ {
		cases = append(cases, tc{name: fmt.Sprintf("reserved control opcode %#x", op), frames: fr(wireFrame{fin: true, op: op}), code: 1002})
		cases = append(cases, tc{name: fmt.Sprintf("reserved control opcode %#x with payload, mid-message", op),
			frames: fr(wireFrame{op: 1, payload: []byte("a")}, wireFrame{fin: true, op: op, payload: []byte("p")}), code: 1002})
	}
	// Close codes that must never be on the wire (RFC 6455 §7.4.1, §7.4.2).
	for _, code := range []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, tc{name: fmt.Sprintf("close code %d", code), frames: fr(closeFrame(code, "")), code: 1002})
	}
	return cases
}

// TestWebSocketProtocolErrors sends what RFC 6455 §5–§7 forbid and checks the
// exact close code for each, in both shapes.
func TestWebSocketProtocolErrors(t *testing.T) {
	const maxMsg = protocolMaxMessage
	cases := protocolCases()
	wsShapes(t, WSConfig{MaxMessage: maxMsg, Compression: true}, func(t *testing.T, url func(string) string) {
		base := "http" + strings.TrimPrefix(url(""), "ws")
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ext := ""
				if c.deflate {
					ext = deflateOffer
				}
				conn := rawDial(t, base, "/ws", ext)
				conn.send(t, c.frames(t)...)
				conn.expectClose(t, c.code)
			})
		}
	})
}

// TestWebSocketProtocolAccepts is the other half: what the RFC allows gets
// through, byte by byte (so the error cases above cannot pass by refusing
// everything).
func TestWebSocketProtocolAccepts(t *testing.T) {
	wsShapes(t, WSConfig{MaxMessage: 64 << 10, Compression: true}, func(t *testing.T, url func(string) string) {
		base := "http" + strings.TrimPrefix(url(""), "ws")
		echoes := func(t *testing.T, ext string, send []wireFrame, want ...string) {
			t.Helper()
			conn := rawDial(t, base, "/ws", ext)
			conn.send(t, send...)
			// Read the answers before closing: once the host has the client's
			// close frame, the guest's late sends are refused.
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			var texts []string
			for range want {
				f, err := conn.readFrame()
				if err != nil {
					t.Fatalf("after %q: %v", texts, err)
				}
				p := f.payload
				if f.rsv&4 != 0 {
					r := flate.NewReader(io.MultiReader(bytes.NewReader(p), bytes.NewReader([]byte{0, 0, 0xff, 0xff})))
					p, _ = io.ReadAll(r)
				}
				texts = append(texts, fmt.Sprintf("%d:%s", f.op, p))
			}
			conn.send(t, closeFrame(1000, ""))
			if extra := conn.expectClose(t, 1000); len(extra) > 0 {
				t.Errorf("%d frames more than wanted", len(extra))
			}
			if strings.Join(texts, "|") != strings.Join(want, "|") {
				t.Fatalf("server sent %q, want %q", texts, want)
			}
		}
		t.Run("fragments with a ping between and a character split across them", func(t *testing.T) {
			echoes(t, "", []wireFrame{
				{op: 1, payload: []byte("price: \xe2\x82")},
				{fin: true, op: 9, payload: []byte("ping!")},
				{op: 0, payload: []byte("\xac")},
				{fin: true, op: 0, payload: []byte(" 5")},
			}, "10:ping!", "1:price: € 5")
		})
		t.Run("125-byte ping, empty messages, unsolicited pong", func(t *testing.T) {
			p := bytes.Repeat([]byte{'p'}, 125)
			echoes(t, "", []wireFrame{{fin: true, op: 9, payload: p}, textFrame(""), binaryFrame(nil), {fin: true, op: 10, payload: []byte("x")}},
				"10:"+string(p), "1:", "2:")
		})
		t.Run("lengths at the encoding boundaries", func(t *testing.T) {
			a, b := bytes.Repeat([]byte{'a'}, 125), bytes.Repeat([]byte{'b'}, 126)
			c := bytes.Repeat([]byte{'c'}, 65536)
			echoes(t, "", []wireFrame{binaryFrame(a), binaryFrame(b), binaryFrame(c)}, "2:"+string(a), "2:"+string(b), "2:"+string(c))
		})
		t.Run("compressed fragments", func(t *testing.T) {
			z := deflateRaw(t, []byte("héllo héllo héllo"))
			echoes(t, deflateOffer, []wireFrame{{rsv: 4, op: 1, payload: z[:2]}, {op: 0, payload: z[2:5]}, {fin: true, op: 0, payload: z[5:]}},
				"1:héllo héllo héllo")
		})
		for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
			t.Run(fmt.Sprintf("close code %d is echoed", code), func(t *testing.T) {
				conn := rawDial(t, base, "/ws", "")
				conn.send(t, closeFrame(code, "ça va"))
				conn.expectClose(t, int(code))
			})
		}
		t.Run("close without a code", func(t *testing.T) {
			conn := rawDial(t, base, "/ws", "")
			conn.send(t, wireFrame{fin: true, op: 8})
			conn.expectClose(t, 1000)
		})
	})
}
