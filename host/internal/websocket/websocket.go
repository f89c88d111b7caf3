// Package websocket is wasmsrv's WebSocket engine (RFC 6455, permessage-deflate
// of RFC 7692), for the guests of both shapes: a Hub per gateway owns what
// connections share (the readiness poller, read workers, the ping sweeper,
// buffer pools), and a Conn is one connection, upgraded on the request's
// goroutine and then held by the hub without a goroutine while idle.
//
// The gateways use it through a small surface: IsUpgrade to recognise an
// upgrade request, Hub.NewConn with the function that tells the guest side of
// an event, and the Conn methods the ABI's ws_* calls map onto (Upgrade,
// Recv, Send, GuestClose, CloseInfo), plus CloseWith and Shutdown for the
// host's own ends. A sync guest passes a block function to Recv and Send that
// waits for the next notification; an async guest passes nil and gets
// ERR_WOULD_BLOCK, then an event.
package websocket

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/internal/requestid"
)

// Config configures WebSockets (both shapes). Zero values take the defaults noted.
type Config struct {
	// MaxMessage caps one message after reassembly (and decompression); a bigger
	// one closes the connection with 1009 (default 1 MiB).
	MaxMessage int64
	// PingInterval: a connection silent for this long gets a ping (default 20 s).
	PingInterval time.Duration
	// PingTimeout: a connection that stays silent this long after the ping is
	// closed (1001 "ping timeout") (default 20 s).
	PingTimeout time.Duration
	// WriteTimeout closes a client that does not take our bytes for this long
	// (1013, see SendBuffer) (default 10 s).
	WriteTimeout time.Duration
	// FrameTimeout bounds reading one frame once its first byte arrived, so a
	// slow client cannot hold a reader (default 10 s).
	FrameTimeout time.Duration
	// CloseTimeout bounds the closing handshake (default 5 s).
	CloseTimeout time.Duration
	// Compression offers permessage-deflate (no context takeover) to clients.
	Compression bool
	// SendBuffer bounds the bytes held for one client (queued and being
	// written): a message that does not fit makes ws_send block (sync) or
	// return ERR_WOULD_BLOCK (async) until it does; a message bigger than the
	// buffer goes alone (default 256 KiB). A client that takes less than 32 KiB
	// of them within WriteTimeout is closed with 1013.
	SendBuffer int
	// Origins are the web origins, besides the app's own, whose pages may open
	// WebSockets (package wsorigin); the zero value allows same-origin only.
	Origins wsorigin.Policy
	// Observer, if set, hears connections open and close and messages pass
	// (metrics); it is called on the hub's goroutines and must not block.
	Observer Observer
}

// Observer hears a hub's connections: each one opened (handshake done) and
// closed once, and each whole message, in (from the client) or out.
type Observer interface {
	WebSocketOpened()
	WebSocketClosed()
	WebSocketMessage(in bool)
}

