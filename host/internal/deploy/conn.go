package deploy

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// holdingWriter gives a hijacked connection a reference to the pool, released
// when the connection closes.
type holdingWriter struct {
	http.ResponseWriter
	p *pool
}

func (h *holdingWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *holdingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if !h.p.acquire() { // cannot fail: the request holds a reference
		return conn, rw, nil
	}
	return &holdingConn{Conn: conn, p: h.p}, rw, nil
}

// holdingConn releases its pool reference on Close. It passes on what the
// WebSocket hub looks for on the socket underneath, as host's accepted
// connection does: Unwrap, SyscallConn (its readiness poller), CloseWrite.
type holdingConn struct {
	net.Conn
	p    *pool
	once sync.Once
}

func (c *holdingConn) Unwrap() net.Conn { return c.Conn }

func (c *holdingConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("connection has no file descriptor")
}

func (c *holdingConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *holdingConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.p.release)
	return err
}
