package httpwasm

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// regionParams names, for every host function that takes guest memory, the
// index of each (pointer, length) pair's pointer.
var regionParams = map[string][]int{
	fnGetConfig:          {0},
	fnLog:                {1},
	fnGetHeaderNames:     {1},
	fnGetHeaderValues:    {1, 3},
	fnSetHeaderValue:     {1, 3},
	fnAddHeaderValue:     {1, 3},
	fnRemoveHeader:       {1},
	fnReadBody:           {1},
	fnWriteBody:          {1},
	fnGetMethod:          {0},
	fnSetMethod:          {0},
	fnGetURI:             {0},
	fnSetURI:             {0},
	fnGetProtocolVersion: {0},
	fnGetSourceAddr:      {0},
}

// TestEveryRegionIsChecked: for every host function and every memory region it
// takes, a guest passing a region past the end of its memory, one wrapping
// around the address space, or one of 4 GiB traps — its request gets a 500, its
// instance is replaced — and the host goes on. The guests are assembled here
// from WAT with wat2wasm.
func TestEveryRegionIsChecked(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not installed (apt-get install wabt)")
	}
	funcs := map[string]runtime.HostFunc{}
	for _, f := range Module(ModuleOptions{}).Funcs {
		funcs[f.Name] = f
	}
	for name := range funcs {
		if _, ok := regionParams[name]; !ok {
			switch name {
			case fnEnableFeatures, fnLogEnabled, fnGetStatusCode, fnSetStatusCode:
			default:
				t.Errorf("host function %s is not in regionParams: say which of its parameters are memory regions", name)
			}
		}
	}
	regions := []struct {
		name     string
		ptr, len uint32
	}{
		{"past the end", 0x10000 - 8, 64}, // one page of memory
		{"wrapping", 0xfffffff0, 0x20},
		{"4 GiB", 0, 0xffffffff},
	}
	for name, ptrs := range regionParams {
		f := funcs[name]
		for _, at := range ptrs {
			for _, rg := range regions {
				t.Run(fmt.Sprintf("%s/arg%d/%s", name, at, rg.name), func(t *testing.T) {
					args := make([]uint32, len(f.Params))
					args[at], args[at+1] = rg.ptr, rg.len
					if name == fnReadBody || name == fnWriteBody {
						args[0] = kindResponse // a valid kind: the region is what is wrong
					}
					wasm := assemble(t, wat2wasm, guestCalling(f, args))
					h, pool := openWasm(t, wasm)
					srv := serve(t, h)
					resp, _ := get(t, srv.URL)
					if resp.StatusCode != http.StatusInternalServerError {
						t.Errorf("status %d, want 500", resp.StatusCode)
					}
					if st := pool.Stats(); st.Discarded != 1 {
						t.Errorf("%d instances discarded, want 1", st.Discarded)
					}
				})
			}
		}
	}
}

// guestCalling is a guest whose handle_request calls f with args once.
func guestCalling(f runtime.HostFunc, args []uint32) string {
	var b strings.Builder
	typ := func(vs []api.ValueType) string {
		var s []string
		for _, v := range vs {
			s = append(s, api.ValueTypeName(v))
		}
		return strings.Join(s, " ")
	}
	fmt.Fprintf(&b, "(module\n  (import %q %q (func $f", runtime.HTTPWasmModule, f.Name)
	if len(f.Params) > 0 {
		fmt.Fprintf(&b, " (param %s)", typ(f.Params))
	}
	if len(f.Results) > 0 {
		fmt.Fprintf(&b, " (result %s)", typ(f.Results))
	}
	b.WriteString("))\n  (memory (export \"memory\") 1 1)\n")
	b.WriteString("  (func (export \"handle_request\") (result i64)\n    (call $f")
	for _, a := range args {
		fmt.Fprintf(&b, " (i32.const %d)", int32(a))
	}
	b.WriteString(")\n")
	if len(f.Results) > 0 {
		b.WriteString("    drop\n")
	}
	b.WriteString("    (i64.const 0)))\n")
	return b.String()
}

func assemble(t *testing.T, wat2wasm, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "g.wat"), filepath.Join(dir, "g.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(wat2wasm, "-o", out, in).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s\n%s", err, b, src)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openWasm serves wasm with one instance.
func openWasm(t *testing.T, wasm []byte) (*Handler, *runtime.SyncPool) {
	t.Helper()
	ctx := context.Background()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(ctx) })
	app, err := eng.Load(ctx, runtime.AppConfig{Name: "g", Wasm: wasm,
		HostModules: []runtime.HostModule{Module(ModuleOptions{Config: []byte("config")})}})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := runtime.NewSyncPool(ctx, app, runtime.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pool.Close(ctx)
		_ = app.Close(ctx)
	})
	return New(pool, Config{}, nil), pool
}