func (c *Config) defaults() {
	if c.MaxMessage <= 0 {
		c.MaxMessage = 1 << 20
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 20 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.FrameTimeout <= 0 {
		c.FrameTimeout = 10 * time.Second
	}
	if c.CloseTimeout <= 0 {
		c.CloseTimeout = 5 * time.Second
	}
	if c.SendBuffer <= 0 {
		c.SendBuffer = 256 << 10
	}
}

// inboxMax bounds the messages the host holds for a guest that does not read:
// beyond it the host stops reading from the client (TCP backpressure).
const inboxMax = 32

// IsUpgrade reports whether r asks for a WebSocket upgrade we can serve
// (HTTP/1.1 GET with Upgrade: websocket; HTTP/2 cannot be hijacked).
func IsUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.Method == http.MethodGet &&
		headerHasToken(r.Header, "Upgrade", "websocket") && headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h[name] {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// Hub owns what WebSockets share per gateway: the readiness poller, the idle
// sweeper, buffer pools. An idle connection holds no goroutine and no read buffer:
// the poller waits for its socket to become readable, then a short-lived goroutine
// borrows a pooled reader to take the frames (gobwas/ws's design for many idle
// connections).
type Hub struct {
	cfg Config
	log *slog.Logger

	readers sync.Pool // *bufio.Reader
	outBufs sync.Pool // *[]byte

	// readq hands a readable connection to an idle read worker (unbuffered:
	// only a worker waiting takes it); workers counts them.
	readq   chan wsRead
	workers atomic.Int32
	// peakHeld is the most the hub held for one client at once, by the send
	// buffer's accounting (what the slow-reader tests check; a metric once
	// the server has metrics).
	peakHeld atomic.Int64

	mu      sync.Mutex
	conns   map[*Conn]struct{}
	poll    *poller // nil when the platform has none: one reader goroutine per conn
	started bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func NewHub(cfg Config, log *slog.Logger) *Hub {
	cfg.defaults()
	h := &Hub{cfg: cfg, log: log, conns: make(map[*Conn]struct{}), stop: make(chan struct{}),
		readq: make(chan wsRead)}
	h.readers.New = func() any { return bufio.NewReaderSize(nil, 4096) }
	return h
}

// start launches the poller and the sweeper on first use, so gateways that never
// see a WebSocket cost nothing.
func (h *Hub) startLocked() {
	if h.started || h.closed {
		return
	}
	h.started = true
	p, err := newPoller()
	if err != nil {
		h.log.Warn("no readiness poller: one reader goroutine per WebSocket", "err", err)
	} else {
		h.poll = p
		h.wg.Add(1)
		go func() { defer h.wg.Done(); p.run(h) }()
	}
	h.wg.Add(1)
	go h.sweep()
}

// poller returns the hub's readiness poller for conn (nil: read with a goroutine),
// starting the hub's goroutines on first use.
func (h *Hub) pollerFor(conn net.Conn) *poller {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.startLocked()
	// TLS may hold decrypted bytes the socket no longer signals: poll plain TCP only.
	if plainTCP(conn) {
		return h.poll
	}
	return nil
}

// plainTCP reports whether conn is a TCP socket, possibly inside wrappers that
// pass its descriptor on (the per-IP connection cap); TLS does not unwrap.
func plainTCP(conn net.Conn) bool {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			return true
		case interface{ Unwrap() net.Conn }:
			conn = c.Unwrap()
		default:
			return false
		}
	}
}

// register adds an upgraded connection and starts reading it.
func (h *Hub) register(c *Conn, br *bufio.Reader) bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	h.conns[c] = struct{}{}
	h.mu.Unlock()
	if o := h.cfg.Observer; o != nil {
		o.WebSocketOpened()
	}
	c.last.Store(time.Now().UnixNano())
	// Bytes the client sent right behind the handshake are already in br: take them
	// first, then wait for readiness.
	if br != nil && br.Buffered() > 0 {
		h.read(c, br)
	} else {
		c.waitReadable()
	}
	return true
}

// maxReadWorkers bounds the goroutines kept to read WebSockets that became
// readable. A reader also runs the guest for the events it posts (the poster runs
// an idle instance), so it needs wazero's stack depth: a fresh goroutine per
// readiness grew its stack every time (a tenth of the CPU of an echo), a kept
// worker has it. Beyond the bound, readiness gets a goroutine of its own, so a
// slow guest never delays reading other connections.
const maxReadWorkers = 16

// wsRead is one readable connection for a read worker (br: bytes already read).
type wsRead struct {
	c  *Conn
	br *bufio.Reader
}

// read runs c.readLoop(br) on an idle read worker, a new one, or (all busy at the
// bound) a goroutine of its own. It never blocks.
func (h *Hub) read(c *Conn, br *bufio.Reader) {
	select {
	case h.readq <- wsRead{c, br}:
		return
	default:
	}
	if h.workers.Add(1) <= maxReadWorkers {
		go h.readWorker(c, br)
		return
	}
	h.workers.Add(-1)
	go c.readLoop(br)
}

func (h *Hub) readWorker(c *Conn, br *bufio.Reader) {
	defer h.workers.Add(-1)
	for {
		c.readLoop(br)
		select {
		case r := <-h.readq:
			c, br = r.c, r.br
		case <-h.stop:
			return
		}
	}
}

// notePeak records n bytes held for one client if that is a new peak.
func (h *Hub) notePeak(n int) {
	for {
		p := h.peakHeld.Load()
		if int64(n) <= p || h.peakHeld.CompareAndSwap(p, int64(n)) {
			return
		}
	}
}

func (h *Hub) unregister(c *Conn) {
	h.mu.Lock()
	_, was := h.conns[c]
	delete(h.conns, c)
	h.mu.Unlock()
	if o := h.cfg.Observer; o != nil && was {
		o.WebSocketClosed()
	}
}

