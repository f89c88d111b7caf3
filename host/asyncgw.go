package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/host/internal/websocket"
	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/internal/framing"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// ConnOpener is what the async gateway needs from a runtime pool (runtime.AsyncPool):
// open one connection on an instance.
type ConnOpener interface {
	Open(ex runtime.AsyncExchange, websocket bool) (*runtime.Conn, error)
}

// AsyncGatewayConfig configures an AsyncGateway.
type AsyncGatewayConfig struct {
	GatewayConfig
	// RequestTimeout is the deadline of one HTTP request (default 30 s): the guest
	// gets EventCancel and the client 504 (or a cut response). WebSockets have no
	// deadline; idle ones are pinged (WSConfig).
	RequestTimeout time.Duration
}

// outHighWater is how many response bytes the host takes from an async guest
// before resp_write answers ERR_WOULD_BLOCK: enough for typical responses in one
// piece, small enough that a slow client cannot make the host buffer much.
const outHighWater = 64 << 10

// bodyChunk and bodyHighWater size the request-body read-ahead for async guests.
const (
	bodyChunk     = 16 << 10
	bodyHighWater = 64 << 10
)

// AsyncGateway is the http.Handler in front of an async pool: each request or
// WebSocket becomes a connection on one instance, driven by events. Host calls made
// by the guest never block: they only move bytes between guest memory and the
// exchange's buffers; the request's own goroutine does the socket I/O.
type AsyncGateway struct {
	pool  ConnOpener
	cfg   AsyncGatewayConfig
	log   *slog.Logger
	ws    *websocket.Hub
	ids   atomic.Uint64
	retry string
	exs   sync.Pool
}

// NewAsyncGateway returns a handler serving requests from an async pool.
func NewAsyncGateway(pool ConnOpener, cfg AsyncGatewayConfig, log *slog.Logger) *AsyncGateway {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	log = gatewayLog(log).With("app", cfg.App)
	g := &AsyncGateway{pool: pool, cfg: cfg, log: log, retry: retryAfter(cfg.RetryAfter),
		ws: websocket.NewHub(cfg.WebSocket, log)}
	g.exs.New = func() any {
		return &asyncExchange{wake: make(chan struct{}, 1), hdr: http.Header{}, hd: new(requestHead)}
	}
	return g
}

// Close closes every WebSocket (1001) and stops the WebSocket machinery. Call it
// before closing the pool, so guests see their connections end.
func (g *AsyncGateway) Close() { g.ws.Close() }

// ServeHTTP implements http.Handler.
func (g *AsyncGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if bodyOverLimit(w, r, g.cfg.BodyLimit) {
		return
	}
	isWS := websocket.IsUpgrade(r)
	if isWS && !wsorigin.Check(w, r, g.cfg.WebSocket.Origins, g.log) {
		return
	}
	if r.ProtoMajor == 1 && r.ContentLength != 0 && !isWS {
		_ = http.NewResponseController(w).EnableFullDuplex() // see Gateway.ServeHTTP
		defer r.Body.Close()                                 // after the reader stopped (serve): golang/go#68560
	}
	rootPath := route.RootPath(r.Context()) // the route strips it (route.Mount)
	e := g.exs.Get().(*asyncExchange)
	e.begin(g, w, r, rootPath, isWS)
	if g.cfg.Traced {
		e.trace = tracing.Begin(r.Context(), g.cfg.App)
	}
	if _, err := g.pool.Open(e, isWS); err != nil {
		e.trace.End(err)
		e.release()
		e.release() // the pool never saw it: drop its reference too
		a := answerFor(err)
		logPoolError(g.log, a, err, r)
		a.write(w, err, g.retry, false)
		return
	}
	cut := e.serve()
	if e.trace != nil {
		e.mu.Lock()
		err := e.err
		e.mu.Unlock()
		e.trace.End(err)
	}
	e.release()
	if cut {
		panic(http.ErrAbortHandler)
	}
}

