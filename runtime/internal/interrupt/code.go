package interrupt

import "fmt"

// Safepoint intervals, powers of two so each test is an `and`: a frame's loop
// exits to Go every loopSafepoint iterations, and the module every
// callSafepoint calls (see BenchmarkCallHeavy for how they were chosen).
const (
	loopSafepoint = 1024
	callSafepoint = 4096
)

// codeInfo is the code section, decoded once: what every body needs.
type codeInfo struct {
	bodies  []body
	loops   []int // offsets (in their body) just past each loop's block type, body by body
	anyCall bool
	grown   map[uint32]bool // tables some table.grow names
	// tableWrite names the first instruction found that changes a table or
	// drops a segment: state outside linear memory and globals, which a
	// snapshot does not capture.
	tableWrite string
}

type body struct {
	src       []byte
	groups    uint32 // local declaration groups
	groupsEnd int    // offset of the first group
	localsEnd int    // offset of the first instruction
	locals    uint32 // parameters and locals: the index of a new local
	loops     [2]int // its range in codeInfo.loops
	calls     bool   // it may be on a cycle of calls: see analyze
}

// analyzeCode decodes the code section content c, found at offset base in the
// module, checking every instruction on the way: opcodes of proposals the
// runtime does not enable, and global indices beyond the module's own globals
// (which would otherwise reach the injected ones). Errors give module offsets,
// as wasm-objdump -d prints them.
func analyzeCode(c []byte, base int, params []uint32, globals, imports uint32) (*codeInfo, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return nil, fmt.Errorf("code section: %w", err)
	}
	if uint64(count) != uint64(len(params)) {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", ErrMalformed, count, len(params))
	}
	ci := &codeInfo{bodies: make([]body, count)}
	for i := range ci.bodies {
		size, o, err := readU32(c, off)
		if err != nil {
			return nil, fmt.Errorf("code section: body %d: %w", i, err)
		}
		if uint64(size) > uint64(len(c)-o) {
			return nil, fmt.Errorf("%w: code section: body %d overruns the section", ErrMalformed, i)
		}
		if err := ci.analyze(&ci.bodies[i], c[o:o+int(size)], base+o, params[i], globals, imports, imports+uint32(i)); err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, err)
		}
		off = o + int(size)
	}
	if off != len(c) {
		return nil, fmt.Errorf("%w: code section: %d trailing bytes", ErrMalformed, len(c)-off)
	}
	return ci, nil
}

// analyze decodes one body. self is its function index, imports the number of
// imported functions. Unbounded recursion is a cycle of calls between defined
// functions, and every cycle has an edge that goes back (or stays) in index
// order, or goes through call_indirect; so only functions that make such a call
// get the check at entry: every turn of any cycle enters one of them.
func (ci *codeInfo) analyze(b *body, src []byte, base int, params, globals, imports, self uint32) error {
	b.src = src
	groups, off, err := readU32(src, 0)
	if err != nil {
		return fmt.Errorf("locals: %w", err)
	}
	b.groups, b.groupsEnd = groups, off
	locals := uint64(params)
	for range groups {
		var n uint32
		if n, off, err = readU32(src, off); err != nil {
			return fmt.Errorf("locals: %w", err)
		}
		if off >= len(src) {
			return fmt.Errorf("%w: locals: truncated", ErrMalformed)
		}
		off++
		locals += uint64(n)
	}
	if locals >= 1<<32-1 {
		return fmt.Errorf("%w: too many locals", ErrMalformed)
	}
	b.locals, b.localsEnd = uint32(locals), off
	b.loops[0] = len(ci.loops)
	for off < len(src) {
		at := off
		op := src[off]
		off++
		switch op {
		case 0x03: // loop blocktype
			if off, err = skipLEB(src, off, 5); err != nil {
				return fmt.Errorf("offset %d: loop block type: %w", base+at, err)
			}
			ci.loops = append(ci.loops, off)
			continue
		case 0x10: // call
			var f uint32
			if f, off, err = readU32(src, off); err != nil {
				return fmt.Errorf("offset %d: call: %w", base+at, err)
			}
			if f >= imports && f <= self {
				b.calls = true
			}
			continue
		case 0x11: // call_indirect
			b.calls = true
		case 0x26: // table.set
			ci.noteTableWrite("table.set")
		case 0xfc: // table.grow is the only way a table grows: note which ones do
			sub, _, _ := readU32(src, off)
			switch sub {
			case 9:
				ci.noteTableWrite("data.drop")
			case 12:
				ci.noteTableWrite("table.init")
			case 13:
				ci.noteTableWrite("elem.drop")
			case 14:
				ci.noteTableWrite("table.copy")
			case 15:
				ci.noteTableWrite("table.grow")
			case 17:
				ci.noteTableWrite("table.fill")
			}
			if sub, o, err := readU32(src, off); err == nil && sub == 15 {
				idx, o, err := readU32(src, o)
				if err != nil {
					return fmt.Errorf("offset %d: table.grow: %w", base+at, err)
				}
				if ci.grown == nil {
					ci.grown = map[uint32]bool{}
				}
				ci.grown[idx] = true
				off = o
				continue
			}
		case 0x23, 0x24: // global.get, global.set
			var idx uint32
			if idx, off, err = readU32(src, off); err != nil {
				return fmt.Errorf("offset %d: global index: %w", base+at, err)
			}
			if idx >= globals {
				return fmt.Errorf("%w: offset %d: global index %d out of range (%d globals)", ErrMalformed, base+at, idx, globals)
			}
			continue
		}
		if off, err = skipImmediates(src, off, op); err != nil {
			return fmt.Errorf("offset %d: opcode 0x%02x: %w", base+at, op, err)
		}
	}
	if len(src) == 0 || src[len(src)-1] != 0x0b {
		return fmt.Errorf("%w: function body does not end with `end`", ErrMalformed)
	}
	b.loops[1] = len(ci.loops)
	ci.anyCall = ci.anyCall || b.calls
	return nil
}

