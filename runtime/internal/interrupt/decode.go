package interrupt

import "fmt"

func skipImmediates(b []byte, off int, op byte) (int, error) {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0b, op == 0x0f,
		op == 0x1a, op == 0x1b, op >= 0x45 && op <= 0xc4, op == 0xd1:
		// unreachable nop else end return drop select, numeric, ref.is_null
		return off, nil
	case op == 0x02, op == 0x04: // block, if: block type (s33)
		return skipLEB(b, off, 5)
	case op == 0x0c, op == 0x0d, op == 0x10, op >= 0x20 && op <= 0x26, op == 0xd2:
		// br br_if call local.* global.* table.get/set ref.func: one index
		return skipLEB(b, off, 5)
	case op == 0x0e: // br_table: vec(label) default
		n, off, err := readU32(b, off)
		if err != nil {
			return off, err
		}
		for i := uint64(0); i <= uint64(n); i++ {
			if off, err = skipLEB(b, off, 5); err != nil {
				return off, err
			}
		}
		return off, nil
	case op == 0x11: // call_indirect: type index, table index
		return skipN(b, off, 2, 5)
	case op == 0x1c: // select t*: vec(value type)
		n, off, err := readU32(b, off)
		if err != nil {
			return off, err
		}
		if uint64(n) > uint64(len(b)-off) {
			return off, fmt.Errorf("%w: truncated", ErrMalformed)
		}
		return off + int(n), nil
	case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
		return skipN(b, off, 2, 5)
	case op == 0x3f, op == 0x40: // memory.size, memory.grow: memory index
		return skipLEB(b, off, 5)
	case op == 0x41: // i32.const
		return skipLEB(b, off, 5)
	case op == 0x42: // i64.const
		return skipLEB(b, off, 10)
	case op == 0x43:
		return skipBytes(b, off, 4)
	case op == 0x44:
		return skipBytes(b, off, 8)
	case op == 0xd0: // ref.null: heap type (s33)
		return skipLEB(b, off, 5)
	case op == 0xfc:
		return skipMisc(b, off)
	case op == 0xfd:
		return skipSIMD(b, off)
	case op >= 0x06 && op <= 0x0a, op == 0x18, op == 0x19, op == 0x1f:
		return off, fmt.Errorf("%w: exception handling is not enabled", ErrUnsupported)
	case op == 0x12, op == 0x13, op == 0x15:
		return off, fmt.Errorf("%w: tail calls are not enabled", ErrUnsupported)
	case op == 0x14, op >= 0xd3 && op <= 0xd6, op == 0xfb:
		return off, fmt.Errorf("%w: typed function references / GC are not enabled", ErrUnsupported)
	case op == 0xfe:
		return off, fmt.Errorf("%w: threads (atomics) are not enabled", ErrUnsupported)
	}
	return off, fmt.Errorf("%w: unknown opcode", ErrUnsupported)
}

// skipMisc handles the 0xFC prefix: saturating truncation, bulk memory and
// table instructions.
func skipMisc(b []byte, off int) (int, error) {
	sub, off, err := readU32(b, off)
	if err != nil {
		return off, err
	}
	switch {
	case sub <= 7: // trunc_sat
		return off, nil
	case sub == 8: // memory.init: data index, memory index
		return skipN(b, off, 2, 5)
	case sub == 9, sub == 13, sub == 15, sub == 16, sub == 17:
		// data.drop, elem.drop, table.grow, table.size, table.fill
		return skipLEB(b, off, 5)
	case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy
		return skipN(b, off, 2, 5)
	case sub == 11: // memory.fill
		return skipLEB(b, off, 5)
	}
	return off, fmt.Errorf("%w: 0xfc sub-opcode %d", ErrUnsupported, sub)
}

// simdImmediates gives, for each 0xFD sub-opcode below 256, its immediates:
// 'm' memarg, 'L' memarg and lane index, 'l' lane index, 'c' 16 bytes
// (v128.const, i8x16.shuffle), '-' none, 'x' unassigned. Checked against the
// SIMD proposal's opcode table and wazero's internal/wasm/instruction.go.
const simdImmediates = "" +
	"mmmmmmmmmmmmcc-------llllllllllllll-----------------------------" +
	"--------------------LLLLLLLLmm----------------------------------" +
	"--------------------------x-------x--xx--------xx-xxx------x----" +
	"--x--xx--------xx-xxx-------------x-----------x-----------------"

func skipSIMD(b []byte, off int) (int, error) {
	sub, off, err := readU32(b, off)
	if err != nil {
		return off, err
	}
	if sub >= uint32(len(simdImmediates)) {
		return off, fmt.Errorf("%w: 0xfd sub-opcode %d (relaxed SIMD is not enabled)", ErrUnsupported, sub)
	}
	switch simdImmediates[sub] {
	case '-':
		return off, nil
	case 'm':
		return skipN(b, off, 2, 5)
	case 'L':
		if off, err = skipN(b, off, 2, 5); err != nil {
			return off, err
		}
		return skipBytes(b, off, 1)
	case 'l':
		return skipBytes(b, off, 1)
	case 'c':
		return skipBytes(b, off, 16)
	}
	return off, fmt.Errorf("%w: 0xfd sub-opcode %d", ErrUnsupported, sub)
}

func skipN(b []byte, off, n, maxLen int) (int, error) {
	var err error
	for range n {
		if off, err = skipLEB(b, off, maxLen); err != nil {
			return off, err
		}
	}
	return off, nil
}

func skipBytes(b []byte, off, n int) (int, error) {
	if n > len(b)-off {
		return off, fmt.Errorf("%w: truncated immediate", ErrMalformed)
	}
	return off + n, nil
}

// skipLEB skips one LEB128 number of at most maxLen bytes. The value itself
// is not needed, only where it ends.
func skipLEB(b []byte, off, maxLen int) (int, error) {
	for i := 0; i < maxLen; i++ {
		if off >= len(b) {
			return off, fmt.Errorf("%w: truncated LEB128", ErrMalformed)
		}
		c := b[off]
		off++
		if c&0x80 == 0 {
			return off, nil
		}
	}
	return off, fmt.Errorf("%w: LEB128 longer than %d bytes", ErrMalformed, maxLen)
}

// readU32 decodes an unsigned LEB128 u32 at off and returns the offset after it.
func readU32(b []byte, off int) (uint32, int, error) {
	var v uint32
	for i := 0; i < 5; i++ {
		if off >= len(b) {
			return 0, off, fmt.Errorf("%w: truncated LEB128", ErrMalformed)
		}
		c := b[off]
		off++
		if i == 4 && c&0xf0 != 0 {
			return 0, off, fmt.Errorf("%w: LEB128 u32 overflows", ErrMalformed)
		}
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, off, nil
		}
	}
	return 0, off, fmt.Errorf("%w: LEB128 u32 longer than 5 bytes", ErrMalformed)
}

func appendS32(b []byte, v int32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendU32(b []byte, v uint32) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
