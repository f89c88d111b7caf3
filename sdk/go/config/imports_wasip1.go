//go:build wasip1

package config

import "unsafe"

//go:wasmimport wasmsrv_config get
func get(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv_config keys
func keys(buf unsafe.Pointer, limit uint32) int64
