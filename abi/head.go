package abi

import (
	"encoding/binary"
	"errors"
)

// Field indexes of the string fields in the request head, in wire order.
const (
	FieldMethod = iota
	FieldScheme
	FieldPath
	FieldQuery
	FieldRootPath
	FieldAuthority
	FieldRemoteAddr
	FieldLocalAddr
	FieldRequestID
	NumFields
)

// headFixed is the size of the fixed part of the request head.
const headFixed = 24

// ErrMalformed reports a head or header block that does not follow the spec.
var ErrMalformed = errors.New("abi: malformed block")

// Header is one header field. Name and Value are raw bytes as strings.
type Header struct {
	Name, Value string
}

// Head is a decoded request head. Strings may alias the decoded buffer's string.
type Head struct {
	Kind          uint8
	ProtoMajor    uint8
	ProtoMinor    uint8
	Flags         uint32
	ContentLength int64
	Fields        [NumFields]string
	Headers       []Header
}

// HeadEncoder builds a request head into a reusable buffer without allocating once the
// buffer has grown to its working size. Call Reset, the setters, then Bytes.
type HeadEncoder struct {
	buf     []byte
	nfields uint32
	nhdrs   uint32
}

// Reset starts a new head.
func (e *HeadEncoder) Reset(kind, major, minor uint8, flags uint32, contentLength int64) {
	if cap(e.buf) < 512 {
		e.buf = make([]byte, 0, 512)
	}
	b := e.buf[:headFixed]
	b[0] = HeadFormat
	b[1] = kind
	b[2] = major
	b[3] = minor
	binary.LittleEndian.PutUint32(b[4:], flags)
	binary.LittleEndian.PutUint64(b[8:], uint64(contentLength))
	e.buf = b
	e.nfields, e.nhdrs = 0, 0
}

// Field appends the next string field; fields must come in wire order.
func (e *HeadEncoder) Field(s string) {
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(s)))
	e.buf = append(e.buf, s...)
	e.nfields++
}

// Header appends one header. The name is lower-cased on the way in (ASCII only), so
// canonical Go header names need no allocation.
func (e *HeadEncoder) Header(name, value string) {
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(name)))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		e.buf = append(e.buf, c)
	}
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(value)))
	e.buf = append(e.buf, value...)
	e.nhdrs++
}

// Bytes finishes the head and returns it. The slice is valid until the next Reset.
func (e *HeadEncoder) Bytes() []byte {
	binary.LittleEndian.PutUint32(e.buf[16:], e.nfields)
	binary.LittleEndian.PutUint32(e.buf[20:], e.nhdrs)
	return e.buf
}

// DecodeHead parses a request head. Strings alias s, so converting the guest buffer to
// one string once gives every field and header without further allocation. hdrs is
// reused for the headers when it has the capacity.
func DecodeHead(s string, h *Head) error {
	if len(s) < headFixed || s[0] != HeadFormat {
		return ErrMalformed
	}
	h.Kind, h.ProtoMajor, h.ProtoMinor = s[1], s[2], s[3]
	h.Flags = le32(s[4:])
	h.ContentLength = int64(le64(s[8:]))
	nf, nh := le32(s[16:]), le32(s[20:])
	off := headFixed
	h.Fields = [NumFields]string{}
	for i := uint32(0); i < nf; i++ {
		v, next, ok := lstr(s, off)
		if !ok {
			return ErrMalformed
		}
		if i < NumFields {
			h.Fields[i] = v
		}
		off = next
	}
	h.Headers = h.Headers[:0]
	if uint64(cap(h.Headers)) < uint64(nh) && uint64(nh)*8 <= uint64(len(s)-off) {
		// Exactly the room needed, once: a request's headers live as long as it
		// does (a WebSocket's for the whole connection), so no slack from doubling.
		h.Headers = make([]Header, 0, nh)
	}
	return decodePairs(s, off, nh, &h.Headers)
}

func decodePairs(s string, off int, n uint32, out *[]Header) error {
	// Each pair needs at least 8 bytes: refuse counts the input cannot hold before
	// growing anything from a peer-controlled number.
	if uint64(n)*8 > uint64(len(s)-off) {
		return ErrMalformed
	}
	for i := uint32(0); i < n; i++ {
		name, next, ok := lstr(s, off)
		if !ok {
			return ErrMalformed
		}
		val, next2, ok := lstr(s, next)
		if !ok {
			return ErrMalformed
		}
		*out = append(*out, Header{name, val})
		off = next2
	}
	if off != len(s) {
		return ErrMalformed
	}
	return nil
}

func le32(s string) uint32 {
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func le64(s string) uint64 {
	return uint64(le32(s)) | uint64(le32(s[4:]))<<32
}

// lstr reads a u32-length-prefixed string at off.
func lstr(s string, off int) (string, int, bool) {
	if off+4 > len(s) {
		return "", 0, false
	}
	n := int(le32(s[off:]))
	off += 4
	if n < 0 || n > len(s)-off {
		return "", 0, false
	}
	return s[off : off+n], off + n, true
}

// FieldBytes is Field for a byte slice.
func (e *HeadEncoder) FieldBytes(b []byte) {
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(b)))
	e.buf = append(e.buf, b...)
	e.nfields++
}
