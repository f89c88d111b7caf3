package host

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
)

// exchange binds one HTTP request to a guest through the ABI (runtime.Exchange).
// Exchanges are pooled: a request allocates nothing here once the pool is warm.
type exchange struct {
	w  http.ResponseWriter
	r  *http.Request
	gw *Gateway

	enc      abi.HeadEncoder
	head     []byte
	keys     []string
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
	// hold is how much of the response may still be held (response
	// buffering, gateway.go): while the guest neither flushes nor writes
	// more, its bytes collect in held and go out after its instance is back
	// in the pool. 0: written through.
	hold      int
	held      []byte
	closed    bool
	written   int64
	aborted   atomic.Bool
	idScratch [16]byte
}

func (e *exchange) reset(gw *Gateway, w http.ResponseWriter, r *http.Request, rootPath string, id uint64) {
	held := e.held[:0]
	if cap(held) > maxKeptHold {
		held = nil // do not keep a large response's buffer in the pool
	}
	hold := 0
	if gw != nil {
		hold = gw.cfg.ResponseBuffer
	}
	*e = exchange{gw: gw, w: w, r: r, rootPath: rootPath, reqID: id,
		enc: e.enc, keys: e.keys[:0], head: nil, hold: hold, held: held}
}

// Head implements runtime.Exchange.
func (e *exchange) Head() []byte {
	if e.head == nil {
		e.head = e.encodeHead()
	}
	return e.head
}

func (e *exchange) encodeHead() []byte {
	r := e.r
	var flags uint32
	scheme := "http"
	if r.TLS != nil {
		flags |= abi.HeadFlagTLS
		scheme = "https"
	}
	e.enc.Reset(abi.KindHTTP, uint8(r.ProtoMajor), uint8(r.ProtoMinor), flags, r.ContentLength)
	path, query := splitRequestURI(r)
	if e.rootPath != "" {
		path = strings.TrimPrefix(path, e.rootPath)
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	}
	e.enc.Field(r.Method)
	e.enc.Field(scheme)
	e.enc.Field(path)
	e.enc.Field(query)
	e.enc.Field(e.rootPath)
	e.enc.Field(r.Host)
	e.enc.Field(r.RemoteAddr)
	e.enc.Field(localAddr(r.Context()))
	e.enc.FieldBytes(strconv.AppendUint(e.idScratch[:0], e.reqID, 36))
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
func (e *exchange) ReadBody(p []byte) (int, bool, int32) {
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
func (e *exchange) Start(status int32, block []byte) int32 {
	if e.headSent || e.committed || e.ended {
		return abi.ErrState
	}
	if status < 100 || status > 999 || status == http.StatusSwitchingProtocols {
		return abi.ErrBadArgument
	}
	h := e.w.Header()
	if e.started {
		clear(h) // a second resp_start replaces the held head (e.g. 200 -> 500)
	}
	if err := abi.WalkHeaderBlock(block, func(name, value []byte) error {
		return addHeader(h, name, value)
	}); err != nil {
		clear(h)
		return abi.ErrBadArgument
	}
	e.status, e.started = status, true
	return abi.OK
}

// Write implements runtime.Exchange.
func (e *exchange) Write(p []byte, flags int32) int32 {
	if e.ended {
		return abi.ErrState
	}
	if e.closed {
		return abi.ErrClosed
	}
	end := flags&abi.WriteEnd != 0
	flush := !end && flags&abi.WriteNoFlush == 0
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

func (e *exchange) writeThrough(p []byte) int32 {
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
func (e *exchange) sendHeld() {
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

func (e *exchange) sendHead() {
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
func (e *exchange) Disconnected() bool {
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
func (e *exchange) Abort() {
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
