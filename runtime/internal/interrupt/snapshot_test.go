package interrupt

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

// dataModule has a memory, two active data segments, a mutable and an
// immutable global, and one function: body.
func dataModule(body []byte) []byte {
	data := slices.Concat([]byte{2},
		[]byte{0x00, 0x41, 0x10, 0x0b, 3}, []byte("abc"), // at 16
		[]byte{0x02, 0x00, 0x41, 0x80, 0x02, 0x0b, 2}, []byte("de")) // memory 0, at 256
	return module(append(voidFunc(1),
		sec(secMemory, 1, 0x00, 1),
		sec(secGlobal, 2, 0x7f, 0x01, 0x41, 0x07, 0x0b, 0x7e, 0x00, 0x42, 0x01, 0x0b),
		sec(secExport, 1, 3, 'm', 'e', 'm', 0x02, 0),
		codeSec(body),
		sec(secData, data...))...)
}

func TestSnapshotRewrite(t *testing.T) {
	ctx := context.Background()
	out, err := Instrument(dataModule([]byte{0x00, 0x0b}), Options{Snapshot: true})
	if err != nil {
		t.Fatal(err)
	}
	if out.NoSnapshot != "" || !out.DataInit || !slices.Equal(out.Globals, []string{GlobalExportPrefix + "0"}) {
		t.Fatalf("NoSnapshot %q, DataInit %v, Globals %q", out.NoSnapshot, out.DataInit, out.Globals)
	}
	validate(t, out.Wasm)
	rt := newRuntime(t)
	mod, err := rt.Instantiate(ctx, out.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	mem := mod.Memory()
	if b, _ := mem.Read(16, 3); string(b) != "\x00\x00\x00" {
		t.Fatalf("data copied at instantiation: %q", b)
	}
	if _, err := mod.ExportedFunction(DataInitExport).Call(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := mem.Read(16, 3); string(b) != "abc" {
		t.Fatalf("at 16: %q", b)
	}
	if b, _ := mem.Read(256, 2); string(b) != "de" {
		t.Fatalf("at 256: %q", b)
	}
	g, ok := mod.ExportedGlobal(out.Globals[0]).(api.MutableGlobal)
	if !ok || g.Get() != 7 {
		t.Fatalf("global export: %v", g)
	}
}

// TestSnapshotRefused: a module whose state is more than its memory and
// globals gets no snapshot, and is otherwise instrumented as usual.
func TestSnapshotRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		bin  []byte
		want string
	}{
		"no memory": {module(append(voidFunc(1), codeSec([]byte{0x00, 0x0b}))...), "no memory"},
		"table.set": {module(append(voidFunc(1),
			sec(secTable, 1, 0x70, 0x00, 1),
			sec(secMemory, 1, 0x00, 1),
			codeSec([]byte{0x00, 0x41, 0x00, 0xd0, 0x70, 0x26, 0x00, 0x0b}))...), "table.set"},
		"table.grow": {module(append(voidFunc(1),
			sec(secTable, 1, 0x70, 0x00, 1),
			sec(secMemory, 1, 0x00, 1),
			codeSec([]byte{0x00, 0xd0, 0x70, 0x41, 0x01, 0xfc, 0x0f, 0x00, 0x1a, 0x0b}))...), "table.grow"},
		"imported mutable global": {module(append([][]byte{sec(secType, 1, 0x60, 0, 0),
			sec(secImport, 1, 1, 'm', 1, 'g', 0x03, 0x7f, 0x01),
			sec(secFunction, 1, 0)},
			sec(secMemory, 1, 0x00, 1),
			codeSec([]byte{0x00, 0x0b}))...), "mutable global"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := Instrument(tc.bin, Options{Snapshot: true})
			if err != nil {
				t.Fatal(err)
			}
			if out.DataInit || !strings.Contains(out.NoSnapshot, tc.want) {
				t.Fatalf("DataInit %v, NoSnapshot %q; want it to name %q", out.DataInit, out.NoSnapshot, tc.want)
			}
			validate(t, out.Wasm)
		})
	}
}
