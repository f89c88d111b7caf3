package registry

import (
	"context"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// Each call of a plugin's function counts once, by what it returned; a
// panicking one counts as a trap and still panics; modules that are not
// plugins are left alone.
func TestCounted(t *testing.T) {
	i32 := []api.ValueType{api.ValueTypeI32}
	mods := []runtime.HostModule{
		{Name: "wasmsrv_kv", Funcs: []runtime.HostFunc{
			{Name: "get", Results: i32, Fn: func(_ context.Context, _ api.Module, s []uint64) { s[0] = uint64(uint32(int32(s[0]))) }},
			{Name: "boom", Fn: func(context.Context, api.Module, []uint64) { panic("trap") }},
			{Name: "size", Results: []api.ValueType{api.ValueTypeI64}, Fn: func(context.Context, api.Module, []uint64) {}},
		}},
		{Name: "env", Funcs: []runtime.HostFunc{{Name: "x", Fn: func(context.Context, api.Module, []uint64) {}}}},
	}
	calls := map[string]*Calls{"kv": {}}
	got := Counted(mods, func(p string) *Calls { return calls[p] })
	get := got[0].Funcs[0].Fn
	for _, v := range []int32{0, 5, -16, -19, 1} {
		stack := []uint64{uint64(uint32(v))}
		get(context.Background(), nil, stack)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the trap did not go on")
			}
		}()
		got[0].Funcs[1].Fn(context.Background(), nil, nil)
	}()
	// An i64 result: a size, or a sign-extended status.
	for _, v := range []int64{4096, -16} {
		got[0].Funcs[2].Fn(context.Background(), nil, []uint64{uint64(v)})
	}
	c := calls["kv"]
	if c.OK.Load() != 4 || c.Error.Load() != 3 || c.Trap.Load() != 1 {
		t.Errorf("ok %d error %d trap %d, want 4, 3, 1", c.OK.Load(), c.Error.Load(), c.Trap.Load())
	}
	if got[1].Funcs[0].Fn == nil || len(got) != 2 {
		t.Error("the non-plugin module changed")
	}
	if &mods[0].Funcs[0] == &got[0].Funcs[0] {
		t.Error("Counted wrote into the modules it was given")
	}
}
