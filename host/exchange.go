package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/requestid"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
)

// syncExchange binds one HTTP request to a sync guest through the ABI
// (runtime.Exchange); asyncExchange is its async counterpart.
// Exchanges are pooled: a request allocates nothing here once the pool is warm.
type syncExchange struct {
	w  http.ResponseWriter
	r  *http.Request
	gw *Gateway

	hd       requestHead
	head     []byte
	rootPath string
	reqID    uint64

	bodyRead  int64
	bodyEOF   bool
	tooLarge  bool
	status    int32
	started   bool // resp_start called: a head is held
	committed bool // the guest wrote to the body: its head is final
	headSent  bool // the head went to the ResponseWriter
	ended     bool
	// refused is why the last resp_start was refused: until one succeeds
	// there is no head to send, writes are refused and the request ends in
	// a 500 (SPEC §4).
	refused error
	// length is the Content-Length the guest declared, which its body must
	// match (-1: none, or a response without a body); body counts the body
	// bytes the guest wrote; fault is why the response failed its framing:
	// 500 if nothing was sent yet, a cut response otherwise.
	length int64
	body   int64
	fault  error
	warned bool // a refused resp_start was logged for this request
	// hold is how much of the response may still be held (response
	// buffering, gateway.go): while the guest neither flushes nor writes
	// more, its bytes collect in held and go out after its instance is back
	// in the pool. 0: written through.
	hold    int
	held    []byte
	closed  bool
	written int64
	aborted atomic.Bool
	// trace is the request's queue wait and guest call spans (traces on).
	trace *tracing.Call
}

// Acquired implements runtime.Acquirer.
func (e *syncExchange) Acquired(instance uint64) { e.trace.Acquired(instance) }

// RequestContext implements runtime.RequestContexter.
func (e *syncExchange) RequestContext() context.Context { return e.trace.Context() }

func (e *syncExchange) reset(gw *Gateway, w http.ResponseWriter, r *http.Request, rootPath string, id uint64) {
	held := e.held[:0]
	if cap(held) > maxKeptHold {
		held = nil // do not keep a large response's buffer in the pool
	}
	hold := 0
	if gw != nil {
		hold = gw.cfg.ResponseBuffer
	}
	*e = syncExchange{gw: gw, w: w, r: r, rootPath: rootPath, reqID: id,
		hd: e.hd, head: nil, hold: hold, held: held, length: -1}
}

// Head implements runtime.Exchange.
func (e *syncExchange) Head() []byte {
	if e.head == nil {
		e.head = e.hd.encode(e.r, e.rootPath, e.reqID)
	}
	return e.head
}

// requestHead encodes request heads (SPEC §2): the sync and async gateways'
// exchanges each keep one, so that a request allocates nothing for its head
// once warm.
type requestHead struct {
	enc       abi.HeadEncoder
	keys      []string
	idScratch [16]byte
}

// encode returns r's head as the guest sees it: the path without rootPath,
// the request id of its X-Request-ID header (which the server sets), else id. The bytes are valid until the next encode.
func (e *requestHead) encode(r *http.Request, rootPath string, id uint64) []byte {
	var flags uint32
	scheme := "http"
	if r.TLS != nil {
		flags |= abi.HeadFlagTLS
		scheme = "https"
	}
	e.enc.Reset(abi.KindHTTP, uint8(r.ProtoMajor), uint8(r.ProtoMinor), flags, r.ContentLength)
	path, query := splitRequestURI(r)
	if rootPath != "" {
		path = strings.TrimPrefix(path, rootPath)
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	}
	e.enc.Field(r.Method)
	e.enc.Field(scheme)
	e.enc.Field(path)
	e.enc.Field(query)
	e.enc.Field(rootPath)
	e.enc.Field(r.Host)
	e.enc.Field(r.RemoteAddr)
	e.enc.Field(localAddr(r.Context()))
	if v := r.Header[requestid.Header]; len(v) == 1 {
		// Observe (the server) put the request's id there.
		e.enc.Field(v[0])
	} else {
		e.enc.FieldBytes(strconv.AppendUint(e.idScratch[:0], id, 36))
	}
	// Headers sorted by name so the encoding is deterministic (SPEC §2.1); net/http
	// keeps per-name order and duplicates, which is what HTTP semantics need.
	e.keys = e.keys[:0]
	for k := range r.Header {
		e.keys = append(e.keys, k)
	}
	slices.Sort(e.keys)
	hostSeen := false
	for _, k := range e.keys {
		if !hostSeen && k > "Host" {
			e.enc.Header("host", r.Host)
			hostSeen = true
		}
		for _, v := range r.Header[k] {
			e.enc.Header(k, v)
		}
	}
	if !hostSeen {
		e.enc.Header("host", r.Host)
	}
	return e.enc.Bytes()
}

