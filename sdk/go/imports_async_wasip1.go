//go:build wasip1

package wasmsrv

import "unsafe"

// Host functions of SPEC §8–§9 (WebSocket in both shapes; the rest async only).

//go:wasmimport wasmsrv ws_accept
func wsAccept(ctx uint32, proto unsafe.Pointer, protoLen uint32, hdr unsafe.Pointer, hdrLen uint32) int32

//go:wasmimport wasmsrv ws_recv
func wsRecv(ctx uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv ws_send
func wsSend(ctx uint32, kind int32, p unsafe.Pointer, n uint32) int32

//go:wasmimport wasmsrv ws_close
func wsClose(ctx uint32, code int32, reason unsafe.Pointer, n uint32) int32

//go:wasmimport wasmsrv ws_close_info
func wsCloseInfo(ctx uint32, buf unsafe.Pointer, limit uint32) int64

//go:wasmimport wasmsrv ctx_done
func ctxDone(ctx uint32, code int32) int32

//go:wasmimport wasmsrv timer_set
func timerSet(id uint32, delayMS int64) int32

//go:wasmimport wasmsrv timer_cancel
func timerCancel(id uint32) int32

//go:wasmimport wasmsrv set_backpressure
func setBackpressure(on uint32) int32
