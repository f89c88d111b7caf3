//go:build !wasip1

package kv

import "unsafe"

// Outside a wasip1 guest the package compiles (for vet, docs and host tools), but the
// host functions do not exist: calling them says so loudly.

func get(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func set(unsafe.Pointer, uint32, unsafe.Pointer, uint32, int64) int32 { panic(errNotGuest) }

func del(unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func cas(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32, int32, int64) int32 {
	panic(errNotGuest)
}

func list(unsafe.Pointer, uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64 {
	panic(errNotGuest)
}

const errNotGuest = "wasmsrv/kv: host functions exist only in a GOOS=wasip1 guest granted kv"
