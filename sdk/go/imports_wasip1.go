//go:build wasip1

package wasmsrv

import "unsafe"

//go:wasmimport wasmsrv req_head
func reqHead(ctx uint32, buf unsafe.Pointer, limit uint32) int32

//go:wasmimport wasmsrv body_read
func bodyRead(ctx uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv resp_start
func respStart(ctx uint32, status int32, hdr unsafe.Pointer, hdrLen uint32) int32

//go:wasmimport wasmsrv resp_write
func respWrite(ctx uint32, p unsafe.Pointer, n uint32, flags int32) int32

//go:wasmimport wasmsrv disconnected
func disconnected(ctx uint32) int32
