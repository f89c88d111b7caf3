// Package interrupt rewrites a WebAssembly module when it is loaded so that the
// host can stop it cheaply, run its start function under a deadline, and keep
// everything an instance allocates within its memory limit.
//
// # Stopping a guest
//
// wazero can stop a running guest when its context is done
// (RuntimeConfig.WithCloseOnContextDone), but it does so by leaving compiled
// code for Go at every loop back-edge to poll a flag (wazero issue #2466). Go
// guests (GOOS=wasip1) branch through a function-level `loop` for nearly every
// jump, so that poll made a hello-world request about 3× slower.
//
// Instrument instead adds a mutable i32 global, exported as ExportName, and
// puts `global.get; if; unreachable; end` at the start of every loop body and
// at the entry of functions that may recurse: in compiled code one load and one
// compare-and-branch that is never taken, with no exit to Go. The host stops
// the guest by setting the global to non-zero through api.MutableGlobal; the
// guest then traps with `unreachable` at its next loop iteration or recursive
// call. Code can only run without bound through a loop or through recursion (a
// cycle of calls, direct or through call_indirect), and every cycle of calls
// passes through a function that calls backwards in index order (itself
// included) or calls indirectly: those are the functions checked at entry.
// Others end within their own length plus what they call.
//
// That exit to Go also served a second purpose: native code cannot be
// preempted, so a guest spinning in compiled code blocks every stop-the-world
// of the process (GC) until it leaves, and with it the goroutine that would
// interrupt it and every other request of the server. So in modules with a
// memory each function with a loop gets a new i32 local counting iterations,
// and a second new global counts calls across the module: every 1024 loop
// iterations of one frame, and every 4096 calls, the check runs
// `memory.grow 0`, which wazero implements as a short exit to Go where the
// goroutine can be preempted. Modules without a memory (rare: every
// toolchain's guests have one) get the flag checks only.
//
// # The start function
//
// A module's start section runs inside instantiation, before the host can
// reach the interrupt global, so a start function that spins could never be
// stopped. Instrument removes the start section and exports the start
// function as StartExport instead; the host calls it right after instantiation
// (nothing else can run in between, so the guest cannot tell), under the same
// deadline as `_initialize`.
//
// # Memory
//
// wazero caps linear memory only. Tables are Go slices of 8-byte references
// that a guest sizes itself (up to 2^27 entries each at instantiation, 2^32
// through table.grow), and globals, segments and imports cost host structures
// per instance. With Options.MemoryLimit set, Instrument counts all of it
// against the limit (see Limits) and gives every table a maximum, so that no
// instance can make the host allocate more than its limit; Module.MemoryPages
// is what is left for linear memory.
//
// Every new global, local and export comes after the existing ones, so no
// index the guest uses changes; code that names a global the module does not
// define is refused, so a guest cannot reach the injected globals. Every
// section Instrument does not need to change is kept byte for byte.
package interrupt

import (
	"errors"
	"fmt"
)

// ExportName is the export name of the injected interrupt global.
const ExportName = "wasmsrv_interrupt"

// StartExport is the export name of the module's start function, when it had
// one (the start section is removed).
const StartExport = "wasmsrv_start_function"

// ErrMalformed is wrapped by every error about a module that cannot be decoded.
var ErrMalformed = errors.New("malformed wasm module")

// ErrUnsupported is wrapped by errors about instructions from proposals the
// runtime does not enable (threads, tail calls, exception handling, GC...).
var ErrUnsupported = errors.New("unsupported wasm instruction")

// ErrOverLimit is wrapped by errors about a module whose instances would need
// more memory than Options.MemoryLimit before running any code.
var ErrOverLimit = errors.New("module does not fit in the memory limit")

