package interrupt

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
)

// vec is a vector of n copies of item.
func vec(n int, item ...byte) []byte {
	b := appendU32(nil, uint32(n))
	for range n {
		b = append(b, item...)
	}
	return b
}

// growModule is a module with tables (raw table section content) and one
// function "grow" () -> i32 that grows table t by n entries of ref.null.
func growModule(tables []byte, t byte, refNull byte, n uint32) []byte {
	body := slices.Concat([]byte{0x00, 0xd0, refNull, 0x41}, appendS32(nil, int32(n)), []byte{0xfc, 15, t, 0x0b})
	return module(
		sec(secType, 1, 0x60, 0, 1, 0x7f),
		sec(secFunction, 1, 0),
		sec(secTable, tables...),
		sec(secMemory, 1, 0, 1),
		sec(secExport, slices.Concat([]byte{1, 4}, []byte("grow"), []byte{0, 0})...),
		codeSec(body))
}

// TestLimitsRefuse: whatever a module declares that costs host memory per
// instance counts against the limit; one whose initial sizes do not fit is
// refused with an error naming what takes the memory.
func TestLimitsRefuse(t *testing.T) {
	const limit = 16 << 20
	tests := []struct {
		name string
		bin  []byte
		msg  string
	}{
		{"a huge funcref table", module(sec(secTable, 2, 0x70, 0, 1, 0x70, 0, 0x80, 0xc2, 0xd7, 0x2f)), // 100,000,000
			"table 1 (funcref) has 100000000 initial entries, 762.9MiB at 8 bytes each, over the memory limit of 16MiB"},
		{"a huge externref table with a maximum", module(sec(secTable, 1, 0x6f, 1, 0x81, 0x80, 0x80, 0x01, 0x81, 0x80, 0x80, 0x01)),
			"table 0 (externref) has 2097153 initial entries, 16.0MiB"},
		{"tables that fit one by one but not together", module(sec(secTable, vec(3, 0x70, 0, 0x80, 0x80, 0x40)...)), // 3 × 1Mi entries
			"an instance needs 24.0MiB before it runs"},
		{"many tables", module(sec(secTable, vec(200000, 0x70, 0, 0)...)),
			"200000 tables"},
		{"many globals", module(sec(secGlobal, vec(200000, 0x7f, 0, 0x41, 0, 0x0b)...)),
			"200002 globals"},
		{"many data segments", module(sec(secMemory, 1, 0, 0), sec(secData, vec(600000, 1, 0)...)),
			"600000 segments"},
		{"many element segments", module(sec(secElement, vec(600000, 1, 0, 0)...)),
			"600000 segments"},
		{"a long passive element segment", module(sec(secType, 1, 0x60, 0, 0), sec(secFunction, 1, 0),
			sec(secElement, slices.Concat([]byte{1, 1, 0}, vec(400000, 0))...), codeSec([]byte{0x00, 0x0b})),
			"over the memory limit of 16MiB"},
		{"many imports", module(sec(secType, 1, 0x60, 0, 0), sec(secImport, vec(400000, 1, 'h', 1, 'f', 0, 0)...)),
			"400000 imports"},
		{"memory and tables together", module(sec(secTable, 1, 0x70, 0, 0x80, 0x80, 0x10), sec(secMemory, 1, 0, 0xff, 0x01)),
			"linear memory 255 pages"},
		{"an imported table", module(sec(secImport, 1, 1, 'h', 1, 't', 1, 0x70, 0, 1)),
			"imports a table"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Instrument(tt.bin, Options{}); err != nil {
				t.Fatalf("without a limit: %v", err)
			}
			_, err := Instrument(tt.bin, Options{MemoryLimit: limit})
			if !errors.Is(err, ErrOverLimit) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("err = %v, want ErrOverLimit mentioning %q", err, tt.msg)
			}
			if !strings.Contains(tt.name, "imported") {
				if _, err := Instrument(tt.bin, Options{MemoryLimit: 4 << 30}); err != nil {
					t.Errorf("with a 4 GiB limit: %v", err)
				}
			}
		})
	}
}

