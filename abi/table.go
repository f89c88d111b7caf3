package abi

import (
	"strconv"
	"strings"
)

// The ABI in one table: every function a guest may import from the core module and
// every export the host looks for, with its signature, which shapes use it and since
// which revision it exists. SPEC.md §1, §4, §5, §6, §8 and §9 are its prose form. The
// runtime registers its host functions and validates guests from these tables, and
// tests check the Go SDK's and the C header's declarations against them, so the
// signatures are written down exactly once.
//
// The tables are returned by functions (a fresh slice per call) rather than held in
// package variables: nobody can change them for everybody else.

// ValType is a WebAssembly value type, encoded as in the binary format (0x7f i32,
// 0x7e i64), which is also wazero's api.ValueType encoding. The ABI uses only i32
// and i64 (SPEC §2).
type ValType byte

// Value types of the ABI.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
)

func (t ValType) String() string {
	switch t {
	case I32:
		return "i32"
	case I64:
		return "i64"
	}
	return "unknown"
}

// Signature is a function type.
type Signature struct {
	Params, Results []ValType
}

// String formats s as "(i32, i32) -> (i64)", the form the host's errors use.
func (s Signature) String() string {
	var b strings.Builder
	list := func(ts []ValType) {
		b.WriteByte('(')
		for i, t := range ts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(t.String())
		}
		b.WriteByte(')')
	}
	list(s.Params)
	b.WriteString(" -> ")
	list(s.Results)
	return b.String()
}

// Equal reports whether s and o are the same function type.
func (s Signature) Equal(o Signature) bool {
	return equalTypes(s.Params, o.Params) && equalTypes(s.Results, o.Results)
}

