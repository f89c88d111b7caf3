package interrupt

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmsrv/wasmsrv/runtime/internal/wasmdata"
)

// ---- hand-built modules -------------------------------------------------

var header = []byte("\x00asm\x01\x00\x00\x00")

func sec(id byte, content ...byte) []byte {
	return append(appendU32([]byte{id}, uint32(len(content))), content...)
}

func module(sections ...[]byte) []byte {
	return slices.Concat(append([][]byte{header}, sections...)...)
}

// codeSec wraps function bodies (locals and expression) into a code section.
func codeSec(bodies ...[]byte) []byte {
	c := appendU32(nil, uint32(len(bodies)))
	for _, b := range bodies {
		c = append(appendU32(c, uint32(len(b))), b...)
	}
	return sec(secCode, c...)
}

// voidFunc declares n functions of type 0, func() -> ().
func voidFunc(n int) [][]byte {
	funcs := []byte{byte(n)}
	for range n {
		funcs = append(funcs, 0)
	}
	return [][]byte{sec(secType, 1, 0x60, 0, 0), sec(secFunction, funcs...)}
}

func checkSeq(gidx ...byte) []byte {
	return slices.Concat([]byte{0x23}, gidx, []byte{0x04, 0x40, 0x00, 0x0b})
}

// tickSeq is the safepoint counter on local l (< 128).
func tickSeq(l byte) []byte {
	return []byte{0x20, l, 0x41, 0x01, 0x6b, 0x22, l, // l = l - 1
		0x41, 0xff, 0x07, 0x71, 0x45, 0x04, 0x40, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b} // if l&1023 == 0 { memory.grow 0 }
}

func exportSec(gidx ...byte) []byte {
	return sec(secExport, slices.Concat([]byte{1, byte(len(ExportName))}, []byte(ExportName), []byte{3}, gidx)...)
}

// startExport is the export entry of start function f (< 128).
func startExport(f byte) []byte {
	return slices.Concat([]byte{byte(len(StartExport))}, []byte(StartExport), []byte{0, f})
}

var newGlobal = sec(secGlobal, 1, 0x7f, 0x01, 0x41, 0x00, 0x0b)

// twoGlobals is the interrupt flag and the call counter.
var twoGlobals = sec(secGlobal, 2, 0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41, 0x00, 0x0b)

// callSeq is the call counter's safepoint on global g (< 128).
func callSeq(g byte) []byte {
	return []byte{0x23, g, 0x41, 0x01, 0x6b, 0x24, g, // g = g - 1
		0x23, g, 0x41, 0xff, 0x1f, 0x71, 0x45, 0x04, 0x40, 0x41, 0x00, 0x40, 0x00, 0x1a, 0x0b} // if g&4095 == 0 { memory.grow 0 }
}

