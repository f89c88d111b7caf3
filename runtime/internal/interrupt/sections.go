package interrupt

import (
	"fmt"
	"strings"
)

// layout is what instrument needs to know about a module's sections.
type layout struct {
	importedGlobals, definedGlobals uint32
	importedFuncs                   uint32
	importedTables                  []table
	tables                          []table // defined
	tableSection                    []byte  // content, when there is one
	hasMemory                       bool
	memMin                          uint64 // pages of the (first) memory, defined or imported
	typeParams, funcTypes           []uint32
	hasGlobal, hasExport            bool
	exports                         uint32
	start                           *uint32
	elemSegments, passiveElems      uint64
	dataSegments                    uint64
	importedMemory                  bool
	mutableImportedGlobal           bool
	hasDataCount                    bool
	sections                        map[byte]section // non-custom sections by id
}

// table is one table type. prefix is its encoding up to its limits (the 0x40
// 0x00 of a table with an initializer, and the reference type), suffix what
// follows them (the initializer expression).
type table struct {
	min         uint32
	max         uint32
	hasMax      bool
	prefix      []byte
	suffix      []byte
	typeName    string
	initialized bool
}

func readLayout(sections []section) (*layout, error) {
	m := &layout{sections: map[byte]section{}}
	var err error
	for _, s := range sections {
		c := s.content
		if s.id != secCustom {
			m.sections[s.id] = s
		}
		switch s.id {
		case secDataCount:
			m.hasDataCount = true
		case secImport:
			err = m.readImports(c)
		case secType:
			m.typeParams, err = readTypeParams(c)
		case secFunction:
			m.funcTypes, err = readFuncTypes(c)
		case secTable:
			m.tableSection = c
			m.tables, err = readTables(c)
		case secMemory:
			err = m.readMemories(c)
		case secGlobal:
			m.hasGlobal = true
			if m.definedGlobals, _, err = readU32(c, 0); err != nil {
				err = fmt.Errorf("global section: %w", err)
			}
		case secExport:
			m.hasExport = true
			m.exports, err = checkExportNames(c)
		case secStart:
			var idx uint32
			if idx, _, err = readU32(c, 0); err != nil {
				err = fmt.Errorf("start section: %w", err)
			}
			m.start = &idx
		case secElement:
			m.elemSegments, m.passiveElems, err = readElements(c)
		case secData:
			var n uint32
			if n, _, err = readU32(c, 0); err != nil {
				err = fmt.Errorf("data section: %w", err)
			}
			m.dataSegments = uint64(n)
		}
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

// readImports counts imported functions and globals and reads imported table
// and memory types.
func (m *layout) readImports(c []byte) error {
	count, off, err := readU32(c, 0)
	if err != nil {
		return fmt.Errorf("import section: %w", err)
	}
	for i := uint32(0); i < count; i++ {
		at := off
		for range 2 { // module and field names
			if off, err = skipName(c, off); err != nil {
				return fmt.Errorf("import %d: %w", i, err)
			}
		}
		if off >= len(c) {
			return fmt.Errorf("%w: import %d: truncated", ErrMalformed, i)
		}
		kind := c[off]
		off++
		switch kind {
		case 0x00: // func: type index
			m.importedFuncs++
			_, off, err = readU32(c, off)
		case 0x01: // table: ref type, limits
			var t table
			if t, off, err = readTable(c, off, false); err == nil {
				m.importedTables = append(m.importedTables, t)
			}
		case 0x02: // memory: limits
			var min uint64
			if min, off, err = readMemoryLimits(c, off); err == nil && !m.hasMemory {
				m.hasMemory, m.memMin, m.importedMemory = true, min, true
			}
		case 0x03: // global: value type, mutability
			m.importedGlobals++
			off += 2
			if off > len(c) {
				err = fmt.Errorf("%w: truncated", ErrMalformed)
			} else if c[off-1] != 0 {
				m.mutableImportedGlobal = true
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
			return fmt.Errorf("import section: import %d (offset %d in section): %w", i, at, err)
		}
	}
	return nil
}

func (m *layout) readMemories(c []byte) error {
	count, off, err := readU32(c, 0)
	if err != nil {
		return fmt.Errorf("memory section: %w", err)
	}
	if count > 0 && !m.hasMemory {
		min, _, err := readMemoryLimits(c, off)
		if err != nil {
			return fmt.Errorf("memory section: %w", err)
		}
		m.hasMemory, m.memMin = true, min
	}
	return nil
}

// readMemoryLimits returns a memory type's minimum in pages.
func readMemoryLimits(c []byte, off int) (uint64, int, error) {
	if off >= len(c) {
		return 0, off, fmt.Errorf("%w: truncated limits", ErrMalformed)
	}
	if c[off] > 0x03 {
		return 0, off, fmt.Errorf("%w: memory limits flags 0x%02x (memory64 is not enabled)", ErrUnsupported, c[off])
	}
	hasMax := c[off]&1 != 0
	min, off, err := readU32(c, off+1)
	if err != nil {
		return 0, off, err
	}
	if hasMax {
		_, off, err = readU32(c, off)
	}
	return uint64(min), off, err
}

// readTables decodes the table section's content.
func readTables(c []byte) ([]table, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return nil, fmt.Errorf("table section: %w", err)
	}
	if uint64(count) > uint64(len(c)) {
		return nil, fmt.Errorf("%w: table section: count %d overruns the section", ErrMalformed, count)
	}
	tables := make([]table, count)
	for i := range tables {
		if tables[i], off, err = readTable(c, off, true); err != nil {
			return nil, fmt.Errorf("table section: table %d: %w", i, err)
		}
	}
	if off != len(c) {
		return nil, fmt.Errorf("%w: table section: %d trailing bytes", ErrMalformed, len(c)-off)
	}
	return tables, nil
}

// readTable decodes one table type at off: [0x40 0x00] reftype limits [expr].
// The initializer form exists only in a table section (defined).
func readTable(c []byte, off int, defined bool) (table, int, error) {
	var t table
	start := off
	if defined && off+1 < len(c) && c[off] == 0x40 {
		if c[off+1] != 0x00 {
			return t, off, fmt.Errorf("%w: table initializer prefix 0x40 0x%02x", ErrMalformed, c[off+1])
		}
		t.initialized = true
		off += 2
	}
	if off >= len(c) {
		return t, off, fmt.Errorf("%w: truncated table type", ErrMalformed)
	}
	switch rt := c[off]; rt {
	case 0x70:
		t.typeName, off = "funcref", off+1
	case 0x6f:
		t.typeName, off = "externref", off+1
	case 0x63, 0x64: // (ref null ht), (ref ht): typed function references
		t.typeName = "typed reference"
		var err error
		if off, err = skipLEB(c, off+1, 5); err != nil {
			return t, off, err
		}
	default:
		return t, off, fmt.Errorf("%w: table reference type 0x%02x", ErrUnsupported, rt)
	}
	t.prefix = c[start:off]
	if off >= len(c) {
		return t, off, fmt.Errorf("%w: truncated table limits", ErrMalformed)
	}
	flags := c[off]
	if flags > 0x01 {
		return t, off, fmt.Errorf("%w: table limits flags 0x%02x (shared or 64-bit tables are not enabled)", ErrUnsupported, flags)
	}
	var err error
	if t.min, off, err = readU32(c, off+1); err != nil {
		return t, off, err
	}
	if flags == 0x01 {
		if t.max, off, err = readU32(c, off); err != nil {
			return t, off, err
		}
		t.hasMax = true
	}
	suffix := off
	if t.initialized {
		if off, err = skipConstExpr(c, off); err != nil {
			return t, off, fmt.Errorf("table initializer: %w", err)
		}
	}
	t.suffix = c[suffix:off]
	return t, off, nil
}

// readElements counts element segments and the entries of passive ones, which
// wazero copies into every instance.
func readElements(c []byte) (segments, passive uint64, err error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("element section: %w", err)
	}
	for i := uint32(0); i < count; i++ {
		var flags, n uint32
		if flags, off, err = readU32(c, off); err != nil {
			return 0, 0, fmt.Errorf("element segment %d: %w", i, err)
		}
		if flags > 7 {
			return 0, 0, fmt.Errorf("%w: element segment %d: flags %d", ErrMalformed, i, flags)
		}
		if flags&2 != 0 && flags&1 == 0 { // active with a table index
			if _, off, err = readU32(c, off); err != nil {
				return 0, 0, fmt.Errorf("element segment %d: table index: %w", i, err)
			}
		}
		if flags&1 == 0 { // active: offset expression
			if off, err = skipConstExpr(c, off); err != nil {
				return 0, 0, fmt.Errorf("element segment %d: offset: %w", i, err)
			}
		}
		exprs := flags&4 != 0
		if flags&3 != 0 { // element kind (0x00) or reference type
			if off >= len(c) {
				return 0, 0, fmt.Errorf("%w: element segment %d: truncated", ErrMalformed, i)
			}
			rt := c[off]
			off++
			if exprs && (rt == 0x63 || rt == 0x64) {
				if off, err = skipLEB(c, off, 5); err != nil {
					return 0, 0, fmt.Errorf("element segment %d: reference type: %w", i, err)
				}
			}
		}
		if n, off, err = readU32(c, off); err != nil {
			return 0, 0, fmt.Errorf("element segment %d: %w", i, err)
		}
		if uint64(n) > uint64(len(c)-off) {
			return 0, 0, fmt.Errorf("%w: element segment %d: count %d overruns the section", ErrMalformed, i, n)
		}
		for j := uint32(0); j < n; j++ {
			if exprs {
				off, err = skipConstExpr(c, off)
			} else {
				_, off, err = readU32(c, off)
			}
			if err != nil {
				return 0, 0, fmt.Errorf("element segment %d: entry %d: %w", i, j, err)
			}
		}
		segments++
		if flags&3 == 1 { // passive
			passive += uint64(n)
		}
	}
	if off != len(c) {
		return 0, 0, fmt.Errorf("%w: element section: %d trailing bytes", ErrMalformed, len(c)-off)
	}
	return segments, passive, nil
}

// skipConstExpr skips a constant expression up to and including its `end`.
func skipConstExpr(c []byte, off int) (int, error) {
	for {
		if off >= len(c) {
			return off, fmt.Errorf("%w: truncated constant expression", ErrMalformed)
		}
		op := c[off]
		off++
		if op == 0x0b {
			return off, nil
		}
		var err error
		if off, err = skipImmediates(c, off, op); err != nil {
			return off, err
		}
	}
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

// checkExportNames returns the number of exports and fails if a name the
// rewrite adds is already exported, so the host never calls or sets some other
// export by mistake.
func checkExportNames(c []byte) (uint32, error) {
	count, off, err := readU32(c, 0)
	if err != nil {
		return 0, fmt.Errorf("export section: %w", err)
	}
	for i := uint32(0); i < count; i++ {
		n, o, err := readU32(c, off)
		if err != nil {
			return 0, fmt.Errorf("export section: export %d: %w", i, err)
		}
		if uint64(n) > uint64(len(c)-o) {
			return 0, fmt.Errorf("%w: export section: export %d: name overruns the section", ErrMalformed, i)
		}
		if name := string(c[o : o+int(n)]); name == ExportName || name == StartExport || name == DataInitExport || strings.HasPrefix(name, GlobalExportPrefix) {
			return 0, fmt.Errorf("export name %q is already taken", name)
		}
		off = o + int(n) + 1 // kind byte
		if _, off, err = readU32(c, off); err != nil {
			return 0, fmt.Errorf("export section: export %d: %w", i, err)
		}
	}
	return count, nil
}