// asyncExchange is one connection of an async guest. The owner goroutine (guest
// host calls) and the request goroutine (socket I/O) share it under mu; the owner
// side never blocks and never touches the ResponseWriter. It is pooled once both
// sides are done with it (refs).
//
// Where the response stands is one value, phase (asyncstate.go): the guest's
// calls and the request goroutine move it only along the legal edges, so an
// ordering the guest drives (respond twice, write after END, accept after a
// response started, write after a denial) is refused, not raced. The request
// body's reader has its own small state, reqBody. The remaining flags are facts
// about the two sides (client gone, request goroutine gone, guest finished) and
// wishes for an event (EventBody, EventWritable), which combine freely.
type asyncExchange struct {
	g    *AsyncGateway
	w    http.ResponseWriter
	r    *http.Request
	hd   *requestHead // head encoding, as the sync gateway's
	head []byte
	conn *runtime.Conn
	wake chan struct{}
	// deadline is the request timer, kept with the pooled exchange (request
	// goroutine only).
	deadline *time.Timer
	refs     atomic.Int32
	isWS     bool

	// request goroutine only
	headSent      bool // the head went to the ResponseWriter
	faultAnswered bool // the failed response was answered (500) or cut

	mu    sync.Mutex
	phase respPhase
	// response, filled by the guest, sent by the request goroutine
	hdr    http.Header
	status int32 // the staged head's status; 0: resp_start never succeeded
	// refused, length, body and fault are the sync exchange's (exchange.go).
	refused      error
	length       int64
	body         int64
	fault        error
	warned       bool
	out          []byte
	spare        []byte
	flush        bool // the guest asked for a flush of out
	wantWritable bool // the guest waits for EventWritable
	clientGone   bool
	detached     bool // the request goroutine returned: w and r are off limits
	// request body, read ahead by a goroutine started on demand
	reqBody  bodyPhase
	in       []byte
	inOff    int
	inStatus int32 // why reqBody is bodyFailed
	wantBody bool  // the guest waits for EventBody
	bodyRead int64
	readerWG sync.WaitGroup
	// WebSocket
	ws        *websocket.Conn
	proto     string
	acceptHdr http.Header
	// end
	finished bool
	code     int32
	err      error
	// trace is the request's queue wait and guest call spans (traces on).
	trace *tracing.Call
}

// Acquired implements runtime.Acquirer (the instance's goroutine).
func (e *asyncExchange) Acquired(instance uint64) { e.trace.Acquired(instance) }

// RequestContext implements runtime.RequestContexter.
func (e *asyncExchange) RequestContext() context.Context { return e.trace.Context() }

func (e *asyncExchange) begin(g *AsyncGateway, w http.ResponseWriter, r *http.Request, rootPath string, isWS bool) {
	hdr, wake, out, spare, in, deadline := e.hdr, e.wake, e.out[:0], e.spare[:0], e.in[:0], e.deadline
	clear(hdr)
	select {
	case <-wake:
	default:
	}
	hd := e.hd
	*e = asyncExchange{g: g, w: w, r: r, hdr: hdr, wake: wake, out: out, spare: spare, in: in, isWS: isWS, hd: hd,
		deadline: deadline, length: -1}
	e.refs.Store(2)
	e.head = e.hd.encode(r, rootPath, g.ids.Add(1))
	if isWS {
		// A WebSocket exchange outlives its request: give it its own copy of the
		// head, so the request and the pooled encoder can go after the upgrade.
		e.head = append([]byte(nil), e.head...)
		e.head[1] = abi.KindWebSocket
		e.ws = g.ws.NewConn(e.notifyClosed)
	}
}

