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
	CloseNormal        = abi.CloseNormal
	CloseGoingAway     = abi.CloseGoingAway
	ClosePolicy        = 1008
	CloseTooBig        = abi.CloseTooBig
	CloseInternal      = abi.CloseInternalError
	CloseNoStatus      = abi.CloseNoStatus
	CloseAbnormal      = abi.CloseAbnormal
	CloseUnsupported   = 1003
	CloseTryAgainLater = abi.CloseTryAgainLater
)

var (
	// ErrNotWebSocket is returned by Accept for a request that is not a
	// WebSocket upgrade.
	ErrNotWebSocket = errors.New("wasmsrv: not a WebSocket upgrade request")
	// ErrMessageTooLarge is returned by WriteMessage for a message bigger than
	// both the host's send buffer and its message limit: the host cannot take it.
	ErrMessageTooLarge = errors.New("wasmsrv: message over the host's limit")
	// ErrInvalidUTF8 is returned by WriteMessage for a text message that is not
	// UTF-8 (a client would fail the connection on it).
	ErrInvalidUTF8 = errors.New("wasmsrv: text message is not UTF-8")
	// ErrCloseCode is returned by Close for a code that may not be sent
	// (RFC 6455 §7.4: use 1000–1003, 1007–1014, 3000–4999) or a reason that
	// is not UTF-8.
	ErrCloseCode = errors.New("wasmsrv: close code may not be sent, or reason not UTF-8")
)

// CloseError is returned by reads and writes once the WebSocket is closed: the code
// and reason the peer sent (1005 when its close frame had no code, 1006 when the
// connection dropped without one), or the code the host closed with (1009 when
// the peer's message was over the host's limit, 1002 or 1007 when it broke the
// protocol, 1013 when it stopped taking what the app sends).
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
//
// The host has already checked where the request comes from: a browser page
// of another origin never reaches the app (403, cross-site WebSocket
// hijacking). Same-origin pages and non-browser clients (no Origin header)
// do; the operator allows other origins per app (`wasmsrv run --ws-origins`,
// `ws_origins` in a site file). r.Header.Get("Origin") is there for apps that
// want to be stricter.
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

// WriteMessage sends one message. It waits (blocked in the sync shape, parked in
// the async one) while the host's send buffer for this client has no room for
// it; a client that takes nothing for a while is closed with 1013 and the
// error is then a *CloseError. A message bigger than both the send buffer and
// the message limit gets ErrMessageTooLarge, text that is not UTF-8
// ErrInvalidUTF8.
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
		case abi.ErrTooLarge:
			return ErrMessageTooLarge
		case abi.ErrBadArgument:
			return ErrInvalidUTF8
		default:
			return statusErr(rc)
		}
	}
}

// WriteText sends s as a text message.
func (ws *WebSocket) WriteText(s string) error {
	return ws.WriteMessage(TextMessage, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// Close starts the closing handshake with code (0 means 1000) and reason (UTF-8;
// cut to 123 bytes); the host finishes it. A code that may not go on the wire
// gets ErrCloseCode and leaves the connection open.
func (ws *WebSocket) Close(code int, reason string) error {
	switch rc := wsClose(ws.ctx, int32(code), strPtr(reason), uint32(len(reason))); rc {
	case abi.OK, abi.ErrClosed:
	case abi.ErrBadArgument:
		return ErrCloseCode
	default:
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
