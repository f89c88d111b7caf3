package runtime

import (
	"context"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Host functions for WebSocket (both shapes) and for the async shape (SPEC §8, §9).
// Like the rest of the core module they are GoModuleFuncs: no reflection and no
// allocation on the way in or out.

// asyncHostFuncs implement the WebSocket (SPEC §9.2) and async-shape (§8.3) host
// functions, by name; their signatures are in abi.Imports.
func asyncHostFuncs() map[string]api.GoModuleFunc {
	return map[string]api.GoModuleFunc{
		abi.FnWSAccept:        hostWSAccept,
		abi.FnWSRecv:          hostWSRecv,
		abi.FnWSSend:          hostWSSend,
		abi.FnWSClose:         hostWSClose,
		abi.FnWSCloseInfo:     hostWSCloseInfo,
		abi.FnCtxDone:         hostCtxDone,
		abi.FnTimerSet:        hostTimerSet,
		abi.FnTimerCancel:     hostTimerCancel,
		abi.FnSetBackpressure: hostSetBackpressure,
	}
}

// webSocketFor returns the WebSocket of handle h, or nil when the request is not a
// WebSocket upgrade (the call then returns ERR_STATE).
func webSocketFor(ctx context.Context, fn string, h uint64) WebSocket {
	ws, _ := exchangeFor(ctx, fn, h).(WebSocket)
	return ws
}

func hostWSAccept(ctx context.Context, mod api.Module, stack []uint64) {
	ws := webSocketFor(ctx, abi.FnWSAccept, stack[0])
	proto := guestRegion(abi.FnWSAccept, mod, uint32(stack[1]), uint32(stack[2]))
	hdr := guestRegion(abi.FnWSAccept, mod, uint32(stack[3]), uint32(stack[4]))
	if ws == nil {
		stack[0] = st32(abi.ErrState)
		return
	}
	stack[0] = uint64(uint32(ws.WSAccept(proto, hdr)))
}

func hostWSRecv(ctx context.Context, mod api.Module, stack []uint64) {
	ws := webSocketFor(ctx, abi.FnWSRecv, stack[0])
	buf := guestRegion(abi.FnWSRecv, mod, uint32(stack[1]), uint32(stack[2]))
	if ws == nil {
		stack[0] = st64(abi.ErrState)
		return
	}
	kind, n, status := ws.WSRecv(buf)
	if status != abi.OK {
		stack[0] = uint64(int64(status))
		return
	}
	stack[0] = abi.PackKindLen(kind, uint32(n))
}

func hostWSSend(ctx context.Context, mod api.Module, stack []uint64) {
	ws := webSocketFor(ctx, abi.FnWSSend, stack[0])
	p := guestRegion(abi.FnWSSend, mod, uint32(stack[2]), uint32(stack[3]))
	if ws == nil {
		stack[0] = st32(abi.ErrState)
		return
	}
	kind := int32(stack[1])
	if kind != abi.MessageText && kind != abi.MessageBinary {
		stack[0] = st32(abi.ErrBadArgument)
		return
	}
	stack[0] = uint64(uint32(ws.WSSend(kind, p)))
}

func hostWSClose(ctx context.Context, mod api.Module, stack []uint64) {
	ws := webSocketFor(ctx, abi.FnWSClose, stack[0])
	reason := guestRegion(abi.FnWSClose, mod, uint32(stack[2]), uint32(stack[3]))
	if ws == nil {
		stack[0] = st32(abi.ErrState)
		return
	}
	stack[0] = uint64(uint32(ws.WSClose(int32(stack[1]), reason)))
}

func hostWSCloseInfo(ctx context.Context, mod api.Module, stack []uint64) {
	ws := webSocketFor(ctx, abi.FnWSCloseInfo, stack[0])
	buf := guestRegion(abi.FnWSCloseInfo, mod, uint32(stack[1]), uint32(stack[2]))
	if ws == nil {
		stack[0] = st64(abi.ErrState)
		return
	}
	code, reason := ws.WSCloseInfo()
	if len(reason) <= len(buf) {
		copy(buf, reason)
	}
	stack[0] = abi.PackKindLen(code, uint32(len(reason)))
}

// asyncFrom returns the async state of the calling instance, nil in sync mode.
func asyncFrom(ctx context.Context, fn string) *asyncInst {
	in := InstanceFrom(ctx)
	if in == nil {
		trap(fn, "called outside an instance")
	}
	return in.async
}

func hostCtxDone(ctx context.Context, _ api.Module, stack []uint64) {
	ai := asyncFrom(ctx, abi.FnCtxDone)
	if ai == nil {
		stack[0] = st32(abi.ErrState) // sync mode: a request ends when wasmsrv_handle returns
		return
	}
	if !ai.finish(uint32(stack[0]), int32(stack[1])) {
		trap(abi.FnCtxDone, "unknown request handle")
	}
	stack[0] = st32(abi.OK)
}

func hostTimerSet(ctx context.Context, _ api.Module, stack []uint64) {
	ai := asyncFrom(ctx, abi.FnTimerSet)
	if ai == nil {
		stack[0] = st32(abi.ErrUnsupported)
		return
	}
	ms := int64(stack[1])
	if ms < 0 {
		stack[0] = st32(abi.ErrBadArgument)
		return
	}
	stack[0] = uint64(uint32(ai.setTimer(uint32(stack[0]), time.Duration(min(ms, int64(1<<40)))*time.Millisecond)))
}

func hostTimerCancel(ctx context.Context, _ api.Module, stack []uint64) {
	ai := asyncFrom(ctx, abi.FnTimerCancel)
	if ai == nil {
		stack[0] = st32(abi.ErrUnsupported)
		return
	}
	stack[0] = uint64(uint32(ai.cancelTimer(uint32(stack[0]))))
}

func hostSetBackpressure(ctx context.Context, _ api.Module, stack []uint64) {
	ai := asyncFrom(ctx, abi.FnSetBackpressure)
	if ai == nil {
		stack[0] = st32(abi.ErrUnsupported)
		return
	}
	ai.bp.Store(uint32(stack[0]) != 0)
	stack[0] = st32(abi.OK)
}

// st32 and st64 return a status code as an i32 or i64 result.
func st32(code int32) uint64 { return uint64(uint32(code)) }
func st64(code int32) uint64 { return uint64(int64(code)) }
