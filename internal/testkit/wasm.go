package testkit

import "github.com/tetratelabs/wazero/api"

// Pieces of the WebAssembly binary format, for tests that assemble small modules
// (a guest with exactly the imports or exports under test) without wat2wasm.

// WasmHeader is the magic number and version every module starts with.
const WasmHeader = "\x00asm\x01\x00\x00\x00"

// LEB is n in unsigned LEB128.
func LEB(n uint64) []byte {
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

// Vec is a vector: the count, then the items.
func Vec(items ...[]byte) []byte {
	out := LEB(uint64(len(items)))
	for _, it := range items {
		out = append(out, it...)
	}
	return out
}

// Section is a section: its id, the body's size, the body.
func Section(id byte, body []byte) []byte {
	return append(append([]byte{id}, LEB(uint64(len(body)))...), body...)
}

// Name is a length-prefixed name (import, export, module).
func Name(s string) []byte { return append(LEB(uint64(len(s))), s...) }

// FuncType is a function type: 0x60, the parameter types, the result types.
func FuncType(params, results []api.ValueType) []byte {
	b := append(append([]byte{0x60}, LEB(uint64(len(params)))...), params...)
	return append(append(b, LEB(uint64(len(results)))...), results...)
}

// Export is an export entry of kind (0 function, 2 memory) and index.
func Export(name string, kind byte, idx uint64) []byte {
	return append(Name(name), append([]byte{kind}, LEB(idx)...)...)
}

// Body is a function body without locals.
func Body(code ...byte) []byte {
	b := append([]byte{0x00}, code...)
	return append(LEB(uint64(len(b))), b...)
}

// ImportFunc is a function import of type index typeIdx.
func ImportFunc(module, name string, typeIdx uint64) []byte {
	return append(append(Name(module), Name(name)...), append([]byte{0x00}, LEB(typeIdx)...)...)
}
