package runtime

import (
	"context"
	"maps"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/abi"
)

// HostFunc is one host function a guest can import. Fn is a GoModuleFunc: wazero's
// stack-based calling convention, ~20x cheaper than reflection-based functions.
type HostFunc struct {
	Name            string
	Params, Results []api.ValueType
	Fn              api.GoModuleFunc
}

// HostModule is a set of host functions under one import module name: the core ABI,
// or a plugin granted to an app.
type HostModule struct {
	Name  string
	Funcs []HostFunc
}

// hostFeatures is what this host offers (SPEC §4 host_features).
const hostFeatures = abi.FeatureWebSocket | abi.FeatureAsync

// coreHostFuncs implement the core host functions, by name (SPEC §4, §8.3, §9.2).
// Their signatures are not written here: they come from abi.Imports, the ABI's one
// table, and a test checks that the two name the same functions.
func coreHostFuncs() map[string]api.GoModuleFunc {
	m := map[string]api.GoModuleFunc{
		abi.FnReqHead:      hostReqHead,
		abi.FnBodyRead:     hostBodyRead,
		abi.FnRespStart:    hostRespStart,
		abi.FnRespWrite:    hostRespWrite,
		abi.FnDisconnected: hostDisconnected,
		abi.FnHostFeatures: func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = hostFeatures },
	}
	maps.Copy(m, asyncHostFuncs())
	return m
}

// coreModule is the `wasmsrv` import module: every function of abi.Imports with
// the signature the table gives and its implementation from coreHostFuncs.
func coreModule() HostModule {
	impls := coreHostFuncs()
	hm := HostModule{Name: abi.ImportModule}
	for _, imp := range abi.Imports() {
		if imp.Module != abi.ImportModule {
			continue
		}
		fn, ok := impls[imp.Name]
		if !ok {
			// An entry added to the table without an implementation: the
			// registration test fails on it before any build ships.
			panic("runtime: no implementation of host function " + imp.Module + "." + imp.Name)
		}
		hm.Funcs = append(hm.Funcs, HostFunc{Name: imp.Name, Params: valueTypes(imp.Sig.Params), Results: valueTypes(imp.Sig.Results), Fn: fn})
	}
	return hm
}

// valueTypes converts ABI value types to wazero's; both use the binary format's
// encoding.
func valueTypes(ts []abi.ValType) []api.ValueType {
	if len(ts) == 0 {
		return nil
	}
	out := make([]api.ValueType, len(ts))
	for i, t := range ts {
		out[i] = api.ValueType(t)
	}
	return out
}

// guestRegion returns the guest memory view [ptr, ptr+n) or traps.
func guestRegion(fn string, mod api.Module, ptr, n uint32) []byte {
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		trap(fn, "region outside guest memory")
	}
	return b
}

func hostReqHead(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeFor(ctx, abi.FnReqHead, stack[0])
	buf := guestRegion(abi.FnReqHead, mod, uint32(stack[1]), uint32(stack[2]))
	head := ex.Head()
	if len(head) <= len(buf) {
		copy(buf, head)
	}
	stack[0] = uint64(uint32(len(head)))
}

func hostBodyRead(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeFor(ctx, abi.FnBodyRead, stack[0])
	buf := guestRegion(abi.FnBodyRead, mod, uint32(stack[1]), uint32(stack[2]))
	n, eof, status := ex.ReadBody(buf)
	if status != abi.OK {
		stack[0] = uint64(int64(status))
		return
	}
	stack[0] = abi.PackEOF(uint32(n), eof)
}

func hostRespStart(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeFor(ctx, abi.FnRespStart, stack[0])
	block := guestRegion(abi.FnRespStart, mod, uint32(stack[2]), uint32(stack[3]))
	stack[0] = uint64(uint32(ex.Start(int32(stack[1]), block)))
}

func hostRespWrite(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeFor(ctx, abi.FnRespWrite, stack[0])
	p := guestRegion(abi.FnRespWrite, mod, uint32(stack[1]), uint32(stack[2]))
	stack[0] = uint64(uint32(ex.Write(p, int32(stack[3]))))
}

func hostDisconnected(ctx context.Context, _ api.Module, stack []uint64) {
	ex := exchangeFor(ctx, abi.FnDisconnected, stack[0])
	if ex.Disconnected() {
		stack[0] = 1
	} else {
		stack[0] = 0
	}
}
