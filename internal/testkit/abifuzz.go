package testkit

import (
	"encoding/binary"
	"fmt"

	"github.com/tetratelabs/wazero/api"
)

// The ABI fuzz targets (runtime.FuzzHostABI*, plugins.FuzzPluginABI) drive host
// functions with arbitrary arguments from a real guest instance. The guest is
// generated from the list of functions under test: for each it imports the function
// and exports a wrapper "call<i>" taking eight i64 arguments (truncated to the
// import's i32 parameters, as a guest passing any bit pattern would) and returning
// its result as an i64 (sign-extended from i32, 0 for none). Its entry point
// (wasmsrv_handle, or wasmsrv_on_event for a request start) calls the test's own
// host function fuzz.run(ctx), which lays out the program's memory image and
// replays its calls through the wrappers from inside the request, so every call
// reaches the host exactly as a guest's would, with the request's handle or any
// other value as ctx.

// ABIFunc is a host function a fuzz guest imports.
type ABIFunc struct {
	Module, Name    string
	Params, Results []api.ValueType
}

// FuzzArgs is the number of arguments every wrapper takes (the most any host
// function has: kv.cas).
const FuzzArgs = 8

// FuzzCall is one call of a fuzz program: the function (an index into the list
// the guest was built from), which arguments are replaced by the request's real
// handle (bit i for argument i), and the arguments.
type FuzzCall struct {
	Func       int
	HandleMask uint8
	Args       [FuzzArgs]uint64
}

// FuzzProgram is what one fuzz input runs: the guest's memory from offset 0 (what a
// guest would have written there: header blocks, keys, request blocks), then calls.
type FuzzProgram struct {
	Memory []byte
	Calls  []FuzzCall
}

const fuzzCallSize = 2 + 8*FuzzArgs

// Bounds of a program.
const (
	MaxFuzzCalls  = 24
	MaxFuzzMemory = 4096
)

// DecodeFuzzProgram reads a program for n functions from b: a u16 (little-endian)
// memory length, that many bytes, then calls of fuzzCallSize bytes (a trailing
// partial call is dropped).
func DecodeFuzzProgram(b []byte, n int) FuzzProgram {
	var p FuzzProgram
	if len(b) < 2 {
		return p
	}
	m := min(int(binary.LittleEndian.Uint16(b)), MaxFuzzMemory, len(b)-2)
	p.Memory, b = b[2:2+m], b[2+m:]
	for len(b) >= fuzzCallSize && len(p.Calls) < MaxFuzzCalls {
		c := FuzzCall{Func: int(b[0]) % n, HandleMask: b[1]}
		for i := range c.Args {
			c.Args[i] = binary.LittleEndian.Uint64(b[2+8*i:])
		}
		p.Calls = append(p.Calls, c)
		b = b[fuzzCallSize:]
	}
	return p
}

// Encode is the inverse of DecodeFuzzProgram, for seed corpora.
func (p FuzzProgram) Encode() []byte {
	b := binary.LittleEndian.AppendUint16(nil, uint16(len(p.Memory)))
	b = append(b, p.Memory...)
	for _, c := range p.Calls {
		b = append(b, byte(c.Func), c.HandleMask)
		for _, a := range c.Args {
			b = binary.LittleEndian.AppendUint64(b, a)
		}
	}
	return b
}

// FuzzFuncIndex returns the index of module.name in funcs, for seeds.
func FuzzFuncIndex(funcs []ABIFunc, module, name string) int {
	for i, f := range funcs {
		if f.Module == module && f.Name == name {
			return i
		}
	}
	panic(fmt.Sprintf("no function %s.%s", module, name))
}

// FuzzGuestPages is the fuzz guest's memory (minimum and maximum): small, so that a
// host allocation sized by a guest length stands out.
const FuzzGuestPages = 2

