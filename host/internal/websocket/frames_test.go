package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/wasmsrv/wasmsrv/internal/testkit"

	"github.com/gobwas/ws"

	"github.com/wasmsrv/wasmsrv/abi"
)

// decodeAll runs the host's frame reader over in the way a connection does,
// and describes what came out, one event per line: whole messages, control
// frames and the final verdict (a close frame, or the code the connection
// fails with; 1006 when the input ends).
func decodeAll(in []byte, deflate bool, maxMessage int64) []string {
	var d wsDecoder
	br := bufio.NewReaderSize(bytes.NewReader(in), 16)
	var ctl [125]byte
	var ev []string
	for {
		f := d.next(br, maxMessage, deflate, &ctl)
		switch {
		case f.fail != 0:
			return append(ev, fmt.Sprintf("fail %d", f.fail))
		case f.op == ws.OpContinuation:
		case f.op == ws.OpClose:
			return append(ev, fmt.Sprintf("close %d %q", f.code, f.reason))
		case f.op == ws.OpPing || f.op == ws.OpPong:
			ev = append(ev, fmt.Sprintf("control %d %q", f.op, ctl[:f.ctlLen]))
		default:
			ev = append(ev, fmt.Sprintf("message %d %q", f.op, f.data))
		}
	}
}

// refDecode is the reference the fuzz target holds the host to: RFC 6455 §5
// and RFC 7692 read from the text, written for plainness, sharing no code with
// the host. The order of the checks is the one the host documents (wsDecoder);
// the RFC does not rank one violation above another.
func refDecode(in []byte, deflate bool, maxMessage int64) []string {
	var ev []string
	fail := func(code int) []string { return append(ev, fmt.Sprintf("fail %d", code)) }
	take := func(n uint64) ([]byte, bool) {
		if uint64(len(in)) < n {
			return nil, false
		}
		b := in[:n]
		in = in[n:]
		return b, true
	}
	var msg []byte
	var msgOp byte
	inMsg, compressed := false, false
	for {
		h, ok := take(2)
		if !ok {
			return fail(1006)
		}
		fin := h[0]&0x80 != 0
		rsv1, rsv2, rsv3 := h[0]&0x40 != 0, h[0]&0x20 != 0, h[0]&0x10 != 0
		op := h[0] & 0x0f
		masked := h[1]&0x80 != 0
		n := uint64(h[1] & 0x7f)
		shortest := true
		switch n {
		case 126:
			b, ok := take(2)
			if !ok {
				return fail(1006)
			}
			n = uint64(b[0])<<8 | uint64(b[1])
			shortest = n >= 126
		case 127:
			b, ok := take(8)
			if !ok {
				return fail(1006)
			}
			n = 0
			for _, c := range b {
				n = n<<8 | uint64(c)
			}
			shortest = n >= 1<<16 && n < 1<<63
		}
		var key []byte
		if masked {
			if key, ok = take(4); !ok {
				return fail(1006)
			}
		}
		if !shortest || !masked {
			return fail(1002)
		}
		payload := func() ([]byte, bool) {
			p, ok := take(n)
			if !ok {
				return nil, false
			}
			out := make([]byte, len(p))
			for i := range p {
				out[i] = p[i] ^ key[i%4]
			}
			return out, true
		}
		if op >= 8 { // control
			if op > 10 || n > 125 || !fin || rsv1 || rsv2 || rsv3 {
				return fail(1002)
			}
			p, ok := payload()
			if !ok {
				return fail(1006)
			}
			switch op {
			case 9, 10:
				ev = append(ev, fmt.Sprintf("control %d %q", op, p))
				continue
			}
			if len(p) == 0 {
				return append(ev, fmt.Sprintf("close %d %q", 1005, ""))
			}
			if len(p) == 1 {
				return fail(1002)
			}
			code := int(p[0])<<8 | int(p[1])
			allowed := map[int]bool{1000: true, 1001: true, 1002: true, 1003: true, 1007: true, 1008: true,
				1009: true, 1010: true, 1011: true, 1012: true, 1013: true, 1014: true}
			if !allowed[code] && (code < 3000 || code > 4999) {
				return fail(1002)
			}
			if !utf8.Valid(p[2:]) {
				return fail(1007)
			}
			return append(ev, fmt.Sprintf("close %d %q", code, p[2:]))
		}
		switch op {
		case 0:
			if !inMsg || rsv1 || rsv2 || rsv3 {
				return fail(1002)
			}
		case 1, 2:
			if inMsg || rsv2 || rsv3 || (rsv1 && !deflate) {
				return fail(1002)
			}
			inMsg, compressed, msgOp, msg = true, rsv1, op, nil
		default:
			return fail(1002)
		}
		if uint64(len(msg))+n > uint64(maxMessage) {
			return fail(1009)
		}
		p, ok := payload()
		if !ok {
			return fail(1006)
		}
		msg = append(msg, p...)
		if msgOp == 1 && !compressed && !couldBeUTF8(msg, fin) {
			return fail(1007)
		}
		if !fin {
			continue
		}
		inMsg = false
		if compressed {
			// RFC 7692 §7.2.2: append 00 00 ff ff and inflate; a final empty
			// stored block (01 00 00 ff ff) ends the stream for the inflater.
			src := io.MultiReader(bytes.NewReader(msg), bytes.NewReader([]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}))
			out, err := io.ReadAll(io.LimitReader(flate.NewReader(src), maxMessage+1))
			if int64(len(out)) > maxMessage {
				return fail(1009)
			}
			if err != nil {
				return fail(1007)
			}
			msg = out
			if msgOp == 1 && !utf8.Valid(msg) {
				return fail(1007)
			}
		}
		if msg == nil {
			msg = []byte{}
		}
		ev = append(ev, fmt.Sprintf("message %d %q", msgOp, msg))
	}
}

