package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"
)

// h1 is a small HTTP/1.1 client for plain-HTTP upstreams. Unlike
// http.Transport, which runs a read and a write goroutine per connection
// and hands every request and response across channels, it does the whole
// exchange on the calling goroutine: on a busy proxy those hand-offs cost
// more than the parsing. Request writing and response framing are
// net/http's own (Request.Write, ReadResponse).
type h1 struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	maxIdle     int
	idleTimeout time.Duration
	headTimeout time.Duration
	readTimeout time.Duration // longest silence while reading a response body

	mu   sync.Mutex
	idle map[string][]*pconn // by host:port, most recently used last
}

type pconn struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
	// poison unblocks any read or write on conn for good (a cancelled
	// request); made once per connection so a request does not allocate it.
	poison func()
}

func newH1(dial func(ctx context.Context, network, addr string) (net.Conn, error), maxIdle int, idleTimeout, headTimeout, readTimeout time.Duration) *h1 {
	return &h1{dial: dial, maxIdle: maxIdle, idleTimeout: idleTimeout, headTimeout: headTimeout, readTimeout: readTimeout,
		idle: map[string][]*pconn{}}
}

// freshFor is how recently a connection must have been used to carry a
// request that cannot be replayed (one with a body): servers close idle
// connections after a few seconds at the earliest (Node: 5 s), so a
// connection this fresh is very unlikely to be closing under us.
const freshFor = 2 * time.Second

// get takes the most recently used idle connection to addr that was used
// within maxAge, or nil.
func (t *h1) get(addr string, now time.Time, maxAge time.Duration) *pconn {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		l := t.idle[addr]
		if len(l) == 0 {
			return nil
		}
		pc := l[len(l)-1]
		age := now.Sub(pc.lastUsed)
		if age >= maxAge && age < t.idleTimeout {
			return nil // usable later by a replayable request; keep it
		}
		l[len(l)-1] = nil
		t.idle[addr] = l[:len(l)-1]
		if age < maxAge {
			return pc
		}
		pc.conn.Close()
	}
}

func (t *h1) put(addr string, pc *pconn) {
	pc.lastUsed = time.Now()
	if t.readTimeout > 0 {
		pc.conn.SetReadDeadline(time.Time{})
	}
	t.mu.Lock()
	if len(t.idle[addr]) < t.maxIdle {
		t.idle[addr] = append(t.idle[addr], pc)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	pc.conn.Close()
}

func (t *h1) closeIdle(addr string) {
	t.mu.Lock()
	l := t.idle[addr]
	delete(t.idle, addr)
	t.mu.Unlock()
	for _, pc := range l {
		pc.conn.Close()
	}
}

// CloseIdleConnections closes every pooled connection.
func (t *h1) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, l := range t.idle {
		for _, pc := range l {
			pc.conn.Close()
		}
		delete(t.idle, addr)
	}
}

func (t *h1) newConn(ctx context.Context, addr string) (*pconn, error) {
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pc := &pconn{conn: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}
	pc.poison = func() { c.SetDeadline(time.Unix(1, 0)) }
	return pc, nil
}

// replayable: the request can be sent again on a fresh connection when a
// reused one turns out to have been closed by the server meanwhile.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody
}

// staleConn reports an error that a server's closing an idle keep-alive
// connection produces before any response byte arrives.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// RoundTrip implements http.RoundTripper.
func (t *h1) RoundTrip(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	ctx := req.Context()
	replay := replayable(req)
	for try := 0; ; try++ {
		pc, reused, err := t.conn(ctx, addr, try, replay)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, req, addr, pc)
		if err == nil {
			return resp, nil
		}
		if !t.failed(ctx, addr, pc, reused, err, try, replay) {
			return nil, err
		}
	}
}

// conn returns the connection for attempt try of an exchange: on the first,
// the most recently used idle one (a request that cannot be replayed takes
// only one used within freshFor), otherwise a new one.
func (t *h1) conn(ctx context.Context, addr string, try int, replay bool) (pc *pconn, reused bool, err error) {
	if try == 0 {
		maxAge := t.idleTimeout
		if !replay {
			maxAge = min(maxAge, freshFor)
		}
		if pc = t.get(addr, time.Now(), maxAge); pc != nil {
			return pc, true, nil
		}
	}
	pc, err = t.newConn(ctx, addr)
	return pc, false, err
}

// failed closes pc after a failed exchange and reports whether to try again
// on a fresh connection: only when a reused one turned out closed by the
// server and the request can be sent again.
func (t *h1) failed(ctx context.Context, addr string, pc *pconn, reused bool, err error, try int, replay bool) bool {
	pc.conn.Close()
	if !reused || !staleConn(err) {
		return false
	}
	// The server closed this idle connection, most likely with its siblings
	// (a restart): drop them all rather than fail on each.
	t.closeIdle(addr)
	return try == 0 && replay && ctx.Err() == nil
}

func (t *h1) exchange(ctx context.Context, req *http.Request, addr string, pc *pconn) (*http.Response, error) {
	// Cancelling the request (client gone, deadline) unblocks any read or
	// write on the connection, which is then not reused.
	stop := context.AfterFunc(ctx, pc.poison)
	if err := req.Write(pc.bw); err != nil {
		stop()
		return nil, err
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, err
	}
	if t.headTimeout > 0 {
		pc.conn.SetReadDeadline(time.Now().Add(t.headTimeout))
	}
	// Wait for the first byte on its own: ReadResponse reports a connection
	// closed before any byte as ErrUnexpectedEOF, which would hide a stale
	// keep-alive connection (see staleConn).
	_, err := pc.br.Peek(1)
	var resp *http.Response
	for err == nil {
		resp, err = http.ReadResponse(pc.br, req)
		// Interim answers (100 Continue to a forwarded Expect, 103 Early
		// Hints) precede the real one: skip them. 101 is final.
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err != nil {
		stop()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("upstream request: %w", ctx.Err())
		}
		return nil, err
	}
	if t.headTimeout > 0 {
		pc.conn.SetReadDeadline(time.Time{})
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// The connection now belongs to the tunnel.
		stop()
		resp.Body = &upgraded{Reader: pc.br, conn: pc.conn}
		return resp, nil
	}
	reusable := !resp.Close && !req.Close
	if resp.Body == http.NoBody {
		if stop() && reusable {
			t.put(addr, pc)
		} else {
			pc.conn.Close()
		}
		return resp, nil
	}
	resp.Body = &h1Body{rc: resp.Body, t: t, addr: addr, pc: pc, stop: stop, reusable: reusable}
	return resp, nil
}

// h1Body gives the connection back to the pool once the body was read to
// the end and closed; any other ending closes it.
type h1Body struct {
	rc       io.ReadCloser
	t        *h1
	addr     string
	pc       *pconn
	stop     func() bool
	reusable bool
	eof      bool
	closed   bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.t.readTimeout > 0 {
		b.pc.conn.SetReadDeadline(time.Now().Add(b.t.readTimeout))
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *h1Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	// stop is false when the cancel already poisoned the deadline.
	if b.stop() && b.eof && b.reusable {
		b.t.put(b.addr, b.pc)
		return nil
	}
	return b.pc.conn.Close()
}

// upgraded is a switched-protocols connection: buffered bytes first.
type upgraded struct {
	io.Reader
	conn net.Conn
}

func (u *upgraded) Write(p []byte) (int, error) { return u.conn.Write(p) }
func (u *upgraded) Close() error                { return u.conn.Close() }
