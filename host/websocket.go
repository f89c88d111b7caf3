package host

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"

	"github.com/wasmsrv/wasmsrv/abi"
)

// WSConfig configures WebSockets (both shapes). Zero values take the defaults noted.
type WSConfig struct {
	// MaxMessage caps one message after reassembly (and decompression); a bigger
	// one closes the connection with 1009 (default 1 MiB).
	MaxMessage int64
	// PingInterval: a connection silent for this long gets a ping (default 20 s).
	PingInterval time.Duration
	// PingTimeout: a connection that stays silent this long after the ping is
	// closed (1001 "ping timeout") (default 20 s).
	PingTimeout time.Duration
	// WriteTimeout drops a client that does not take our bytes for this long
	// (default 10 s).
	WriteTimeout time.Duration
	// FrameTimeout bounds reading one frame once its first byte arrived, so a
	// slow client cannot hold a reader (default 10 s).
	FrameTimeout time.Duration
	// CloseTimeout bounds the closing handshake (default 5 s).
	CloseTimeout time.Duration
	// Compression offers permessage-deflate (no context takeover) to clients.
	Compression bool
	// SendBuffer is the high-water mark of bytes queued for one client: above it,
	// ws_send blocks (sync) or returns ERR_WOULD_BLOCK (async) (default 256 KiB).
	SendBuffer int
}

