//go:build wasip1

package sockets

import "unsafe"

//go:wasmimport wasmsrv_sockets connect
func connect(addr unsafe.Pointer, addrLen uint32, flags uint32, name unsafe.Pointer, nameLen uint32, timeoutNS int64) int64

//go:wasmimport wasmsrv_sockets read
func read(h uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv_sockets write
func write(h uint32, data unsafe.Pointer, n uint32) int64

//go:wasmimport wasmsrv_sockets shutdown
func shutdown(h uint32) int32

//go:wasmimport wasmsrv_sockets close
func closeHandle(h uint32) int32

//go:wasmimport wasmsrv_sockets set_deadline
func setDeadline(h uint32, which uint32, timeoutNS int64) int32

//go:wasmimport wasmsrv_sockets notify
func notify(h, which, ctx, token uint32) int32

//go:wasmimport wasmsrv_sockets wait
func wait(h, which uint32) int32

//go:wasmimport wasmsrv_sockets starttls
func starttls(h uint32, name unsafe.Pointer, nameLen uint32) int32

//go:wasmimport wasmsrv_sockets addr
func addr(h, which uint32, buf unsafe.Pointer, limit uint32) int64
