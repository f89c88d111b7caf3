package host

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/limit"
)

// Socket is a bound listening socket that outlives the servers using it: a
// reload that changes a listener's settings hands the socket to a new Server
// while the old one finishes its connections, so no connection waiting in the
// kernel's accept queue is lost (closing and re-binding would reset them).
// It also applies the per-IP connection cap at accept time.
type Socket struct {
	ln    net.Listener
	conns *limit.Conns
	log   *slog.Logger

	accepted chan *sockConn
	closed   chan struct{} // closed by Close
	done     chan struct{} // closed when the accept loop ends
	err      error         // why it ended (net.ErrClosed after Close), set before done closes

	closeOnce sync.Once
}

// Bind listens on addr (TCP).
func Bind(addr string, log *slog.Logger) (*Socket, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Socket{ln: ln, conns: limit.NewConns(0, nil), log: log,
		accepted: make(chan *sockConn), closed: make(chan struct{}), done: make(chan struct{})}
	go s.acceptLoop()
	return s, nil
}

// Addr is the bound address.
func (s *Socket) Addr() net.Addr { return s.ln.Addr() }

// LimitPerIP caps open connections per client IP (0: no cap); peers in exempt
// (trusted proxies) are not counted. It applies to connections accepted from
// now on.
func (s *Socket) LimitPerIP(max int, exempt []netip.Prefix) { s.conns.Set(max, exempt) }

// Close stops accepting and closes the socket. Connections already accepted
// stay with their servers.
func (s *Socket) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.ln.Close()
	})
	<-s.done
	return err
}

func (s *Socket) acceptLoop() {
	defer close(s.done)
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if isClosed(s.closed) {
				s.err = net.ErrClosed
				return
			}
			if transientAccept(err) {
				// Out of descriptors or similar: wait rather than spin (net/http's policy).
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "addr", s.ln.Addr().String(), "err", err, "in", backoff)
				time.Sleep(backoff)
				continue
			}
			s.err = err
			return
		}
		backoff = 0
		ip, counted, ok := s.conns.Acquire(c.RemoteAddr())
		if !ok {
			s.log.Debug("connection refused: too many open from this address", "remote", c.RemoteAddr().String())
			c.Close()
			continue
		}
		tc := &sockConn{Conn: c, conns: s.conns, ip: ip, counted: counted}
		select {
		case s.accepted <- tc:
		case <-s.closed:
			tc.Close()
			s.err = net.ErrClosed
			return
		}
	}
}

// requeue offers c, accepted by a handle that was closed meanwhile, to the
// socket's other handles.
func (s *Socket) requeue(c *sockConn) {
	select {
	case s.accepted <- c:
	case <-s.closed:
		c.Close()
	}
}

// handle is one server's view of the socket: closing it (http.Server.Shutdown
// does) stops that server's accepting without closing the socket.
type handle struct {
	s      *Socket
	open   *atomic.Int64 // the server's count of open connections
	closed chan struct{}
	once   sync.Once
}

func (s *Socket) handle(open *atomic.Int64) *handle {
	return &handle{s: s, open: open, closed: make(chan struct{})}
}

func (h *handle) Accept() (net.Conn, error) {
	select {
	case c := <-h.s.accepted:
		select {
		case <-h.closed:
			// Closed while the connection was on its way (Detach on a
			// handover): it is the next server's.
			go h.s.requeue(c)
			return nil, net.ErrClosed
		default:
		}
		c.open.Store(true)
		h.open.Add(1)
		return c, nil
	case <-h.closed:
		return nil, net.ErrClosed
	case <-h.s.done:
		return nil, h.s.err
	}
}

func (h *handle) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

func (h *handle) Addr() net.Addr { return h.s.ln.Addr() }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// transientAccept: errors after which accepting can go on (out of file
// descriptors, a connection reset while queued).
func transientAccept(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// sockConn is an accepted connection. It releases its per-IP slot on Close,
// is counted by the server that accepted it until it closes (for a graceful
// stop, see Server.quiesce), and passes on what net/http and the WebSocket poller look
// for on the socket underneath: ReadFrom (sendfile), SyscallConn (readiness
// polling), CloseWrite (lingering close).
type sockConn struct {
	net.Conn
	conns   *limit.Conns
	ip      netip.Addr
	counted bool
	open    atomic.Bool // counted in the accepting server's open connections
	once    sync.Once
}

func (c *sockConn) Close() error {
	if c.counted {
		c.once.Do(func() { c.conns.Release(c.ip) })
	}
	return c.Conn.Close()
}

// Unwrap returns the connection underneath.
func (c *sockConn) Unwrap() net.Conn { return c.Conn }

func (c *sockConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

func (c *sockConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("connection has no file descriptor")
}

func (c *sockConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