func (c *WSConfig) defaults() {
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

// isWebSocketRequest reports whether r asks for a WebSocket upgrade we can serve
// (HTTP/1.1 GET with Upgrade: websocket; HTTP/2 cannot be hijacked).
func isWebSocketRequest(r *http.Request) bool {
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

// wsHub owns what WebSockets share per gateway: the readiness poller, the idle
// sweeper, buffer pools. An idle connection holds no goroutine and no read buffer:
// the poller waits for its socket to become readable, then a short-lived goroutine
// borrows a pooled reader to take the frames (gobwas/ws's design for many idle
// connections).
type wsHub struct {
	cfg WSConfig
	log *slog.Logger

	readers sync.Pool // *bufio.Reader
	outBufs sync.Pool // *[]byte

	// readq hands a readable connection to an idle read worker (unbuffered:
	// only a worker waiting takes it); workers counts them.
	readq   chan wsRead
	workers atomic.Int32

	mu      sync.Mutex
	conns   map[*wsConn]struct{}
	poll    *poller // nil when the platform has none: one reader goroutine per conn
	started bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newWSHub(cfg WSConfig, log *slog.Logger) *wsHub {
	cfg.defaults()
	h := &wsHub{cfg: cfg, log: log, conns: make(map[*wsConn]struct{}), stop: make(chan struct{}),
		readq: make(chan wsRead)}
	h.readers.New = func() any { return bufio.NewReaderSize(nil, 4096) }
	return h
}

// start launches the poller and the sweeper on first use, so gateways that never
// see a WebSocket cost nothing.
func (h *wsHub) startLocked() {
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
func (h *wsHub) pollerFor(conn net.Conn) *poller {
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
func (h *wsHub) register(c *wsConn, br *bufio.Reader) bool {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return false
	}
	h.conns[c] = struct{}{}
	h.mu.Unlock()
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
	c  *wsConn
	br *bufio.Reader
}

// read runs c.readLoop(br) on an idle read worker, a new one, or (all busy at the
// bound) a goroutine of its own. It never blocks.
func (h *wsHub) read(c *wsConn, br *bufio.Reader) {
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

func (h *wsHub) readWorker(c *wsConn, br *bufio.Reader) {
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

func (h *wsHub) unregister(c *wsConn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// sweep pings idle connections and closes those that do not answer.
func (h *wsHub) sweep() {
	defer h.wg.Done()
	period := max(min(h.cfg.PingInterval, h.cfg.PingTimeout)/4, 10*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	var batch []*wsConn
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
				c.queueFrameLocked(ws.OpPing, nil, false)
				c.mu.Unlock()
			}
		}
		clear(batch)
	}
}

// close shuts every WebSocket with 1001 and stops the hub's goroutines.
func (h *wsHub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	conns := make([]*wsConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	poll := h.poll
	h.mu.Unlock()
	for _, c := range conns {
		// Not final: the guest still runs and must learn that its socket closes.
		c.closeWith(abi.CloseGoingAway, "server shutting down", false)
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

// wsConn is one WebSocket after (or while waiting for) the handshake. Reads happen
// on short-lived goroutines started by readiness; writes on a goroutine that exists
// only while bytes are queued. Both shapes use it: notify says how the guest learns
// that something happened (a channel signal for a blocked sync guest, an event for
// an async one).
type wsConn struct {
	hub     *wsHub
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
	out          *[]byte
	writing      bool
	sentClose    bool
	closeAfter   bool // shut the TCP connection once out is flushed
	shut         bool
	wantWritable bool
	guestGone    bool // the guest finished this connection: no more notifications

	last     atomic.Int64 // unix ns of the last frame from the client
	pingSent atomic.Bool

	// reader-owned (one reader at a time)
	frag     []byte
	fragOp   ws.OpCode
	fragComp bool
	inMsg    bool
	hdrBuf   [ws.MaxHeaderSize - 2]byte
}

// readLoop reads frames while bytes are buffered, then waits for readiness again.
func (c *wsConn) readLoop(br *bufio.Reader) {
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
		if len(c.inbox) >= inboxMax || c.inBytes > c.hub.cfg.MaxMessage {
			// The guest is behind: stop reading until it catches up (WSRecv resumes).
			c.readerParked, c.parked = true, br
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if more {
			continue
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

func (c *wsConn) release(br *bufio.Reader) {
	if br == nil || br.Buffered() > 0 {
		return // never pool a reader holding another connection's bytes
	}
	br.Reset(nil)
	c.hub.readers.Put(br)
}

// waitReadable re-arms readiness (one-shot), or starts a blocking reader when
// there is no poller.
func (c *wsConn) waitReadable() {
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
func (c *wsConn) readFrames(br *bufio.Reader) bool {
	cfg := &c.hub.cfg
	for {
		if c.poll != nil {
			_ = c.conn.SetReadDeadline(time.Now().Add(cfg.FrameTimeout))
		} else if !c.inMsg {
			_ = c.conn.SetReadDeadline(time.Time{})
		}
		if _, err := br.Peek(1); err != nil {
			var ne net.Error
			if c.poll != nil && errors.As(err, &ne) && ne.Timeout() && !c.inMsg {
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
		stop := c.closed || len(c.inbox) >= inboxMax || c.inBytes > cfg.MaxMessage
		c.mu.Unlock()
		if stop || br.Buffered() == 0 {
			return !stop && c.poll == nil
		}
	}
}

// readFrame reads and handles one frame. false means the connection is done.
func (c *wsConn) readFrame(br *bufio.Reader) bool {
	cfg := &c.hub.cfg
	h, err := ws.ReadHeaderBuffer(br, c.hdrBuf[:2])
	if err != nil {
		c.fail(abi.CloseProtocolError, "bad frame header")
		return false
	}
	c.last.Store(time.Now().UnixNano())
	c.pingSent.Store(false)
	if !h.Masked {
		c.fail(abi.CloseProtocolError, "client frames must be masked")
		return false
	}
	if h.OpCode.IsControl() {
		if h.Length > 125 || !h.Fin || h.Rsv != 0 {
			c.fail(abi.CloseProtocolError, "bad control frame")
			return false
		}
		var buf [125]byte
		p := buf[:h.Length]
		if _, err := io.ReadFull(br, p); err != nil {
			c.fail(abi.CloseAbnormal, "")
			return false
		}
		ws.Cipher(p, h.Mask, 0)
		return c.control(h.OpCode, p)
	}
	switch h.OpCode {
	case ws.OpContinuation:
		if !c.inMsg || h.Rsv != 0 {
			c.fail(abi.CloseProtocolError, "unexpected continuation frame")
			return false
		}
	case ws.OpText, ws.OpBinary:
		if c.inMsg {
			c.fail(abi.CloseProtocolError, "new message inside a fragmented one")
			return false
		}
		comp := h.Rsv == 0x4 && c.deflate
		if h.Rsv != 0 && !comp {
			c.fail(abi.CloseProtocolError, "reserved bits set")
			return false
		}
		c.inMsg, c.fragOp, c.fragComp, c.frag = true, h.OpCode, comp, c.frag[:0]
	default:
		c.fail(abi.CloseProtocolError, "unknown opcode")
		return false
	}
	if int64(len(c.frag))+h.Length > cfg.MaxMessage {
		c.fail(abi.CloseTooBig, "message too big")
		return false
	}
	n := int(h.Length)
	start := len(c.frag)
	c.frag = growLen(c.frag, start+n)
	if _, err := io.ReadFull(br, c.frag[start:]); err != nil {
		c.fail(abi.CloseAbnormal, "")
		return false
	}
	ws.Cipher(c.frag[start:], h.Mask, 0)
	if !h.Fin {
		return true
	}
	msg := c.frag
	c.frag, c.inMsg = nil, false
	if c.fragComp {
		var ok bool
		if msg, ok = c.inflate(msg); !ok {
			return false
		}
	}
	kind := abi.MessageBinary
	if c.fragOp == ws.OpText {
		kind = abi.MessageText
		if !utf8.Valid(msg) {
			c.fail(abi.CloseInvalidData, "invalid UTF-8 in text message")
			return false
		}
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.inbox = append(c.inbox, wsMsg{kind: kind, data: msg})
	c.inBytes += int64(len(msg))
	gone := c.guestGone
	c.mu.Unlock()
	if !gone {
		c.notify(abi.EventWSMessage, int64(kind), int64(len(msg)))
	}
	return true
}

func growLen(b []byte, n int) []byte {
	if n <= cap(b) {
		return b[:n]
	}
	nb := make([]byte, n, max(n, 2*cap(b)))
	copy(nb, b)
	return nb
}

// inflate decompresses a permessage-deflate message, bounded by MaxMessage.
func (c *wsConn) inflate(p []byte) ([]byte, bool) {
	fr := wsflate.NewReader(bytes.NewReader(p), func(r io.Reader) wsflate.Decompressor { return flate.NewReader(r) })
	var out bytes.Buffer
	n, err := io.Copy(&out, io.LimitReader(fr, c.hub.cfg.MaxMessage+1))
	_ = fr.Close()
	if n > c.hub.cfg.MaxMessage {
		c.fail(abi.CloseTooBig, "message too big")
		return nil, false
	}
	if err != nil {
		c.fail(abi.CloseInvalidData, "bad compressed data")
		return nil, false
	}
	return out.Bytes(), true
}

// control handles ping, pong and close frames.
func (c *wsConn) control(op ws.OpCode, p []byte) bool {
	switch op {
	case ws.OpPing:
		c.mu.Lock()
		c.queueFrameLocked(ws.OpPong, p, false)
		c.mu.Unlock()
		return true
	case ws.OpPong:
		return true
	case ws.OpClose:
		code, reason := int32(abi.CloseNoStatus), ""
		if len(p) == 1 {
			c.fail(abi.CloseProtocolError, "bad close frame")
			return false
		}
		if len(p) >= 2 {
			sc, r := ws.ParseCloseFrameData(p)
			code, reason = int32(sc), r
			if !validCloseCode(code) || !utf8.ValidString(reason) {
				c.fail(abi.CloseProtocolError, "bad close code")
				return false
			}
		}
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
		gone := c.guestGone
		c.mu.Unlock()
		if first && !gone {
			c.notify(abi.EventWSClosed, int64(code), 0)
		}
		return false
	}
	return true
}

func validCloseCode(code int32) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// fail ends the connection because of a protocol error, an oversize message or a
// dropped socket. code is what the guest sees (1006 for a dropped socket); for
// anything but 1006 a close frame with code and reason goes to the client first.
func (c *wsConn) fail(code int32, reason string) {
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
		gone := c.guestGone
		c.mu.Unlock()
		if first && !gone {
			c.notify(abi.EventWSClosed, int64(code), 0)
		}
		return
	}
	gone := c.guestGone
	c.mu.Unlock()
	c.shutdown()
	if first && !gone {
		c.notify(abi.EventWSClosed, int64(code), 0)
	}
}

// abandon closes a connection whose client stopped answering: a close frame is
// attempted, the socket is dropped right after.
func (c *wsConn) abandon(code int32, reason string) {
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
	gone := c.guestGone
	c.mu.Unlock()
	if first && !gone {
		c.notify(abi.EventWSClosed, abi.CloseAbnormal, 0)
	}
}

// closeWith starts the closing handshake from our side (guest close, guest done,
// instance failure, shutdown). final: the guest is gone, do not notify it.
func (c *wsConn) closeWith(code int32, reason string, final bool) {
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

func (c *wsConn) armCloseTimerLocked() {
	time.AfterFunc(c.hub.cfg.CloseTimeout, c.shutdown)
}

// shutdown drops the socket. Safe to call more than once.
func (c *wsConn) shutdown() {
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
		_ = c.conn.Close()
		c.hub.unregister(c)
	}
	c.release(parked)
	if !gone && (first || wantW) {
		c.notify(abi.EventWSClosed, abi.CloseAbnormal, 0)
	}
}

func (c *wsConn) queueCloseLocked(code int32, reason string) {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	var buf [125]byte
	p := buf[:2+len(reason)]
	p[0], p[1] = byte(code>>8), byte(code)
	copy(p[2:], reason)
	c.queueFrameLocked(ws.OpClose, p, false)
	c.sentClose = true
}

// queueFrameLocked appends one unmasked frame to the send queue and makes sure a
// writer runs.
func (c *wsConn) queueFrameLocked(op ws.OpCode, p []byte, compress bool) {
	if c.shut || c.sentClose {
		return
	}
	if compress && c.deflate && len(p) > 0 {
		if z, ok := deflateMessage(p); ok {
			p = z
		} else {
			compress = false
		}
	} else {
		compress = false
	}
	if c.out == nil {
		if b, ok := c.hub.outBufs.Get().(*[]byte); ok {
			c.out = b
		} else {
			b := make([]byte, 0, 512)
			c.out = &b
		}
	}
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(p))}
	if compress {
		h.Rsv = 0x4
	}
	var hb [ws.MaxHeaderSize]byte
	w := fixedWriter{b: hb[:0]}
	_ = ws.WriteHeader(&w, h)
	*c.out = append(append(*c.out, w.b...), p...)
	c.kickLocked()
}

type fixedWriter struct{ b []byte }

func (w *fixedWriter) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }

func (c *wsConn) kickLocked() {
	if c.writing || c.conn == nil || c.shut {
		return
	}
	if (c.out == nil || len(*c.out) == 0) && !c.closeAfter {
		return
	}
	c.writing = true
	go c.flush()
}

// flush writes queued bytes until the queue is empty; it is the only writer of
// the socket, so frames from the guest, pongs and pings never interleave.
func (c *wsConn) flush() {
	for {
		c.mu.Lock()
		if c.shut {
			c.writing = false
			c.mu.Unlock()
			return
		}
		if c.out == nil || len(*c.out) == 0 {
			c.writing = false
			wantW := c.wantWritable
			c.wantWritable = false
			hangup := c.closeAfter && c.sentClose
			gone := c.guestGone
			c.mu.Unlock()
			if wantW && !gone {
				c.notify(abi.EventWritable, 0, 0)
			}
			if hangup {
				c.shutdown()
			}
			return
		}
		buf := c.out
		c.out = nil
		c.mu.Unlock()
		_ = c.conn.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
		_, err := c.conn.Write(*buf)
		if cap(*buf) <= 64<<10 {
			*buf = (*buf)[:0]
			c.hub.outBufs.Put(buf)
		}
		if err != nil {
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			c.fail(abi.CloseAbnormal, "")
			return
		}
	}
}

// queued returns the bytes waiting to be written (under mu).
func (c *wsConn) queuedLocked() int {
	if c.out == nil {
		return 0
	}
	return len(*c.out)
}

// recv moves the next message into p (see runtime.WebSocket.WSRecv). block is
// nil in the async shape; in the sync shape it waits for the next notification.
func (c *wsConn) recv(p []byte, block func() bool) (int32, int, int32) {
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
	var resume *bufio.Reader
	if c.readerParked && len(c.inbox) < inboxMax/2 && c.inBytes <= c.hub.cfg.MaxMessage/2 {
		c.readerParked = false
		resume, c.parked = c.parked, nil
	}
	c.mu.Unlock()
	if resume != nil {
		c.hub.read(c, resume)
	}
	return m.kind, n, abi.OK
}

// send queues a message. block is nil in the async shape: above the high-water mark
// it returns ERR_WOULD_BLOCK and a WRITABLE notification follows.
func (c *wsConn) send(kind int32, p []byte, block func() bool) int32 {
	c.mu.Lock()
	for c.queuedLocked() >= c.hub.cfg.SendBuffer && !c.shut && !c.sentClose {
		c.wantWritable = true
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
	c.queueFrameLocked(op, p, true)
	c.mu.Unlock()
	return abi.OK
}

// closeInfo returns the close code and reason once closed.
func (c *wsConn) closeInfo() (int32, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		return 0, nil
	}
	return c.closeCode, []byte(c.closeReason)
}

// upgrade completes the handshake on r/w with the subprotocol and headers the guest
// chose, then hands the socket to the hub. It runs on the request's goroutine.
func (c *wsConn) upgrade(w http.ResponseWriter, r *http.Request, proto string, hdr http.Header) error {
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
		c.closeWith(abi.CloseGoingAway, "server shutting down", false)
		c.shutdown()
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