// sweep pings idle connections and closes those that do not answer.
func (h *Hub) sweep() {
	defer h.wg.Done()
	period := max(min(h.cfg.PingInterval, h.cfg.PingTimeout)/4, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	var batch []*Conn
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		batch = batch[:0]
		h.mu.Lock()
		for c := range h.conns {
			batch = append(batch, c)
		}
		h.mu.Unlock()
		for _, c := range batch {
			idle := time.Duration(now - c.last.Load())
			switch {
			case c.pingSent.Load() && idle > h.cfg.PingInterval+h.cfg.PingTimeout:
				c.abandon(abi.CloseGoingAway, "ping timeout")
			case !c.pingSent.Load() && idle > h.cfg.PingInterval:
				c.pingSent.Store(true)
				c.mu.Lock()
				c.queueFrameLocked(ws.OpPing, 0, nil)
				c.mu.Unlock()
			}
		}
		clear(batch)
	}
}

// Close shuts every WebSocket with 1001 and stops the hub's goroutines.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	conns := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	poll := h.poll
	h.mu.Unlock()
	for _, c := range conns {
		// Not final: the guest still runs and must learn that its socket closes.
		c.CloseWith(abi.CloseGoingAway, "server shutting down", false)
	}
	close(h.stop)
	if poll != nil {
		poll.close()
	}
	h.wg.Wait()
}

// wsMsg is one whole message waiting for the guest.
type wsMsg struct {
	kind int32
	data []byte
}

// NewConn returns a connection of h, before its handshake (Upgrade). notify
// tells the guest side that something happened; kind is an abi event kind
// (EventWSMessage, EventWSClosed, EventWritable) with its two arguments. It may
// be called from any goroutine, and must not block.
func (h *Hub) NewConn(notify func(kind int32, a, b int64)) *Conn {
	return &Conn{hub: h, notify: notify}
}

// PeakHeld is the most the hub held for one client at once (queued and being
// written), by the send buffer's accounting.
func (h *Hub) PeakHeld() int64 { return h.peakHeld.Load() }

// Conns returns the hub's upgraded connections at this moment.
func (h *Hub) Conns() []*Conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	conns := make([]*Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	return conns
}

// ConnState is what a Conn reports of itself (Conn.State).
type ConnState struct {
	// Remote is the client's address ("" before the handshake).
	Remote string
	// Closed: no more messages will come; CloseCode says why (1006: dropped).
	Closed    bool
	CloseCode int32
	// GuestGone: the guest side ended the connection.
	GuestGone bool
}

// State reports where c stands.
func (c *Conn) State() ConnState {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ConnState{Closed: c.closed, CloseCode: c.closeCode, GuestGone: c.guestGone}
	if c.conn != nil {
		st.Remote = c.conn.RemoteAddr().String()
	}
	return st
}

// Conn is one WebSocket after (or while waiting for) the handshake. Reads happen
// on short-lived goroutines started by readiness; writes on a goroutine that exists
// only while bytes are queued. Both shapes use it: notify says how the guest learns
// that something happened (a channel signal for a blocked sync guest, an event for
// an async one).
type Conn struct {
	hub     *Hub
	conn    net.Conn
	poll    *poller
	fd      int
	deflate bool
	// notify tells the guest side that state changed; kind is an abi event kind.
	notify func(kind int32, a, b int64)

	mu           sync.Mutex
	inbox        []wsMsg
	inBytes      int64
	parked       *bufio.Reader // reader stopped because the inbox is full
	readerParked bool
	closed       bool // no more messages will come (peer close, error, or shutdown)
	closeCode    int32
	closeReason  string
	out          *[]byte // frames queued, not yet taken by the writer
	inflight     int     // bytes of the batch the writer is sending
	wantRoom     int     // with wantWritable: the size of the send refused
	writing      bool
	sentClose    bool
	closeAfter   bool // shut the TCP connection once out is flushed
	shut         bool
	wantWritable bool
	guestGone    bool // the guest finished this connection: no more notifications

	last     atomic.Int64 // unix ns of the last frame from the client
	pingSent atomic.Bool

	// reader-owned (one reader at a time)
	dec wsDecoder
}

