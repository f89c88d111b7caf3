package runtime

import "github.com/wasmsrv/wasmsrv/abi"

// endedExchange stands in for the exchange of an abandoned connection
// (Conn.Abandon with a status) until the guest calls ctx_done: the real exchange
// went back to the host, and every call on the handle answers status.
type endedExchange struct {
	head   []byte // the request head, so req_head keeps its SPEC §3 promise
	status int32
	ws     bool // a WebSocket upgrade request (never accepted: see Conn.Abandon)
}

// wsStatus is what a WebSocket call answers: s for an upgrade request, ERR_STATE
// for a plain HTTP request, as its live exchange did (SPEC §9.2).
func (e *endedExchange) wsStatus(s int32) int32 {
	if !e.ws {
		return abi.ErrState
	}
	return s
}

func (e *endedExchange) Head() []byte                       { return e.head }
func (e *endedExchange) ReadBody([]byte) (int, bool, int32) { return 0, false, e.status }
func (e *endedExchange) Start(int32, []byte) int32          { return e.status }
func (e *endedExchange) Write([]byte, int32) int32          { return e.status }
func (e *endedExchange) Disconnected() bool                 { return true }
func (e *endedExchange) Abort()                             {}
func (e *endedExchange) Bind(*Conn)                         {}
func (e *endedExchange) Finish(int32, error)                {}
func (e *endedExchange) WSAccept([]byte, []byte) int32      { return e.wsStatus(e.status) }
func (e *endedExchange) WSRecv([]byte) (int32, int, int32)  { return 0, 0, e.wsStatus(abi.ErrClosed) }
func (e *endedExchange) WSSend(int32, []byte) int32         { return e.wsStatus(abi.ErrClosed) }
func (e *endedExchange) WSClose(int32, []byte) int32        { return e.wsStatus(abi.OK) }

// WSCloseInfo: an upgrade that ended unaccepted reads as dropped (1006); a plain
// HTTP request never was a WebSocket and reads as open (0), as it did live.
func (e *endedExchange) WSCloseInfo() (code int32, reason []byte) {
	if !e.ws {
		return 0, nil
	}
	return abi.CloseAbnormal, nil
}

var (
	_ AsyncExchange = (*endedExchange)(nil)
	_ WebSocket     = (*endedExchange)(nil)
)
