package wasmdata

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmsrv/wasmsrv/abi"
)

// memModule builds a module with one exported memory of 2 pages and the given
// active segments.
func memModule(segs []segment, dataCount bool) []byte {
	sec := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, appendUleb(nil, uint64(len(body)))...), body...)
	}
	bin := []byte("\x00asm\x01\x00\x00\x00")
	bin = append(bin, sec(5, []byte{1, 0x00, 2})...)
	bin = append(bin, sec(7, []byte{1, 3, 'm', 'e', 'm', 2, 0})...)
	if dataCount {
		bin = append(bin, sec(12, appendUleb(nil, uint64(len(segs))))...)
	}
	data := appendUleb(nil, uint64(len(segs)))
	for _, s := range segs {
		data = append(data, 0x00, 0x41)
		data = appendSleb(data, int64(int32(s.off)))
		data = append(data, 0x0b)
		data = appendUleb(data, uint64(len(s.data)))
		data = append(data, s.data...)
	}
	return append(bin, sec(11, data)...)
}

// memoryAfterInstantiate returns the initial linear memory of bin.
func memoryAfterInstantiate(t *testing.T, bin []byte, withHost func(wazero.Runtime)) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if withHost != nil {
		withHost(rt)
	}
	mod, err := rt.InstantiateWithConfig(ctx, bin, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(b)
}

func TestMergeSmallModule(t *testing.T) {
	segs := []segment{{5000, []byte("far")}, {16, []byte("hello")}, {23, []byte("world")}, {70000, []byte{1, 2, 3}}}
	bin := memModule(segs, false)
	out := Merge(bin)
	if bytes.Equal(out, bin) {
		t.Fatal("not merged")
	}
	want := memoryAfterInstantiate(t, bin, nil)
	got := memoryAfterInstantiate(t, out, nil)
	if !bytes.Equal(want, got) {
		t.Fatal("merged module initialises memory differently")
	}
	merged, err := parseData(dataSection(t, out))
	if err != nil || len(merged) != 3 {
		t.Fatalf("segments after merge: %d (%v), want 3", len(merged), err)
	}
}

func TestMergeSkips(t *testing.T) {
	tests := map[string][]byte{
		"data count section":   memModule([]segment{{0, []byte("a")}, {4, []byte("b")}}, true),
		"overlap":              memModule([]segment{{0, []byte("abcd")}, {2, []byte("x")}}, false),
		"out-of-order overlap": memModule([]segment{{100, []byte("abc")}, {0, []byte("b")}, {101, []byte("x")}}, false),
		"not wasm":             []byte("hello"),
		"truncated":            memModule([]segment{{0, []byte("a")}, {4, []byte("b")}}, false)[:30],
	}
	for name, bin := range tests {
		if out := Merge(bin); !bytes.Equal(out, bin) {
			t.Errorf("%s: module was rewritten", name)
		}
	}
}

func dataSection(t *testing.T, bin []byte) []byte {
	pos := 8
	for pos < len(bin) {
		size, n := uleb(bin[pos+1:])
		body := pos + 1 + n
		if bin[pos] == 11 {
			return bin[body : body+int(size)]
		}
		pos = body + int(size)
	}
	t.Fatal("no data section")
	return nil
}

// TestMergeGoGuest: a real Go guest goes from tens of thousands of segments to a
// few hundred and initialises exactly the same memory.
func TestMergeGoGuest(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not found")
	}
	wasm := filepath.Join(t.TempDir(), "hello.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, "../../../samples/hello")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	bin, err := os.ReadFile(wasm)
	if err != nil {
		t.Fatal(err)
	}
	out := Merge(bin)
	before, _ := parseData(dataSection(t, bin))
	after, _ := parseData(dataSection(t, out))
	t.Logf("segments %d -> %d, module %d -> %d bytes", len(before), len(after), len(bin), len(out))
	if len(after) == 0 || len(after)*20 > len(before) {
		t.Fatalf("segments %d -> %d: want at least a 20x reduction", len(before), len(after))
	}
	host := func(rt wazero.Runtime) {
		wasi_snapshot_preview1.MustInstantiate(context.Background(), rt)
		b := rt.NewHostModuleBuilder("wasmsrv")
		stub := api.GoModuleFunc(func(context.Context, api.Module, []uint64) {})
		for _, f := range abi.Imports() {
			p, r := make([]api.ValueType, len(f.Sig.Params)), make([]api.ValueType, len(f.Sig.Results))
			for i, v := range f.Sig.Params {
				p[i] = api.ValueType(v)
			}
			for i, v := range f.Sig.Results {
				r[i] = api.ValueType(v)
			}
			b.NewFunctionBuilder().WithGoModuleFunction(stub, p, r).Export(f.Name)
		}
		if _, err := b.Instantiate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(memoryAfterInstantiate(t, bin, host), memoryAfterInstantiate(t, out, host)) {
		t.Fatal("merged Go guest initialises memory differently")
	}
}

func BenchmarkMergeGoHello(b *testing.B) {
	wasm := filepath.Join(b.TempDir(), "hello.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", wasm, "../../../samples/hello")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Skipf("build: %v\n%s", err, out)
	}
	bin, _ := os.ReadFile(wasm)
	for b.Loop() {
		Merge(bin)
	}
}