func equalTypes(a, b []ValType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Revision is a revision of ABI version 1: major in the high byte, minor in the low.
// Revisions only add (SPEC, top): a guest written for an earlier one runs unchanged.
type Revision uint16

// Revisions of the ABI.
const (
	Revision1_0 Revision = 0x0100 // the shapes and WebSocket
	Revision1_1 Revision = 0x0101 // the PLUGIN event; framing is the host's
	// CurrentRevision is the revision this package and the host implement.
	CurrentRevision = Revision1_1
)

func (r Revision) String() string {
	return strconv.Itoa(int(r>>8)) + "." + strconv.Itoa(int(r&0xff))
}

// Shape is one way the host runs a module (SPEC §1).
type Shape uint8

// Shapes. A module's exports decide its shape: the mode marker for the two reactor
// shapes; a WASI command (exports _start, no markers) is served CGI-style, outside
// this ABI, and is listed so that what the host asks of it is in the table too.
const (
	ShapeSync Shape = iota
	ShapeAsync
	ShapeCommand
	numShapes
)

// Shapes lists every shape.
func Shapes() []Shape { return []Shape{ShapeSync, ShapeAsync, ShapeCommand} }

func (s Shape) String() string {
	switch s {
	case ShapeSync:
		return "sync"
	case ShapeAsync:
		return "async"
	case ShapeCommand:
		return "command"
	}
	return "unknown"
}

// Presence is what a shape asks of one export.
type Presence uint8

// Presences.
const (
	// Ignored: the host does not look for this export in the shape.
	Ignored Presence = iota
	// Optional: the host uses the export when it is there; its signature must match.
	Optional
	// Required: the module must export it, with this signature.
	Required
	// Forbidden: exporting it makes the module another shape (the other mode's
	// marker; a marker on a WASI command).
	Forbidden
)

func (p Presence) String() string {
	switch p {
	case Ignored:
		return "ignored"
	case Optional:
		return "optional"
	case Required:
		return "required"
	case Forbidden:
		return "forbidden"
	}
	return "unknown"
}

// ExportKind is what an export is.
type ExportKind uint8

// Export kinds the ABI uses.
const (
	KindFunction ExportKind = iota
	KindMemory
)

// Export is one export the host looks for in a guest.
type Export struct {
	Name string
	Kind ExportKind
	// Sig is the function's type (KindFunction only).
	Sig Signature
	// In says what each shape asks of it, indexed by Shape.
	In [numShapes]Presence
	// Since is the revision that introduced it.
	Since Revision
	// Section is where SPEC.md describes it.
	Section string
}

// Import is one host function a guest may import.
type Import struct {
	Module, Name string
	Sig          Signature
	// Since is the revision that introduced it.
	Since Revision
	// Shapes are the shapes that may import it. Functions of the async shape
	// (§8.3) are importable by a sync guest too and answer ERR_UNSUPPORTED (or
	// ERR_STATE) there, so a module serving both shapes links in either; a WASI
	// command imports no core function.
	Shapes []Shape
	// Section is where SPEC.md describes it.
	Section string
}

func sig(params []ValType, results ...ValType) Signature {
	return Signature{Params: params, Results: results}
}

func vals(ts ...ValType) []ValType { return ts }

// Exports is the table of exports the host looks for (SPEC §1, §5, §6, §8.1), in
// the order the host checks them.
func Exports() []Export {
	const (
		o, r, x, f = Optional, Required, Ignored, Forbidden
	)
	//           sync async command
	p := func(s, a, c Presence) [numShapes]Presence { return [numShapes]Presence{s, a, c} }
	none := Signature{}
	return []Export{
		{Name: ExportMemory, Kind: KindMemory, In: p(r, r, r), Since: Revision1_0, Section: "§1"},
		{Name: ExportInitialize, Sig: none, In: p(o, o, x), Since: Revision1_0, Section: "§1"},
		{Name: ExportStart, Sig: none, In: p(x, x, r), Since: Revision1_0, Section: "§1"},
		{Name: MarkerVersion, Sig: none, In: p(r, r, f), Since: Revision1_0, Section: "§1"},
		{Name: MarkerModeSync, Sig: none, In: p(r, f, f), Since: Revision1_0, Section: "§1"},
		{Name: MarkerModeAsync, Sig: none, In: p(f, r, f), Since: Revision1_0, Section: "§1"},
		{Name: ExportHandle, Sig: sig(vals(I32), I32), In: p(r, x, x), Since: Revision1_0, Section: "§5"},
		{Name: ExportOnEvent, Sig: sig(vals(I32, I32, I64, I64), I32), In: p(x, r, x), Since: Revision1_0, Section: "§8.1"},
		{Name: ExportOnStart, Sig: sig(nil, I32), In: p(o, o, x), Since: Revision1_0, Section: "§6"},
		{Name: ExportOnStop, Sig: sig(nil, I32), In: p(o, o, x), Since: Revision1_0, Section: "§6"},
	}
}

// Imports is the table of the core host functions (import module "wasmsrv";
// SPEC §4, §8.3, §9.2).
func Imports() []Import {
	reactors := func() []Shape { return []Shape{ShapeSync, ShapeAsync} }
	fn := func(name string, s Signature, section string) Import {
		return Import{Module: ImportModule, Name: name, Sig: s, Since: Revision1_0, Shapes: reactors(), Section: section}
	}
	return []Import{
		fn(FnReqHead, sig(vals(I32, I32, I32), I32), "§4"),
		fn(FnBodyRead, sig(vals(I32, I32, I32), I64), "§4"),
		fn(FnRespStart, sig(vals(I32, I32, I32, I32), I32), "§4"),
		fn(FnRespWrite, sig(vals(I32, I32, I32, I32), I32), "§4"),
		fn(FnDisconnected, sig(vals(I32), I32), "§4"),
		fn(FnHostFeatures, sig(nil, I64), "§4"),
		fn(FnWSAccept, sig(vals(I32, I32, I32, I32, I32), I32), "§9.2"),
		fn(FnWSRecv, sig(vals(I32, I32, I32), I64), "§9.2"),
		fn(FnWSSend, sig(vals(I32, I32, I32, I32), I32), "§9.2"),
		fn(FnWSClose, sig(vals(I32, I32, I32, I32), I32), "§9.2"),
		fn(FnWSCloseInfo, sig(vals(I32, I32, I32), I64), "§9.2"),
		fn(FnCtxDone, sig(vals(I32, I32), I32), "§8.3"),
		fn(FnTimerSet, sig(vals(I32, I64), I32), "§8.3"),
		fn(FnTimerCancel, sig(vals(I32), I32), "§8.3"),
		fn(FnSetBackpressure, sig(vals(I32), I32), "§8.3"),
	}
}

// LookupImport returns the core host function module.name, if there is one.
func LookupImport(module, name string) (Import, bool) {
	for _, imp := range Imports() {
		if imp.Module == module && imp.Name == name {
			return imp, true
		}
	}
	return Import{}, false
}

// LookupExport returns the export the host looks for under name, if any.
func LookupExport(name string) (Export, bool) {
	for _, e := range Exports() {
		if e.Name == name {
			return e, true
		}
	}
	return Export{}, false
}
