package registry

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// Calls counts one plugin's host function calls for one app, by result.
type Calls struct {
	OK    atomic.Uint64 // returned, with no result or one ≥ 0
	Error atomic.Uint64 // returned a negative status (pluginabi's codes, as an i32 or an i64)
	Trap  atomic.Uint64 // trapped the guest (a broken ABI contract)
}

// Counted returns mods with every function of a plugin module counting its
// calls in calls(plugin) (the plugin's name: the module without its
// "wasmsrv_" prefix; nil skips the module). The count is two atomic adds'
// worth per call; mods is not changed.
func Counted(mods []runtime.HostModule, calls func(plugin string) *Calls) []runtime.HostModule {
	out := make([]runtime.HostModule, 0, len(mods))
	for _, m := range mods {
		name, ok := strings.CutPrefix(m.Name, pluginabi.ModulePrefix)
		c := calls(name)
		if !ok || c == nil {
			out = append(out, m)
			continue
		}
		fns := make([]runtime.HostFunc, len(m.Funcs))
		for i, f := range m.Funcs {
			fns[i] = f
			fns[i].Fn = counting(f, c)
		}
		out = append(out, runtime.HostModule{Name: m.Name, Funcs: fns})
	}
	return out
}

// counting wraps f's function so each call counts in c.
func counting(f runtime.HostFunc, c *Calls) api.GoModuleFunc {
	fn := f.Fn
	// A plugin's one i32 or i64 result is a status, a size or a handle:
	// negative is an error (plugins.Status sign-extends the code).
	i32 := len(f.Results) == 1 && f.Results[0] == api.ValueTypeI32
	i64 := len(f.Results) == 1 && f.Results[0] == api.ValueTypeI64
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		done := false
		defer func() {
			if !done {
				c.Trap.Add(1) // panicking: the guest traps; the panic goes on
			}
		}()
		fn(ctx, mod, stack)
		done = true
		if (i32 && int32(uint32(stack[0])) < 0) || (i64 && int64(stack[0]) < 0) {
			c.Error.Add(1)
		} else {
			c.OK.Add(1)
		}
	}
}
