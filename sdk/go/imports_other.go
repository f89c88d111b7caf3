//go:build !wasip1

package wasmsrv

import "unsafe"

// Outside a wasip1 guest the package still compiles (so host tools, vet and docs see
// it), but the host functions do not exist: calling them reports that loudly.

func reqHead(uint32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func bodyRead(uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func respStart(uint32, int32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func respWrite(uint32, unsafe.Pointer, uint32, int32) int32 { panic(errNotGuest) }

func disconnected(uint32) int32 { panic(errNotGuest) }

const errNotGuest = "wasmsrv: host functions exist only in a GOOS=wasip1 guest"
