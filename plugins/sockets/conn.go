package sockets

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

type instKey struct{}

// instSockets are the connections of one instance. They die with it: OnClose
// closes every one, and when the instance's deadline fires (its context is done:
// the request overran --timeout, an async event overran --event-timeout) every
// blocked read and write returns at once.
type instSockets struct {
	a     *appSockets
	in    plugins.Instance
	async bool

	mu     sync.Mutex
	m      map[uint32]*sconn
	next   uint32
	dead   bool          // the instance expired or closed
	closed chan struct{} // closed by OnClose: stops the deadline watcher
}

func newInstSockets(ctx context.Context, a *appSockets, in plugins.Instance) *instSockets {
	is := &instSockets{a: a, in: in, async: in.Async(),
		m: map[uint32]*sconn{}, closed: make(chan struct{})}
	in.SetValue(instKey{}, is)
	in.OnClose(is.closeAll)
	// One watcher per instance, not per call: the instance's context is done only
	// when it expired, and then it is dead for good.
	done := ctx.Done()
	go func() {
		select {
		case <-done:
			is.expire()
		case <-is.closed:
		}
	}()
	return is
}

// expire releases every blocked call of a dead instance: deadlines in the past,
// connects cancelled, waiters woken.
func (is *instSockets) expire() {
	is.mu.Lock()
	is.dead = true
	cs := make([]*sconn, 0, len(is.m))
	for _, c := range is.m {
		cs = append(cs, c)
	}
	is.mu.Unlock()
	for _, c := range cs {
		c.kill()
	}
}

// closeAll closes every connection of an instance that is going away; bytes still
// queued are dropped.
func (is *instSockets) closeAll() {
	is.mu.Lock()
	is.dead = true
	cs := is.m
	is.m = map[uint32]*sconn{}
	select {
	case <-is.closed:
	default:
		close(is.closed)
	}
	is.mu.Unlock()
	for _, c := range cs {
		c.close(false)
	}
}

func (is *instSockets) remove(c *sconn) {
	is.mu.Lock()
	delete(is.m, c.h)
	is.mu.Unlock()
}

// connect opens a connection to t: in sync mode before it returns, in async mode on
// a goroutine of its own (the handle reports the outcome).
func (is *instSockets) connect(ctx context.Context, t target, timeout time.Duration) (uint32, int32) {
	a := is.a
	if !a.outbound.Take(a.group, time.Now()) {
		a.log.Debug("connect refused: the group is over its connects per minute", "group", a.group.Group, "group_per_minute", a.group.GroupPerMinute)
		return 0, pluginabi.ErrQuota
	}
	is.mu.Lock()
	if is.dead {
		is.mu.Unlock()
		return 0, pluginabi.ErrTimeout
	}
	if len(is.m) >= a.maxInstConns {
		is.mu.Unlock()
		a.log.Debug("connect refused: the instance holds max_instance_conns connections", "max_instance_conns", a.maxInstConns)
		return 0, pluginabi.ErrQuota
	}
	if a.open.Add(1) > a.maxConns {
		a.open.Add(-1)
		is.mu.Unlock()
		a.log.Debug("connect refused: the app holds max_conns connections", "max_conns", a.maxConns)
		return 0, pluginabi.ErrQuota
	}
	for {
		is.next++
		if _, used := is.m[is.next]; is.next != 0 && !used {
			break
		}
	}
	c := &sconn{is: is, a: a, h: is.next, state: stConnecting, counted: true}
	if !is.async {
		is.mu.Unlock()
		dctx, cancel := context.WithTimeout(ctx, timeout)
		conn, st := a.dial(dctx, t)
		cancel()
		if st != 0 {
			a.open.Add(-1)
			return 0, st
		}
		c.conn, c.state, c.tlsOn = conn, stOpen, t.tls
		is.mu.Lock()
		if is.dead { // expired while dialling
			is.mu.Unlock()
			c.close(false)
			return 0, pluginabi.ErrTimeout
		}
		is.m[c.h] = c
		is.mu.Unlock()
		return c.h, 0
	}
	dctx, cancel := context.WithTimeout(context.Background(), timeout)
	c.cancel = cancel
	is.m[c.h] = c
	is.mu.Unlock()
	go func() {
		conn, st := a.dial(dctx, t)
		cancel()
		c.settle(conn, st, t.tls)
	}()
	return c.h, 0
}

