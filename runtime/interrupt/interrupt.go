// Package interrupt rewrites a WebAssembly module so the host can stop it at
// its next loop iteration, cheaply.
//
// wazero can stop a running guest when its context is done
// (RuntimeConfig.WithCloseOnContextDone), but it does so by leaving compiled
// code for Go at every loop back-edge to poll a flag (wazero issue #2466). Go
// guests (GOOS=wasip1) branch through a function-level `loop` for nearly every
// jump, so that poll made a hello-world request about 3× slower.
//
// Instrument instead adds a mutable i32 global, exported as ExportName, and
// puts `global.get; if; unreachable; end` at the start of every loop body: in
// compiled code one load and one compare-and-branch that is never taken, with
// no exit to Go. The host stops the guest by setting the global to non-zero
// through api.MutableGlobal; the guest then traps with `unreachable` at its
// next loop iteration. Straight-line code and host calls are not interrupted;
// only loops can run unboundedly.
//
// That exit to Go also served a second purpose: native code cannot be
// preempted, so a guest spinning in compiled code blocks every stop-the-world
// of the process (GC) until it leaves, and with it the goroutine that would
// interrupt it: a deadlock. So in modules with a memory, each function with a
// loop also gets a new i32 local counting iterations; every 1024 of them the
// check runs `memory.grow 0`, which wazero implements as a short exit to Go
// where the goroutine can be preempted. Per iteration that adds a register
// decrement, an `and` and a never-taken branch. Modules without a memory
// (rare: every toolchain's guests have one) get the flag check only.
package interrupt

import (
	"errors"
	"fmt"
)

// ExportName is the export name of the injected global.
const ExportName = "wasmsrv_interrupt"

// ErrMalformed is wrapped by every error about a module that cannot be decoded.
var ErrMalformed = errors.New("malformed wasm module")

// ErrUnsupported is wrapped by errors about instructions from proposals the
// runtime does not enable (threads, tail calls, exception handling, GC...).
var ErrUnsupported = errors.New("unsupported wasm instruction")

// Section ids (binary format §5.5.2).
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
	secTag       = 13
)

// sectionRank gives the required order of non-custom sections; the tag section
// (id 13) sits between memory and global, so ids alone do not give the order.
func sectionRank(id byte) int {
	switch id {
	case secType:
		return 1
	case secImport:
		return 2
	case secFunction:
		return 3
	case secTable:
		return 4
	case secMemory:
		return 5
	case secTag:
		return 6
	case secGlobal:
		return 7
	case secExport:
		return 8
	case secStart:
		return 9
	case secElement:
		return 10
	case secDataCount:
		return 11
	case secCode:
		return 12
	case secData:
		return 13
	}
	return -1
}

type section struct {
	id      byte
	content []byte // the section's bytes after its size
	offset  int    // of content in the module
	raw     []byte // the whole section, id and size included
}

// Instrument returns a new module binary equal to bin except that (1) it
// defines a new mutable i32 global, initialised to 0 and exported as
// ExportName, and (2) at the start of every `loop` body it checks that global:
// `global.get $g  if (empty block type 0x40)  unreachable  end`. Setting the
// global to non-zero from the host (api.MutableGlobal.Set via
// mod.ExportedGlobal(ExportName)) makes the guest trap with `unreachable` at its
// next loop iteration. If the module has a memory, functions with loops also
// get a local that counts iterations for the GC safepoint described in the
// package comment. The new global and locals come after all existing ones, so
// no index changes. Every section it does not need to change is kept byte for
// byte.
func Instrument(bin []byte) ([]byte, error) { return instrument(bin, true) }

