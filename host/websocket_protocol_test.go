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

	"github.com/wasmsrv/wasmsrv/internal/testkit"
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

// wireFrame is one client frame as it goes on the wire.
type wireFrame = testkit.WSFrame

// send writes frames; small ones a byte at a time, so the server's reader sees
// every split a slow network can make.
func (c *rawWS) send(t *testing.T, frames ...wireFrame) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for _, f := range frames {
		b := f.Bytes()
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

const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// TestWebSocketProtocolErrors sends what RFC 6455 §5–§7 forbid and checks the
// exact close code for each, in both shapes.
func TestWebSocketProtocolErrors(t *testing.T) {
	const maxMsg = testkit.WSProtocolMaxMessage
	cases := testkit.WSProtocolCases()
	wsShapes(t, WSConfig{MaxMessage: maxMsg, Compression: true}, func(t *testing.T, url func(string) string) {
		base := "http" + strings.TrimPrefix(url(""), "ws")
		for _, c := range cases {
			t.Run(c.Name, func(t *testing.T) {
				ext := ""
				if c.Deflate {
					ext = deflateOffer
				}
				conn := rawDial(t, base, "/ws", ext)
				conn.send(t, c.Frames(t)...)
				conn.expectClose(t, c.Code)
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
			conn.send(t, testkit.WSClose(1000, ""))
			if extra := conn.expectClose(t, 1000); len(extra) > 0 {
				t.Errorf("%d frames more than wanted", len(extra))
			}
			if strings.Join(texts, "|") != strings.Join(want, "|") {
				t.Fatalf("server sent %q, want %q", texts, want)
			}
		}
		t.Run("fragments with a ping between and a character split across them", func(t *testing.T) {
			echoes(t, "", []wireFrame{
				{Op: 1, Payload: []byte("price: \xe2\x82")},
				{Fin: true, Op: 9, Payload: []byte("ping!")},
				{Op: 0, Payload: []byte("\xac")},
				{Fin: true, Op: 0, Payload: []byte(" 5")},
			}, "10:ping!", "1:price: € 5")
		})
		t.Run("125-byte ping, empty messages, unsolicited pong", func(t *testing.T) {
			p := bytes.Repeat([]byte{'p'}, 125)
			echoes(t, "", []wireFrame{{Fin: true, Op: 9, Payload: p}, testkit.WSText(""), testkit.WSBinary(nil), {Fin: true, Op: 10, Payload: []byte("x")}},
				"10:"+string(p), "1:", "2:")
		})
		t.Run("lengths at the encoding boundaries", func(t *testing.T) {
			a, b := bytes.Repeat([]byte{'a'}, 125), bytes.Repeat([]byte{'b'}, 126)
			c := bytes.Repeat([]byte{'c'}, 65536)
			echoes(t, "", []wireFrame{testkit.WSBinary(a), testkit.WSBinary(b), testkit.WSBinary(c)}, "2:"+string(a), "2:"+string(b), "2:"+string(c))
		})
		t.Run("compressed fragments", func(t *testing.T) {
			z := testkit.WSDeflate(t, []byte("héllo héllo héllo"))
			echoes(t, deflateOffer, []wireFrame{{RSV: 4, Op: 1, Payload: z[:2]}, {Op: 0, Payload: z[2:5]}, {Fin: true, Op: 0, Payload: z[5:]}},
				"1:héllo héllo héllo")
		})
		for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
			t.Run(fmt.Sprintf("close code %d is echoed", code), func(t *testing.T) {
				conn := rawDial(t, base, "/ws", "")
				conn.send(t, testkit.WSClose(code, "ça va"))
				conn.expectClose(t, int(code))
			})
		}
		t.Run("close without a code", func(t *testing.T) {
			conn := rawDial(t, base, "/ws", "")
			conn.send(t, wireFrame{Fin: true, Op: 8})
			conn.expectClose(t, 1000)
		})
	})
}