// readLoop reads frames while bytes are buffered, then waits for readiness again.
func (c *Conn) readLoop(br *bufio.Reader) {
	for {
		if br == nil {
			br = c.hub.readers.Get().(*bufio.Reader)
			br.Reset(c.conn)
		}
		more := c.readFrames(br)
		c.mu.Lock()
		if c.shut || c.closed {
			c.mu.Unlock()
			c.release(br)
			return
		}
		if c.readBlockedLocked() {
			// The guest or the client is behind: stop reading until it catches
			// up (recv or the writer resumes).
			c.readerParked, c.parked = true, br
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if more || br.Buffered() > 0 {
			continue // (buffered: the reason to stop went away meanwhile)
		}
		c.release(br)
		br = nil
		if c.poll != nil {
			c.waitReadable()
			return
		}
		// No poller: this goroutine waits for the next frame itself.
	}
}

// readBlockedLocked reports whether the host should stop reading the client's
// frames: the guest has not taken what came in (32 messages, or MaxMessage
// bytes), or the client has not taken what goes out (the send buffer is full,
// and it would fill on with pongs). TCP then holds the client back.
func (c *Conn) readBlockedLocked() bool {
	cfg := &c.hub.cfg
	return len(c.inbox) >= inboxMax || c.inBytes > cfg.MaxMessage || c.heldLocked() >= cfg.SendBuffer
}

// resumeLocked returns the parked reader once both sides caught up halfway (nil:
// keep it parked); the caller hands it to c.hub.read outside the lock.
func (c *Conn) resumeLocked() *bufio.Reader {
	cfg := &c.hub.cfg
	if !c.readerParked || len(c.inbox) >= inboxMax/2 || c.inBytes > cfg.MaxMessage/2 || c.heldLocked() >= cfg.SendBuffer/2 {
		return nil
	}
	br := c.parked
	c.readerParked, c.parked = false, nil
	return br
}

func (c *Conn) release(br *bufio.Reader) {
	if br == nil || br.Buffered() > 0 {
		return // never pool a reader holding another connection's bytes
	}
	br.Reset(nil)
	c.hub.readers.Put(br)
}

// waitReadable re-arms readiness (one-shot), or starts a blocking reader when
// there is no poller.
func (c *Conn) waitReadable() {
	if c.poll == nil {
		go c.readLoop(nil)
		return
	}
	if err := c.poll.arm(c); err != nil {
		c.fail(abi.CloseAbnormal, "")
	}
}

// readFrames reads frames from br until it holds no more buffered bytes. It
// returns false when the caller should wait for readiness (or stop: check closed).
func (c *Conn) readFrames(br *bufio.Reader) bool {
	cfg := &c.hub.cfg
	for {
		if c.poll != nil {
			_ = c.conn.SetReadDeadline(time.Now().Add(cfg.FrameTimeout))
		} else if !c.dec.inMsg {
			_ = c.conn.SetReadDeadline(time.Time{})
		}
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if c.poll != nil && errors.As(err, &ne) && ne.Timeout() && !c.dec.inMsg {
				return false // spurious readiness: nothing arrived after all
			}
			c.fail(abi.CloseAbnormal, "")
			return false
		}
		if c.poll == nil {
			_ = c.conn.SetReadDeadline(time.Now().Add(cfg.FrameTimeout))
		}
		if !c.readFrame(br) {
			return false
		}
		c.mu.Lock()
		stop := c.closed || c.readBlockedLocked()
		c.mu.Unlock()
		if stop || br.Buffered() == 0 {
			return !stop && c.poll == nil
		}
	}
}

