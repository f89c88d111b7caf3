//go:build !wasip1

package pubsub

import "unsafe"

// Outside a wasip1 guest the package compiles, but the host functions do not exist.

func publish(unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func subscribe(unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func receive(uint32, unsafe.Pointer, uint32, uint32) int64 { panic(errNotGuest) }

func unsubscribe(uint32) int32 { panic(errNotGuest) }

func notify(uint32, uint32, uint32) int32 { panic(errNotGuest) }

const errNotGuest = "wasmsrv/pubsub: host functions exist only in a GOOS=wasip1 guest granted pubsub"
