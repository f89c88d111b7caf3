//go:build !wasip1

package wasmsrv

import "unsafe"

func wsAccept(uint32, unsafe.Pointer, uint32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func wsRecv(uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func wsSend(uint32, int32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func wsClose(uint32, int32, unsafe.Pointer, uint32) int32 { panic(errNotGuest) }

func wsCloseInfo(uint32, unsafe.Pointer, uint32) int64 { panic(errNotGuest) }

func ctxDone(uint32, int32) int32 { panic(errNotGuest) }

func timerSet(uint32, int64) int32 { panic(errNotGuest) }

func timerCancel(uint32) int32 { panic(errNotGuest) }

func setBackpressure(uint32) int32 { panic(errNotGuest) }