// readFrame reads and handles one frame. false means the connection is done.
func (c *Conn) readFrame(br *bufio.Reader) bool {
	c.last.Store(time.Now().UnixNano())
	c.pingSent.Store(false)
	var ctl [125]byte
	f := c.dec.next(br, c.hub.cfg.MaxMessage, c.deflate, &ctl)
	switch {
	case f.fail != 0:
		c.fail(f.fail, f.reason)
		return false
	case f.op == ws.OpContinuation:
		return true
	case f.op.IsControl():
		return c.control(f, ctl[:f.ctlLen])
	}
	kind := abi.MessageBinary
	if f.op == ws.OpText {
		kind = abi.MessageText
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.inbox = append(c.inbox, wsMsg{kind: kind, data: f.data})
	c.inBytes += int64(len(f.data))
	gone := c.guestGone
	c.mu.Unlock()
	if o := c.hub.cfg.Observer; o != nil {
		o.WebSocketMessage(true)
	}
	if !gone {
		c.notify(abi.EventWSMessage, int64(kind), int64(len(f.data)))
	}
	return true
}

// control handles ping, pong and close frames (p: the payload).
func (c *Conn) control(f wsFrame, p []byte) bool {
	switch f.op {
	case ws.OpPing:
		c.mu.Lock()
		c.queueFrameLocked(ws.OpPong, 0, p)
		c.mu.Unlock()
		return true
	case ws.OpPong:
		return true
	}
	// A close frame (the decoder passes no other control opcode).
	code, reason := f.code, f.reason
	c.mu.Lock()
	first := !c.closed
	if first {
		c.closed, c.closeCode, c.closeReason = true, code, reason
	}
	if !c.sentClose {
		// Echo the peer's code (RFC 6455 §5.5.1), then hang up once it is out.
		echo := code
		if echo == abi.CloseNoStatus {
			echo = abi.CloseNormal
		}
		c.queueCloseLocked(echo, "")
	}
	c.closeAfter = true
	c.kickLocked()
	c.unlockClosed(first, code)
	return false
}

// fail ends the connection because of a protocol error, an oversize message or a
// dropped socket. code is what the guest sees (1006 for a dropped socket); for
// anything but 1006 a close frame with code and reason goes to the client first.
func (c *Conn) fail(code int32, reason string) {
	c.mu.Lock()
	first := !c.closed
	if first {
		c.closed, c.closeCode, c.closeReason = true, code, reason
	}
	if code != abi.CloseAbnormal && !c.sentClose && !c.shut {
		c.queueCloseLocked(code, reason)
		c.closeAfter = true
		c.kickLocked()
		c.armCloseTimerLocked()
		c.unlockClosed(first, code)
		return
	}
	gone := c.guestGone
	c.mu.Unlock()
	c.Shutdown()
	if first && !gone {
		c.notify(abi.EventWSClosed, int64(code), 0)
	}
}

// unlockClosed releases c.mu and, if this was the first close and the guest
// is still there, tells it the connection is closed with code.
func (c *Conn) unlockClosed(first bool, code int32) {
	gone := c.guestGone
	c.mu.Unlock()
	if first && !gone {
		c.notify(abi.EventWSClosed, int64(code), 0)
	}
}

// abandon closes a connection whose client stopped answering: a close frame is
// attempted, the socket is dropped right after.
func (c *Conn) abandon(code int32, reason string) {
	c.mu.Lock()
	first := !c.closed
	if first {
		c.closed, c.closeCode, c.closeReason = true, abi.CloseAbnormal, reason
	}
	if !c.sentClose && !c.shut {
		c.queueCloseLocked(code, reason)
	}
	c.closeAfter = true
	c.kickLocked()
	c.armCloseTimerLocked()
	c.unlockClosed(first, abi.CloseAbnormal)
}

// CloseWith starts the closing handshake from our side (guest close, guest done,
// instance failure, shutdown). final: the guest is gone, do not notify it.
func (c *Conn) CloseWith(code int32, reason string, final bool) {
	c.mu.Lock()
	if final {
		c.guestGone = true
	}
	if c.shut {
		c.mu.Unlock()
		return
	}
	if !c.sentClose {
		c.queueCloseLocked(code, reason)
	}
	if c.closed {
		c.closeAfter = true // the peer already closed: hang up once ours is out
	}
	c.kickLocked()
	c.armCloseTimerLocked()
	c.mu.Unlock()
}

func (c *Conn) armCloseTimerLocked() {
	time.AfterFunc(c.hub.cfg.CloseTimeout, c.Shutdown)
}

// Shutdown drops the socket. Safe to call more than once.
func (c *Conn) Shutdown() { c.drop(false) }

// hangUp drops the socket once our close frame went out. It half-closes first
// and reads what the client still sends until it closes its side too (within
// CloseTimeout, at most lingerBytes): closing a socket with unread bytes makes
// the kernel answer with a reset, which destroys what it has not delivered
// yet, the close frame included (nginx's lingering_close, for the same
// reason).
func (c *Conn) hangUp() { c.drop(true) }

// lingerBytes bounds what hangUp reads and discards: more than the kernel
// buffers a flooding client can fill (tcp_rmem's maximum is 6–32 MiB).
const lingerBytes = 64 << 20

func (c *Conn) drop(linger bool) {
	c.mu.Lock()
	if c.shut {
		c.mu.Unlock()
		return
	}
	c.shut = true
	first := !c.closed
	if first {
		c.closed, c.closeCode = true, abi.CloseAbnormal
	}
	gone := c.guestGone
	parked := c.parked
	c.parked = nil
	wantW := c.wantWritable
	c.wantWritable = false
	c.mu.Unlock()
	if c.conn != nil {
		if c.poll != nil {
			c.poll.remove(c)
		}
		if linger && closeWrite(c.conn) == nil {
			_ = c.conn.SetReadDeadline(time.Now().Add(c.hub.cfg.CloseTimeout))
			_, _ = io.CopyN(io.Discard, c.conn, lingerBytes)
		}
		_ = c.conn.Close()
		c.hub.unregister(c)
	}
	c.release(parked)
	if !gone && (first || wantW) {
		c.notify(abi.EventWSClosed, abi.CloseAbnormal, 0)
	}
}

// closeWrite half-closes conn (a FIN, or TLS close_notify), through wrappers
// that pass the connection on.
func closeWrite(conn net.Conn) error {
	for {
		switch c := conn.(type) {
		case interface{ CloseWrite() error }:
			return c.CloseWrite()
		case interface{ Unwrap() net.Conn }:
			conn = c.Unwrap()
		default:
			return errors.ErrUnsupported
		}
	}
}

func (c *Conn) queueCloseLocked(code int32, reason string) {
	var buf [ws.MaxHeaderSize + 125]byte
	c.appendLocked(appendCloseFrame(buf[:0], code, reason))
	c.sentClose = true
}

// appendCloseFrame appends an unmasked close frame with code and reason, cut to
// the 123 bytes a control frame leaves it without splitting a character.
func appendCloseFrame(dst []byte, code int32, reason string) []byte {
	reason = truncUTF8(reason, 123)
	dst = append(appendFrameHeader(dst, ws.OpClose, 0, 2+len(reason)), byte(code>>8), byte(code))
	return append(dst, reason...)
}

// truncUTF8 cuts s to at most n bytes, at a character boundary.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// queueFrameLocked appends one unmasked frame to the send queue and makes sure a
// writer runs. rsv 0x4 marks a compressed message.
func (c *Conn) queueFrameLocked(op ws.OpCode, rsv byte, p []byte) {
	if c.shut || c.sentClose {
		return
	}
	var hb [ws.MaxHeaderSize]byte
	c.appendLocked(appendFrameHeader(hb[:0], op, rsv, len(p)), p)
}

// appendFrameHeader appends the header of a final, unmasked frame (the
// server's) with payload length n, in its shortest form.
func appendFrameHeader(dst []byte, op ws.OpCode, rsv byte, n int) []byte {
	dst = append(dst, 0x80|rsv<<4|byte(op))
	switch {
	case n < 126:
		return append(dst, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(dst, 126), uint16(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 127), uint64(n))
}

// appendLocked adds the bytes of one frame to the send queue, counts the most
// the hub has held for one client, and makes sure a writer runs.
func (c *Conn) appendLocked(frame ...[]byte) {
	if c.shut || c.sentClose {
		return
	}
	if c.out == nil {
		if b, ok := c.hub.outBufs.Get().(*[]byte); ok {
			c.out = b
		} else {
			b := make([]byte, 0, 512)
			c.out = &b
		}
	}
	for _, p := range frame {
		*c.out = append(*c.out, p...)
	}
	c.hub.notePeak(c.heldLocked())
	c.kickLocked()
}

func (c *Conn) kickLocked() {
	if c.writing || c.conn == nil || c.shut {
		return
	}
	if (c.out == nil || len(*c.out) == 0) && !c.closeAfter {
		return
	}
	c.writing = true
	go c.flush()
}

// heldLocked is what the host holds for the client: the frames queued and the
// batch being written (its memory goes only once the client took all of it).
func (c *Conn) heldLocked() int {
	n := c.inflight
	if c.out != nil {
		n += len(*c.out)
	}
	return n
}

// fitsLocked reports whether a message of need bytes (framed) may be queued:
// the send buffer bounds what is held for the client, and a message bigger
// than the buffer goes alone.
func (c *Conn) fitsLocked(need int) bool {
	held := c.heldLocked()
	return held == 0 || held+need <= c.hub.cfg.SendBuffer
}

// flush writes queued bytes until the queue is empty; it is the only writer of
// the socket, so frames from the guest, pongs and pings never interleave.
func (c *Conn) flush() {
	for {
		c.mu.Lock()
		c.inflight = 0
		if c.shut {
			c.writing = false
			c.mu.Unlock()
			return
		}
		writable := c.wantWritable && c.fitsLocked(c.wantRoom)
		if writable {
			c.wantWritable = false
		}
		writable = writable && !c.guestGone
		resume := c.resumeLocked()
		if c.out == nil || len(*c.out) == 0 {
			c.writing = false
			hangup := c.closeAfter && c.sentClose
			c.mu.Unlock()
			c.caughtUp(writable, resume)
			if hangup {
				c.hangUp()
			}
			return
		}
		buf := c.out
		c.out = nil
		c.inflight = len(*buf)
		c.mu.Unlock()
		c.caughtUp(writable, resume)
		if !c.write(*buf) {
			return
		}
		if cap(*buf) <= 64<<10 {
			*buf = (*buf)[:0]
			c.hub.outBufs.Put(buf)
		}
	}
}

// caughtUp tells the guest that a send it was refused fits now, and resumes a
// reader parked while the client was behind.
func (c *Conn) caughtUp(writable bool, resume *bufio.Reader) {
	if writable {
		c.notify(abi.EventWritable, 0, 0)
	}
	if resume != nil {
		c.hub.read(c, resume)
	}
}

// wsWriteChunk is how much of a batch goes to the socket per write: a client
// must take this much within WriteTimeout, or it is too far behind.
const wsWriteChunk = 32 << 10

// write sends one batch of frames a chunk at a time. false: the connection
// failed or is being closed (already handled).
func (c *Conn) write(p []byte) bool {
	for off := 0; off < len(p); {
		end := min(len(p), off+wsWriteChunk)
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		n, err := c.conn.Write(p[off:end])
		off += n
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.tooSlow(p, off)
			return false
		}
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
		c.fail(abi.CloseAbnormal, "")
		return false
	}
	return true
}

// tooSlow closes the connection of a client that stopped taking the host's
// bytes, with 1013 "try again later" (the code IANA registered for a server
// casting off clients it cannot serve now; 1008 is for a message that broke a
// policy, and this client sent none). The frames not yet started are dropped
// at once; the frame cut short is finished and the close frame follows, both
// within CloseTimeout; then the socket goes. p[:off] was written.
func (c *Conn) tooSlow(p []byte, off int) {
	end := frameEnd(p, off)
	c.mu.Lock()
	if c.out != nil {
		*c.out = (*c.out)[:0] // the guest's unsent messages: dropped
	}
	if c.sentClose || c.shut {
		// Closing already, and the close frame was queued behind what the
		// client does not take: nothing more to try.
		c.writing = false
		c.mu.Unlock()
		c.Shutdown()
		return
	}
	first := !c.closed
	if first {
		c.closed, c.closeCode, c.closeReason = true, abi.CloseTryAgainLater, "client too slow"
	}
	tail := make([]byte, 0, end-off+4+len(c.closeReason))
	tail = appendCloseFrame(append(tail, p[off:end]...), abi.CloseTryAgainLater, "client too slow")
	c.sentClose, c.closeAfter = true, true
	c.inflight = len(tail)
	gone := c.guestGone
	c.mu.Unlock()
	c.hub.log.Info("websocket client too slow: closing (1013)", "remote", c.conn.RemoteAddr().String())
	if first && !gone {
		c.notify(abi.EventWSClosed, abi.CloseTryAgainLater, 0)
	}
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.hub.cfg.CloseTimeout))
	_, err := c.conn.Write(tail)
	c.mu.Lock()
	c.writing, c.inflight = false, 0
	c.mu.Unlock()
	if err != nil {
		c.Shutdown() // it never caught up
		return
	}
	c.hangUp()
}