func (ci *codeInfo) noteTableWrite(op string) {
	if ci.tableWrite == "" {
		ci.tableWrite = op
	}
}

// emit returns the instrumented code section content.
func (ci *codeInfo) emit(inj injected, ck checks, hasMemory bool) []byte {
	size := 0
	for _, b := range ci.bodies {
		size += len(b.src) + 8
	}
	out := make([]byte, 0, size+len(ci.loops)*24+size/8)
	out = appendU32(out, uint32(len(ci.bodies)))
	flag := flagCheck(inj.flag)
	var scratch []byte
	for i := range ci.bodies {
		b := &ci.bodies[i]
		scratch = ci.emitBody(scratch[:0], b, flag, inj, ck, hasMemory)
		out = appendU32(out, uint32(len(scratch)))
		out = append(out, scratch...)
	}
	return out
}

// emitBody appends b with the checks inserted: at its entry if it calls, after
// every loop header.
func (ci *codeInfo) emitBody(dst []byte, b *body, flag []byte, inj injected, ck checks, hasMemory bool) []byte {
	loops := ci.loops[b.loops[0]:b.loops[1]]
	tick := ck.loops && ck.safepoints && hasMemory && len(loops) > 0
	if tick {
		// Declare the tick local: one more (1 × i32) group after the others.
		dst = appendU32(dst, b.groups+1)
		dst = append(dst, b.src[b.groupsEnd:b.localsEnd]...)
		dst = append(dst, 0x01, 0x7f)
	} else {
		dst = append(dst, b.src[:b.localsEnd]...)
	}
	if ck.entries && b.calls {
		dst = append(dst, flag...)
		if inj.hasCounter {
			dst = appendCallCheck(dst, inj.counter)
		}
	}
	copied := b.localsEnd
	if ck.loops {
		for _, at := range loops {
			dst = append(dst, b.src[copied:at]...)
			dst = append(dst, flag...)
			if tick {
				dst = appendTickCheck(dst, b.locals)
			}
			copied = at
		}
	}
	return append(dst, b.src[copied:]...)
}

// flagCheck is `global.get $flag; if; unreachable; end`, the interrupt itself.
func flagCheck(gidx uint32) []byte {
	b := appendU32([]byte{0x23}, gidx)
	return append(b, 0x04, 0x40, 0x00, 0x0b)
}

// appendTickCheck counts loop iterations in local l and calls `memory.grow 0` every
// loopSafepoint of them. Native code cannot be preempted by the Go
// scheduler: a guest spinning without ever leaving native code blocks every
// stop-the-world (GC) of the whole process, including the goroutine that
// would set the flag. wazero implements memory.grow as an exit to Go, where
// the goroutine can be preempted. A local (a register, no memory traffic)
// keeps this cheap; it restarts at each call, which is fine since a loop that
// spins does so in one frame, and recursion is counted by appendCallCheck.
func appendTickCheck(b []byte, l uint32) []byte {
	// local.get l; i32.const 1; i32.sub; local.tee l
	b = appendU32(append(b, 0x20), l)
	b = appendU32(append(b, 0x41, 0x01, 0x6b, 0x22), l)
	// i32.const interval-1; i32.and; i32.eqz; if; i32.const 0; memory.grow 0; drop; end
	b = appendS32(append(b, 0x41), loopSafepoint-1)
	return append(b, 0x71, 0x45, 0x04, 0x40, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b)
}

// appendCallCheck counts calls in global g and calls `memory.grow 0` every
// callSafepoint of them: recursion without a loop (fib(50) written plainly)
// runs for as long as it likes in frames that each end quickly, so the count
// has to outlive the frame.
func appendCallCheck(b []byte, g uint32) []byte {
	// global.get g; i32.const 1; i32.sub; global.set g
	b = appendU32(append(b, 0x23), g)
	b = appendU32(append(b, 0x41, 0x01, 0x6b, 0x24), g)
	// global.get g; i32.const interval-1; i32.and; i32.eqz; if; i32.const 0; memory.grow 0; drop; end
	b = appendU32(append(b, 0x23), g)
	b = appendS32(append(b, 0x41), callSafepoint-1)
	return append(b, 0x71, 0x45, 0x04, 0x40, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b)
}
