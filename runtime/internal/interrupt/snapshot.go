package interrupt

import (
	"fmt"
	"strconv"
)

// DataInitExport is the export name of the function that copies the module's
// data segments into memory (Options.Snapshot): the host calls it first in a
// fresh instance and skips it in an instance whose memory comes from a snapshot.
const DataInitExport = "wasmsrv_data_init"

// GlobalExportPrefix starts the export names of the module's mutable globals
// (Options.Snapshot): GlobalExportPrefix + the global's index.
const GlobalExportPrefix = "wasmsrv_global_"

// snapshotPlan is what Options.Snapshot adds to a module: its active data
// segments become passive ones, copied into memory by a new function exported
// as DataInitExport, and every mutable global it defines is exported.
type snapshotPlan struct {
	typeIdx  uint32   // of the new () -> () type
	data     []byte   // the rewritten data section's content (nil: none)
	segments uint32   // for the data count section
	initBody []byte   // the new function's body, size-prefixed
	exports  [][]byte // DataInitExport and the globals
	globals  []string // export names of the mutable globals
}

// planSnapshot checks that an instance's whole state is its linear memory and
// its mutable globals (so that a snapshot of both restores it) and plans the
// rewrite; otherwise it says why not.
func (m *layout) planSnapshot(code *codeInfo) (*snapshotPlan, string) {
	switch {
	case !m.hasMemory || m.importedMemory:
		return nil, "the module has no memory of its own"
	case m.mutableImportedGlobal:
		return nil, "the module imports a mutable global"
	case m.hasDataCount:
		return nil, "the module uses bulk memory instructions on its data segments"
	case code == nil || m.sections[secType].raw == nil || m.sections[secFunction].raw == nil:
		return nil, "the module has no functions"
	case code.tableWrite != "":
		return nil, "the module changes tables or segments at run time (" + code.tableWrite + ")"
	}
	p := &snapshotPlan{typeIdx: uint32(len(m.typeParams))}
	funcIdx := m.importedFuncs + uint32(len(m.funcTypes))
	body := []byte{0x00} // no locals
	if s, ok := m.sections[secData]; ok {
		segs, err := readActiveData(s.content)
		if err != nil {
			return nil, err.Error()
		}
		p.segments = uint32(len(segs))
		p.data = appendU32(nil, p.segments)
		for i, sg := range segs {
			p.data = append(p.data, 0x01) // passive
			p.data = appendU32(p.data, uint32(len(sg.data)))
			p.data = append(p.data, sg.data...)
			// i32.const off; i32.const 0; i32.const len; memory.init i 0
			body = append(body, 0x41)
			body = appendS32(body, int32(sg.off))
			body = append(body, 0x41, 0x00, 0x41)
			body = appendS32(body, int32(uint32(len(sg.data))))
			body = append(body, 0xfc, 0x08)
			body = appendU32(body, uint32(i))
			body = append(body, 0x00)
		}
	}
	body = append(body, 0x0b)
	p.initBody = append(appendU32(nil, uint32(len(body))), body...)
	p.exports = append(p.exports, exportEntry(DataInitExport, 0x00, funcIdx))
	if s, ok := m.sections[secGlobal]; ok {
		mut, err := mutableGlobals(s.content)
		if err != nil {
			return nil, err.Error()
		}
		for _, g := range mut {
			idx := m.importedGlobals + g.index
			if g.valType < 0x7c || g.valType > 0x7f {
				return nil, fmt.Sprintf("global %d is mutable and not a number (type 0x%02x)", idx, g.valType)
			}
			name := GlobalExportPrefix + strconv.FormatUint(uint64(idx), 10)
			p.globals = append(p.globals, name)
			p.exports = append(p.exports, exportEntry(name, 0x03, idx))
		}
	}
	return p, ""
}

type activeSegment struct {
	off  uint32
	data []byte
}

// readActiveData decodes a data section whose segments are all active, in
// memory 0, at i32.const offsets.
func readActiveData(c []byte) ([]activeSegment, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return nil, fmt.Errorf("data section: %w", err)
	}
	segs := make([]activeSegment, 0, min(count, 1<<16))
	for i := uint32(0); i < count; i++ {
		var flags uint32
		if flags, off, err = readU32(c, off); err != nil {
			return nil, fmt.Errorf("data segment %d: %w", i, err)
		}
		if flags == 2 {
			var mem uint32
			if mem, off, err = readU32(c, off); err != nil || mem != 0 {
				return nil, fmt.Errorf("data segment %d is not in memory 0", i)
			}
		} else if flags != 0 {
			return nil, fmt.Errorf("data segment %d is not active", i)
		}
		if off >= len(c) || c[off] != 0x41 {
			return nil, fmt.Errorf("data segment %d is not at a constant offset", i)
		}
		var at int32
		if at, off, err = readS32(c, off+1); err != nil {
			return nil, fmt.Errorf("data segment %d: offset: %w", i, err)
		}
		if off >= len(c) || c[off] != 0x0b {
			return nil, fmt.Errorf("data segment %d is not at a constant offset", i)
		}
		var n uint32
		if n, off, err = readU32(c, off+1); err != nil {
			return nil, fmt.Errorf("data segment %d: %w", i, err)
		}
		if uint64(n) > uint64(len(c)-off) {
			return nil, fmt.Errorf("%w: data segment %d overruns its section", ErrMalformed, i)
		}
		segs = append(segs, activeSegment{off: uint32(at), data: c[off : off+int(n)]})
		off += int(n)
	}
	if off != len(c) {
		return nil, fmt.Errorf("%w: data section: %d trailing bytes", ErrMalformed, len(c)-off)
	}
	return segs, nil
}

type globalDecl struct {
	index   uint32 // among the defined globals
	valType byte
}

// mutableGlobals lists the mutable globals of a global section.
func mutableGlobals(c []byte) ([]globalDecl, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return nil, fmt.Errorf("global section: %w", err)
	}
	var mut []globalDecl
	for i := uint32(0); i < count; i++ {
		if off+2 > len(c) {
			return nil, fmt.Errorf("%w: global section: truncated", ErrMalformed)
		}
		vt, m := c[off], c[off+1]
		if off, err = skipConstExpr(c, off+2); err != nil {
			return nil, fmt.Errorf("global %d: %w", i, err)
		}
		if m != 0 {
			mut = append(mut, globalDecl{index: i, valType: vt})
		}
	}
	return mut, nil
}

// readS32 decodes a signed LEB128 i32 at off.
func readS32(b []byte, off int) (int32, int, error) {
	var v int64
	var shift uint
	for i := 0; i < 5; i++ {
		if off >= len(b) {
			return 0, off, fmt.Errorf("%w: truncated LEB128", ErrMalformed)
		}
		c := b[off]
		off++
		v |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				v |= -1 << shift
			}
			return int32(v), off, nil
		}
	}
	return 0, off, fmt.Errorf("%w: LEB128 i32 longer than 5 bytes", ErrMalformed)
}
