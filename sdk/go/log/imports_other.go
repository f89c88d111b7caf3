//go:build !wasip1

package log

import "unsafe"

// Outside a wasip1 guest the package compiles, but the host functions do not exist.

func write(int32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func enabled(int32) int32 { panic(errNotGuest) }

const errNotGuest = "wasmsrv/log: host functions exist only in a GOOS=wasip1 guest"
