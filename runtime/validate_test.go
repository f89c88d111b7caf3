package runtime

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// module assembles a minimal wasm binary: one type () -> (), one empty function per
// export name (exported under that name), an exported memory when withMemory.
func module(withMemory bool, exports ...string) []byte {
	leb := func(n int) []byte {
		var b []byte
		for {
			c := byte(n & 0x7f)
			n >>= 7
			if n != 0 {
				c |= 0x80
			}
			b = append(b, c)
			if n == 0 {
				return b
			}
		}
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, leb(len(body))...), body...)
	}
	vec := func(items ...[]byte) []byte {
		out := leb(len(items))
		for _, it := range items {
			out = append(out, it...)
		}
		return out
	}
	name := func(s string) []byte { return append(leb(len(s)), s...) }

	bin := []byte("\x00asm\x01\x00\x00\x00")
	bin = append(bin, section(1, vec([]byte{0x60, 0, 0}))...) // type 0: () -> ()
	var funcs, bodies, exps [][]byte
	for i, e := range exports {
		funcs = append(funcs, leb(0))
		bodies = append(bodies, []byte{2, 0, 0x0b}) // size 2: no locals, end
		exps = append(exps, append(name(e), append([]byte{0}, leb(i)...)...))
	}
	bin = append(bin, section(3, vec(funcs...))...)
	if withMemory {
		bin = append(bin, section(5, vec([]byte{0, 1}))...) // min 1 page
		exps = append(exps, append(name("memory"), 2, 0))
	}
	bin = append(bin, section(7, vec(exps...))...)
	bin = append(bin, section(10, vec(bodies...))...)
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
		{"future abi", module(true, "wasmsrv_abi_v2", "wasmsrv_mode_sync"), `built for ABI "v2"`, false},
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
