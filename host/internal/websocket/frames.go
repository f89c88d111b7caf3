package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wasmsrv/wasmsrv/abi"
)

// wsDecoder reads and validates the frames a client sends (RFC 6455 §5, RFC 7692)
// and reassembles them into messages. It holds the state of the message being
// reassembled; one reader uses it at a time. It does no I/O beyond the reader it
// is given and touches no connection state, so the fuzz target drives it alone.
//
// What it refuses, and with which code (the first rule broken, in this order):
//
//   - a frame from the client without a mask, a length that is not in its
//     shortest form or has the most significant bit set: 1002;
//   - a control frame (opcode 0x8–0xF) with a reserved opcode (0xB–0xF), longer
//     than 125 bytes, fragmented, or with an RSV bit: 1002;
//   - a data frame with a reserved opcode (0x3–0x7), a continuation without a
//     message to continue, a new message inside a fragmented one, RSV2 or RSV3,
//     RSV1 without permessage-deflate or on a continuation frame: 1002;
//   - a message over maxMessage, before its payload is read (after
//     decompression, as it is inflated): 1009;
//   - compressed data that does not inflate: 1007;
//   - text that is not UTF-8, as soon as a fragment makes the message impossible
//     to complete as UTF-8 (compressed text: once inflated): 1007;
//   - a close frame with a 1-byte payload or a code that may not be sent (below
//     1000, 1004–1006, 1015–2999, 5000 and above): 1002; a close reason that is
//     not UTF-8: 1007.
type wsDecoder struct {
	frag     []byte
	utf8Done int // bytes of frag checked as whole UTF-8 characters (plain text)
	fragOp   ws.OpCode
	fragComp bool
	inMsg    bool
}

// wsFrame is what one call of wsDecoder.next produced.
type wsFrame struct {
	// op is OpText or OpBinary for a whole message in data, a control opcode
	// (its payload: ctl[:ctlLen] of next's ctl), or OpContinuation when a
	// fragment was taken and there is nothing to deliver yet.
	op ws.OpCode
	// fail, when not 0, is the code the connection fails with (1006: the socket
	// failed or ended mid-frame; no close frame is due), with reason.
	fail int32
	// code and reason are the client's close frame (op OpClose): 1005 when it
	// carried no code.
	code   int32
	ctlLen int32 // (an index, not a slice: ctl stays on the caller's stack)
	reason string
	data   []byte
}

func failFrame(code int32, reason string) wsFrame { return wsFrame{fail: code, reason: reason} }

// frameHeader is a frame's header as read.
type frameHeader struct {
	fin, masked bool
	rsv         byte
	op          ws.OpCode
	mask        [4]byte
	length      int64
}

// next reads one frame from br. Control payloads land in ctl. deflate says
// whether permessage-deflate was agreed.
func (d *wsDecoder) next(br *bufio.Reader, maxMessage int64, deflate bool, ctl *[125]byte) wsFrame {
	var h frameHeader
	if fail := d.header(br, &h); fail != 0 {
		if fail == abi.CloseAbnormal {
			return failFrame(fail, "")
		}
		return failFrame(fail, "bad frame length")
	}
	if !h.masked {
		return failFrame(abi.CloseProtocolError, "client frames must be masked")
	}
	if h.op.IsControl() {
		switch {
		case h.op != ws.OpClose && h.op != ws.OpPing && h.op != ws.OpPong:
			return failFrame(abi.CloseProtocolError, "reserved opcode")
		case h.length > 125 || !h.fin || h.rsv != 0:
			return failFrame(abi.CloseProtocolError, "bad control frame")
		}
		p := ctl[:h.length]
		if !peekFull(br, p) {
			return failFrame(abi.CloseAbnormal, "")
		}
		ws.Cipher(p, h.mask, 0)
		if h.op == ws.OpClose {
			code, reason, fail := parseClose(p)
			if fail != 0 {
				return failFrame(fail, reason)
			}
			return wsFrame{op: h.op, code: code, reason: reason}
		}
		return wsFrame{op: h.op, ctlLen: int32(len(p))}
	}
	switch h.op {
	case ws.OpContinuation:
		if !d.inMsg {
			return failFrame(abi.CloseProtocolError, "unexpected continuation frame")
		}
		if h.rsv != 0 {
			return failFrame(abi.CloseProtocolError, "reserved bits set")
		}
	case ws.OpText, ws.OpBinary:
		if d.inMsg {
			return failFrame(abi.CloseProtocolError, "new message inside a fragmented one")
		}
		comp := h.rsv == 0x4 && deflate
		if h.rsv != 0 && !comp {
			return failFrame(abi.CloseProtocolError, "reserved bits set")
		}
		d.inMsg, d.fragOp, d.fragComp, d.frag, d.utf8Done = true, h.op, comp, d.frag[:0], 0
	default:
		return failFrame(abi.CloseProtocolError, "reserved opcode")
	}
	if int64(len(d.frag))+h.length > maxMessage {
		return failFrame(abi.CloseTooBig, "message too big")
	}
	start := len(d.frag)
	d.frag = growLen(d.frag, start+int(h.length))
	if _, err := io.ReadFull(br, d.frag[start:]); err != nil {
		return failFrame(abi.CloseAbnormal, "")
	}
	ws.Cipher(d.frag[start:], h.mask, 0)
	if d.fragOp == ws.OpText && !d.fragComp {
		// Fail fast: a fragment that makes the text impossible to complete as
		// UTF-8 fails now, not when the message ends.
		ok, whole := utf8Prefix(d.frag[d.utf8Done:], h.fin)
		if !ok {
			return failFrame(abi.CloseInvalidData, "invalid UTF-8 in text message")
		}
		d.utf8Done += whole
	}
	if !h.fin {
		return wsFrame{op: ws.OpContinuation}
	}
	msg := d.frag
	d.frag, d.inMsg = nil, false
	if d.fragComp {
		var fail int32
		if msg, fail = inflateMessage(msg, maxMessage); fail != 0 {
			if fail == abi.CloseTooBig {
				return failFrame(fail, "message too big")
			}
			return failFrame(fail, "bad compressed data")
		}
		if d.fragOp == ws.OpText && !utf8.Valid(msg) {
			return failFrame(abi.CloseInvalidData, "invalid UTF-8 in text message")
		}
	}
	return wsFrame{op: d.fragOp, data: msg}
}

