//go:build wasip1

package pubsub

import "unsafe"

//go:wasmimport wasmsrv_pubsub publish
func publish(topic unsafe.Pointer, topicLen uint32, msg unsafe.Pointer, msgLen uint32) int32

//go:wasmimport wasmsrv_pubsub subscribe
func subscribe(topic unsafe.Pointer, topicLen uint32) int32

//go:wasmimport wasmsrv_pubsub receive
func receive(h uint32, buf unsafe.Pointer, limit uint32, timeoutMs uint32) int64

//go:wasmimport wasmsrv_pubsub unsubscribe
func unsubscribe(h uint32) int32

//go:wasmimport wasmsrv_pubsub notify
func notify(h, ctx, token uint32) int32