// TestLimitsGrow: tables that table.grow names may grow within their share of
// the limit, and no further, whatever their declared maximum; tables no
// table.grow names keep their size; linear memory gets the rest.
func TestLimitsGrow(t *testing.T) {
	const limit = 16 << 20
	share := uint32(limit / tableGrowthShare / TableEntryBytes) // entries
	tests := []struct {
		name    string
		bin     []byte
		max     []uint32
		growMax uint32 // the largest grow that succeeds
	}{
		{"funcref, no maximum", growModule([]byte{1, 0x70, 0, 1}, 0, 0x70, 0), []uint32{1 + share}, share},
		{"externref, no maximum", growModule([]byte{1, 0x6f, 0, 1}, 0, 0x6f, 0), []uint32{1 + share}, share},
		{"a maximum beyond the share", growModule([]byte{1, 0x70, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f}, 0, 0x70, 0), []uint32{1 + share}, share},
		{"a maximum within the share", growModule([]byte{1, 0x70, 1, 1, 0x80, 0x08}, 0, 0x70, 0), []uint32{1024}, 1023},
		{"two growable tables share", growModule([]byte{3, 0x70, 0, 1, 0x70, 0, 1, 0x70, 0, 5}, 2, 0x70, 0),
			[]uint32{1, 1, 5 + share}, share},
		{"a table with an initializer", growModule([]byte{1, 0x40, 0x00, 0x70, 0, 1, 0xd0, 0x70, 0x0b}, 0, 0x70, 0), []uint32{1 + share}, share},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Instrument(tt.bin, Options{MemoryLimit: limit})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(tt.name, "initializer") { // wabt does not know the form
				validate(t, res.Wasm)
			}
			if !slices.Equal(res.Limits.TableMax, tt.max) {
				t.Errorf("table maxima %v, want %v", res.Limits.TableMax, tt.max)
			}
			if used := int64(res.MemoryPages)*pageBytes + res.Limits.Tables + res.Limits.Host; used > limit || used < limit-pageBytes {
				t.Errorf("memory %d pages + tables %d + host %d = %d bytes for a %d limit", res.MemoryPages, res.Limits.Tables, res.Limits.Host, used, limit)
			}
			// Run it: the grow beyond the share fails, the one within succeeds.
			for _, c := range []struct {
				n    uint32
				want int32
			}{{tt.growMax + 1, -1}, {100_000_000, -1}, {tt.growMax, 1}} {
				got := runGrow(t, patchGrow(t, res.Wasm, c.n))
				if (c.want == -1) != (got == -1) {
					t.Errorf("table.grow %d = %d", c.n, got)
				}
			}
		})
	}
}

// patchGrow rebuilds the instrumented module's grow function to grow by n.
// The instrumented body is the original: grow does not recurse or loop.
func patchGrow(t *testing.T, bin []byte, n uint32) []byte {
	t.Helper()
	ss, err := splitSections(bin)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	out = append(out, bin[:8]...)
	for _, s := range ss {
		if s.id != secCode {
			out = append(out, s.raw...)
			continue
		}
		// One body: 0x00 ref.null t i32.const N 0xfc 15 x end
		body := s.content[2:] // count, size
		nb := slices.Concat(body[:3], []byte{0x41}, appendS32(nil, int32(n)))
		nb = append(nb, body[len(body)-4:]...)
		out = append(out, codeSec(nb)...)
	}
	return out
}

func runGrow(t *testing.T, bin []byte) int32 {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	res, err := mod.ExportedFunction("grow").Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return int32(uint32(res[0]))
}

// TestLimitsHold instantiates modules that declare as much as a 16 MiB limit
// allows of each costly thing and checks the host heap of an instance stays
// within the limit: the per-item costs the accounting uses are not too low.
func TestLimitsHold(t *testing.T) {
	const limit = 16 << 20
	for _, tt := range []struct {
		name string
		item func(n int) []byte
	}{
		{"globals", func(n int) []byte { return module(sec(secGlobal, vec(n, 0x7f, 0, 0x41, 0, 0x0b)...)) }},
		{"data segments", func(n int) []byte { return module(sec(secMemory, 1, 0, 0), sec(secData, vec(n, 1, 0)...)) }},
		{"element segments", func(n int) []byte { return module(sec(secElement, vec(n, 1, 0, 0)...)) }},
		{"passive element entries", func(n int) []byte {
			return module(sec(secType, 1, 0x60, 0, 0), sec(secFunction, 1, 0),
				sec(secElement, slices.Concat([]byte{1, 1, 0}, vec(n, 0))...), codeSec([]byte{0x00, 0x0b}))
		}},
		{"tables", func(n int) []byte { return module(sec(secTable, vec(n, 0x70, 0, 0)...)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// The most that fits, by bisection.
			lo, hi := 0, 1<<20
			for lo < hi {
				mid := (lo + hi + 1) / 2
				if _, err := Instrument(tt.item(mid), Options{MemoryLimit: limit}); err == nil {
					lo = mid
				} else {
					hi = mid - 1
				}
			}
			res, err := Instrument(tt.item(lo), Options{MemoryLimit: limit})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			cm, err := rt.CompileModule(ctx, res.Wasm)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const k = 4
			var mods []any
			for range k {
				m, err := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
				if err != nil {
					t.Fatal(err)
				}
				mods = append(mods, m)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perInstance := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / k
			t.Logf("%d %s fit in %d bytes: %d bytes of host heap per instance (accounted %d)", lo, tt.name, limit, perInstance, res.Limits.Host)
			if perInstance > res.Limits.Host+64<<10 {
				t.Errorf("an instance takes %d bytes of host heap, more than the %d accounted", perInstance, res.Limits.Host)
			}
			runtime.KeepAlive(mods)
		})
	}
}
