package abi

// Host functions added for WebSocket (both shapes) and the async shape (SPEC §8–§9).
const (
	FnWSAccept        = "ws_accept"
	FnWSRecv          = "ws_recv"
	FnWSSend          = "ws_send"
	FnWSClose         = "ws_close"
	FnWSCloseInfo     = "ws_close_info"
	FnCtxDone         = "ctx_done"
	FnTimerSet        = "timer_set"
	FnTimerCancel     = "timer_cancel"
	FnSetBackpressure = "set_backpressure"
)

// Event kinds passed to wasmsrv_on_event (SPEC §8.2).
const (
	EventPoll       int32 = 0 // no event: the guest asked to be called again (YIELD)
	EventRequest    int32 = 1 // a new HTTP request on ctx; read its head with req_head
	EventBody       int32 = 2 // request body bytes (or its end) are available on ctx
	EventWritable   int32 = 3 // a write on ctx that returned ERR_WOULD_BLOCK may be retried
	EventWSConnect  int32 = 4 // a new WebSocket upgrade request on ctx (accept or deny it)
	EventWSMessage  int32 = 5 // a WebSocket message is waiting on ctx: a = kind, b = length
	EventWSClosed   int32 = 6 // the WebSocket on ctx is closed: a = close code
	EventDisconnect int32 = 7 // the client of ctx went away
	EventTimer      int32 = 8 // timer a fired (ctx is 0)
	EventCancel     int32 = 9 // ctx passed its deadline or the host is draining: finish it
	// EventPlugin (ABI 1.1): a plugin operation the guest armed a notification for
	// is ready: a = the guest's token; ctx is the connection named when arming, or 0.
	EventPlugin int32 = 10
)

// Results of wasmsrv_on_event.
const (
	EventIdle  int32 = 0 // the guest has nothing more to do until the next event
	EventYield int32 = 1 // the guest has more work: call again with EventPoll
)

// WebSocket message kinds (ws_recv, ws_send, EventWSMessage).
const (
	MessageBinary int32 = 1
	MessageText   int32 = 2
)

// WebSocket close codes the host uses (RFC 6455 §7.4.1).
const (
	CloseNormal        = 1000
	CloseGoingAway     = 1001
	CloseProtocolError = 1002
	CloseNoStatus      = 1005 // reported when the peer's close frame had no code
	CloseAbnormal      = 1006 // reported when the connection dropped without a close frame
	CloseInvalidData   = 1007
	CloseTooBig        = 1009
	CloseInternalError = 1011
	CloseTryAgainLater = 1013 // a client too slow to take what is sent (SPEC §9.3)
)

// PackKindLen packs a ws_recv result (kind in the high half, length in the low).
func PackKindLen(kind int32, n uint32) uint64 { return uint64(uint32(kind))<<32 | uint64(n) }

// UnpackKindLen splits a non-negative ws_recv or ws_close_info result.
func UnpackKindLen(r int64) (kind int32, n uint32) { return int32(uint64(r) >> 32), uint32(r) }