// FuzzGuest assembles the guest for funcs: a sync guest, or an async one.
func FuzzGuest(funcs []ABIFunc, async bool) []byte {
	const (
		i32 = api.ValueTypeI32
		i64 = api.ValueTypeI64
	)
	wrapperParams := make([]api.ValueType, FuzzArgs)
	for i := range wrapperParams {
		wrapperParams[i] = i64
	}
	var types, imports [][]byte
	for i, f := range funcs {
		types = append(types, FuncType(f.Params, f.Results))
		imports = append(imports, ImportFunc(f.Module, f.Name, uint64(i)))
	}
	n := uint64(len(funcs))
	tWrapper, tVoid, tEntry, tRun, tEvent := n, n+1, n+2, n+3, n+4
	types = append(types, FuncType(wrapperParams, []api.ValueType{i64}), FuncType(nil, nil),
		FuncType([]api.ValueType{i32}, []api.ValueType{i32}), FuncType([]api.ValueType{i32}, []api.ValueType{i32}),
		FuncType([]api.ValueType{i32, i32, i64, i64}, []api.ValueType{i32}))
	imports = append(imports, ImportFunc("fuzz", "run", tRun))
	runIdx := n
	nImports := n + 1

	var funcTypes, bodies, exports [][]byte
	export := func(s string, kind byte, idx uint64) { exports = append(exports, Export(s, kind, idx)) }
	for i, f := range funcs {
		var code []byte
		for j, p := range f.Params {
			code = append(code, 0x20) // local.get
			code = append(code, LEB(uint64(j))...)
			if p == i32 {
				code = append(code, 0xa7) // i32.wrap_i64
			}
		}
		code = append(code, 0x10)
		code = append(code, LEB(uint64(i))...)
		switch {
		case len(f.Results) == 0:
			code = append(code, 0x42, 0x00) // i64.const 0
		case f.Results[0] == i32:
			code = append(code, 0xac) // i64.extend_i32_s
		}
		code = append(code, 0x0b)
		funcTypes = append(funcTypes, LEB(tWrapper))
		bodies = append(bodies, Body(code...))
		export(fmt.Sprintf("call%d", i), 0, nImports+uint64(i))
	}
	next := nImports + n
	mode := "wasmsrv_mode_sync"
	if async {
		mode = "wasmsrv_mode_async"
	}
	for _, marker := range []string{"wasmsrv_abi_v1", mode} {
		funcTypes = append(funcTypes, LEB(tVoid))
		bodies = append(bodies, Body(0x0b))
		export(marker, 0, next)
		next++
	}
	callRun := append([]byte{0x10}, LEB(runIdx)...)
	if async {
		// on_event(kind, ctx, a, b): on REQUEST_START (1) run the program for ctx.
		code := []byte{0x20, 0x00, 0x41, 0x01, 0x46, 0x04, 0x40, 0x20, 0x01}
		code = append(code, callRun...)
		code = append(code, 0x1a, 0x0b, 0x41, 0x00, 0x0b) // drop, end if, i32.const 0, end
		funcTypes = append(funcTypes, LEB(tEvent))
		bodies = append(bodies, Body(code...))
		export("wasmsrv_on_event", 0, next)
	} else {
		code := append([]byte{0x20, 0x00}, callRun...)
		funcTypes = append(funcTypes, LEB(tEntry))
		bodies = append(bodies, Body(append(code, 0x0b)...))
		export("wasmsrv_handle", 0, next)
	}
	export("memory", 2, 0)

	bin := []byte(WasmHeader)
	bin = append(bin, Section(1, Vec(types...))...)
	bin = append(bin, Section(2, Vec(imports...))...)
	bin = append(bin, Section(3, Vec(funcTypes...))...)
	bin = append(bin, Section(5, Vec([]byte{0x01, FuzzGuestPages, FuzzGuestPages}))...)
	bin = append(bin, Section(7, Vec(exports...))...)
	return append(bin, Section(10, Vec(bodies...))...)
}

// FuzzStatusOK reports whether r, a host function's result, is a success value or
// one of the status codes the SPEC (and, with plugins, plugins/README.md) define:
// core -1..-7, plugin -16..-20.
func FuzzStatusOK(r int64, plugins bool) bool {
	switch {
	case r >= 0:
		return true
	case r >= -7:
		return true
	case plugins && r >= -20 && r <= -16:
		return true
	}
	return false
}