// release drops one reference; the last one returns the exchange to the pool.
func (e *asyncExchange) release() {
	if e.refs.Add(-1) != 0 {
		return
	}
	g := e.g
	if e.isWS {
		// The wsConn may still hold e.notify: never hand this exchange to
		// another connection.
		return
	}
	e.w, e.r, e.conn, e.ws, e.g, e.err = nil, nil, nil, nil, nil, nil
	e.trace = nil
	if cap(e.out) > outHighWater*2 {
		e.out = nil
	}
	if cap(e.spare) > outHighWater*2 {
		e.spare = nil
	}
	if cap(e.in) > bodyHighWater*2 {
		e.in = nil
	}
	g.exs.Put(e)
}

func (e *asyncExchange) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// notify posts an event for the guest without ever blocking the caller, which may
// be the owner goroutine itself (whose mailbox could be full).
func (e *asyncExchange) notify(kind int32, a, b int64) {
	c := e.conn
	if c == nil || c.TryPost(kind, a, b) {
		return
	}
	go c.Post(kind, a, b)
}

// notifyClosed is the WebSocket's notify: after WS_CLOSED the connection no
// longer counts toward the pool's caps, whether or not the guest ends it (it may
// still take the messages received before the close).
func (e *asyncExchange) notifyClosed(kind int32, a, b int64) {
	e.notify(kind, a, b)
	if kind == abi.EventWSClosed {
		e.abandon(0)
	}
}

// abandon tells the pool the host is done with the connection (runtime.Conn.Abandon).
func (e *asyncExchange) abandon(status int32) {
	if c := e.conn; c != nil {
		c.Abandon(status)
	}
}

// Bind implements runtime.AsyncExchange.
func (e *asyncExchange) Bind(c *runtime.Conn) { e.conn = c }

// Head implements runtime.Exchange.
func (e *asyncExchange) Head() []byte { return e.head }

// ReadBody implements runtime.Exchange without blocking.
func (e *asyncExchange) ReadBody(p []byte) (int, bool, int32) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.detached || e.phase == phaseUpgraded {
		return 0, false, abi.ErrClosed
	}
	if e.inStatus == abi.ErrTooLarge {
		return 0, false, abi.ErrTooLarge
	}
	if avail := len(e.in) - e.inOff; avail > 0 {
		n := copy(p, e.in[e.inOff:])
		e.inOff += n
		if e.inOff == len(e.in) {
			e.in, e.inOff = e.in[:0], 0
		}
		e.startReaderLocked()
		return n, e.reqBody == bodyEOF && e.inOff == 0 && len(e.in) == 0, abi.OK
	}
	if e.reqBody == bodyEOF || e.r.ContentLength == 0 || e.isWS {
		return 0, true, abi.OK
	}
	if e.inStatus != abi.OK {
		return 0, false, e.inStatus
	}
	if len(p) == 0 {
		return 0, false, abi.OK
	}
	e.wantBody = true
	e.startReaderLocked()
	return 0, false, abi.ErrWouldBlock
}

func (e *asyncExchange) startReaderLocked() {
	if e.reqBody != bodyIdle || e.detached || len(e.in) >= bodyHighWater {
		return
	}
	e.reqBody = bodyReading
	e.readerWG.Add(1)
	go e.readBody()
}

// readBody reads the request body ahead of the guest, up to bodyHighWater.
func (e *asyncExchange) readBody() {
	defer e.readerWG.Done()
	var chunk [bodyChunk]byte
	limit := e.g.cfg.BodyLimit
	for {
		n, err := e.r.Body.Read(chunk[:])
		e.mu.Lock()
		e.bodyRead += int64(n)
		eof := false
		switch {
		case limit > 0 && e.bodyRead > limit:
			e.inStatus = abi.ErrTooLarge
		case n > 0:
			e.in = append(e.in, chunk[:n]...)
		}
		if err != nil && e.inStatus == abi.OK {
			var mbe *http.MaxBytesError
			switch {
			case errors.Is(err, io.EOF):
				eof = true
			case errors.As(err, &mbe):
				e.inStatus = abi.ErrTooLarge
			case e.detached:
				e.inStatus = abi.ErrTimeout
			default:
				e.inStatus = abi.ErrClosed
			}
		}
		stop := true
		switch {
		case e.inStatus != abi.OK:
			e.reqBody = bodyFailed
		case eof:
			e.reqBody = bodyEOF
		case len(e.in)-e.inOff >= bodyHighWater || e.detached:
			e.reqBody = bodyIdle // the guest reads on, or nobody will
		default:
			stop = false
		}
		want := e.wantBody && (n > 0 || stop)
		if want {
			e.wantBody = false
		}
		e.mu.Unlock()
		if want {
			e.notify(abi.EventBody, int64(n), 0)
		}
		if stop {
			return
		}
	}
}