// instrument can leave out the safepoints, for benchmarks only.
func instrument(bin []byte, safepoints bool) ([]byte, error) {
	if len(bin) < 8 || string(bin[:4]) != "\x00asm" {
		return nil, fmt.Errorf("%w: missing magic number", ErrMalformed)
	}
	if string(bin[4:8]) != "\x01\x00\x00\x00" {
		return nil, fmt.Errorf("%w: unsupported binary version % x", ErrMalformed, bin[4:8])
	}

	sections, err := splitSections(bin)
	if err != nil {
		return nil, err
	}

	var importedGlobals, definedGlobals uint32
	hasMemory := false
	var typeParams, funcTypes []uint32
	hasGlobal, hasExport := false, false
	for _, s := range sections {
		switch s.id {
		case secImport:
			var importedMemories uint32
			if importedGlobals, importedMemories, err = countImports(s.content); err != nil {
				return nil, err
			}
			hasMemory = hasMemory || importedMemories > 0
		case secType:
			if typeParams, err = readTypeParams(s.content); err != nil {
				return nil, err
			}
		case secFunction:
			if funcTypes, err = readFuncTypes(s.content); err != nil {
				return nil, err
			}
		case secMemory:
			n, _, err := readU32(s.content, 0)
			if err != nil {
				return nil, fmt.Errorf("memory section: %w", err)
			}
			hasMemory = hasMemory || n > 0
		case secGlobal:
			hasGlobal = true
			if definedGlobals, _, err = readU32(s.content, 0); err != nil {
				return nil, fmt.Errorf("global section: %w", err)
			}
		case secExport:
			hasExport = true
			if err := checkExportName(s.content); err != nil {
				return nil, err
			}
		}
	}
	globalIdx := uint64(importedGlobals) + uint64(definedGlobals)
	if globalIdx >= 1<<32-1 {
		return nil, fmt.Errorf("%w: too many globals", ErrMalformed)
	}
	gidx := uint32(globalIdx)
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b} // (mut i32) (i32.const 0)
	// Parameter count of each defined function, to number the tick local.
	params := make([]uint32, len(funcTypes))
	for i, ti := range funcTypes {
		if uint64(ti) >= uint64(len(typeParams)) {
			return nil, fmt.Errorf("%w: function %d has type index %d out of range", ErrMalformed, i, ti)
		}
		params[i] = typeParams[ti]
	}

	// The code section usually dominates; leave room for a few thousand checks.
	out := make([]byte, 0, len(bin)+len(bin)/16+64)
	out = append(out, bin[:8]...)

	// insertMissing adds the global and export sections that did not exist
	// once the output reaches a section that must come after them.
	insertMissing := func(rank int) {
		if !hasGlobal && rank > sectionRank(secGlobal) {
			out = appendSection(out, secGlobal, appendEntry(nil, 0, 1, newGlobal))
			hasGlobal = true
		}
		if !hasExport && rank > sectionRank(secExport) {
			out = appendSection(out, secExport, appendEntry(nil, 0, 1, exportEntry(gidx)))
			hasExport = true
		}
	}

	for _, s := range sections {
		if s.id != secCustom {
			insertMissing(sectionRank(s.id))
		}
		switch s.id {
		case secGlobal:
			out = appendSection(out, secGlobal, appendEntry(s.content, definedGlobals, 1, newGlobal))
		case secExport:
			n, _, _ := readU32(s.content, 0) // checked by checkExportName
			out = appendSection(out, secExport, appendEntry(s.content, n, 1, exportEntry(gidx)))
		case secCode:
			code, err := instrumentCode(s.content, s.offset, gidx, safepoints && hasMemory, params)
			if err != nil {
				return nil, err
			}
			out = appendSection(out, secCode, code)
		default:
			out = append(out, s.raw...)
		}
	}
	insertMissing(sectionRank(secData) + 1)
	return out, nil
}