// couldBeUTF8 reports whether p is UTF-8, or (more to come) the beginning of
// some UTF-8 text: decoding stops only at a last character left unfinished.
func couldBeUTF8(p []byte, final bool) bool {
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRune(p[i:])
		if r == utf8.RuneError && size <= 1 {
			return !final && !utf8.FullRune(p[i:])
		}
		i += size
	}
	return true
}

// maskedFrame builds one client frame for the seeds.
func maskedFrame(b0 byte, payload []byte) []byte {
	return testkit.WSFrame{Fin: b0&0x80 != 0, RSV: (b0 >> 4) & 7, Op: b0 & 0xf, Payload: payload}.Bytes()
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// FuzzWSFrames feeds arbitrary bytes to the frame reader: it must never panic,
// and what it delivers and how it ends must be what the reference makes of
// the same bytes (so it never accepts what the RFC forbids, nor refuses what
// it allows). Seeds: testdata/fuzz/FuzzWSFrames and the cases below.
func FuzzWSFrames(f *testing.F) {
	euro := []byte("€")
	z := func(p []byte) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestSpeed)
		w.Write(p)
		w.Flush()
		return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
	seeds := [][]byte{
		maskedFrame(0x81, []byte("hello")),
		cat(maskedFrame(0x01, []byte("a")), maskedFrame(0x89, []byte("ping")), maskedFrame(0x80, []byte("b"))),
		cat(maskedFrame(0x01, euro[:2]), maskedFrame(0x80, euro[2:])),
		maskedFrame(0x8b, nil),
		maskedFrame(0x83, []byte("x")),
		maskedFrame(0x88, []byte{0x03, 0xe8, 0xff}),
		maskedFrame(0x88, []byte{0x03, 0xed}),
		maskedFrame(0xc1, z([]byte("compressed text"))),
		cat(maskedFrame(0x41, z([]byte("frag"))[:2]), maskedFrame(0x80, z([]byte("frag"))[2:])),
		maskedFrame(0xc2, z(make([]byte, 5000))),
		testkit.WSFrame{Fin: true, Op: 2, Payload: make([]byte, 200), LenForm: 127}.Bytes(),
		{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'},
	}
	for _, s := range seeds {
		f.Add(s, true, uint16(4096))
		f.Add(s, false, uint16(100))
	}
	for _, c := range testkit.WSProtocolCases() {
		var b []byte
		for _, fr := range c.Frames(f) {
			b = append(b, fr.Bytes()...)
		}
		f.Add(b, c.Deflate, uint16(testkit.WSProtocolMaxMessage-1))
	}
	f.Fuzz(func(t *testing.T, in []byte, deflate bool, limit uint16) {
		maxMessage := int64(limit) + 1
		got := decodeAll(in, deflate, maxMessage)
		want := refDecode(in, deflate, maxMessage)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("input %x (deflate %v, limit %d):\nhost:      %q\nreference: %q", in, deflate, maxMessage, got, want)
		}
	})
}