// Start implements runtime.Exchange: the head is staged in the exchange.
func (e *asyncExchange) Start(status int32, block []byte) int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.phase.can(phaseHead) {
		return abi.ErrState // the head is out, or a WebSocket was accepted or denied
	}
	if e.detached {
		return abi.ErrTimeout // past the deadline (SPEC §8.4), as Write answers
	}
	clear(e.hdr)
	n, err := int64(-1), checkStatus(status)
	if err == nil {
		n, err = guestHeaders(e.hdr, block, status)
	}
	if err != nil {
		clear(e.hdr)
		e.refused = err
		e.phase.must(phaseRefused)
		if !e.warned {
			e.warned = true
			e.g.log.Warn("resp_start refused", "err", err, "method", e.r.Method, "path", e.r.URL.Path)
		}
		return abi.ErrBadArgument
	}
	e.status, e.refused = status, nil
	e.phase.must(phaseHead)
	e.length = bodyLength(e.r.Method, status, n)
	return abi.OK
}

// Write implements runtime.Exchange: bytes are queued for the request goroutine,
// up to the high-water mark.
func (e *asyncExchange) Write(p []byte, flags int32) int32 {
	e.mu.Lock()
	end := flags&abi.WriteEnd != 0
	switch {
	case e.phase == phaseFailed:
		e.mu.Unlock()
		return abi.ErrClosed
	case !e.phase.can(phaseBody): // after END, a refused head, a WebSocket accept or denial
		e.mu.Unlock()
		return abi.ErrState
	case e.clientGone:
		e.mu.Unlock()
		return abi.ErrClosed
	case e.detached:
		e.mu.Unlock()
		return abi.ErrTimeout
	case len(e.out) >= outHighWater:
		e.wantWritable = true
		e.mu.Unlock()
		return abi.ErrWouldBlock
	}
	if err := checkLength(e.length, e.body, len(p), end); err != nil {
		// The request goroutine answers 500, or cuts what it already sent.
		e.fault = err
		e.phase.must(phaseFailed)
		e.out = e.out[:0]
		e.mu.Unlock()
		e.signal()
		return abi.ErrBadArgument
	}
	e.body += int64(len(p))
	if bodyAllowed(e.status) {
		e.out = append(e.out, p...) // a 204 or 304 has no body: the bytes go nowhere
	}
	if end {
		e.phase.must(phaseEnded)
	} else {
		e.phase.must(phaseBody)
		if flags&abi.WriteNoFlush == 0 {
			e.flush = true
		}
	}
	e.mu.Unlock()
	e.signal()
	return abi.OK
}

// Disconnected implements runtime.Exchange.
func (e *asyncExchange) Disconnected() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.clientGone || e.detached
}

// Abort implements runtime.Exchange. Async instances have no per-request call, so
// the pool never aborts a single exchange; deadlines are the gateway's.
func (e *asyncExchange) Abort() {}

// Finish implements runtime.AsyncExchange.
func (e *asyncExchange) Finish(code int32, err error) {
	e.mu.Lock()
	e.finished, e.code, e.err = true, code, err
	upgraded := e.phase == phaseUpgraded
	e.mu.Unlock()
	if upgraded {
		e.closeWS(code, err)
		e.release()
		return
	}
	e.signal()
	e.release()
}