// Options configure Instrument.
type Options struct {
	// MemoryLimit is the memory budget of one instance in bytes: linear memory,
	// tables and the host structures of globals, segments and imports count
	// against it. 0 leaves tables as declared and MemoryPages 0.
	MemoryLimit int64
	// Snapshot prepares the module for instances started from a snapshot of
	// another instance's memory and globals, when its whole state is those two
	// (no table or segment changes at run time, no imported mutable global): its
	// active data segments become passive ones that the export DataInitExport
	// copies into memory (the host calls it first in a fresh instance; an
	// instance from a snapshot already holds them), and each mutable global it
	// defines is exported as GlobalExportPrefix + its index. Module.NoSnapshot
	// says why a module cannot be prepared.
	Snapshot bool
}

// Module is an instrumented module.
type Module struct {
	// Wasm is the rewritten binary.
	Wasm []byte
	// Start reports that the module had a start function; it is exported as
	// StartExport and the host must call it before anything else.
	Start bool
	// MemoryPages is the largest linear memory (64 KiB pages) an instance may
	// grow to within Options.MemoryLimit once everything else is counted; 0
	// when no limit was given.
	MemoryPages uint32
	// Limits is the accounting behind MemoryPages.
	Limits Limits
	// DataInit reports that the data segments are copied by DataInitExport,
	// which the host must call first in a fresh instance (Options.Snapshot).
	DataInit bool
	// Globals are the export names of the module's mutable globals
	// (Options.Snapshot; set when DataInit is).
	Globals []string
	// NoSnapshot says why Options.Snapshot could not prepare the module.
	NoSnapshot string
}

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

// checks selects what instrument injects; benchmarks compare subsets.
type checks struct {
	loops      bool // the flag at every loop header
	entries    bool // the flag (and the call counter) at the entry of functions that may recurse
	safepoints bool // the GC safepoints (loop tick local, call counter global)
}

var allChecks = checks{loops: true, entries: true, safepoints: true}

// Instrument returns bin rewritten as the package comment describes: (1) a new
// mutable i32 global, initialised to 0 and exported as ExportName, checked at
// the start of every `loop` body and at the entry of every function that
// contains a call: `global.get $g  if (empty block type 0x40)  unreachable
// end`. Setting the global to non-zero from the host (api.MutableGlobal.Set
// via mod.ExportedGlobal(ExportName)) makes the guest trap with `unreachable`
// at its next loop iteration or call. (2) If the module has a memory, GC
// safepoints: a local per function with loops and a global counting calls.
// (3) The start section, if any, becomes the export StartExport. (4) With
// opt.MemoryLimit, tables capped and everything counted against the limit.
func Instrument(bin []byte, opt Options) (*Module, error) { return instrument(bin, opt, allChecks) }

