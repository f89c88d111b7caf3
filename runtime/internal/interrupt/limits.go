package interrupt

import "fmt"

// Per-instance host costs, in bytes, that a module's declarations make the host
// allocate beyond its linear memory (wazero 1.12, measured with 100,000 of each
// over ten instances: a global 88 bytes, a data or element segment 24-25, a
// passive element entry 42, an imported function 40, a table 112 plus its
// entries). They are rounded up; what matters is that they are linear in what
// the module declares, so the limit holds whatever the guest declares.
const (
	TableEntryBytes = 8   // one reference in a table
	tableBytes      = 128 // a table's own structures
	globalBytes     = 96
	segmentBytes    = 32 // an element or data segment
	elemEntryBytes  = 48 // an entry of a passive element segment
	importBytes     = 48 // an imported function
	pageBytes       = 64 << 10
	maxPages        = 65536

	// tableGrowthShare: tables that may grow share at most 1/16 of the limit
	// for their growth.
	tableGrowthShare = 16
)

// Limits is how Instrument shared out Options.MemoryLimit.
type Limits struct {
	// Host is what the host allocates per instance for the module's globals,
	// segments, imports and tables (their structures, not their entries).
	Host int64
	// Tables is what the tables' entries take at their maximum sizes.
	Tables int64
	// TableMax is the maximum of each table (imported ones first) after capping.
	TableMax []uint32
	// MemoryPages is what is left for linear memory, in 64 KiB pages.
	MemoryPages uint32

	tableSection []byte // the rewritten table section content (nil: unchanged)
}

// account fits the module's instances in limit bytes: it counts what they cost
// the host, refuses the module when its initial sizes alone do not fit, caps the
// growth of its tables, and leaves the rest to linear memory.
//
// The rule: linear memory + 8 bytes per table entry (at the tables' maximum
// sizes) + the host's per-instance structures ≤ limit. A table that no
// table.grow names keeps its initial size for good (Go and C guests' tables);
// the tables that can grow share at most 1/16 of the limit (or what is left
// after the initial sizes, if less) for their growth, in equal parts, within
// their declared maximum; linear memory gets the rest, rounded down to whole
// pages.
func (m *layout) account(limit int64, grown map[uint32]bool) (*Limits, error) {
	lim := &Limits{}
	globals := int64(m.importedGlobals) + int64(m.definedGlobals) + 2 // the injected ones
	lim.Host = globals*globalBytes +
		int64(m.elemSegments+m.dataSegments)*segmentBytes +
		int64(m.passiveElems)*elemEntryBytes +
		int64(m.importedFuncs)*importBytes +
		int64(len(m.importedTables)+len(m.tables))*tableBytes
	if len(m.importedTables) > 0 {
		// No host module exports a table, and a table another module sizes
		// could not be counted here.
		return nil, fmt.Errorf("%w: the module imports a table; only functions can be imported", ErrOverLimit)
	}
	initial := lim.Host + int64(m.memMin)*pageBytes
	growable := 0
	for i, t := range m.tables {
		entries := int64(t.min) * TableEntryBytes
		if entries > limit {
			return nil, fmt.Errorf("%w: table %d (%s) has %d initial entries, %s at %d bytes each, over the memory limit of %s",
				ErrOverLimit, i, t.typeName, t.min, bytesString(entries), TableEntryBytes, bytesString(limit))
		}
		initial += entries
		if m.growable(i, grown) {
			growable++
		}
	}
	if initial > limit {
		return nil, fmt.Errorf("%w: an instance needs %s before it runs (linear memory %d pages, %d tables with %s of entries, %s of host structures for %d globals, %d segments, %d imports), over the memory limit of %s",
			ErrOverLimit, bytesString(initial), m.memMin, len(m.tables), bytesString(initial-lim.Host-int64(m.memMin)*pageBytes),
			bytesString(lim.Host), globals, m.elemSegments+m.dataSegments, m.importedFuncs, bytesString(limit))
	}
	var growth int64 // entries each growable table may add
	if growable > 0 {
		growth = min(limit/tableGrowthShare, limit-initial) / TableEntryBytes / int64(growable)
	}
	changed := false
	for i, t := range m.tables {
		max := int64(t.min)
		if m.growable(i, grown) {
			max += growth
		}
		if t.hasMax && int64(t.max) < max {
			max = int64(t.max)
		}
		max = min(max, 1<<32-1)
		if !t.hasMax || int64(t.max) != max {
			changed = true
		}
		lim.TableMax = append(lim.TableMax, uint32(max))
		lim.Tables += max * TableEntryBytes
	}
	lim.MemoryPages = uint32(min((limit-lim.Host-lim.Tables)/pageBytes, maxPages))
	if changed {
		c := appendU32(nil, uint32(len(m.tables)))
		for i, t := range m.tables {
			c = append(c, t.prefix...)
			c = append(c, 0x01)
			c = appendU32(c, t.min)
			c = appendU32(c, lim.TableMax[i])
			c = append(c, t.suffix...)
		}
		lim.tableSection = c
	}
	return lim, nil
}

// growable reports whether defined table i can grow: its type allows it and
// some table.grow names it (the host never grows a guest's tables).
func (m *layout) growable(i int, grown map[uint32]bool) bool {
	t := m.tables[i]
	return (!t.hasMax || t.max > t.min) && grown[uint32(len(m.importedTables)+i)]
}

// bytesString prints n bytes the way limits are configured.
func bytesString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