func TestUTF8Prefix(t *testing.T) {
	for _, c := range []struct {
		in      string
		final   bool
		ok      bool
		whole   int
		comment string
	}{
		{"abc", true, true, 3, "ASCII"},
		{"caf\xc3\xa9", false, true, 5, "whole"},
		{"caf\xc3", false, true, 3, "unfinished 2-byte character"},
		{"caf\xc3", true, false, 4, "unfinished at the end of the message"},
		{"\xe2\x82", false, true, 0, "unfinished euro sign"},
		{"\xf0\x9f\x98", false, true, 0, "unfinished emoji"},
		{"\xed\xa0", false, false, 2, "surrogate: cannot be finished"},
		{"\xf4\x90", false, false, 2, "above U+10FFFF"},
		{"\xc0", false, false, 1, "overlong lead"},
		{"\x80", false, false, 1, "stray continuation"},
		{"ab\x80\x80\x80\x80", false, false, 6, "run of continuations"},
		{"\xff", false, false, 1, "never UTF-8"},
	} {
		ok, whole := utf8Prefix([]byte(c.in), c.final)
		if ok != c.ok || (ok && whole != c.whole) {
			t.Errorf("%s: utf8Prefix(%q, %v) = %v, %d; want %v, %d", c.comment, c.in, c.final, ok, whole, c.ok, c.whole)
		}
		if ref := couldBeUTF8([]byte(c.in), c.final); ref != c.ok {
			t.Errorf("%s: the reference says %v", c.comment, ref)
		}
	}
}

// TestFrameEnd: the slow-reader close finishes the frame it cut; frameEnd
// finds its end in a batch of frames the host wrote.
func TestFrameEnd(t *testing.T) {
	c := &Conn{hub: NewHub(Config{}, nil)}
	sizes := []int{0, 5, 125, 126, 1000, 65535, 65536, 70000}
	var ends []int
	c.mu.Lock()
	for _, n := range sizes {
		c.queueFrameLocked(ws.OpBinary, 0, make([]byte, n))
		ends = append(ends, len(*c.out))
	}
	c.queueCloseLocked(abi.CloseTryAgainLater, "bye")
	ends = append(ends, len(*c.out))
	p := *c.out
	c.mu.Unlock()
	start := 0
	for _, end := range ends {
		if got := frameEnd(p, start); got != start {
			t.Errorf("frameEnd at the start of a frame (%d) = %d", start, got)
		}
		for _, off := range []int{start + 1, (start + end) / 2, end - 1} {
			if off <= start || off >= end {
				continue
			}
			if got := frameEnd(p, off); got != end {
				t.Errorf("frameEnd(%d) = %d, want %d (frame %d..%d)", off, got, end, start, end)
			}
		}
		start = end
	}
	if binary.BigEndian.Uint16(p[len(p)-5:]) != abi.CloseTryAgainLater {
		t.Errorf("close frame tail %x", p[len(p)-7:])
	}
}

func TestTruncUTF8(t *testing.T) {
	s := strings.Repeat("é", 70) // 140 bytes
	got := truncUTF8(s, 123)
	if len(got) != 122 || !utf8.ValidString(got) {
		t.Fatalf("truncUTF8: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

// TestDecoderProtocolCases: each raw-socket protocol case, given to the frame
// reader alone, ends with its close code, as the reference says too.
func TestDecoderProtocolCases(t *testing.T) {
	for _, c := range testkit.WSProtocolCases() {
		var b []byte
		for _, fr := range c.Frames(t) {
			b = append(b, fr.Bytes()...)
		}
		got := decodeAll(b, c.Deflate, testkit.WSProtocolMaxMessage)
		want := fmt.Sprintf("fail %d", c.Code)
		if got[len(got)-1] != want {
			t.Errorf("%s: %q, want %s", c.Name, got, want)
		}
		if ref := refDecode(b, c.Deflate, testkit.WSProtocolMaxMessage); strings.Join(ref, "|") != strings.Join(got, "|") {
			t.Errorf("%s: reference %q, host %q", c.Name, ref, got)
		}
	}
}