func instrument(bin []byte, opt Options, ck checks) (*Module, error) {
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
	m, err := readLayout(sections)
	if err != nil {
		return nil, err
	}
	globals := uint64(m.importedGlobals) + uint64(m.definedGlobals)
	if globals >= 1<<32-2 {
		return nil, fmt.Errorf("%w: too many globals", ErrMalformed)
	}
	// Parameter count of each defined function, to number the new locals.
	params := make([]uint32, len(m.funcTypes))
	for i, ti := range m.funcTypes {
		if uint64(ti) >= uint64(len(m.typeParams)) {
			return nil, fmt.Errorf("%w: function %d has type index %d out of range", ErrMalformed, i, ti)
		}
		params[i] = m.typeParams[ti]
	}
	var code *codeInfo
	for _, s := range sections {
		if s.id == secCode {
			if code, err = analyzeCode(s.content, s.offset, params, uint32(globals), m.importedFuncs); err != nil {
				return nil, err
			}
		}
	}
	if code == nil && len(params) > 0 {
		return nil, fmt.Errorf("%w: %d functions but no code section", ErrMalformed, len(params))
	}

	res := &Module{Start: m.start != nil}
	var tables []byte
	if opt.MemoryLimit > 0 {
		var grown map[uint32]bool
		if code != nil {
			grown = code.grown
		}
		lim, err := m.account(opt.MemoryLimit, grown)
		if err != nil {
			return nil, err
		}
		res.Limits, res.MemoryPages = *lim, lim.MemoryPages
		tables = lim.tableSection
	}

	inj := injected{flag: uint32(globals)}
	newGlobals := [][]byte{{0x7f, 0x01, 0x41, 0x00, 0x0b}} // (mut i32) (i32.const 0)
	if ck.safepoints && m.hasMemory && ck.entries && code != nil && code.anyCall {
		inj.counter, inj.hasCounter = uint32(globals)+1, true
		newGlobals = append(newGlobals, []byte{0x7f, 0x01, 0x41, 0x00, 0x0b})
	}
	newExports := [][]byte{exportEntry(ExportName, 0x03, inj.flag)}
	if m.start != nil {
		newExports = append(newExports, exportEntry(StartExport, 0x00, *m.start))
	}
	var snap *snapshotPlan
	if opt.Snapshot {
		snap, res.NoSnapshot = m.planSnapshot(code)
		if snap != nil {
			res.DataInit, res.Globals = true, snap.globals
			newExports = append(newExports, snap.exports...)
		}
	}

	// The code section usually dominates; leave room for a few thousand checks.
	out := make([]byte, 0, len(bin)+len(bin)/16+64)
	out = append(out, bin[:8]...)
	hasGlobal, hasExport := m.hasGlobal, m.hasExport
	// insertMissing adds the global and export sections that did not exist
	// once the output reaches a section that must come after them.
	insertMissing := func(rank int) {
		if !hasGlobal && rank > sectionRank(secGlobal) {
			out = appendSection(out, secGlobal, appendEntries(nil, 0, newGlobals))
			hasGlobal = true
		}
		if !hasExport && rank > sectionRank(secExport) {
			out = appendSection(out, secExport, appendEntries(nil, 0, newExports))
			hasExport = true
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			insertMissing(sectionRank(s.id))
		}
		switch s.id {
		case secGlobal:
			out = appendSection(out, secGlobal, appendEntries(s.content, m.definedGlobals, newGlobals))
		case secExport:
			out = appendSection(out, secExport, appendEntries(s.content, m.exports, newExports))
		case secStart:
			// Dropped: the function is exported as StartExport instead.
		case secTable:
			if tables != nil {
				out = appendSection(out, secTable, tables)
			} else {
				out = append(out, s.raw...)
			}
		case secCode:
			content := code.emit(inj, ck, m.hasMemory)
			if snap != nil {
				out = appendSection(out, secDataCount, appendU32(nil, snap.segments))
				content = appendEntries(content, uint32(len(code.bodies)), [][]byte{snap.initBody})
			}
			out = appendSection(out, secCode, content)
		case secType:
			if snap != nil {
				out = appendSection(out, secType, appendEntries(s.content, uint32(len(m.typeParams)), [][]byte{{0x60, 0x00, 0x00}}))
			} else {
				out = append(out, s.raw...)
			}
		case secFunction:
			if snap != nil {
				out = appendSection(out, secFunction, appendEntries(s.content, uint32(len(m.funcTypes)), [][]byte{appendU32(nil, snap.typeIdx)}))
			} else {
				out = append(out, s.raw...)
			}
		case secData:
			if snap != nil {
				out = appendSection(out, secData, snap.data)
			} else {
				out = append(out, s.raw...)
			}
		default:
			out = append(out, s.raw...)
		}
	}
	insertMissing(sectionRank(secData) + 1)
	res.Wasm = out
	return res, nil
}

// injected holds the indices of the new globals.
type injected struct {
	flag, counter uint32
	hasCounter    bool
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

// appendEntries returns a vector section's content (count entries, or nil for
// a new section) with entries appended; existing entries are copied as is.
func appendEntries(content []byte, count uint32, entries [][]byte) []byte {
	off, size := 0, len(content)+5
	if content != nil {
		_, off, _ = readU32(content, 0)
	}
	for _, e := range entries {
		size += len(e)
	}
	b := make([]byte, 0, size)
	b = appendU32(b, count+uint32(len(entries)))
	b = append(b, content[off:]...)
	for _, e := range entries {
		b = append(b, e...)
	}
	return b
}

func exportEntry(name string, kind byte, idx uint32) []byte {
	b := appendU32(nil, uint32(len(name)))
	b = append(b, name...)
	b = append(b, kind)
	return appendU32(b, idx)
}
