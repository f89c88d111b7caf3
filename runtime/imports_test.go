package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// imp is one import of a test module: a function (params -> results) or, with
// memory set, a memory.
type imp struct {
	module, name    string
	params, results []api.ValueType
	memory          bool
}

// importing assembles a sync guest (markers, handle, memory) with the given
// imports, or a WASI command (exports _start and memory) when command is set.
func importing(command bool, imps ...imp) []byte {
	types := [][]byte{testkit.FuncType(nil, nil), testkit.FuncType([]api.ValueType{i32}, []api.ValueType{i32})}
	var imports [][]byte
	importedMemory, nfuncs := false, uint64(0)
	for _, im := range imps {
		if im.memory {
			importedMemory = true
			imports = append(imports, append(append(testkit.Name(im.module), testkit.Name(im.name)...), 0x02, 0x00, 0x01))
			continue
		}
		types = append(types, testkit.FuncType(im.params, im.results))
		imports = append(imports, testkit.ImportFunc(im.module, im.name, uint64(len(types)-1)))
		nfuncs++
	}
	bin := []byte(testkit.WasmHeader)
	bin = append(bin, testkit.Section(1, testkit.Vec(types...))...)
	bin = append(bin, testkit.Section(2, testkit.Vec(imports...))...)
	var funcs, bodies, exports [][]byte
	if command {
		funcs, bodies = [][]byte{{0}}, [][]byte{testkit.Body(0x0b)}
		exports = [][]byte{testkit.Export("_start", 0, nfuncs)}
	} else {
		funcs = [][]byte{{0}, {0}, {1}}
		bodies = [][]byte{testkit.Body(0x0b), testkit.Body(0x0b), testkit.Body(0x41, 0, 0x0b)}
		exports = [][]byte{testkit.Export("wasmsrv_abi_v1", 0, nfuncs), testkit.Export("wasmsrv_mode_sync", 0, nfuncs+1),
			testkit.Export("wasmsrv_handle", 0, nfuncs+2)}
	}
	bin = append(bin, testkit.Section(3, testkit.Vec(funcs...))...)
	if !importedMemory {
		bin = append(bin, testkit.Section(5, testkit.Vec([]byte{0, 1}))...)
	}
	exports = append(exports, testkit.Export("memory", 2, 0))
	bin = append(bin, testkit.Section(7, testkit.Vec(exports...))...)
	return append(bin, testkit.Section(10, testkit.Vec(bodies...))...)
}