// splitSections checks the section framing and order.
func splitSections(bin []byte) ([]section, error) {
	var sections []section
	lastRank := 0
	for off := 8; off < len(bin); {
		start := off
		id := bin[off]
		off++
		size, n, err := readU32(bin, off)
		if err != nil {
			return nil, fmt.Errorf("section id %d at offset %d: size: %w", id, start, err)
		}
		off = n
		if uint64(size) > uint64(len(bin)-off) {
			return nil, fmt.Errorf("%w: section id %d at offset %d: size %d overruns the module", ErrMalformed, id, start, size)
		}
		end := off + int(size)
		if id != secCustom {
			rank := sectionRank(id)
			if rank < 0 {
				return nil, fmt.Errorf("%w: unknown section id %d at offset %d", ErrMalformed, id, start)
			}
			if rank <= lastRank {
				return nil, fmt.Errorf("%w: section id %d at offset %d is out of order or duplicated", ErrMalformed, id, start)
			}
			lastRank = rank
		}
		sections = append(sections, section{id: id, content: bin[off:end], offset: off, raw: bin[start:end]})
		off = end
	}
	return sections, nil
}

func appendSection(out []byte, id byte, content []byte) []byte {
	out = append(out, id)
	out = appendU32(out, uint32(len(content)))
	return append(out, content...)
}

// appendEntry returns a vector section's content (count entries, or nil for
// a new section) with n entries appended; existing entries are copied as is.
func appendEntry(content []byte, count, n uint32, entries []byte) []byte {
	off := 0
	if content != nil {
		_, off, _ = readU32(content, 0)
	}
	b := make([]byte, 0, len(content)+len(entries)+5)
	b = appendU32(b, count+n)
	b = append(b, content[off:]...)
	return append(b, entries...)
}

// safepointInterval is how many loop iterations pass between exits to Go; a
// power of two so the test is an `and`.
const safepointInterval = 1024

// flagCheck is `global.get $flag; if; unreachable; end`, the interrupt itself.
func flagCheck(gidx uint32) []byte {
	b := appendU32([]byte{0x23}, gidx)
	return append(b, 0x04, 0x40, 0x00, 0x0b)
}

// appendTickCheck counts loop iterations in local l and calls `memory.grow 0` every
// safepointInterval of them. Native code cannot be preempted by the Go
// scheduler: a guest spinning without ever leaving native code blocks every
// stop-the-world (GC) of the whole process, including the goroutine that
// would set the flag. wazero implements memory.grow as an exit to Go, where
// the goroutine can be preempted. A local (a register, no memory traffic)
// keeps this cheap; it restarts at each call, which is fine since a spin needs
// a loop in some frame.
func appendTickCheck(b []byte, l uint32) []byte {
	// local.get l; i32.const 1; i32.sub; local.tee l
	b = appendU32(append(b, 0x20), l)
	b = appendU32(append(b, 0x41, 0x01, 0x6b, 0x22), l)
	// i32.const interval-1; i32.and; i32.eqz; if; i32.const 0; memory.grow 0; drop; end
	b = appendS32(append(b, 0x41), safepointInterval-1)
	return append(b, 0x71, 0x45, 0x04, 0x40, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b)
}

func exportEntry(gidx uint32) []byte {
	b := appendU32(nil, uint32(len(ExportName)))
	b = append(b, ExportName...)
	b = append(b, 0x03) // export kind: global
	return appendU32(b, gidx)
}

// readTypeParams returns the parameter count of each function type.
func readTypeParams(c []byte) ([]uint32, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return nil, fmt.Errorf("type section: %w", err)
	}
	if uint64(count) > uint64(len(c)) {
		return nil, fmt.Errorf("%w: type section: count %d overruns the section", ErrMalformed, count)
	}
	params := make([]uint32, count)
	for i := range params {
		if off >= len(c) || c[off] != 0x60 {
			return nil, fmt.Errorf("%w: type section: type %d is not a function type", ErrMalformed, i)
		}
		// Value types are one byte each with the features we accept.
		n, o, err := readU32(c, off+1)
		if err != nil {
			return nil, fmt.Errorf("type section: type %d: %w", i, err)
		}
		params[i] = n
		if off, err = skipBytes(c, o, int(n)); err != nil { // params
			return nil, fmt.Errorf("type section: type %d: %w", i, err)
		}
		if off, err = skipName(c, off); err != nil { // results: same layout as a name
			return nil, fmt.Errorf("type section: type %d: %w", i, err)
		}
	}
	return params, nil
}