func (e *asyncExchange) closeWS(code int32, err error) {
	if err != nil {
		e.ws.CloseWith(abi.CloseInternalError, "internal error", true)
	} else {
		e.ws.CloseWith(abi.CloseNormal, "", true)
	}
}

// WSAccept implements runtime.WebSocket: the request goroutine does the handshake.
func (e *asyncExchange) WSAccept(proto, hdrBlock []byte) int32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isWS || e.detached || !e.phase.can(phaseAccepting) {
		return abi.ErrState // accepted or denied already, or a response started
	}
	h := http.Header{}
	if _, err := guestHeaders(h, hdrBlock, http.StatusSwitchingProtocols); err != nil {
		return abi.ErrBadArgument
	}
	if len(proto) > 0 {
		if !validProto(proto) {
			return abi.ErrBadArgument
		}
		e.proto = string(proto)
	}
	e.acceptHdr = h
	e.phase.must(phaseAccepting)
	e.signal()
	return abi.OK
}

func validProto(p []byte) bool { return framing.IsToken(p) }

// WSRecv implements runtime.WebSocket.
func (e *asyncExchange) WSRecv(p []byte) (int32, int, int32) {
	if !e.isWS {
		return 0, 0, abi.ErrState
	}
	return e.ws.Recv(p, nil)
}

// WSSend implements runtime.WebSocket.
func (e *asyncExchange) WSSend(kind int32, p []byte) int32 {
	e.mu.Lock()
	ok := e.phase.accepted()
	e.mu.Unlock()
	if !ok {
		return abi.ErrState
	}
	return e.ws.Send(kind, p, nil)
}

// WSClose implements runtime.WebSocket; before accept it denies the upgrade (403).
func (e *asyncExchange) WSClose(code int32, reason []byte) int32 {
	e.mu.Lock()
	switch {
	case !e.isWS:
		e.mu.Unlock()
		return abi.ErrState
	case e.phase.accepted():
		e.mu.Unlock()
		return e.ws.GuestClose(code, reason)
	case e.detached:
		e.mu.Unlock()
		return abi.ErrState
	case !e.phase.can(phaseDenied):
		// Denied already, by an earlier ws_close or by a response the
		// guest started (SPEC §9.1): nothing more to do.
		e.mu.Unlock()
		return abi.OK
	}
	e.phase.must(phaseDenied)
	e.mu.Unlock()
	e.signal()
	return abi.OK
}

// WSCloseInfo implements runtime.WebSocket.
func (e *asyncExchange) WSCloseInfo() (int32, []byte) { return e.ws.CloseInfo() }

