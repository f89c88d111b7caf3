//go:build wasip1

package kv

import "unsafe"

//go:wasmimport wasmsrv_kv get
func get(key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv_kv set
func set(key unsafe.Pointer, keyLen uint32, val unsafe.Pointer, valLen uint32, ttlMs int64) int32

//go:wasmimport wasmsrv_kv delete
func del(key unsafe.Pointer, keyLen uint32) int32

//go:wasmimport wasmsrv_kv cas
func cas(key unsafe.Pointer, keyLen uint32, old unsafe.Pointer, oldLen uint32, nv unsafe.Pointer, nvLen uint32, flags int32, ttlMs int64) int32

//go:wasmimport wasmsrv_kv list
func list(prefix unsafe.Pointer, prefixLen uint32, after unsafe.Pointer, afterLen uint32, buf unsafe.Pointer, limit uint32) int64
