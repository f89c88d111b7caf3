//go:build !wasip1

package fetch

import "unsafe"

// Outside a wasip1 guest the package compiles, but the host functions do not exist.

func send(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func response(uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func closeResp(uint32) int32 { panic(errNotGuest) }

func notify(uint32, uint32, uint32) int32 { panic(errNotGuest) }

const errNotGuest = "wasmsrv/fetch: host functions exist only in a GOOS=wasip1 guest granted http"