func TestInstrumentBytes(t *testing.T) {
	// 130 defined globals make the new index 130, a two-byte LEB128.
	many := []byte{0x82, 0x01}
	for range 130 {
		many = append(many, 0x7f, 0x00, 0x41, 0x00, 0x0b)
	}
	manyOut := append([]byte{0x83, 0x01}, many[2:]...)
	manyOut = append(manyOut, 0x7f, 0x01, 0x41, 0x00, 0x0b)
	otherExport := []byte{1, 1, 'f', 0, 0}
	otherExportOut := slices.Concat([]byte{2, 1, 'f', 0, 0, byte(len(ExportName))}, []byte(ExportName), []byte{3, 0x82, 0x01})
	custom := sec(secCustom, 3, 'a', 'b', 'c', 0x03, 0x03)

	tests := []struct {
		name string
		in   []byte
		want []byte
	}{{
		name: "empty module",
		in:   module(),
		want: module(newGlobal, exportSec(0)),
	}, {
		name: "custom section only",
		in:   module(custom),
		want: module(custom, newGlobal, exportSec(0)),
	}, {
		name: "loop and a 0x03 immediate",
		in: module(append(voidFunc(1), codeSec(
			[]byte{0x00, 0x41, 0x03, 0x1a, 0x03, 0x40, 0x41, 0x03, 0x1a, 0x0b, 0x0b}))...),
		want: module(append(voidFunc(1), newGlobal, exportSec(0), codeSec(
			slices.Concat([]byte{0x00, 0x41, 0x03, 0x1a, 0x03, 0x40}, checkSeq(0), []byte{0x41, 0x03, 0x1a, 0x0b, 0x0b})))...),
	}, {
		name: "nested loops, locals, value and type-index block types",
		in: module(append(voidFunc(1), codeSec(
			[]byte{0x01, 0x02, 0x7f, 0x03, 0x7f, 0x03, 0x00, 0x0b, 0x41, 0x01, 0x0b, 0x1a, 0x0b}))...),
		want: module(append(voidFunc(1), newGlobal, exportSec(0), codeSec(
			slices.Concat([]byte{0x01, 0x02, 0x7f, 0x03, 0x7f}, checkSeq(0), []byte{0x03, 0x00}, checkSeq(0),
				[]byte{0x0b, 0x41, 0x01, 0x0b, 0x1a, 0x0b})))...),
	}, {
		name: "memory: tick local and safepoint",
		in:   module(append(voidFunc(1), sec(secMemory, 1, 0, 0), codeSec([]byte{0x00, 0x03, 0x40, 0x0b, 0x0b}))...),
		want: module(append(voidFunc(1), sec(secMemory, 1, 0, 0), newGlobal, exportSec(0),
			codeSec(slices.Concat([]byte{0x01, 0x01, 0x7f, 0x03, 0x40}, checkSeq(0), tickSeq(0), []byte{0x0b, 0x0b})))...),
	}, {
		name: "tick local after params and locals, declared once",
		in: module(sec(secType, 2, 0x60, 0, 0, 0x60, 2, 0x7f, 0x7f, 0),
			sec(secFunction, 2, 0, 1), sec(secMemory, 1, 0, 0),
			codeSec([]byte{0x00, 0x0b}, []byte{0x01, 0x02, 0x7e, 0x03, 0x40, 0x0b, 0x03, 0x40, 0x0b, 0x0b})),
		want: module(sec(secType, 2, 0x60, 0, 0, 0x60, 2, 0x7f, 0x7f, 0),
			sec(secFunction, 2, 0, 1), sec(secMemory, 1, 0, 0), newGlobal, exportSec(0),
			codeSec([]byte{0x00, 0x0b}, slices.Concat([]byte{0x02, 0x02, 0x7e, 0x01, 0x7f, 0x03, 0x40}, checkSeq(0), tickSeq(4),
				[]byte{0x0b, 0x03, 0x40}, checkSeq(0), tickSeq(4), []byte{0x0b, 0x0b}))),
	}, {
		name: "imported memory",
		in:   module(sec(secImport, 1, 1, 'a', 1, 'm', 2, 0, 1), codeSec()),
		want: module(sec(secImport, 1, 1, 'a', 1, 'm', 2, 0, 1), newGlobal, exportSec(0), codeSec()),
	}, {
		name: "many globals, existing export, custom sections kept in place",
		in: module(slices.Concat(voidFunc(1), [][]byte{sec(secGlobal, many...), custom, sec(secExport, otherExport...),
			codeSec([]byte{0x00, 0x03, 0x40, 0x0b, 0x0b}), custom})...),
		want: module(slices.Concat(voidFunc(1), [][]byte{sec(secGlobal, manyOut...), custom, sec(secExport, otherExportOut...),
			codeSec(slices.Concat([]byte{0x00, 0x03, 0x40}, checkSeq(0x82, 0x01), []byte{0x0b, 0x0b})), custom})...),
	}, {
		name: "no loops, no calls: code copied as is; the start section becomes an export",
		in: module(slices.Concat(voidFunc(1), [][]byte{sec(secStart, 0),
			codeSec([]byte{0x00, 0xfd, 0x0c, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0x1a, 0x0b})})...),
		want: module(slices.Concat(voidFunc(1), [][]byte{newGlobal,
			sec(secExport, slices.Concat([]byte{2, byte(len(ExportName))}, []byte(ExportName), []byte{3, 0}, startExport(0))...),
			codeSec([]byte{0x00, 0xfd, 0x0c, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0x1a, 0x0b})})...),
	}, {
		name: "calls without memory: the flag at the entry of a backward call, no counter",
		in:   module(append(voidFunc(2), codeSec([]byte{0x00, 0x10, 0x01, 0x0b}, []byte{0x00, 0x10, 0x00, 0x0b}))...),
		want: module(append(voidFunc(2), newGlobal, exportSec(0),
			codeSec([]byte{0x00, 0x10, 0x01, 0x0b}, slices.Concat([]byte{0x00}, checkSeq(0), []byte{0x10, 0x00, 0x0b})))...),
	}, {
		name: "calls with memory: the flag and the call counter at entry, loop ticks",
		in: module(append(voidFunc(2), sec(secTable, 1, 0x70, 0, 1), sec(secMemory, 1, 0, 0),
			codeSec([]byte{0x00, 0x41, 0x00, 0x11, 0x00, 0x00, 0x0b}, []byte{0x00, 0x03, 0x40, 0x10, 0x01, 0x0b, 0x0b}))...),
		want: module(append(voidFunc(2), sec(secTable, 1, 0x70, 0, 1), sec(secMemory, 1, 0, 0), twoGlobals, exportSec(0),
			codeSec(slices.Concat([]byte{0x00}, checkSeq(0), callSeq(1), []byte{0x41, 0x00, 0x11, 0x00, 0x00, 0x0b}),
				slices.Concat([]byte{0x01, 0x01, 0x7f}, checkSeq(0), callSeq(1), []byte{0x03, 0x40}, checkSeq(0), tickSeq(0),
					[]byte{0x10, 0x01, 0x0b, 0x0b})))...),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Instrument(tt.in, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := res.Wasm
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got\n% x\nwant\n% x", got, tt.want)
			}
			validate(t, got)
		})
	}
}

