package runtime

import (
	"context"
	"time"
)

// WebSocket is implemented by exchanges of WebSocket upgrade requests, in both
// shapes (SPEC §9). Byte slices are views of guest memory, valid during the call.
// In the sync shape WSRecv blocks; in the async shape nothing blocks and
// abi.ErrWouldBlock is returned instead, followed by an event.
type WebSocket interface {
	// WSAccept completes the handshake with an optional subprotocol and extra
	// response headers (an abi header block, possibly empty).
	WSAccept(subprotocol, headerBlock []byte) int32
	// WSRecv moves the next whole message into p. When it does not fit, nothing is
	// taken and n is the length needed (n > len(p)).
	WSRecv(p []byte) (kind int32, n int, status int32)
	// WSSend queues one message (abi.MessageText or abi.MessageBinary).
	WSSend(kind int32, p []byte) int32
	// WSClose starts the closing handshake; before accept it denies the upgrade.
	WSClose(code int32, reason []byte) int32
	// WSCloseInfo returns the peer's close code and reason once closed (code 0
	// while open).
	WSCloseInfo() (code int32, reason []byte)
}

// AsyncExchange is one connection served by an async instance: an HTTP request or a
// WebSocket. Its Exchange methods must never block: they run on the instance's
// owner goroutine, shared by every connection of the instance. Where a sync
// exchange would wait they return abi.ErrWouldBlock, and the host side later posts
// the matching event through the Conn.
type AsyncExchange interface {
	Exchange
	// Bind gives the exchange its Conn before the start event is queued, so the
	// host side can post events from the first host call on.
	Bind(c *Conn)
	// Finish is called once, on the owner goroutine, when the connection ends: the
	// guest called ctx_done with code (same meaning as a wasmsrv_handle result), or
	// err is non-nil because the instance failed or the pool is closing. It must not
	// block.
	Finish(code int32, err error)
}

// CallTimeouter is implemented by exchanges whose call deadline differs from the
// pool's request timeout: a sync-mode WebSocket holds its instance for the life of
// the connection, which no request timeout fits.
type CallTimeouter interface {
	CallTimeout(poolTimeout time.Duration) time.Duration
}

// Acquirer is implemented by exchanges that want to know when an instance
// took their request (a sync pool's instance left the idle queue; an async
// instance is about to deliver the request event): the wait in the queue ends
// and the guest call starts there (package tracing's spans). A sync pool calls
// it on the request's goroutine, an async one on the instance's.
type Acquirer interface {
	Acquired(instance uint64)
}

// RequestContexter is implemented by exchanges whose request has a context
// plugins should see (Instance.RequestContext): the trace span a plugin's
// outbound call continues. nil means none.
type RequestContexter interface {
	RequestContext() context.Context
}

// event is one entry of an async instance's mailbox.
type event struct {
	conn *Conn
	kind int32
	a, b int64
}
