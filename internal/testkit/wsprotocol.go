package testkit

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"testing"
)

func WSText(s string) WSFrame   { return WSFrame{Fin: true, Op: 0x1, Payload: []byte(s)} }
func WSBinary(p []byte) WSFrame { return WSFrame{Fin: true, Op: 0x2, Payload: p} }
func WSClose(code uint16, reason string) WSFrame {
	return WSFrame{Fin: true, Op: 0x8, Payload: append(binary.BigEndian.AppendUint16(nil, code), reason...)}
}

// WSDeflate compresses p as one permessage-deflate message (RFC 7692 §7.2.1:
// the trailing empty block's 00 00 ff ff removed).
func WSDeflate(t testing.TB, p []byte) []byte {
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

// WSProtocolCase is a client's violation of RFC 6455 (or RFC 7692) and the close
// code it must get.
type WSProtocolCase struct {
	Name    string
	Deflate bool // permessage-deflate agreed
	Frames  func(t testing.TB) []WSFrame
	Code    int
}

// WSProtocolMaxMessage is the message limit the protocol cases run under.
const WSProtocolMaxMessage = 64 << 10

// WSProtocolCases are the violations the host's raw-socket protocol test sends,
// and the frame decoder's tests and fuzz target start from.
func WSProtocolCases() []WSProtocolCase {
	const maxMsg = WSProtocolMaxMessage
	type tc = WSProtocolCase
	fr := func(fs ...WSFrame) func(testing.TB) []WSFrame {
		return func(testing.TB) []WSFrame { return fs }
	}
	cases := []tc{
		{Name: "unmasked client frame", Frames: fr(WSFrame{Fin: true, Op: 1, Payload: []byte("hi"), Unmasked: true}), Code: 1002},
		{Name: "length not in shortest form (126)", Frames: fr(WSFrame{Fin: true, Op: 1, Payload: []byte("hi"), LenForm: 126}), Code: 1002},
		{Name: "length not in shortest form (127)", Frames: fr(WSFrame{Fin: true, Op: 2, Payload: make([]byte, 300), LenForm: 127}), Code: 1002},
		{Name: "length with the top bit set", Frames: fr(WSFrame{Fin: true, Op: 2, NoBody: true, Declared: -1, LenForm: 127}), Code: 1002},
		{Name: "RSV1 without an extension", Frames: fr(WSFrame{Fin: true, RSV: 4, Op: 1, Payload: []byte("hi")}), Code: 1002},
		{Name: "RSV2", Frames: fr(WSFrame{Fin: true, RSV: 2, Op: 1, Payload: []byte("hi")}), Code: 1002},
		{Name: "RSV3", Frames: fr(WSFrame{Fin: true, RSV: 1, Op: 2, Payload: []byte("hi")}), Code: 1002},
		{Name: "RSV on a ping", Frames: fr(WSFrame{Fin: true, RSV: 2, Op: 9}), Code: 1002},
		{Name: "ping over 125 bytes", Frames: fr(WSFrame{Fin: true, Op: 9, Payload: make([]byte, 126)}), Code: 1002},
		{Name: "close over 125 bytes", Frames: fr(WSFrame{Fin: true, Op: 8, Payload: append([]byte{3, 0xe8}, make([]byte, 124)...)}), Code: 1002},
		{Name: "fragmented ping", Frames: fr(WSFrame{Op: 9, Payload: []byte("a")}, WSFrame{Fin: true, Op: 0, Payload: []byte("b")}), Code: 1002},
		{Name: "fragmented close", Frames: fr(WSFrame{Op: 8, Payload: []byte{3, 0xe8}}), Code: 1002},
		{Name: "continuation without a start", Frames: fr(WSFrame{Fin: true, Op: 0, Payload: []byte("x")}), Code: 1002},
		{Name: "text inside a fragmented binary", Frames: fr(WSFrame{Op: 2, Payload: []byte("a")}, WSText("b")), Code: 1002},
		{Name: "binary inside a fragmented text", Frames: fr(WSFrame{Op: 1, Payload: []byte("a")}, WSBinary([]byte("b"))), Code: 1002},
		{Name: "invalid UTF-8 text", Frames: fr(WSText("caf\xc3")), Code: 1007},
		{Name: "overlong UTF-8", Frames: fr(WSText("\xc0\xaf")), Code: 1007},
		{Name: "UTF-16 surrogate in text", Frames: fr(WSText("\xed\xa0\x80")), Code: 1007},
		{Name: "code point above U+10FFFF", Frames: fr(WSText("\xf4\x90\x80\x80")), Code: 1007},
		{Name: "invalid UTF-8 fails fast in the first fragment", Frames: fr(WSFrame{Op: 1, Payload: []byte("ok \xff")}), Code: 1007},
		{Name: "surrogate prefix fails fast at the fragment's end", Frames: fr(WSFrame{Op: 1, Payload: []byte("ok \xed\xa0")}), Code: 1007},
		{Name: "character broken across fragments", Frames: fr(WSFrame{Op: 1, Payload: []byte("\xe2\x82")}, WSFrame{Fin: true, Op: 0, Payload: []byte("A")}), Code: 1007},
		{Name: "above U+10FFFF across fragments", Frames: fr(WSFrame{Op: 1, Payload: []byte("\xf4")}, WSFrame{Fin: true, Op: 0, Payload: []byte("\x90\x80\x80")}), Code: 1007},
		{Name: "text ends inside a character", Frames: fr(WSFrame{Op: 1, Payload: []byte("\xe2\x82")}, WSFrame{Fin: true, Op: 0, Payload: nil}), Code: 1007},
		{Name: "message header over the limit", Frames: fr(WSFrame{Fin: true, Op: 2, NoBody: true, Declared: maxMsg + 1}), Code: 1009},
		{Name: "fragments over the limit", Frames: fr(WSFrame{Op: 2, Payload: make([]byte, maxMsg/2+1)}, WSFrame{Fin: true, Op: 0, Payload: make([]byte, maxMsg/2)}), Code: 1009},
		{Name: "close with a 1-byte payload", Frames: fr(WSFrame{Fin: true, Op: 8, Payload: []byte{3}}), Code: 1002},
		{Name: "close reason not UTF-8", Frames: fr(WSClose(1000, "bye \xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80")), Code: 1007},
		// permessage-deflate agreed (RFC 7692).
		{Name: "deflate: RSV1 on a ping", Deflate: true, Frames: fr(WSFrame{Fin: true, RSV: 4, Op: 9}), Code: 1002},
		{Name: "deflate: RSV1 on a close", Deflate: true, Frames: fr(WSFrame{Fin: true, RSV: 4, Op: 8, Payload: []byte{3, 0xe8}}), Code: 1002},
		{Name: "deflate: RSV1 on a continuation", Deflate: true, Frames: func(t testing.TB) []WSFrame {
			z := WSDeflate(t, []byte("hello hello hello"))
			return []WSFrame{{RSV: 4, Op: 1, Payload: z[:3]}, {Fin: true, RSV: 4, Op: 0, Payload: z[3:]}}
		}, Code: 1002},
		{Name: "deflate: RSV2 on a data frame", Deflate: true, Frames: fr(WSFrame{Fin: true, RSV: 6, Op: 1, Payload: []byte{1}}), Code: 1002},
		{Name: "deflate: corrupt data", Deflate: true, Frames: fr(WSFrame{Fin: true, RSV: 4, Op: 2, Payload: []byte{0xff, 0xff, 0xff, 0xff, 0x01}}), Code: 1007},
		{Name: "deflate: bomb over the limit", Deflate: true, Frames: func(t testing.TB) []WSFrame {
			return []WSFrame{{Fin: true, RSV: 4, Op: 2, Payload: WSDeflate(t, make([]byte, 4*maxMsg))}}
		}, Code: 1009},
		{Name: "deflate: invalid UTF-8 inside compressed text", Deflate: true, Frames: func(t testing.TB) []WSFrame {
			return []WSFrame{{Fin: true, RSV: 4, Op: 1, Payload: WSDeflate(t, []byte("abc\xff"))}}
		}, Code: 1007},
	}
	for op := byte(3); op <= 7; op++ {
		cases = append(cases, tc{Name: fmt.Sprintf("reserved data opcode %#x", op), Frames: fr(WSFrame{Fin: true, Op: op, Payload: []byte("x")}), Code: 1002})
	}
	for op := byte(0xb); op <= 0xf; op++ {
		cases = append(cases, tc{Name: fmt.Sprintf("reserved control opcode %#x", op), Frames: fr(WSFrame{Fin: true, Op: op}), Code: 1002})
		cases = append(cases, tc{Name: fmt.Sprintf("reserved control opcode %#x with payload, mid-message", op),
			Frames: fr(WSFrame{Op: 1, Payload: []byte("a")}, WSFrame{Fin: true, Op: op, Payload: []byte("p")}), Code: 1002})
	}
	// Close codes that must never be on the wire (RFC 6455 §7.4.1, §7.4.2).
	for _, code := range []uint16{0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, tc{Name: fmt.Sprintf("close code %d", code), Frames: fr(WSClose(code, "")), Code: 1002})
	}
	return cases
}