func TestInstrumentErrors(t *testing.T) {
	body := func(code ...byte) []byte {
		return module(append(voidFunc(1), codeSec(append([]byte{0x00}, code...)))...)
	}
	// The body's first instruction is at offset len(header)+len(type)+len(func)+code id,size,count,size,locals.
	firstInstr := len(header) + 6 + 4 + 5
	tests := []struct {
		name    string
		in      []byte
		is      error
		message string
	}{
		{"short", []byte("\x00as"), ErrMalformed, "magic"},
		{"bad magic", []byte("\x00wasm\x01\x00\x00\x00"), ErrMalformed, "magic"},
		{"bad version", []byte("\x00asm\x02\x00\x00\x00"), ErrMalformed, "version"},
		{"section overruns", append(slices.Clone(header), 1, 5, 0), ErrMalformed, "overruns"},
		{"truncated size", append(slices.Clone(header), 1, 0x80), ErrMalformed, "truncated"},
		{"unknown section", module(sec(14)), ErrMalformed, "unknown section id 14"},
		{"out of order", module(sec(secFunction, 0), sec(secType, 0)), ErrMalformed, "out of order"},
		{"duplicate", module(sec(secType, 0), sec(secType, 0)), ErrMalformed, "out of order"},
		{"export name taken", module(sec(secExport,
			slices.Concat([]byte{1, byte(len(ExportName))}, []byte(ExportName), []byte{0, 0})...)), nil, "already taken"},
		{"atomics", body(0xfe, 0x10, 0x02, 0x00, 0x0b), ErrUnsupported, "threads"},
		{"tail call", body(0x12, 0x00, 0x0b), ErrUnsupported, "tail calls"},
		{"exception handling", body(0x06, 0x40, 0x0b, 0x0b), ErrUnsupported, "exception"},
		{"unknown opcode", body(0x27, 0x0b), ErrUnsupported, "unknown opcode"},
		{"reserved SIMD opcode", body(0xfd, 0x9a, 0x01, 0x0b), ErrUnsupported, "0xfd sub-opcode 154"},
		{"relaxed SIMD", body(0xfd, 0x80, 0x02, 0x0b), ErrUnsupported, "relaxed SIMD"},
		{"unknown 0xfc", body(0xfc, 0x12, 0x0b), ErrUnsupported, "0xfc sub-opcode 18"},
		{"truncated immediate", body(0x41), ErrMalformed, "truncated"},
		{"truncated v128.const", body(0xfd, 0x0c, 1, 2, 3), ErrMalformed, "truncated"},
		{"overlong LEB128", body(0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b), ErrMalformed, "longer than"},
		{"no end", body(0x01), ErrMalformed, "does not end"},
		{"bad import kind", module(sec(secImport, 1, 1, 'a', 1, 'b', 9)), ErrMalformed, "import kind"},
		{"start export name taken", module(sec(secExport,
			slices.Concat([]byte{1, byte(len(StartExport))}, []byte(StartExport), []byte{0, 0})...)), nil, "already taken"},
		// The module has no global: index 0 would be the injected flag, which a
		// guest must not be able to clear.
		{"global.set of the flag", body(0x41, 0x00, 0x24, 0x00, 0x0b), ErrMalformed, "global index 0 out of range (0 globals)"},
		{"global.get past the globals", module(append(voidFunc(1), sec(secGlobal, 1, 0x7f, 0x01, 0x41, 0x00, 0x0b),
			codeSec([]byte{0x00, 0x23, 0x01, 0x1a, 0x0b}))...), ErrMalformed, "global index 1 out of range (1 globals)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Instrument(tt.in, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not mention %q", err, tt.message)
			}
		})
	}

	// Unsupported opcodes are reported with their module offset.
	_, err := Instrument(body(0x01, 0xfe, 0x00, 0x00, 0x0b), Options{})
	if want := "offset " + strconv.Itoa(firstInstr+1) + ": opcode 0xfe"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v does not contain %q", err, want)
	}
}

