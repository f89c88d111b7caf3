package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// module assembles a minimal wasm binary: one type () -> (), one empty function per
// export name (exported under that name), an exported memory when withMemory.
func module(withMemory bool, exports ...string) []byte {
	bin := []byte(testkit.WasmHeader)
	bin = append(bin, testkit.Section(1, testkit.Vec(testkit.FuncType(nil, nil)))...) // type 0: () -> ()
	var funcs, bodies, exps [][]byte
	for i, e := range exports {
		funcs = append(funcs, testkit.LEB(0))
		bodies = append(bodies, testkit.Body(0x0b))
		exps = append(exps, testkit.Export(e, 0, uint64(i)))
	}
	bin = append(bin, testkit.Section(3, testkit.Vec(funcs...))...)
	if withMemory {
		bin = append(bin, testkit.Section(5, testkit.Vec([]byte{0, 1}))...) // min 1 page
		exps = append(exps, testkit.Export("memory", 2, 0))
	}
	bin = append(bin, testkit.Section(7, testkit.Vec(exps...))...)
	bin = append(bin, testkit.Section(10, testkit.Vec(bodies...))...)
	return bin
}

func TestValidateNamesWhatIsWrong(t *testing.T) {
	tests := []struct {
		name    string
		bin     []byte
		want    string
		command bool
	}{
		{"no markers", module(true, "foo"), "missing export wasmsrv_abi_v1", false},
		{"wasi command", module(true, "_start"), "WASI command", true},
		{"future abi", module(true, "wasmsrv_abi_v2", "wasmsrv_mode_sync"), `built for ABI "v2", this host speaks v1: rebuild it with this wasmsrv's SDK`, false},
		{"marker on a command", module(true, "_start", "wasmsrv_abi_v1", "wasmsrv_mode_sync"), "built as a WASI command, not a reactor (SPEC §1); build Go guests with -buildmode=c-shared", false},
		{"no mode", module(true, "wasmsrv_abi_v1"), "missing mode marker", false},
		{"both modes", module(true, "wasmsrv_abi_v1", "wasmsrv_mode_sync", "wasmsrv_mode_async"), "exports both", false},
		{"no memory", module(false, "wasmsrv_abi_v1", "wasmsrv_mode_sync"), `missing exported memory "memory"`, false},
		{"no handle", module(true, "wasmsrv_abi_v1", "wasmsrv_mode_sync"), "missing export wasmsrv_handle(i32) -> (i32)", false},
		{"handle wrong type", module(true, "wasmsrv_abi_v1", "wasmsrv_mode_sync", "wasmsrv_handle"), "export wasmsrv_handle has signature () -> (), want (i32) -> (i32)", false},
		{"not wasm", []byte("hello"), "malformed", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := engine(t).Load(context.Background(), AppConfig{Name: "t", Wasm: tc.bin})
			if err == nil {
				t.Fatal("loaded a module that is not a valid guest")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if got := errors.Is(err, ErrCommandModule); got != tc.command {
				t.Fatalf("errors.Is(err, ErrCommandModule) = %v, want %v", got, tc.command)
			}
		})
	}
}

func TestValidateAcceptsSDKGuest(t *testing.T) {
	app, err := engine(t).Load(context.Background(), AppConfig{Name: "hello", Wasm: buildGuest(t, "../samples/hello")})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	info := app.Info()
	if info.Mode != ModeSync || !info.HasInit || !info.HasStart || !info.HasStop {
		t.Fatalf("info = %+v", info)
	}
}