// readFuncTypes returns the type index of each function defined in the module.
func readFuncTypes(c []byte) ([]uint32, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return nil, fmt.Errorf("function section: %w", err)
	}
	if uint64(count) > uint64(len(c)) {
		return nil, fmt.Errorf("%w: function section: count %d overruns the section", ErrMalformed, count)
	}
	types := make([]uint32, count)
	for i := range types {
		if types[i], off, err = readU32(c, off); err != nil {
			return nil, fmt.Errorf("function section: function %d: %w", i, err)
		}
	}
	return types, nil
}

// countImports returns the number of imported globals and memories.
func countImports(c []byte) (globals, memories uint32, err error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("import section: %w", err)
	}
	for i := uint32(0); i < count; i++ {
		at := off
		for range 2 { // module and field names
			if off, err = skipName(c, off); err != nil {
				return 0, 0, fmt.Errorf("import %d: %w", i, err)
			}
		}
		if off >= len(c) {
			return 0, 0, fmt.Errorf("%w: import %d: truncated", ErrMalformed, i)
		}
		kind := c[off]
		off++
		switch kind {
		case 0x00: // func: type index
			_, off, err = readU32(c, off)
		case 0x01: // table: ref type, limits
			if off >= len(c) {
				err = fmt.Errorf("%w: truncated", ErrMalformed)
				break
			}
			off, err = skipLimits(c, off+1)
		case 0x02: // memory: limits
			memories++
			off, err = skipLimits(c, off)
		case 0x03: // global: value type, mutability
			globals++
			off += 2
			if off > len(c) {
				err = fmt.Errorf("%w: truncated", ErrMalformed)
			}
		case 0x04: // tag: attribute, type index
			if off >= len(c) {
				err = fmt.Errorf("%w: truncated", ErrMalformed)
				break
			}
			_, off, err = readU32(c, off+1)
		default:
			err = fmt.Errorf("%w: unknown import kind 0x%02x", ErrMalformed, kind)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("import section: import %d (offset %d in section): %w", i, at, err)
		}
	}
	return globals, memories, nil
}

func skipLimits(c []byte, off int) (int, error) {
	if off >= len(c) {
		return off, fmt.Errorf("%w: truncated limits", ErrMalformed)
	}
	flags := c[off]
	off, err := skipLEB(c, off+1, 10) // min; u64 covers memory64 too
	if err != nil {
		return off, err
	}
	if flags&1 != 0 {
		off, err = skipLEB(c, off, 10)
	}
	return off, err
}

func skipName(c []byte, off int) (int, error) {
	n, off, err := readU32(c, off)
	if err != nil {
		return off, err
	}
	if uint64(n) > uint64(len(c)-off) {
		return off, fmt.Errorf("%w: name overruns its section", ErrMalformed)
	}
	return off + int(n), nil
}

// checkExportName fails if ExportName is already exported, so the host never
// sets some other global by mistake.
func checkExportName(c []byte) error {
	count, off, err := readU32(c, 0)
	if err != nil {
		return fmt.Errorf("export section: %w", err)
	}
	for i := uint32(0); i < count; i++ {
		n, o, err := readU32(c, off)
		if err != nil {
			return fmt.Errorf("export section: export %d: %w", i, err)
		}
		if uint64(n) > uint64(len(c)-o) {
			return fmt.Errorf("%w: export section: export %d: name overruns the section", ErrMalformed, i)
		}
		if string(c[o:o+int(n)]) == ExportName {
			return fmt.Errorf("export name %q is already taken", ExportName)
		}
		off = o + int(n) + 1 // kind byte
		if _, off, err = readU32(c, off); err != nil {
			return fmt.Errorf("export section: export %d: %w", i, err)
		}
	}
	return nil
}