// ---- wat test modules ---------------------------------------------------

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustInstrument(t testing.TB, bin []byte) []byte {
	t.Helper()
	out, err := Instrument(bin, Options{})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, out.Wasm)
	return out.Wasm
}

// validate runs wabt's wasm-validate on bin when it is installed.
func validate(t testing.TB, bin []byte) {
	t.Helper()
	tool, err := exec.LookPath("wasm-validate")
	if err != nil {
		return
	}
	p := filepath.Join(t.TempDir(), "out.wasm")
	if err := os.WriteFile(p, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, p).CombinedOutput(); err != nil {
		t.Fatalf("wasm-validate: %v\n%s", err, out)
	}
}

// newRuntime uses the compiler without WithCloseOnContextDone: the point is
// that the injected check alone stops the guest. (The interpreter would read
// the global in Go code, racing with Set, so it is not a target.)
func newRuntime(t testing.TB) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig())
	t.Cleanup(func() { rt.Close(ctx) })
	return rt
}

func interruptGlobal(t testing.TB, mod api.Module) api.MutableGlobal {
	t.Helper()
	g, ok := mod.ExportedGlobal(ExportName).(api.MutableGlobal)
	if !ok {
		t.Fatalf("export %q is missing or not a mutable global", ExportName)
	}
	if g.Type() != api.ValueTypeI32 || g.Get() != 0 {
		t.Fatalf("export %q: type %v value %d, want i32 0", ExportName, g.Type(), g.Get())
	}
	return g
}

// assertInterrupts calls fn in a goroutine, sets g after 50 ms and expects the
// call to fail with an `unreachable` trap soon after; meanwhile a GC must be
// able to run (the guest reaches safepoints).
func assertInterrupts(t *testing.T, g api.MutableGlobal, fn api.Function) {
	t.Helper()
	assertInterruptsGC(t, g, fn, true)
}

func assertInterruptsGC(t *testing.T, g api.MutableGlobal, fn api.Function, safepoints bool) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := fn.Call(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("returned before the interrupt: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if safepoints {
		// A stop-the-world must not wait for the spinning guest.
		gcDone := make(chan struct{})
		go func() {
			runtime.GC()
			close(gcDone)
		}()
		select {
		case <-gcDone:
		case <-time.After(5 * time.Second):
			t.Fatal("runtime.GC blocked by the spinning guest")
		}
	}
	set := time.Now()
	g.Set(1)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("got error %v, want an unreachable trap", err)
		}
		t.Logf("stopped %v after the global was set", time.Since(set))
	case <-time.After(5 * time.Second):
		t.Fatal("guest still running 5 s after the interrupt")
	}
}

