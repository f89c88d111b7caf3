package runtime

import (
	"testing"

	"github.com/wasmsrv/wasmsrv/abi"
)

// TestEndedExchangeWebSocketCalls: once a connection is abandoned (its deadline
// passed), the WebSocket calls on a plain HTTP request answer ERR_STATE, as they did
// while it was live (a guest must not be told an HTTP request is a closed
// WebSocket); on an upgrade request that was never accepted they answer as a closed
// one.
func TestEndedExchangeWebSocketCalls(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		ws                         bool
		accept, recv, send, closeS int32
		code                       int32
	}{
		{"http request", false, abi.ErrState, abi.ErrState, abi.ErrState, abi.ErrState, 0},
		{"websocket upgrade", true, abi.ErrTimeout, abi.ErrClosed, abi.ErrClosed, abi.OK, abi.CloseAbnormal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &endedExchange{status: abi.ErrTimeout, ws: tc.ws}
			if got := e.WSAccept(nil, nil); got != tc.accept {
				t.Errorf("WSAccept = %s, want %s", abi.StatusText(got), abi.StatusText(tc.accept))
			}
			if _, _, got := e.WSRecv(nil); got != tc.recv {
				t.Errorf("WSRecv = %s, want %s", abi.StatusText(got), abi.StatusText(tc.recv))
			}
			if got := e.WSSend(abi.MessageText, nil); got != tc.send {
				t.Errorf("WSSend = %s, want %s", abi.StatusText(got), abi.StatusText(tc.send))
			}
			if got := e.WSClose(1000, nil); got != tc.closeS {
				t.Errorf("WSClose = %s, want %s", abi.StatusText(got), abi.StatusText(tc.closeS))
			}
			if got, _ := e.WSCloseInfo(); got != tc.code {
				t.Errorf("WSCloseInfo = %d, want %d", got, tc.code)
			}
			if got := e.Write(nil, 0); got != abi.ErrTimeout {
				t.Errorf("Write = %s, want the abandon status", abi.StatusText(got))
			}
		})
	}
}