// instrumentCode rewrites the code section content c, found at offset base in
// the module. Errors give module offsets, as wasm-objdump -d prints them.
//
// Each function with a loop gets a new i32 local for the tick when the module
// has a memory; it comes after all other locals, so no index changes.
func instrumentCode(c []byte, base int, gidx uint32, safepoints bool, params []uint32) ([]byte, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return nil, fmt.Errorf("code section: %w", err)
	}
	if uint64(count) != uint64(len(params)) {
		return nil, fmt.Errorf("%w: %d function bodies for %d functions", ErrMalformed, count, len(params))
	}
	flag := flagCheck(gidx)
	out := make([]byte, 0, len(c)+len(c)/16)
	out = appendU32(out, count)
	var body []byte
	for i := uint32(0); i < count; i++ {
		size, o, err := readU32(c, off)
		if err != nil {
			return nil, fmt.Errorf("code section: body %d: %w", i, err)
		}
		if uint64(size) > uint64(len(c)-o) {
			return nil, fmt.Errorf("%w: code section: body %d overruns the section", ErrMalformed, i)
		}
		src := c[o : o+int(size)]
		body, err = instrumentBody(body[:0], src, base+o, flag, safepoints, params[i])
		if err != nil {
			return nil, fmt.Errorf("function body %d: %w", i, err)
		}
		out = appendU32(out, uint32(len(body)))
		out = append(out, body...)
		off = o + int(size)
	}
	if off != len(c) {
		return nil, fmt.Errorf("%w: code section: %d trailing bytes", ErrMalformed, len(c)-off)
	}
	return out, nil
}

// instrumentBody appends src to dst with check inserted after every loop
// header. It decodes every instruction because immediates may contain the
// byte 0x03.
// base is src's offset in the module, for errors.
func instrumentBody(dst, src []byte, base int, flag []byte, safepoints bool, params uint32) ([]byte, error) {
	// Locals: a vector of (count, value type).
	groups, off, err := readU32(src, 0)
	if err != nil {
		return nil, fmt.Errorf("locals: %w", err)
	}
	groupsEnd := off
	locals := uint64(params)
	for range groups {
		var n uint32
		if n, off, err = readU32(src, off); err != nil {
			return nil, fmt.Errorf("locals: %w", err)
		}
		if off >= len(src) {
			return nil, fmt.Errorf("%w: locals: truncated", ErrMalformed)
		}
		off++
		locals += uint64(n)
	}
	if locals >= 1<<32-1 {
		return nil, fmt.Errorf("%w: too many locals", ErrMalformed)
	}
	localsEnd := off

	copied := 0 // src[:copied] is already in dst
	for off < len(src) {
		at := off
		op := src[off]
		off++
		if op == 0x03 { // loop blocktype
			if off, err = skipLEB(src, off, 5); err != nil {
				return nil, fmt.Errorf("offset %d: loop block type: %w", base+at, err)
			}
			if safepoints && copied == 0 {
				// First loop: declare the tick local, one more (1 × i32) group.
				dst = appendU32(dst, groups+1)
				dst = append(dst, src[groupsEnd:localsEnd]...)
				dst = append(dst, 0x01, 0x7f)
				copied = localsEnd
			}
			dst = append(dst, src[copied:off]...)
			dst = append(dst, flag...)
			if safepoints {
				dst = appendTickCheck(dst, uint32(locals))
			}
			copied = off
			continue
		}
		if off, err = skipImmediates(src, off, op); err != nil {
			return nil, fmt.Errorf("offset %d: opcode 0x%02x: %w", base+at, op, err)
		}
	}
	if len(src) == 0 || src[len(src)-1] != 0x0b {
		return nil, fmt.Errorf("%w: function body does not end with `end`", ErrMalformed)
	}
	return append(dst, src[copied:]...), nil
}

// skipImmediates returns the offset just past the immediates of op, whose
// opcode byte ends just before off.
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