func TestInterruptInfiniteLoop(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t)
	mod, err := rt.Instantiate(ctx, mustInstrument(t, readTestdata(t, "loop.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	g := interruptGlobal(t, mod)

	// Unset, loops run to the right result.
	res, err := mod.ExportedFunction("sum").Call(ctx, 100)
	if err != nil || res[0] != 4950 {
		t.Fatalf("sum(100) = %v, %v; want 4950", res, err)
	}
	if calls := mod.ExportedGlobal("calls"); calls == nil || calls.Get() != 0 {
		t.Fatalf("existing global export broken: %v", calls)
	}

	assertInterrupts(t, g, mod.ExportedFunction("spin"))
	if calls := mod.ExportedGlobal("calls").Get(); calls == 0 {
		t.Error("spin did not run before the interrupt")
	}
}

// TestInterruptRecursion: recursion without any loop (directly and through
// call_indirect) is stopped by the checks at function entries, and lets a GC
// run meanwhile when the module has a memory.
func TestInterruptRecursion(t *testing.T) {
	for _, file := range []string{"calls.wasm", "calls_nomem.wasm"} {
		for _, fn := range []string{"spin", "spin_indirect"} {
			t.Run(file+"/"+fn, func(t *testing.T) {
				mod, err := newRuntime(t).Instantiate(context.Background(), mustInstrument(t, readTestdata(t, file)))
				if err != nil {
					t.Fatal(err)
				}
				assertInterruptsGC(t, interruptGlobal(t, mod), mod.ExportedFunction(fn), file == "calls.wasm")
			})
		}
	}
}

// TestSameResults runs each test module before and after instrumentation.
func TestSameResults(t *testing.T) {
	tests := []struct {
		file, fn string
		args     []uint64
	}{
		{"loop.wasm", "sum", []uint64{1000}},
		{"features.wasm", "simd", nil},
		{"features.wasm", "bulk", nil},
		{"features.wasm", "multi", []uint64{5}},
		{"features.wasm", "multi", []uint64{6}},
		{"imports.wasm", "run", nil},
		{"calls.wasm", "fib", []uint64{20}},
		{"calls.wasm", "fib_indirect", []uint64{20}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.fn, func(t *testing.T) {
			orig := readTestdata(t, tt.file)
			var results [2][]uint64
			for i, bin := range [][]byte{orig, mustInstrument(t, orig)} {
				rt := newRuntime(t)
				if _, err := rt.InstantiateWithConfig(ctx, readTestdata(t, "env.wasm"),
					wazero.NewModuleConfig().WithName("env")); err != nil {
					t.Fatal(err)
				}
				mod, err := rt.Instantiate(ctx, bin)
				if err != nil {
					t.Fatal(err)
				}
				if results[i], err = mod.ExportedFunction(tt.fn).Call(ctx, tt.args...); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(results[0], results[1]) {
				t.Fatalf("instrumented %s%v = %v, original %v", tt.fn, tt.args, results[1], results[0])
			}
			t.Logf("%s%v = %v", tt.fn, tt.args, results[0])
		})
	}
}

// TestSectionsKept checks that only the global, export and code sections
// change, that the global gets the next free index, and that one check is
// added per loop.
func TestSectionsKept(t *testing.T) {
	tests := []struct {
		file   string
		gidx   uint32
		loops  int
		calls  int // functions that may recurse
		memory bool
		start  bool
	}{
		{"loop.wasm", 1, 3, 0, true, false},
		{"noglobal.wasm", 0, 1, 0, true, true},
		{"imports.wasm", 3, 1, 0, false, false}, // it calls an import only
		{"features.wasm", 0, 3, 2, true, false},
		{"calls.wasm", 0, 0, 4, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			orig := readTestdata(t, tt.file)
			out := mustInstrument(t, orig)
			before, err := splitSections(orig)
			if err != nil {
				t.Fatal(err)
			}
			after, err := splitSections(out)
			if err != nil {
				t.Fatal(err)
			}
			kept := func(ss []section) (raw [][]byte) {
				for _, s := range ss {
					if s.id != secGlobal && s.id != secExport && s.id != secCode && s.id != secStart {
						raw = append(raw, s.raw)
					}
				}
				return raw
			}
			if !slices.EqualFunc(kept(before), kept(after), bytes.Equal) {
				t.Error("sections other than global, export, start and code changed")
			}
			for _, s := range after {
				switch s.id {
				case secGlobal:
					if !bytes.Contains(s.content, []byte{0x7f, 0x01, 0x41, 0x00, 0x0b}) {
						t.Error("global section lacks the new global")
					}
				case secExport:
					if !bytes.Contains(s.content, exportEntry(ExportName, 3, tt.gidx)) {
						t.Errorf("export section lacks the export of global %d", tt.gidx)
					}
					if got := bytes.Contains(s.content, []byte(StartExport)); got != tt.start {
						t.Errorf("start function exported: %v, want %v", got, tt.start)
					}
				case secStart:
					t.Error("the start section is still there")
				}
			}
			check := flagCheck(tt.gidx)
			if got := bytes.Count(out, check) - bytes.Count(orig, check); got != tt.loops+tt.calls {
				t.Errorf("%d checks added, want %d (loops) + %d (functions that may recurse)", got, tt.loops, tt.calls)
			}
			if got := bytes.Count(out, []byte{0x41, 0x00, 0x40, 0x00, 0x1a}); tt.memory != (got >= tt.loops+tt.calls) {
				t.Errorf("%d safepoints, memory %v, %d loops, %d functions that may recurse", got, tt.memory, tt.loops, tt.calls)
			}
		})
	}
}

func TestNoGlobalOrExportSection(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t)
	mod, err := rt.Instantiate(ctx, mustInstrument(t, readTestdata(t, "noglobal.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	interruptGlobal(t, mod)
	if b, ok := mod.Memory().Read(0, 16); !ok || b[15] != 0 {
		t.Errorf("the start function ran at instantiation: memory = % x", b)
	}
	if _, err := mod.ExportedFunction(StartExport).Call(ctx); err != nil {
		t.Fatal(err)
	}
	// The start function's loop ran to completion and the data segment is intact.
	if b, ok := mod.Memory().Read(0, 16); !ok || b[15] != 15 {
		t.Errorf("memory after start = % x", b)
	}
	if b, ok := mod.Memory().Read(100, 4); !ok || string(b) != "kept" {
		t.Errorf("data segment = %q", b)
	}
}

func TestImportedGlobals(t *testing.T) {
	ctx := context.Background()
	rt := newRuntime(t)
	env, err := rt.InstantiateWithConfig(ctx, readTestdata(t, "env.wasm"), wazero.NewModuleConfig().WithName("env"))
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.Instantiate(ctx, mustInstrument(t, readTestdata(t, "imports.wasm")))
	if err != nil {
		t.Fatal(err)
	}
	interruptGlobal(t, mod)
	res, err := mod.ExportedFunction("run").Call(ctx)
	if err != nil || res[0] != 2*285 {
		t.Fatalf("run() = %v, %v; want 570", res, err)
	}
	if c := env.ExportedGlobal("counter").Get(); c != 10 {
		t.Errorf("imported mutable global = %d, want 10", c)
	}
}

// ---- Go guests ----------------------------------------------------------

// buildGuest builds a Go package of this module as a wasip1 reactor.
func buildGuest(t testing.TB, pkg string) []byte {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found: cannot build the Go guest")
	}
	out := filepath.Join(t.TempDir(), "guest.wasm")
	cmd := exec.Command(goTool, "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = filepath.Join("..", "..", "..") // module root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// instantiateGo instantiates a Go reactor with WASI and stubs of the wasmsrv
// host functions (abi/SPEC.md §4).
func instantiateGo(t *testing.T, bin []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	rt := newRuntime(t)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	_, err := rt.NewHostModuleBuilder("wasmsrv").
		NewFunctionBuilder().WithFunc(func(ctx, buf, limit uint32) uint32 { return 0 }).Export("req_head").
		NewFunctionBuilder().WithFunc(func(ctx, buf, limit uint32) uint64 { return 1 << 32 }).Export("body_read").
		NewFunctionBuilder().WithFunc(func(ctx, status, hdr, hdrLen uint32) uint32 { return 0 }).Export("resp_start").
		NewFunctionBuilder().WithFunc(func(ctx, ptr, n, flags uint32) uint32 { return 0 }).Export("resp_write").
		NewFunctionBuilder().WithFunc(func(ctx uint32) uint32 { return 0 }).Export("disconnected").
		Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	compiled, err := rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func TestGoHello(t *testing.T) {
	orig := wasmdata.Merge(buildGuest(t, "./samples/hello")) // as the runtime loads it
	start := time.Now()
	res, err := Instrument(orig, Options{MemoryLimit: 128 << 20})
	if err != nil {
		t.Fatal(err)
	}
	out := res.Wasm
	t.Logf("instrumented %d bytes in %v; grew by %d bytes (%.2f%%); host structures %d bytes, tables %d bytes, %d pages of memory",
		len(orig), time.Since(start), len(out)-len(orig), 100*float64(len(out)-len(orig))/float64(len(orig)),
		res.Limits.Host, res.Limits.Tables, res.MemoryPages)
	validate(t, out)
	mod := instantiateGo(t, out)
	if mod.ExportedFunction("wasmsrv_handle") == nil {
		t.Error("export wasmsrv_handle missing")
	}
	interruptGlobal(t, mod)
	// Go's table never grows (no table.grow): with the host structures of its
	// globals and segments it takes a few dozen KiB.
	if res.MemoryPages < 2047 {
		t.Errorf("%d pages left of 2048 for a Go guest", res.MemoryPages)
	}
}

func TestGoSpin(t *testing.T) {
	bin := mustInstrument(t, buildGuest(t, "./runtime/internal/interrupt/testdata/spin"))
	mod := instantiateGo(t, bin)
	g := interruptGlobal(t, mod)
	res, err := mod.ExportedFunction("count").Call(context.Background(), 100)
	if err != nil || res[0] != 4950 {
		t.Fatalf("count(100) = %v, %v; want 4950", res, err)
	}
	assertInterrupts(t, g, mod.ExportedFunction("spin"))
}

func BenchmarkInstrumentGoHello(b *testing.B) {
	bin := buildGuest(b, "./samples/hello")
	b.SetBytes(int64(len(bin)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Instrument(bin, Options{MemoryLimit: 128 << 20}); err != nil {
			b.Fatal(err)
		}
	}
}

// variant is one way of instrumenting a module, for the benchmarks.
type variant struct {
	name  string
	bin   []byte
	close bool // run it under WithCloseOnContextDone
}

// variants are the instrumentations the benchmarks compare: none, the checks
// at loops only (the scheme before function-entry checks), every check without
// safepoints, and everything (what Instrument does).
func variants(b *testing.B, orig []byte) []variant {
	b.Helper()
	mk := func(ck checks) []byte {
		m, err := instrument(orig, Options{}, ck)
		if err != nil {
			b.Fatal(err)
		}
		return m.Wasm
	}
	return []variant{
		{"plain", orig, false},
		{"loopsOnly", mk(checks{loops: true, safepoints: true}), false},
		{"flagOnly", mk(checks{loops: true, entries: true}), false},
		{"instrumented", mk(allChecks), false},
	}
}

// runVariants instantiates each variant and benchmarks fn(args) on it.
func runVariants(b *testing.B, cases []variant, fn string, args ...uint64) {
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(c.close))
			defer rt.Close(ctx)
			wasi_snapshot_preview1.MustInstantiate(ctx, rt)
			mod, err := rt.InstantiateWithConfig(ctx, c.bin, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
			if err != nil {
				b.Fatal(err)
			}
			f := mod.ExportedFunction(fn)
			cpu0 := cpuTime(b)
			for b.Loop() {
				if _, err := f.Call(ctx, args...); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time is steadier than wall time on a shared machine.
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Skipf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGoLoop compares a bounded Go loop (count(10000)) uninstrumented,
// instrumented in each way (variants), and under WithCloseOnContextDone,
// which this package replaces.
func BenchmarkGoLoop(b *testing.B) {
	orig := buildGuest(b, "./runtime/internal/interrupt/testdata/spin")
	runVariants(b, append(variants(b, orig), variant{"CloseOnContextDone", orig, true}), "count", 10000)
}

// BenchmarkCallHeavy is the worst case for checks at function entries:
// fib(25), 242,785 calls that each do almost nothing else, as a Go guest and
// as hand-written wasm (direct calls and call_indirect).
//
//	go test -run '^$' -bench CallHeavy -count 6 ./runtime/internal/interrupt/ | benchstat -col /variant -
func BenchmarkCallHeavy(b *testing.B) {
	goBin := buildGuest(b, "./runtime/internal/interrupt/testdata/spin")
	wat := readTestdata(b, "calls.wasm")
	for _, g := range []struct {
		name, fn string
		bin      []byte
		arg      uint64
	}{
		{"guest=go", "fib", goBin, 25},
		{"guest=wat", "fib", wat, 25},
		{"guest=wat-indirect", "fib_indirect", wat, 25},
	} {
		b.Run(g.name, func(b *testing.B) {
			runVariants(b, variants(b, g.bin), g.fn, g.arg)
		})
	}
}