// Connection states.
const (
	stConnecting = iota // connect or TLS upgrade in progress (async mode)
	stOpen
	stFailed // connect or TLS upgrade failed: every call returns status
	stClosed
)

// sconn is one guest connection. Host functions call it from the instance's
// goroutine; in async mode the host's connect, read and write goroutines update it
// too, under mu.
type sconn struct {
	is *instSockets
	a  *appSockets
	h  uint32

	mu      sync.Mutex
	state   int
	status  int32    // the failure, in stFailed
	conn    net.Conn // *net.TCPConn, or *tls.Conn over it
	tlsOn   bool
	cancel  context.CancelFunc // a connect or handshake in progress
	rdl     time.Time          // read deadline (zero: none)
	wdl     time.Time          // write deadline
	dead    bool               // the instance expired: deadlines stay in the past
	counted bool               // holds one of the app's max_conns

	rerr error // a read error not reported yet (it came with bytes)
	eof  bool  // the peer ended its side: reads return 0 from now on

	// Async mode.
	rbuf    []byte // bytes read ahead, rbuf[roff:] not yet taken
	roff    int
	reading bool   // a read is in flight
	wq      []byte // bytes taken by write, not yet written
	writing bool   // the writer goroutine runs
	werr    int32  // a write failed: every later write returns it
	shut    bool   // shutdown asked: no more writes
	lingers bool   // closed by the guest while the writer flushes
	nr, nw  plugins.Notification
	changed chan struct{} // closed and replaced at every change, for wait
}

