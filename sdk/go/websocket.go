package wasmsrv

import (
	"errors"
	"strconv"
	"strings"
	"unsafe"

	"github.com/wasmsrv/wasmsrv/abi"
)

// MessageType is the kind of a WebSocket message.
type MessageType int

// Message types (the ABI's kinds).
const (
	BinaryMessage MessageType = MessageType(abi.MessageBinary)
	TextMessage   MessageType = MessageType(abi.MessageText)
)

// Close codes (RFC 6455 §7.4.1) apps commonly use.
const (
	CloseNormal      = abi.CloseNormal
	CloseGoingAway   = abi.CloseGoingAway
	ClosePolicy      = 1008
	CloseTooBig      = abi.CloseTooBig
	CloseInternal    = abi.CloseInternalError
	CloseNoStatus    = abi.CloseNoStatus
	CloseAbnormal    = abi.CloseAbnormal
	CloseUnsupported = 1003
)

// ErrNotWebSocket is returned by Accept for a request that is not a WebSocket
// upgrade.
var ErrNotWebSocket = errors.New("wasmsrv: not a WebSocket upgrade request")

// CloseError is returned by reads and writes once the WebSocket is closed: the code
// and reason the peer sent (1005 when its close frame had no code, 1006 when the
// connection dropped without one, 1009 when its message was over the host's limit).
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return "wasmsrv: websocket closed: " + strconv.Itoa(e.Code) + " " + e.Reason
}

// IsWebSocket reports whether the request asks to upgrade to a WebSocket.
func (r *Request) IsWebSocket() bool { return r.head.Kind == abi.KindWebSocket }

// Subprotocols returns the subprotocols the client offered, in its order.
func (r *Request) Subprotocols() []string {
	var out []string
	for _, v := range r.Header.Values("sec-websocket-protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// AcceptOptions tunes Accept.
type AcceptOptions struct {
	// Subprotocol is the one chosen from r.Subprotocols(), or "".
	Subprotocol string
	// Header holds extra response headers for the handshake.
	Header Header
}

// WebSocket is an accepted WebSocket connection. Reads and writes look blocking in
// both shapes: in the sync shape the host blocks, in the async shape the SDK parks
// the goroutine and the instance serves other connections meanwhile. The host
// answers pings, reassembles fragments and enforces the message size limit.
//
// One goroutine may read while another writes; two concurrent readers (or
// writers) are not supported.
type WebSocket struct {
	ctx    uint32
	buf    []byte
	closed *CloseError
	// Subprotocol is the subprotocol agreed in the handshake.
	Subprotocol string
}

// Accept completes the upgrade of r. To deny it, write an ordinary response
// instead (or return without writing: the client gets 403).
func Accept(w *ResponseWriter, r *Request, opts *AcceptOptions) (*WebSocket, error) {
	if !r.IsWebSocket() {
		return nil, ErrNotWebSocket
	}
	if r.ws != nil {
		return r.ws, nil
	}
	var proto string
	var hdr []byte
	if opts != nil {
		proto = opts.Subprotocol
		hdr = abi.AppendHeaderBlock(nil, opts.Header.list)
	} else {
		hdr = abi.AppendHeaderBlock(nil, nil)
	}
	if rc := wsAccept(r.ctx, strPtr(proto), uint32(len(proto)), bytesPtr(hdr), uint32(len(hdr))); rc != abi.OK {
		return nil, statusErr(rc)
	}
	ws := &WebSocket{ctx: r.ctx, Subprotocol: proto}
	r.ws = ws
	w.closed = true // the HTTP response is over: the handshake was the response
	return ws, nil
}

// ReadMessage returns the next whole message. The slice is valid until the next
// ReadMessage; copy it to keep it. After the peer closed, the error is a
// *CloseError.
func (ws *WebSocket) ReadMessage() (MessageType, []byte, error) {
	if ws.closed != nil {
		return 0, nil, ws.closed
	}
	if ws.buf == nil {
		// Small to start: an idle connection keeps this buffer. It grows to the
		// largest message received.
		ws.buf = make([]byte, 64)
	}
	for {
		r := wsRecv(ws.ctx, unsafe.Pointer(&ws.buf[0]), uint32(len(ws.buf)))
		switch {
		case r == int64(abi.ErrWouldBlock):
			waitCtx(ws.ctx)
			continue
		case r == int64(abi.ErrClosed):
			return 0, nil, ws.closeError()
		case r < 0:
			return 0, nil, statusErr(int32(r))
		}
		kind, n := abi.UnpackKindLen(r)
		if int(n) > len(ws.buf) {
			ws.buf = make([]byte, n)
			continue
		}
		return MessageType(kind), ws.buf[:n], nil
	}
}

// WriteMessage sends one message. In the async shape it waits (parked) while the
// host's send buffer for this client is full.
func (ws *WebSocket) WriteMessage(t MessageType, p []byte) error {
	if ws.closed != nil {
		return ws.closed
	}
	for {
		rc := wsSend(ws.ctx, int32(t), bytesPtr(p), uint32(len(p)))
		switch rc {
		case abi.OK:
			return nil
		case abi.ErrWouldBlock:
			waitCtx(ws.ctx)
		case abi.ErrClosed:
			return ws.closeError()
		default:
			return statusErr(rc)
		}
	}
}

// WriteText sends s as a text message.
func (ws *WebSocket) WriteText(s string) error {
	return ws.WriteMessage(TextMessage, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// Close starts the closing handshake with code and reason; the host finishes it.
func (ws *WebSocket) Close(code int, reason string) error {
	if rc := wsClose(ws.ctx, int32(code), strPtr(reason), uint32(len(reason))); rc != abi.OK && rc != abi.ErrClosed {
		return statusErr(rc)
	}
	if ws.closed == nil {
		ws.closed = &CloseError{Code: code, Reason: reason}
	}
	return nil
}

func (ws *WebSocket) closeError() error {
	if ws.closed != nil {
		return ws.closed
	}
	var small [128]byte
	buf := small[:]
	for {
		r := wsCloseInfo(ws.ctx, unsafe.Pointer(&buf[0]), uint32(len(buf)))
		if r < 0 {
			ws.closed = &CloseError{Code: CloseAbnormal}
			break
		}
		code, n := abi.UnpackKindLen(r)
		if int(n) > len(buf) {
			buf = make([]byte, n)
			continue
		}
		ws.closed = &CloseError{Code: int(code), Reason: string(buf[:n])}
		break
	}
	return ws.closed
}

func strPtr(s string) unsafe.Pointer {
	if s == "" {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}
