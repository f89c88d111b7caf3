//go:build !wasip1

package sockets

import "unsafe"

// Outside a wasip1 guest the package compiles, but the host functions do not exist.

func connect(unsafe.Pointer, uint32, uint32, unsafe.Pointer, uint32, int64) int64 {
	panic(errNotGuest)
}

func read(uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func write(uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func shutdown(uint32) int32 { panic(errNotGuest) }

func closeHandle(uint32) int32 { panic(errNotGuest) }

func setDeadline(uint32, uint32, int64) int32 { panic(errNotGuest) }

func notify(uint32, uint32, uint32, uint32) int32 { panic(errNotGuest) }

func wait(uint32, uint32) int32 { panic(errNotGuest) }

func starttls(uint32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func addr(uint32, uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

const errNotGuest = "wasmsrv/sockets: host functions exist only in a GOOS=wasip1 guest granted sockets"
