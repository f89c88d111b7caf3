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
	leb := func(n uint64) []byte {
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
	vec := func(items ...[]byte) []byte {
		out := leb(uint64(len(items)))
		for _, it := range items {
			out = append(out, it...)
		}
		return out
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, leb(uint64(len(body)))...), body...)
	}
	name := func(s string) []byte { return append(leb(uint64(len(s))), s...) }
	fnType := func(params, results []api.ValueType) []byte {
		return append(append(append([]byte{0x60}, leb(uint64(len(params)))...), params...), append(leb(uint64(len(results))), results...)...)
	}
	wrapperParams := make([]api.ValueType, FuzzArgs)
	for i := range wrapperParams {
		wrapperParams[i] = i64
	}
	var types, imports [][]byte
	for i, f := range funcs {
		types = append(types, fnType(f.Params, f.Results))
		imports = append(imports, append(append(name(f.Module), name(f.Name)...), append([]byte{0x00}, leb(uint64(i))...)...))
	}
	n := uint64(len(funcs))
	tWrapper, tVoid, tEntry, tRun, tEvent := n, n+1, n+2, n+3, n+4
	types = append(types, fnType(wrapperParams, []api.ValueType{i64}), fnType(nil, nil),
		fnType([]api.ValueType{i32}, []api.ValueType{i32}), fnType([]api.ValueType{i32}, []api.ValueType{i32}),
		fnType([]api.ValueType{i32, i32, i64, i64}, []api.ValueType{i32}))
	imports = append(imports, append(append(name("fuzz"), name("run")...), append([]byte{0x00}, leb(tRun)...)...))
	runIdx := n
	nImports := n + 1

	var funcTypes, bodies, exports [][]byte
	export := func(s string, kind byte, idx uint64) {
		exports = append(exports, append(name(s), append([]byte{kind}, leb(idx)...)...))
	}
	body := func(code ...byte) []byte {
		b := append([]byte{0x00}, code...) // no locals
		return append(leb(uint64(len(b))), b...)
	}
	for i, f := range funcs {
		var code []byte
		for j, p := range f.Params {
			code = append(code, 0x20) // local.get
			code = append(code, leb(uint64(j))...)
			if p == i32 {
				code = append(code, 0xa7) // i32.wrap_i64
			}
		}
		code = append(code, 0x10)
		code = append(code, leb(uint64(i))...)
		switch {
		case len(f.Results) == 0:
			code = append(code, 0x42, 0x00) // i64.const 0
		case f.Results[0] == i32:
			code = append(code, 0xac) // i64.extend_i32_s
		}
		code = append(code, 0x0b)
		funcTypes = append(funcTypes, leb(tWrapper))
		bodies = append(bodies, body(code...))
		export(fmt.Sprintf("call%d", i), 0, nImports+uint64(i))
	}
	next := nImports + n
	mode := "wasmsrv_mode_sync"
	if async {
		mode = "wasmsrv_mode_async"
	}
	for _, marker := range []string{"wasmsrv_abi_v1", mode} {
		funcTypes = append(funcTypes, leb(tVoid))
		bodies = append(bodies, body(0x0b))
		export(marker, 0, next)
		next++
	}
	callRun := append([]byte{0x10}, leb(runIdx)...)
	if async {
		// on_event(kind, ctx, a, b): on REQUEST_START (1) run the program for ctx.
		code := []byte{0x20, 0x00, 0x41, 0x01, 0x46, 0x04, 0x40, 0x20, 0x01}
		code = append(code, callRun...)
		code = append(code, 0x1a, 0x0b, 0x41, 0x00, 0x0b) // drop, end if, i32.const 0, end
		funcTypes = append(funcTypes, leb(tEvent))
		bodies = append(bodies, body(code...))
		export("wasmsrv_on_event", 0, next)
	} else {
		code := append([]byte{0x20, 0x00}, callRun...)
		funcTypes = append(funcTypes, leb(tEntry))
		bodies = append(bodies, body(append(code, 0x0b)...))
		export("wasmsrv_handle", 0, next)
	}
	export("memory", 2, 0)

	bin := []byte("\x00asm\x01\x00\x00\x00")
	bin = append(bin, section(1, vec(types...))...)
	bin = append(bin, section(2, vec(imports...))...)
	bin = append(bin, section(3, vec(funcTypes...))...)
	bin = append(bin, section(5, vec([]byte{0x01, FuzzGuestPages, FuzzGuestPages}))...)
	bin = append(bin, section(7, vec(exports...))...)
	return append(bin, section(10, vec(bodies...))...)
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
