// Package wasmdata merges a module's active data segments. Go's linker splits a
// guest's data at every run of eight zero bytes, so a Go guest carries ~26,000
// segments; wazero evaluates each segment's offset and keeps a per-segment table
// in every instance (about 630 KB of slice headers per Go instance, and most of
// the instantiation time). Merging segments that are close together, filling the
// small gaps with the zeros the memory holds anyway, leaves a few hundred.
//
// The rewrite is only done when it cannot be observed: every segment is active,
// targets memory 0 at an i32.const offset, segments do not overlap, and the module
// has no data count section (which memory.init and data.drop, the only
// instructions that name segments, require).
package wasmdata

import (
	"errors"
	"slices"
)

// maxGap is the largest run of zeros bridged between two segments.
const maxGap = 1024

var errSkip = errors.New("not mergeable")

type segment struct {
	off  uint32
	data []byte
}

// Merge returns bin with its data segments merged, or bin itself when the module
// does not qualify (see the package doc) or is malformed: validation is left to
// the compiler, which reports it properly.
func Merge(bin []byte) []byte {
	out, err := merge(bin)
	if err != nil {
		return bin
	}
	return out
}

func merge(bin []byte) ([]byte, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, errSkip
	}
	pos := 8
	dataStart, dataEnd := -1, -1
	for pos < len(bin) {
		id := bin[pos]
		size, n := uleb(bin[pos+1:])
		if n == 0 {
			return nil, errSkip
		}
		body := pos + 1 + n
		end := body + int(size)
		if end > len(bin) || end < body {
			return nil, errSkip
		}
		switch id {
		case 12: // data count: segments are addressable by index
			return nil, errSkip
		case 11:
			dataStart, dataEnd = pos, end
		}
		pos = end
	}
	if dataStart < 0 {
		return nil, errSkip
	}
	_, n := uleb(bin[dataStart+1:])
	segs, err := parseData(bin[dataStart+1+n : dataEnd])
	if err != nil || len(segs) < 2 {
		return nil, errSkip
	}
	merged := mergeSegments(segs)
	if merged == nil {
		return nil, errSkip
	}
	var sec []byte
	sec = appendUleb(sec, uint64(len(merged)))
	for _, s := range merged {
		sec = append(sec, 0x00, 0x41)
		sec = appendSleb(sec, int64(int32(s.off)))
		sec = append(sec, 0x0b)
		sec = appendUleb(sec, uint64(len(s.data)))
		sec = append(sec, s.data...)
	}
	out := make([]byte, 0, len(bin))
	out = append(out, bin[:dataStart]...)
	out = append(out, 11)
	out = appendUleb(out, uint64(len(sec)))
	out = append(out, sec...)
	out = append(out, bin[dataEnd:]...)
	return out, nil
}

func parseData(b []byte) ([]segment, error) {
	count, n := uleb(b)
	if n == 0 {
		return nil, errSkip
	}
	b = b[n:]
	segs := make([]segment, 0, min(count, uint64(len(b))))
	for range count {
		// Only the form `0x00 (i32.const K) end bytes` qualifies.
		if len(b) < 2 || b[0] != 0x00 || b[1] != 0x41 {
			return nil, errSkip
		}
		v, n := sleb32(b[2:])
		if n == 0 || len(b) < 2+n+1 || b[2+n] != 0x0b {
			return nil, errSkip
		}
		b = b[2+n+1:]
		size, n := uleb(b)
		if n == 0 || uint64(len(b)-n) < size {
			return nil, errSkip
		}
		segs = append(segs, segment{off: uint32(v), data: b[n : n+int(size)]})
		b = b[n+int(size):]
	}
	if len(b) != 0 {
		return nil, errSkip
	}
	return segs, nil
}

// mergeSegments sorts segments by offset and joins those whose gaps are at most
// maxGap. It returns nil when segments overlap: their application order would
// then matter. (Go's linker emits each data group in address order, but the groups
// themselves are not.)
func mergeSegments(segs []segment) []segment {
	segs = slices.Clone(segs)
	slices.SortStableFunc(segs, func(a, b segment) int { return int(int64(a.off) - int64(b.off)) })
	var out []segment
	cur := segment{off: segs[0].off, data: slices.Clone(segs[0].data)}
	for _, s := range segs[1:] {
		end := uint64(cur.off) + uint64(len(cur.data))
		if uint64(s.off) < end {
			return nil
		}
		if gap := uint64(s.off) - end; gap <= maxGap {
			cur.data = append(cur.data, make([]byte, gap)...)
			cur.data = append(cur.data, s.data...)
			continue
		}
		out = append(out, cur)
		cur = segment{off: s.off, data: slices.Clone(s.data)}
	}
	return append(out, cur)
}

func uleb(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			return v, i + 1
		}
	}
	return 0, 0
}

func sleb32(b []byte) (int32, int) {
	var v int64
	var shift uint
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return int32(v), i + 1
		}
	}
	return 0, 0
}

func appendUleb(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