// settle ends an async connect or TLS upgrade.
func (c *sconn) settle(conn net.Conn, st int32, tlsOn bool) {
	c.mu.Lock()
	c.cancel = nil
	if c.state == stClosed {
		c.mu.Unlock()
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	if st != 0 {
		c.state, c.status = stFailed, st
	} else {
		c.conn, c.state, c.tlsOn = conn, stOpen, tlsOn
		c.applyDeadlines()
	}
	c.changedLocked()
	c.mu.Unlock()
	c.nr.Fire()
	c.nw.Fire()
}

// applyDeadlines sets the connection's deadlines from rdl/wdl (past ones when the
// instance expired). Under mu.
func (c *sconn) applyDeadlines() {
	if c.conn == nil {
		return
	}
	if c.dead {
		_ = c.conn.SetDeadline(time.Unix(1, 0))
		return
	}
	_ = c.conn.SetReadDeadline(c.rdl)
	_ = c.conn.SetWriteDeadline(c.wdl)
}

// changedLocked wakes the blocking waiters (wait). Under mu.
func (c *sconn) changedLocked() {
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// kill releases every blocked call of the connection of an expired instance.
func (c *sconn) kill() {
	c.mu.Lock()
	c.dead = true
	if c.cancel != nil {
		c.cancel()
	}
	c.applyDeadlines()
	c.changedLocked()
	c.mu.Unlock()
	c.nr.Fire()
	c.nw.Fire()
}

// close ends the connection. linger (a guest's close in async mode) lets bytes
// already queued be written first, for up to closeLinger; the instance going away
// drops them. Armed notifications fire, so goroutines waiting on the connection
// wake and find it closed.
func (c *sconn) close(linger bool) {
	c.mu.Lock()
	if c.state == stClosed {
		c.mu.Unlock()
		return
	}
	c.state = stClosed
	if c.cancel != nil {
		c.cancel()
	}
	conn := c.conn
	if linger && c.writing && conn != nil {
		c.lingers = true
		_ = conn.SetWriteDeadline(time.Now().Add(closeLinger))
		conn = nil // the writer closes it when done
	}
	c.changedLocked()
	c.mu.Unlock()
	c.nr.Fire()
	c.nw.Fire()
	if conn != nil {
		_ = conn.Close()
		c.release()
	} else if !c.lingers {
		c.release() // never connected: a connect in progress closes its own conn
	}
}

// release gives the connection's slot back to the app.
func (c *sconn) release() {
	c.mu.Lock()
	counted := c.counted
	c.counted = false
	c.mu.Unlock()
	if counted {
		c.a.open.Add(-1)
	}
}

// read takes bytes into dst (guest memory, used only during the call) and returns
// the i64 result of read.
func (c *sconn) read(dst []byte) uint64 {
	if len(dst) == 0 {
		return 0
	}
	if c.is.async {
		return c.readAsync(dst)
	}
	c.mu.Lock()
	if st, done := c.readState(); done {
		c.mu.Unlock()
		return st
	}
	conn := c.conn
	c.mu.Unlock()
	n := c.a.in.reserve(len(dst))
	if n == 0 {
		return plugins.Status(pluginabi.ErrQuota)
	}
	// Straight into guest memory: the guest is blocked in this call and only it
	// could grow (move) its memory; the instance is closed only after it returns.
	got, err := conn.Read(dst[:n])
	c.a.in.refund(n - got)
	if got > 0 {
		if err != nil {
			c.mu.Lock()
			c.noteReadErr(err)
			c.mu.Unlock()
		}
		return uint64(got)
	}
	c.mu.Lock()
	c.noteReadErr(err)
	st, _ := c.readState()
	c.mu.Unlock()
	return st
}

// noteReadErr keeps a read error for readState. Under mu.
func (c *sconn) noteReadErr(err error) {
	switch {
	case err == nil:
	case isEOF(err):
		c.eof = true
	default:
		c.rerr = err
	}
}

// readState answers a read that needs no I/O: the connection failed, ended, has
// an error to report or is past its deadline. Under mu.
func (c *sconn) readState() (uint64, bool) {
	switch c.state {
	case stConnecting:
		return plugins.Status(pluginabi.ErrWouldBlock), true
	case stFailed:
		return plugins.Status(c.status), true
	}
	if c.rerr != nil {
		st := status(c.rerr)
		if st != pluginabi.ErrTimeout {
			return plugins.Status(st), true // a broken connection stays broken
		}
		c.rerr = nil // a deadline is reported once; the connection stays usable
		return plugins.Status(st), true
	}
	if c.eof {
		return 0, true
	}
	if c.dead || !c.rdl.IsZero() && !time.Now().Before(c.rdl) {
		return plugins.Status(pluginabi.ErrTimeout), true
	}
	return 0, false
}

// readAsync hands out bytes read ahead, or starts one read on the host and answers
// ERR_WOULD_BLOCK.
func (c *sconn) readAsync(dst []byte) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.roff < len(c.rbuf) {
		n := copy(dst, c.rbuf[c.roff:])
		c.roff += n
		if c.roff == len(c.rbuf) {
			c.a.chunks.put(c.rbuf)
			c.rbuf, c.roff = nil, 0
		}
		return uint64(n)
	}
	if st, done := c.readState(); done {
		return st
	}
	if !c.startRead(len(dst)) {
		return plugins.Status(pluginabi.ErrQuota)
	}
	return plugins.Status(pluginabi.ErrWouldBlock)
}

// startRead starts the host read of up to n bytes (capped at chunk) unless one is in
// flight; false when the app's byte window is spent. Under mu.
func (c *sconn) startRead(n int) bool {
	if c.reading {
		return true
	}
	n = c.a.in.reserve(min(n, chunk))
	if n == 0 {
		return false
	}
	c.reading = true
	conn := c.conn
	go func() {
		buf := c.a.chunks.get()[:n]
		got, err := conn.Read(buf)
		c.a.in.refund(n - got)
		c.mu.Lock()
		c.reading = false
		if c.state == stClosed {
			c.mu.Unlock()
			c.a.chunks.put(buf)
			return
		}
		if got > 0 {
			c.rbuf, c.roff = buf[:got], 0
		} else {
			c.a.chunks.put(buf)
		}
		c.noteReadErr(err)
		c.changedLocked()
		c.mu.Unlock()
		c.nr.Fire()
	}()
	return true
}

// write sends src (guest memory, used only during the call) and returns the i64
// result of write.
func (c *sconn) write(src []byte) uint64 {
	if c.is.async {
		return c.writeAsync(src)
	}
	c.mu.Lock()
	if st, done := c.writeState(); done || len(src) == 0 {
		c.mu.Unlock()
		return st
	}
	conn := c.conn
	c.mu.Unlock()
	n := c.a.out.reserve(len(src))
	if n == 0 {
		return plugins.Status(pluginabi.ErrQuota)
	}
	got, err := conn.Write(src[:n])
	c.a.out.refund(n - got)
	if got > 0 || err == nil {
		return uint64(got)
	}
	return plugins.Status(status(err))
}

// writeState answers a write that needs no I/O; with done false the result is the
// answer to a zero-length write (0: connected). Under mu.
func (c *sconn) writeState() (uint64, bool) {
	switch {
	case c.state == stConnecting:
		return plugins.Status(pluginabi.ErrWouldBlock), true
	case c.state == stFailed:
		return plugins.Status(c.status), true
	case c.werr != 0:
		return plugins.Status(c.werr), true
	case c.shut:
		return plugins.Status(pluginabi.ErrClosed), true
	case c.dead || !c.wdl.IsZero() && !time.Now().Before(c.wdl):
		return plugins.Status(pluginabi.ErrTimeout), true
	}
	return 0, false
}

// writeAsync queues up to chunk bytes for the writer goroutine; ERR_WOULD_BLOCK
// while chunk bytes are queued.
func (c *sconn) writeAsync(src []byte) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, done := c.writeState(); done || len(src) == 0 {
		return st
	}
	room := chunk - len(c.wq)
	if room <= 0 {
		return plugins.Status(pluginabi.ErrWouldBlock)
	}
	n := c.a.out.reserve(min(len(src), room))
	if n == 0 {
		return plugins.Status(pluginabi.ErrQuota)
	}
	c.wq = append(c.wq, src[:n]...)
	c.startWriter()
	return uint64(n)
}