// serve is the request goroutine's part: it sends what the guest queued, reads
// ahead the body, performs the WebSocket handshake, and enforces the deadline. It
// reports whether the response must be cut.
func (e *asyncExchange) serve() (cut bool) {
	w, r := e.w, e.r
	// The deadline covers a WebSocket only until the guest accepts or denies it.
	// It is armed when this goroutine first has to wait: a guest that answered
	// within Open (the usual case on an idle instance) costs no timer.
	var deadline <-chan time.Time
	defer func() {
		if deadline != nil {
			e.deadline.Stop()
		}
	}()
	ctxDone := r.Context().Done()
	defer e.detach()
	for {
		woken := false
		if deadline == nil {
			select {
			case <-e.wake:
				woken = true
			default:
				if e.deadline == nil {
					e.deadline = time.NewTimer(e.g.cfg.RequestTimeout)
				} else {
					e.deadline.Reset(e.g.cfg.RequestTimeout) // stopped: no stale tick (Go ≥ 1.23 timers)
				}
				deadline = e.deadline.C
			}
		}
		if !woken {
			select {
			case <-e.wake:
			case <-ctxDone:
				// The client is gone (or half-closed: net/http cannot tell, so the
				// response is still sent). A guest that ignores this is bounded by
				// the request deadline, which abandons the connection (expire).
				ctxDone = nil
				e.mu.Lock()
				e.clientGone = true
				e.mu.Unlock()
				e.notify(abi.EventDisconnect, 0, 0)
			case <-deadline:
				return e.expire()
			}
		}
		e.mu.Lock()
		if e.phase == phaseAccepting {
			proto, hdr := e.proto, e.acceptHdr
			e.mu.Unlock()
			return e.upgrade(proto, hdr)
		}
		if e.phase == phaseDenied {
			e.mu.Unlock()
			http.Error(w, "403 forbidden", http.StatusForbidden)
			e.headSent = true
			e.mu.Lock()
			e.phase.must(phaseEnded)
			fin := e.finished
			e.mu.Unlock()
			if fin {
				return false
			}
			continue
		}
		if e.phase == phaseFailed && !e.faultAnswered {
			e.faultAnswered = true
			fault, fin := e.fault, e.finished
			e.out = e.out[:0]
			e.mu.Unlock()
			e.g.log.Error("response body does not match its Content-Length", "err", fault, "method", r.Method, "path", r.URL.Path)
			if e.headSent {
				return true
			}
			clear(w.Header())
			http.Error(w, "500 internal server error", http.StatusInternalServerError)
			e.headSent = true
			if fin {
				return false
			}
			continue
		}
		chunk := e.out
		e.out = e.spare[:0]
		e.spare = nil
		end, flush := e.phase == phaseEnded, e.flush
		e.flush = false
		first := !e.headSent && (len(chunk) > 0 || end || flush)
		e.mu.Unlock()

		if first {
			h := w.Header()
			for k, v := range e.hdr {
				h[k] = v
			}
			if end {
				setLength(h, e.statusOr200(), len(chunk))
			}
			w.WriteHeader(int(e.statusOr200()))
			e.headSent = true
		}
		var werr error
		if len(chunk) > 0 {
			_, werr = w.Write(chunk)
		}
		if werr == nil && flush && !end {
			werr = http.NewResponseController(w).Flush()
		}
		e.mu.Lock()
		e.spare = chunk[:0]
		if werr != nil {
			e.clientGone = true
		}
		wantW := e.wantWritable && (len(e.out) < outHighWater || e.clientGone)
		if wantW {
			e.wantWritable = false
		}
		// A fault the guest made while this goroutine was writing (a write past
		// the declared length) clears e.out: it must still be answered by the
		// loop, or finish would see only the bytes counted before it and
		// report the wrong fault ("less than" for "more than").
		more := len(e.out) > 0 || e.phase == phaseAccepting || e.phase == phaseDenied ||
			(e.phase == phaseFailed && !e.faultAnswered)
		finished := e.finished
		e.mu.Unlock()
		if wantW {
			e.notify(abi.EventWritable, 0, 0)
		}
		if more {
			e.signal()
			continue
		}
		if finished {
			return e.finish()
		}
	}
}

func (e *asyncExchange) statusOr200() int32 {
	if e.status == 0 {
		return http.StatusOK
	}
	return e.status
}

// detach marks the request goroutine gone and stops the body reader, so the
// owner side no longer touches w or r.
func (e *asyncExchange) detach() {
	e.mu.Lock()
	e.detached = true
	reading := e.reqBody == bodyReading && e.phase != phaseUpgraded
	e.mu.Unlock()
	if reading {
		rc := http.NewResponseController(e.w)
		_ = rc.SetReadDeadline(time.Now())
	}
	e.readerWG.Wait()
}

// expire handles the request deadline: the guest is told to cancel, the client
// gets 504 (or a cut response).
func (e *asyncExchange) expire() bool {
	e.mu.Lock()
	e.detached = true
	e.mu.Unlock()
	e.notify(abi.EventCancel, 0, 0)
	e.abandon(abi.ErrTimeout) // the guest need not end it for the caps to recover
	e.g.log.Error("request deadline exceeded", "method", e.r.Method, "path", e.r.URL.Path)
	if e.headSent {
		return true
	}
	clear(e.w.Header())
	http.Error(e.w, "504 gateway timeout: the app did not answer in time", http.StatusGatewayTimeout)
	return false
}

