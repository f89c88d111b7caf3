package abi

import "encoding/binary"

// AppendHeaderBlock appends a header block (u32 count, then name/value pairs) to dst.
func AppendHeaderBlock(dst []byte, hs []Header) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(hs)))
	for _, h := range hs {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h.Name)))
		dst = append(dst, h.Name...)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(h.Value)))
		dst = append(dst, h.Value...)
	}
	return dst
}

// DecodeHeaderBlock parses a header block. Names and values alias s. out is appended to.
func DecodeHeaderBlock(s string, out []Header) ([]Header, error) {
	if len(s) < 4 {
		return out, ErrMalformed
	}
	err := decodePairs(s, 4, le32(s), &out)
	return out, err
}

// WalkHeaderBlock calls fn for each pair of a header block held in b, without
// allocating. The byte slices alias b. It stops at the first error.
func WalkHeaderBlock(b []byte, fn func(name, value []byte) error) error {
	if len(b) < 4 {
		return ErrMalformed
	}
	n := binary.LittleEndian.Uint32(b)
	if uint64(n)*8 > uint64(len(b)-4) {
		return ErrMalformed
	}
	off := 4
	for i := uint32(0); i < n; i++ {
		name, next, ok := lbytes(b, off)
		if !ok {
			return ErrMalformed
		}
		val, next2, ok := lbytes(b, next)
		if !ok {
			return ErrMalformed
		}
		if err := fn(name, val); err != nil {
			return err
		}
		off = next2
	}
	if off != len(b) {
		return ErrMalformed
	}
	return nil
}

func lbytes(b []byte, off int) ([]byte, int, bool) {
	if off+4 > len(b) {
		return nil, 0, false
	}
	n := int(binary.LittleEndian.Uint32(b[off:]))
	off += 4
	if n < 0 || n > len(b)-off {
		return nil, 0, false
	}
	return b[off : off+n], off + n, true
}