// startWriter starts the writer goroutine unless it runs. Under mu.
func (c *sconn) startWriter() {
	if c.writing {
		return
	}
	c.writing = true
	go c.flush()
}

// flush writes the queue until it is empty, then does a pending shutdown, and
// closes the connection if the guest closed it meanwhile.
func (c *sconn) flush() {
	c.mu.Lock()
	for {
		buf := c.wq
		c.wq = nil
		conn := c.conn
		if len(buf) == 0 {
			if c.shut && c.werr == 0 && c.state != stClosed {
				c.mu.Unlock()
				err := closeWrite(conn)
				c.mu.Lock()
				if err != nil && c.werr == 0 {
					c.werr = status(err)
				}
			}
			c.writing = false
			lingers := c.lingers
			c.changedLocked()
			c.mu.Unlock()
			c.nw.Fire()
			if lingers {
				_ = conn.Close()
				c.release()
			}
			return
		}
		c.mu.Unlock()
		_, err := conn.Write(buf)
		c.mu.Lock()
		if err != nil {
			if c.werr == 0 {
				c.werr = status(err)
			}
			c.wq = nil
			c.shut = false // nothing more can be written: the shutdown is moot
			continue
		}
		c.changedLocked()
		c.mu.Unlock()
		c.nw.Fire() // room again
		c.mu.Lock()
	}
}

// shutdown half-closes: no more writes, the peer reads the end of the stream after
// the bytes already written.
func (c *sconn) shutdown() int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == stConnecting:
		return pluginabi.ErrWouldBlock
	case c.state == stFailed:
		return c.status
	case c.shut:
		return 0
	case c.werr != 0:
		return c.werr
	}
	c.shut = true
	if c.is.async {
		c.startWriter() // after the queue, on the writer's goroutine
		return 0
	}
	if err := closeWrite(c.conn); err != nil {
		return status(err)
	}
	return 0
}

// setDeadline sets the read and/or write deadline (zero: none).
func (c *sconn) setDeadline(which uint32, t time.Time) {
	c.mu.Lock()
	if which&dirRead != 0 {
		c.rdl = t
	}
	if which&dirWrite != 0 {
		c.wdl = t
	}
	c.applyDeadlines()
	c.changedLocked()
	c.mu.Unlock()
}

