//go:build wasip1

package wasmsrv

import "unsafe"

// WebSocket host functions (SPEC §9.2), imported by both shapes. The async-only
// ones (§8.3) are in imports_asynconly_wasip1.go.

//go:wasmimport wasmsrv ws_accept
func wsAccept(ctx uint32, proto unsafe.Pointer, protoLen uint32, hdr unsafe.Pointer, hdrLen uint32) int32

//go:wasmimport wasmsrv ws_recv
func wsRecv(ctx uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv ws_send
func wsSend(ctx uint32, kind int32, p unsafe.Pointer, n uint32) int32

//go:wasmimport wasmsrv ws_close
func wsClose(ctx uint32, code int32, reason unsafe.Pointer, n uint32) int32

//go:wasmimport wasmsrv ws_close_info
func wsCloseInfo(ctx uint32, buf unsafe.Pointer, limit uint32) int64