// frameEnd returns where the frame holding byte off of p ends (off itself when
// a frame starts there). p holds whole frames as the host wrote them: no mask.
func frameEnd(p []byte, off int) int {
	i := 0
	for i < off {
		n, h := int(p[i+1]&0x7f), 2
		switch n {
		case 126:
			n, h = int(binary.BigEndian.Uint16(p[i+2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(p[i+2:])), 10
		}
		i += h + n
	}
	return i
}

// Recv moves the next message into p (see runtime.WebSocket.WSRecv). block is
// nil in the async shape; in the sync shape it waits for the next notification.
func (c *Conn) Recv(p []byte, block func() bool) (int32, int, int32) {
	c.mu.Lock()
	for len(c.inbox) == 0 {
		if c.closed {
			c.mu.Unlock()
			return 0, 0, abi.ErrClosed
		}
		c.mu.Unlock()
		if block == nil {
			return 0, 0, abi.ErrWouldBlock
		}
		if !block() {
			return 0, 0, abi.ErrTimeout
		}
		c.mu.Lock()
	}
	m := c.inbox[0]
	if len(m.data) > len(p) {
		c.mu.Unlock()
		return m.kind, len(m.data), abi.OK
	}
	n := copy(p, m.data)
	c.inbox[0] = wsMsg{}
	c.inbox = c.inbox[1:]
	if len(c.inbox) == 0 {
		c.inbox = nil // an idle connection keeps no inbox array
	}
	c.inBytes -= int64(n)
	resume := c.resumeLocked()
	c.mu.Unlock()
	if resume != nil {
		c.hub.read(c, resume)
	}
	return m.kind, n, abi.OK
}

// Send queues a message (runtime.WebSocket.WSSend). A message is taken whole
// when it fits in the send buffer, or alone when it is bigger; otherwise the
// sync shape blocks (block waits for the next notification) and the async
// shape (block nil) gets ERR_WOULD_BLOCK, then WRITABLE once it fits. A message
// bigger than both the send buffer and MaxMessage can never be taken
// (ERR_TOO_LARGE); text must be UTF-8 (ERR_BAD_ARGUMENT), since a client fails
// the connection on anything else (RFC 6455 §8.1).
func (c *Conn) Send(kind int32, p []byte, block func() bool) int32 {
	cfg := &c.hub.cfg
	if int64(len(p)) > max(int64(cfg.SendBuffer), cfg.MaxMessage) {
		return abi.ErrTooLarge
	}
	if kind == abi.MessageText && !utf8.Valid(p) {
		return abi.ErrBadArgument
	}
	need := len(p) + ws.MaxHeaderSize
	c.mu.Lock()
	for !c.fitsLocked(need) && !c.shut && !c.sentClose {
		c.wantWritable, c.wantRoom = true, need
		c.mu.Unlock()
		if block == nil {
			return abi.ErrWouldBlock
		}
		if !block() {
			return abi.ErrTimeout
		}
		c.mu.Lock()
	}
	if c.shut || c.sentClose || (c.closed && c.conn != nil) {
		c.mu.Unlock()
		return abi.ErrClosed
	}
	op := ws.OpBinary
	if kind == abi.MessageText {
		op = ws.OpText
	}
	var rsv byte
	if c.deflate && len(p) > 0 && !c.shut {
		if z, ok := deflateMessage(p); ok {
			p, rsv = z, 0x4
		}
	}
	c.queueFrameLocked(op, rsv, p)
	c.mu.Unlock()
	if o := c.hub.cfg.Observer; o != nil {
		o.WebSocketMessage(false)
	}
	return abi.OK
}

// GuestClose starts the closing handshake for the guest (ws_close): code 0
// means 1000. A code that may not go on the wire (RFC 6455 §7.4) or a reason
// that is not UTF-8 is refused with ERR_BAD_ARGUMENT; a reason over 123 bytes
// is cut at a character boundary.
func (c *Conn) GuestClose(code int32, reason []byte) int32 {
	if code == 0 {
		code = abi.CloseNormal
	}
	if !sendableCloseCode(code) || !utf8.Valid(reason) {
		return abi.ErrBadArgument
	}
	c.CloseWith(code, string(reason), false)
	return abi.OK
}

// CloseInfo returns the close code and reason once closed.
func (c *Conn) CloseInfo() (int32, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		return 0, nil
	}
	return c.closeCode, []byte(c.closeReason)
}

// Upgrade completes the handshake on r/w with the subprotocol and headers the guest
// chose, then hands the socket to the hub. It runs on the request's goroutine.
func (c *Conn) Upgrade(w http.ResponseWriter, r *http.Request, proto string, hdr http.Header) error {
	if v := r.Header[requestid.Header]; len(v) == 1 && requestid.Valid(v[0]) {
		// The 101 carries the request id, as every response does (host.Observe
		// put it on the request; gobwas/ws writes the head itself).
		hdr = hdr.Clone()
		if hdr == nil {
			hdr = http.Header{}
		}
		requestid.Set(hdr, v[0])
	}
	u := ws.HTTPUpgrader{Header: hdr}
	if proto != "" {
		u.Protocol = func(s string) bool { return s == proto }
	}
	var ext wsflate.Extension
	if c.hub.cfg.Compression {
		ext = wsflate.Extension{Parameters: wsflate.DefaultParameters}
		u.Negotiate = func(o httphead.Option) (httphead.Option, error) { return ext.Negotiate(o) }
	}
	conn, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		return err
	}
	poll := c.hub.pollerFor(conn)
	c.mu.Lock()
	_, c.deflate = ext.Accepted()
	c.poll = poll
	c.conn = conn
	c.kickLocked() // messages the guest sent before the handshake finished
	c.mu.Unlock()
	var br *bufio.Reader
	if rw != nil {
		br = rw.Reader
	}
	if !c.hub.register(c, br) {
		c.CloseWith(abi.CloseGoingAway, "server shutting down", false)
		c.Shutdown()
	}
	return nil
}

// deflateMessage compresses p for permessage-deflate without context takeover.
func deflateMessage(p []byte) ([]byte, bool) {
	var out bytes.Buffer
	fw := wsflate.NewWriter(&out, func(w io.Writer) wsflate.Compressor {
		f, _ := flate.NewWriter(w, flate.BestSpeed)
		return f
	})
	if _, err := fw.Write(p); err != nil {
		return nil, false
	}
	if err := fw.Flush(); err != nil {
		return nil, false
	}
	if err := fw.Close(); err != nil {
		return nil, false
	}
	return out.Bytes(), true
}
