// Package abi holds the numeric constants, wire encodings and signature table
// (Imports, Exports: every host function and guest export, per shape and revision)
// of the wasmsrv gateway ABI (see SPEC.md beside this file). Host and Go SDK both
// use it, so it has no
// dependencies beyond the standard library's most basic packages and builds for
// GOOS=wasip1 as well as for the host.
package abi

// Version is the ABI major version this package implements.
const Version = 1

// ImportModule is the Wasm import module name of the core host functions.
const ImportModule = "wasmsrv"

// Export names the host looks for in a guest.
const (
	ExportMemory     = "memory"
	ExportInitialize = "_initialize"
	ExportStart      = "_start"
	MarkerVersion    = "wasmsrv_abi_v1"
	MarkerPrefix     = "wasmsrv_abi_v"
	MarkerModeSync   = "wasmsrv_mode_sync"
	MarkerModeAsync  = "wasmsrv_mode_async"
	ExportHandle     = "wasmsrv_handle"
	ExportOnEvent    = "wasmsrv_on_event"
	ExportOnStart    = "wasmsrv_on_start"
	ExportOnStop     = "wasmsrv_on_stop"
)

// Host function names in ImportModule.
const (
	FnReqHead      = "req_head"
	FnBodyRead     = "body_read"
	FnRespStart    = "resp_start"
	FnRespWrite    = "resp_write"
	FnDisconnected = "disconnected"
	FnHostFeatures = "host_features"
)

// Status codes returned by host functions (negative values of an i64 result too).
const (
	OK             int32 = 0
	ErrClosed      int32 = -1
	ErrWouldBlock  int32 = -2
	ErrBadArgument int32 = -3
	ErrUnsupported int32 = -4
	ErrState       int32 = -5
	ErrTooLarge    int32 = -6
	ErrTimeout     int32 = -7
)

// StatusText names a status code for logs and errors.
func StatusText(code int32) string {
	switch code {
	case OK:
		return "OK"
	case ErrClosed:
		return "ERR_CLOSED"
	case ErrWouldBlock:
		return "ERR_WOULD_BLOCK"
	case ErrBadArgument:
		return "ERR_BAD_ARGUMENT"
	case ErrUnsupported:
		return "ERR_UNSUPPORTED"
	case ErrState:
		return "ERR_STATE"
	case ErrTooLarge:
		return "ERR_TOO_LARGE"
	case ErrTimeout:
		return "ERR_TIMEOUT"
	}
	return "UNKNOWN"
}

// resp_write flags.
const (
	WriteEnd     int32 = 1 << 0
	WriteNoFlush int32 = 1 << 1
)

// host_features bits.
const (
	FeatureWebSocket uint64 = 1 << 0
	FeatureAsync     uint64 = 1 << 1
)

// Request kinds in the request head.
const (
	KindHTTP      uint8 = 0
	KindWebSocket uint8 = 1
)

// Head flags.
const (
	HeadFlagTLS uint32 = 1 << 0
)

// HeadFormat is the request head format version written at offset 0.
const HeadFormat = 1

// PackEOF packs a body_read result.
func PackEOF(n uint32, eof bool) uint64 {
	r := uint64(n)
	if eof {
		r |= 1 << 32
	}
	return r
}

// UnpackEOF splits a non-negative body_read result.
func UnpackEOF(r int64) (n uint32, eof bool) {
	return uint32(r), r>>32&1 == 1
}