// TestImportErrors: each way an import can be wrong has its own message, naming the
// import, and none calls "env" or an unknown module "not granted".
func TestImportErrors(t *testing.T) {
	v := []api.ValueType{}
	demo := HostModule{Name: "wasmsrv_demo", Funcs: []HostFunc{{Name: "f", Params: []api.ValueType{i32}, Results: []api.ValueType{i32},
		Fn: func(context.Context, api.Module, []uint64) {}}}}
	build := []string{"config", "demo", "http", "kv", "log", "pubsub"}
	tests := []struct {
		name    string
		imp     imp
		granted []HostModule
		plugins []string
		problem ImportProblem
		want    []string
	}{
		{"env function", imp{module: "env", name: "puts", params: []api.ValueType{i32}, results: []api.ValueType{i32}}, nil, build, ImportUnknownModule,
			[]string{`imports env.puts from module "env", which this host does not provide`, "left undefined", "--allow-undefined"}},
		{"unknown module", imp{module: "mylib", name: "f", params: v}, nil, build, ImportUnknownModule,
			[]string{`module "mylib", which this host does not provide`, "wasi_snapshot_preview1 and the plugins granted"}},
		{"wasi preview 0", imp{module: "wasi_unstable", name: "fd_write", params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}}, nil, build, ImportUnknownModule,
			[]string{"wasi_unstable is WASI's preview 0"}},
		{"plugin not granted", imp{module: "wasmsrv_kv", name: "get", params: v}, nil, build, ImportNotGranted,
			[]string{`imports plugin "kv" (module wasmsrv_kv, function get), which is not granted`, "--grant kv"}},
		{"plugin not in this build", imp{module: "wasmsrv_nosuch", name: "x", params: v}, nil, build, ImportNoSuchPlugin,
			[]string{`imports wasmsrv_nosuch.x: this build has no plugin "nosuch" (it has: config, demo, http, kv, log, pubsub)`}},
		{"plugin, build unknown", imp{module: "wasmsrv_nosuch", name: "x", params: v}, nil, nil, ImportNotGranted,
			[]string{`imports plugin "nosuch"`}},
		{"granted plugin, no such function", imp{module: "wasmsrv_demo", name: "g", params: v}, []HostModule{demo}, build, ImportUnknownFunction,
			[]string{`imports wasmsrv_demo.g, which plugin "demo" does not have`, "plugins/demo/ABI.md"}},
		{"granted plugin, wrong signature", imp{module: "wasmsrv_demo", name: "f", params: v}, []HostModule{demo}, build, ImportBadSignature,
			[]string{"import wasmsrv_demo.f has signature () -> (), want (i32) -> (i32)"}},
		{"no such WASI function", imp{module: "wasi_snapshot_preview1", name: "fd_nope", params: v}, nil, build, ImportUnknownFunction,
			[]string{"imports wasi_snapshot_preview1.fd_nope, which is not a WASI preview 1 function"}},
		{"WASI wrong signature", imp{module: "wasi_snapshot_preview1", name: "fd_write", params: v}, nil, build, ImportBadSignature,
			[]string{"import wasi_snapshot_preview1.fd_write has signature () -> (), want (i32, i32, i32, i32) -> (i32)"}},
		{"no such host function", imp{module: "wasmsrv", name: "req_headz", params: v}, nil, build, ImportUnknownFunction,
			[]string{"imports unknown host function wasmsrv.req_headz (this host speaks ABI v1)"}},
		{"host function wrong signature", imp{module: "wasmsrv", name: "disconnected", params: v, results: []api.ValueType{i32}}, nil, build, ImportBadSignature,
			[]string{"import wasmsrv.disconnected has signature () -> (i32), want (i32) -> (i32)"}},
		{"imported memory", imp{module: "env", name: "memory", memory: true}, nil, build, ImportNotFunction,
			[]string{"imports memory env.memory", "--import-memory"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine(t).Load(context.Background(), AppConfig{Name: "t", Wasm: importing(false, tc.imp), HostModules: tc.granted, Plugins: tc.plugins})
			var ie *ImportError
			if !errors.As(err, &ie) || !errors.Is(err, ErrNotGuest) {
				t.Fatalf("err = %v, want an *ImportError that is ErrNotGuest", err)
			}
			if ie.Problem != tc.problem {
				t.Errorf("problem %d, want %d", ie.Problem, tc.problem)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\n  lacks %q", err, w)
				}
			}
			if tc.problem != ImportNotGranted && strings.Contains(err.Error(), "not granted") {
				t.Errorf("error %q says not granted", err)
			}
		})
	}
	// What is right still loads: WASI, the core module and a granted plugin.
	ok := importing(false,
		imp{module: "wasi_snapshot_preview1", name: "fd_write", params: []api.ValueType{i32, i32, i32, i32}, results: []api.ValueType{i32}},
		imp{module: "wasmsrv", name: "disconnected", params: []api.ValueType{i32}, results: []api.ValueType{i32}},
		imp{module: "wasmsrv_demo", name: "f", params: []api.ValueType{i32}, results: []api.ValueType{i32}})
	app, err := engine(t).Load(context.Background(), AppConfig{Name: "ok", Wasm: ok, HostModules: []HostModule{demo}, Plugins: build})
	if err != nil {
		t.Fatal(err)
	}
	if got := app.Info().Imports; len(got) != 1 || got[0] != "wasmsrv_demo" {
		t.Errorf("Imports = %v, want [wasmsrv_demo]", got)
	}
	_ = app.Close(context.Background())
}

// TestCommandImportErrors: a WASI command (CGI mode) may import only WASI, and is
// told which of its imports is wrong and why.
func TestCommandImportErrors(t *testing.T) {
	for _, tc := range []struct {
		imp  imp
		want string
	}{
		{imp{module: "env", name: "f", params: []api.ValueType{}}, `imports env.f from module "env", which this host does not provide: guests import from wasi_snapshot_preview1 only`},
		{imp{module: "wasmsrv_kv", name: "get", params: []api.ValueType{}}, `imports wasmsrv_kv.get from module "wasmsrv_kv", which this host does not provide: guests import from wasi_snapshot_preview1 only`},
		{imp{module: "wasi_snapshot_preview1", name: "fd_nope", params: []api.ValueType{}}, "not a WASI preview 1 function"},
		{imp{module: "wasi_snapshot_preview1", name: "proc_exit", params: []api.ValueType{}}, "import wasi_snapshot_preview1.proc_exit has signature () -> (), want (i32) -> ()"},
	} {
		_, err := engine(t).LoadCommand(context.Background(), AppConfig{Name: "cmd", Wasm: importing(true, tc.imp)}, PoolConfig{})
		var ie *ImportError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s.%s: err = %v\n  want it to say %q", tc.imp.module, tc.imp.name, err, tc.want)
		}
	}
	ok := importing(true, imp{module: "wasi_snapshot_preview1", name: "proc_exit", params: []api.ValueType{i32}})
	c, err := engine(t).LoadCommand(context.Background(), AppConfig{Name: "cmd", Wasm: ok}, PoolConfig{})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close(context.Background())
}