// ready reports whether a read or write would not answer ERR_WOULD_BLOCK now;
// for a read with nothing in flight it starts one. Under mu.
func (c *sconn) ready(which uint32) bool {
	if c.state != stOpen && c.state != stConnecting || c.dead {
		return true
	}
	if which == dirRead {
		if c.roff < len(c.rbuf) {
			return true
		}
		if _, done := c.readState(); done {
			return c.state != stConnecting
		}
		return !c.startRead(chunk)
	}
	if _, done := c.writeState(); done {
		return c.state != stConnecting
	}
	return len(c.wq) < chunk
}

// arm sets the guest's notification for a direction and fires it at once if the
// connection is ready for it already.
func (c *sconn) arm(which uint32, w plugins.Waker) {
	n := &c.nr
	if which == dirWrite {
		n = &c.nw
	}
	n.Arm(w)
	c.mu.Lock()
	ready := c.ready(which)
	c.mu.Unlock()
	if ready {
		n.Fire()
	}
}

// wait blocks until the connection is ready for which, for guest code that cannot
// wait for events. Sync calls block by themselves: there it returns at once. The
// instance's deadline bounds it.
func (c *sconn) wait(ctx context.Context, which uint32) int32 {
	if !c.is.async {
		return 0
	}
	for {
		c.mu.Lock()
		if c.ready(which) {
			c.mu.Unlock()
			return 0
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return pluginabi.ErrTimeout
		}
	}
}

// startTLS upgrades an open connection to TLS: the STARTTLS of SMTP, PostgreSQL's
// SSLRequest, and the like. Nothing may be buffered either way: bytes read ahead
// would belong to the handshake.
func (c *sconn) startTLS(ctx context.Context, name string) int32 {
	c.mu.Lock()
	switch {
	case c.state == stConnecting:
		c.mu.Unlock()
		return pluginabi.ErrWouldBlock
	case c.state == stFailed:
		c.mu.Unlock()
		return c.status
	case c.tlsOn || c.shut || c.eof || c.rerr != nil || c.roff < len(c.rbuf) || c.reading:
		c.mu.Unlock()
		return pluginabi.ErrState
	case c.writing || len(c.wq) > 0:
		c.mu.Unlock()
		return pluginabi.ErrWouldBlock // the queue is written first
	case c.dead:
		c.mu.Unlock()
		return pluginabi.ErrTimeout
	}
	if name == "" {
		name = c.a.serverName
	}
	if name == "" {
		if host, _, err := net.SplitHostPort(c.conn.RemoteAddr().String()); err == nil {
			name = host
		}
	}
	raw := c.conn
	a := c.a
	if !c.is.async {
		c.mu.Unlock()
		hctx, cancel := context.WithTimeout(ctx, a.connectTimeout)
		tc, st := a.handshake(hctx, raw, name)
		cancel()
		c.mu.Lock()
		defer c.mu.Unlock()
		if st != 0 {
			c.state, c.status = stFailed, st
			return st
		}
		c.conn, c.tlsOn = tc, true
		c.applyDeadlines()
		return 0
	}
	hctx, cancel := context.WithTimeout(context.Background(), a.connectTimeout)
	c.state, c.cancel = stConnecting, cancel
	c.mu.Unlock()
	go func() {
		// A failed upgrade leaves the plain connection in place, failed, for the
		// guest to close.
		var conn net.Conn
		tc, st := a.handshake(hctx, raw, name)
		if st == 0 {
			conn = tc
		}
		cancel()
		c.settle(conn, st, true)
	}()
	return 0
}

// addr returns the local or remote address, "ip:port".
func (c *sconn) addr(remote bool) (string, int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stConnecting || c.conn == nil {
		return "", pluginabi.ErrState
	}
	if remote {
		return c.conn.RemoteAddr().String(), 0
	}
	return c.conn.LocalAddr().String(), 0
}

// chunkPool holds the read-ahead buffers of async connections, one chunk each.
type chunkPool struct{ p sync.Pool }

func (cp *chunkPool) get() []byte {
	if b, ok := cp.p.Get().(*[]byte); ok {
		return *b
	}
	return make([]byte, chunk)
}

func (cp *chunkPool) put(b []byte) {
	if b = b[:cap(b)]; len(b) == chunk {
		cp.p.Put(&b)
	}
}
