//go:build wasip1

package log

import "unsafe"

//go:wasmimport wasmsrv_log write
func write(level int32, msg unsafe.Pointer, msgLen uint32, attrs unsafe.Pointer, attrsLen uint32) int32

//go:wasmimport wasmsrv_log enabled
func enabled(level int32) int32