// finish completes the HTTP response once the guest ended the connection, with
// the rules of SPEC §5 (and §9 for WebSocket requests that were not accepted).
func (e *asyncExchange) finish() (cut bool) {
	w := e.w
	e.mu.Lock()
	code, err, phase := e.code, e.err, e.phase
	started := e.status != 0 // a head was staged
	e.mu.Unlock()
	if err != nil {
		var ge *runtime.GuestError
		if errors.Is(err, runtime.ErrDeadline) || errors.As(err, &ge) {
			// The instance failed (an event overran its deadline, a trap),
			// and the connection with it: not this request's own deadline.
			err = lostWithInstanceError{err}
		}
		a := answerFor(err)
		logPoolError(e.g.log, a, err, e.r)
		if e.headSent {
			return true
		}
		a.write(w, err, e.g.retry, false)
		return false
	}
	e.mu.Lock()
	refused, length, body := e.refused, e.length, e.body
	e.mu.Unlock()
	switch {
	case e.faultAnswered:
	case e.headSent:
		if !validCode(code) && phase != phaseEnded {
			return true
		}
		if phase != phaseEnded {
			// Ended without an END write: the body ends here.
			if err := checkLength(length, body, 0, true); err != nil {
				e.g.log.Error("response body does not match its Content-Length", "err", err, "method", e.r.Method, "path", e.r.URL.Path)
				return true
			}
		}
	case phase == phaseRefused:
		e.g.log.Error("app response refused: no valid head", "err", refused, "method", e.r.Method, "path", e.r.URL.Path)
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
	case e.isWS && !started && !finalCode(code):
		http.Error(w, "403 forbidden", http.StatusForbidden)
	case code == 0 || (finalCode(code) && started):
		if err := checkLength(length, body, 0, true); err != nil {
			e.g.log.Error("response body does not match its Content-Length", "err", err, "method", e.r.Method, "path", e.r.URL.Path)
			clear(w.Header())
			http.Error(w, "500 internal server error", http.StatusInternalServerError)
			return false
		}
		for k, v := range e.hdr {
			w.Header()[k] = v
		}
		setLength(w.Header(), e.statusOr200(), 0)
		w.WriteHeader(int(e.statusOr200()))
	case finalCode(code):
		w.WriteHeader(int(code))
	default:
		e.g.log.Error("app returned an error code", "code", code, "method", e.r.Method, "path", e.r.URL.Path)
		http.Error(w, "500 internal server error", http.StatusInternalServerError)
	}
	return false
}

// upgrade performs the accepted WebSocket handshake and hands the socket to the
// hub; the request goroutine then returns, so an idle WebSocket keeps none.
func (e *asyncExchange) upgrade(proto string, hdr http.Header) bool {
	remote := e.r.RemoteAddr
	err := e.ws.Upgrade(e.w, e.r, proto, hdr)
	e.mu.Lock()
	e.phase.must(phaseUpgraded)
	e.headSent = true
	fin, code, ferr := e.finished, e.code, e.err
	// An idle WebSocket should cost a few KB: drop the request, the response
	// writer (and through them net/http's connection state and buffers) and the
	// head encoder. Nothing on the guest's side reads them after the upgrade.
	e.w, e.r, e.hd, e.hdr, e.acceptHdr = nil, nil, nil, nil, nil
	e.out, e.spare, e.in = nil, nil, nil
	e.mu.Unlock()
	if err != nil {
		e.g.log.Info("websocket handshake failed", "err", err, "remote", remote)
		e.ws.Shutdown()
		return false
	}
	if fin {
		e.closeWS(code, ferr)
	}
	return false
}

var _ runtime.AsyncExchange = (*asyncExchange)(nil)
var _ runtime.WebSocket = (*asyncExchange)(nil)
