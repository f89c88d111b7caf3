// Package pluginabi holds what every plugin ABI shares: the import-module naming rule,
// the status codes beyond the core ones, and the key-list encoding. Host plugins and
// the guest SDK bindings both use it, so like package abi it depends on nothing and
// builds for GOOS=wasip1 as well as for the host. plugins/README.md is its prose form.
package pluginabi

import "github.com/wasmsrv/wasmsrv/abi"

// ModulePrefix prefixes every plugin's import module: plugin "kv" is "wasmsrv_kv".
const ModulePrefix = "wasmsrv_"

// Module returns the import module name of the plugin called name.
func Module(name string) string { return ModulePrefix + name }

// Status codes. Plugins reuse the core codes where the meaning is the same and add
// their own from -16 down, so the core ABI keeps -8..-15 for itself.
const (
	OK             = abi.OK
	ErrClosed      = abi.ErrClosed
	ErrWouldBlock  = abi.ErrWouldBlock
	ErrBadArgument = abi.ErrBadArgument
	ErrUnsupported = abi.ErrUnsupported
	ErrState       = abi.ErrState
	ErrTooLarge    = abi.ErrTooLarge
	ErrTimeout     = abi.ErrTimeout

	// ErrNotFound: no such key, variable or handle.
	ErrNotFound int32 = -16
	// ErrConflict: a compare-and-swap found a different value.
	ErrConflict int32 = -17
	// ErrDenied: the operation is not allowed to this app (host not on the allow list).
	ErrDenied int32 = -18
	// ErrUnavailable: the backend or the remote side failed (connection refused,
	// Redis down); the guest may retry later.
	ErrUnavailable int32 = -19
	// ErrQuota: an app-wide limit was hit (storage bytes, open handles).
	ErrQuota int32 = -20
)

// StatusText names a status code, core or plugin.
func StatusText(code int32) string {
	switch code {
	case ErrNotFound:
		return "ERR_NOT_FOUND"
	case ErrConflict:
		return "ERR_CONFLICT"
	case ErrDenied:
		return "ERR_DENIED"
	case ErrUnavailable:
		return "ERR_UNAVAILABLE"
	case ErrQuota:
		return "ERR_QUOTA"
	}
	return abi.StatusText(code)
}

// Pack2 packs two u32 results into one i64 (hi << 32 | lo), as the core ABI does.
func Pack2(hi, lo uint32) uint64 { return uint64(hi)<<32 | uint64(lo) }

// Unpack2 is the inverse of Pack2.
func Unpack2(r int64) (hi, lo uint32) { return uint32(uint64(r) >> 32), uint32(r) }

// AppendItem appends one length-prefixed item (u32 little-endian length, bytes): the
// element of key lists and of the log plugin's attribute block.
func AppendItem(dst []byte, s string) []byte {
	n := uint32(len(s))
	dst = append(dst, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	return append(dst, s...)
}

// NextItem splits the first length-prefixed item off b. ok is false when b is
// malformed (truncated).
func NextItem(b []byte) (item, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}
