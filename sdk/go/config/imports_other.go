//go:build !wasip1

package config

import "unsafe"

// Outside a wasip1 guest the package compiles, but the host functions do not exist.

func get(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func keys(unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

const errNotGuest = "wasmsrv/config: host functions exist only in a GOOS=wasip1 guest granted config"