// splitRequestURI returns the raw path and query as the client sent them.
func splitRequestURI(r *http.Request) (string, string) {
	uri := r.RequestURI
	if uri == "" || uri[0] != '/' {
		// absolute-form, "*" or a request made in-process: fall back to the URL.
		return r.URL.EscapedPath(), r.URL.RawQuery
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i+1:]
	}
	return uri, ""
}

// ReadBody implements runtime.Exchange.
func (e *syncExchange) ReadBody(p []byte) (int, bool, int32) {
	if e.bodyEOF {
		return 0, true, abi.OK
	}
	if e.tooLarge {
		return 0, false, abi.ErrTooLarge
	}
	if len(p) == 0 {
		return 0, false, abi.OK
	}
	if limit := e.gw.cfg.BodyLimit; limit > 0 && int64(len(p)) > limit-e.bodyRead+1 {
		// Read at most one byte past the limit: enough to tell "over" from "at".
		p = p[:limit-e.bodyRead+1]
	}
	n, err := e.r.Body.Read(p)
	e.bodyRead += int64(n)
	if limit := e.gw.cfg.BodyLimit; limit > 0 && e.bodyRead > limit {
		e.tooLarge = true
		return 0, false, abi.ErrTooLarge
	}
	switch {
	case err == nil:
		return n, false, abi.OK
	case errors.Is(err, io.EOF):
		e.bodyEOF = true
		return n, true, abi.OK
	case e.aborted.Load():
		return 0, false, abi.ErrTimeout
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			e.tooLarge = true
			return 0, false, abi.ErrTooLarge
		}
		return 0, false, abi.ErrClosed
	}
}

// maxKeptHold bounds the held-response buffer a pooled exchange keeps.
const maxKeptHold = 64 << 10

// Start implements runtime.Exchange.
func (e *syncExchange) Start(status int32, block []byte) int32 {
	if e.headSent || e.committed || e.ended {
		return abi.ErrState
	}
	h := e.w.Header()
	if e.started || e.refused != nil {
		clear(h) // a second resp_start replaces the held head (e.g. 200 -> 500)
	}
	n, err := int64(-1), checkStatus(status)
	if err == nil {
		n, err = guestHeaders(h, block, status)
	}
	if err != nil {
		clear(h)
		e.refuse(err)
		return abi.ErrBadArgument
	}
	e.status, e.started, e.refused = status, true, nil
	e.length = bodyLength(e.r.Method, status, n)
	return abi.OK
}

// refuse records why a resp_start was refused, and logs the first refusal
// of the request.
func (e *syncExchange) refuse(err error) {
	e.refused = err
	if !e.warned {
		e.warned = true
		e.gw.log.Warn("resp_start refused", "err", err, "method", e.r.Method, "path", e.r.URL.Path)
	}
}

// checkStatus refuses what resp_start may not set (SPEC §4): interim (1xx)
// codes, 101 included (only ws_accept switches protocols), and codes outside
// three digits.
func checkStatus(status int32) error {
	if status < 200 || status > 999 {
		return fmt.Errorf("status %d is not a final response status (200-999)", status)
	}
	return nil
}

// bodyLength is the length a declared Content-Length holds a body to: none
// for a HEAD request or a status without a body, where the field describes
// the representation, not this message.
func bodyLength(method string, status int32, declared int64) int64 {
	if method == http.MethodHead || !bodyAllowed(status) {
		return -1
	}
	return declared
}

// checkLength holds the guest's body to its declared length: it reports the
// fault of writing n more bytes (end: the last ones) after body bytes.
func checkLength(length, body int64, n int, end bool) error {
	switch {
	case length < 0:
		return nil
	case body+int64(n) > length:
		return fmt.Errorf("app wrote more than its Content-Length (%d)", length)
	case end && body+int64(n) < length:
		return fmt.Errorf("app wrote less than its Content-Length (%d): %d bytes", length, body+int64(n))
	}
	return nil
}

// fail marks the response as broken by the guest: nothing more of it is
// sent, and finish answers 500 or cuts it.
func (e *syncExchange) fail(err error) {
	if e.fault == nil {
		e.fault = err
	}
	e.closed = true
	e.held = e.held[:0]
	e.hold = 0
}

