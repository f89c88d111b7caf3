//go:build wasip1

package fetch

import "unsafe"

//go:wasmimport wasmsrv_http send
func send(req unsafe.Pointer, reqLen uint32, body unsafe.Pointer, bodyLen uint32) int64

//go:wasmimport wasmsrv_http response
func response(h uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv_http close
func closeResp(h uint32) int32

//go:wasmimport wasmsrv_http notify
func notify(h, ctx, token uint32) int32
