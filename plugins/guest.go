package plugins

import (
	"github.com/tetratelabs/wazero/api"
)

// Helpers for host functions. They follow the core ABI's conventions (abi/SPEC.md
// §2): data in through (ptr, len) regions copied or used during the call, data out
// only into guest-provided (buf, limit) regions, a region outside memory traps.

// Trap aborts the calling guest with an ABI violation; the instance is discarded and
// the host is untouched.
func Trap(fn, msg string) { panic(&ABIError{Func: fn, Msg: msg}) }

// Region returns the guest memory view [ptr, ptr+n), trapping when it is outside
// memory. The view aliases guest memory: valid only during the call.
func Region(fn string, mod api.Module, ptr, n uint64) []byte {
	b, ok := mod.Memory().Read(uint32(ptr), uint32(n))
	if !ok {
		Trap(fn, "region outside guest memory")
	}
	return b
}

// Out writes data into the guest region (buf, limit) if it fits and returns
// len(data) either way: the guest grows its buffer and calls again when the result
// exceeds its limit (SPEC §2). It traps when the region is outside memory.
func Out(fn string, mod api.Module, buf, limit uint64, data []byte) uint64 {
	dst := Region(fn, mod, buf, limit)
	if len(data) <= len(dst) {
		copy(dst, data)
	}
	return uint64(len(data))
}

// Status encodes a (negative) status code as an i64 or i32 result.
func Status(code int32) uint64 { return uint64(int64(code)) }

// I32 and I64 are value-type lists for HostFunc signatures.
const (
	I32 = api.ValueTypeI32
	I64 = api.ValueTypeI64
)

// Sig is shorthand for a HostFunc's parameter or result list.
func Sig(ts ...api.ValueType) []api.ValueType { return ts }