// header reads a frame header into h; it returns the code to fail with, or 0.
// Lengths must use their shortest form (RFC 6455 §5.2: "the minimal number of
// bytes MUST be used") and fit in 63 bits.
func (d *wsDecoder) header(br *bufio.Reader, h *frameHeader) (fail int32) {
	b, err := br.Peek(2)
	if err != nil {
		return abi.CloseAbnormal
	}
	h.fin, h.rsv, h.op = b[0]&0x80 != 0, (b[0]>>4)&0x7, ws.OpCode(b[0]&0xf)
	h.masked = b[1]&0x80 != 0
	h.length = int64(b[1] & 0x7f)
	n := 2
	switch h.length {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if h.masked {
		n += 4
	}
	if n > 2 {
		if b, err = br.Peek(n); err != nil {
			return abi.CloseAbnormal
		}
	}
	_, _ = br.Discard(n)
	b = b[2:]
	switch h.length {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b))
		b = b[2:]
		if h.length < 126 {
			return abi.CloseProtocolError
		}
	case 127:
		u := binary.BigEndian.Uint64(b)
		b = b[8:]
		if u>>63 != 0 || u <= 0xffff {
			return abi.CloseProtocolError
		}
		h.length = int64(u)
	}
	if h.masked {
		copy(h.mask[:], b)
	}
	return 0
}

// peekFull fills p from br, through Peek and not Read: Read may hand p to the
// reader underneath, an interface, which would move the caller's buffer (a
// control payload on its stack) to the heap for every frame.
func peekFull(br *bufio.Reader, p []byte) bool {
	for len(p) > 0 {
		b, err := br.Peek(min(len(p), br.Size()))
		n := copy(p, b)
		_, _ = br.Discard(n)
		p = p[n:]
		if err != nil && len(p) > 0 {
			return false
		}
	}
	return true
}

// utf8Prefix reports whether p is valid UTF-8 — or, when more fragments follow
// (!final), whether it can still become valid: its end may be the first bytes of
// a character. whole is the length of p's complete characters, which need no
// second look.
func utf8Prefix(p []byte, final bool) (ok bool, whole int) {
	whole = len(p)
	if !final {
		// A character is at most 4 bytes: an unfinished one starts in the last 3.
		for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
			if utf8.RuneStart(p[i]) {
				if !utf8.FullRune(p[i:]) {
					whole = i // a valid beginning of a character (FullRune's contract)
				}
				break
			}
		}
	}
	return utf8.Valid(p[:whole]), whole
}

// parseClose reads a close frame's payload: 1005 without a code; fail is the
// code to fail the connection with when the payload breaks RFC 6455 §5.5.1/§7.4.
func parseClose(p []byte) (code int32, reason string, fail int32) {
	switch {
	case len(p) == 0:
		return abi.CloseNoStatus, "", 0
	case len(p) == 1:
		return 0, "bad close frame", abi.CloseProtocolError
	}
	code = int32(binary.BigEndian.Uint16(p))
	if !sendableCloseCode(code) {
		return 0, "bad close code", abi.CloseProtocolError
	}
	if !utf8.Valid(p[2:]) {
		return 0, "invalid UTF-8 in close reason", abi.CloseInvalidData
	}
	return code, string(p[2:]), 0
}

// sendableCloseCode reports whether code may appear in a close frame: the codes
// RFC 6455 §7.4.1 defines for use on the wire, those IANA registered since
// (1012 service restart, 1013 try again later, 1014 bad gateway), and the
// ranges for libraries (3000–3999) and applications (4000–4999). 1004 is
// reserved; 1005, 1006 and 1015 only report what happened locally.
func sendableCloseCode(code int32) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

func growLen(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

// inflateTail ends a permessage-deflate message for the inflater: RFC 7692
// §7.2.2's 00 00 ff ff, then an empty final block so the stream ends cleanly.
var inflateTail = [...]byte{0, 0, 0xff, 0xff, 1, 0, 0, 0xff, 0xff}

// inflateMessage decompresses a permessage-deflate message, bounded by
// maxMessage. p's spare capacity may be used. (Not through wsflate's reader:
// when the inflater reads it byte by byte, its suffix reader inserts a 0 byte
// between the message and the tail, which moves the point where corrupt data
// fails, and with it the close code; found by FuzzWSFrames.)
func inflateMessage(p []byte, maxMessage int64) ([]byte, int32) {
	p = append(p, inflateTail[:]...)
	fr := flate.NewReader(bytes.NewReader(p))
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(fr, maxMessage+1))
	_ = fr.Close()
	if n > maxMessage {
		return nil, abi.CloseTooBig
	}
	if err != nil {
		return nil, abi.CloseInvalidData
	}
	return out.Bytes(), 0
}