// Write implements runtime.Exchange.
func (e *syncExchange) Write(p []byte, flags int32) int32 {
	if e.ended || e.refused != nil {
		return abi.ErrState
	}
	if e.closed {
		return abi.ErrClosed
	}
	end := flags&abi.WriteEnd != 0
	flush := !end && flags&abi.WriteNoFlush == 0
	if err := checkLength(e.length, e.body, len(p), end); err != nil {
		e.fail(err)
		return abi.ErrBadArgument
	}
	e.body += int64(len(p))
	if !bodyAllowed(e.status) {
		p = nil // a 204 or 304 has no body (RFC 9110 §6.4.1): the bytes go nowhere
	}
	if !e.committed {
		e.committed = true
		// nginx's X-Accel-Buffering: an app turns holding off for one
		// response (a long poll, a stream without explicit flushes).
		h := e.w.Header()
		if v, ok := h["X-Accel-Buffering"]; ok {
			if len(v) == 1 && strings.EqualFold(v[0], "no") {
				e.hold = 0
			}
			delete(h, "X-Accel-Buffering")
		}
	}
	if e.hold > 0 {
		if !flush && len(e.held)+len(p) <= e.hold {
			e.held = append(e.held, p...)
			e.ended = end
			return abi.OK
		}
		// Streaming, or more than may be held: what was held goes out
		// first, and from here on everything is written through.
		e.hold = 0
		if len(e.held) > 0 {
			e.sendHead()
			if rc := e.writeThrough(e.held); rc != abi.OK {
				return rc
			}
			e.held = e.held[:0]
		}
	}
	if !e.headSent {
		if end {
			setLength(e.w.Header(), e.status, len(p))
		}
		e.sendHead()
	}
	if len(p) > 0 {
		if rc := e.writeThrough(p); rc != abi.OK {
			return rc
		}
	}
	if end {
		e.ended = true
		return abi.OK
	}
	if flush {
		if err := http.NewResponseController(e.w).Flush(); err != nil {
			e.closed = true
			return abi.ErrClosed
		}
	}
	return abi.OK
}

func (e *syncExchange) writeThrough(p []byte) int32 {
	n, err := e.w.Write(p)
	e.written += int64(n)
	if err != nil {
		e.closed = true
		return abi.ErrClosed
	}
	return abi.OK
}

// heldSlow is the size from which sending a held response gets a write
// deadline: smaller ones fit in the socket's buffer and cannot block.
const heldSlow = 16 << 10

// sendTimeout bounds sending a held response to a client that does not read
// (nginx's send_timeout).
const sendTimeout = 60 * time.Second

// sendHeld writes the response the guest wrote while it was held. Its
// instance is back in the pool by now, so a slow client delays only this
// goroutine. The body is complete: it gets a Content-Length.
func (e *syncExchange) sendHeld() {
	if e.headSent || !e.committed {
		return
	}
	setLength(e.w.Header(), e.status, len(e.held))
	e.sendHead()
	if len(e.held) == 0 {
		return
	}
	if len(e.held) >= heldSlow {
		rc := http.NewResponseController(e.w)
		_ = rc.SetWriteDeadline(time.Now().Add(sendTimeout))
		defer rc.SetWriteDeadline(time.Time{})
	}
	e.writeThrough(e.held)
	e.held = e.held[:0]
}

func (e *syncExchange) sendHead() {
	if e.status == 0 {
		e.status = http.StatusOK
	}
	e.w.WriteHeader(int(e.status))
	e.headSent = true
}

// setLength gives a response whose whole body is n bytes its Content-Length,
// unless the app set one or the status has no body.
func setLength(h http.Header, status int32, n int) {
	if !bodyAllowed(status) {
		return
	}
	if _, ok := h["Content-Length"]; !ok {
		h["Content-Length"] = []string{strconv.Itoa(n)}
	}
}

func bodyAllowed(status int32) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified && (status >= 200 || status == 0)
}

// Disconnected implements runtime.Exchange.
func (e *syncExchange) Disconnected() bool {
	if e.closed || e.aborted.Load() {
		return true
	}
	select {
	case <-e.r.Context().Done():
		return true
	default:
		return false
	}
}

// Abort implements runtime.Exchange: the deadline fired, unblock pending I/O now.
func (e *syncExchange) Abort() {
	e.aborted.Store(true)
	rc := http.NewResponseController(e.w)
	now := time.Now()
	_ = rc.SetReadDeadline(now)
	_ = rc.SetWriteDeadline(now)
}

type localAddrKey struct{}

// localAddr returns the server address of the request's connection, computed once
// per connection by Server.
func localAddr(ctx context.Context) string {
	s, _ := ctx.Value(localAddrKey{}).(string)
	return s
}
