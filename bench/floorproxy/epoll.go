package main

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"syscall"
)

// The epoll mode is nginx's model: each loop owns its client and upstream
// sockets and waits for readiness before it reads, so it makes no read that
// fails with EAGAIN, where Go's netpoller tries the read first. Writes are
// assumed to complete at once (the bench's answers are ~100 bytes); a short
// write closes the connection.

// fdConn is one socket in a loop: a client, or an upstream carrying a
// client's request.
type fdConn struct {
	fd     int
	in     []byte
	up     bool
	client *fdConn // upstream: whose request it carries
	busy   bool    // client: a request is at the upstream or waiting for one
	closed bool    // its fd may already belong to a new connection
}

type loop struct {
	ep       int
	lfd      int
	upstream syscall.Sockaddr
	maxUp    int
	nUp      int
	conns    []*fdConn // by fd
	idle     []*fdConn // idle upstream connections
	waiting  []*fdConn // clients waiting for an upstream connection
	buf      []byte
	out      []byte
}

func serveEpoll(listen, upstream string, conns int) error {
	lfd, err := listenFD(listen)
	if err != nil {
		return err
	}
	up, err := sockaddr(upstream)
	if err != nil {
		return fmt.Errorf("-upstream: %w", err)
	}
	n := runtime.NumCPU()
	errc := make(chan error, n)
	for range n {
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		// EPOLLEXCLUSIVE: one loop is woken per new connection, as nginx does.
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN | 1<<28, Fd: int32(lfd)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, lfd, &ev); err != nil {
			return err
		}
		l := &loop{ep: ep, lfd: lfd, upstream: up, maxUp: max(1, conns/n), buf: make([]byte, 16<<10)}
		go func() { errc <- l.run() }()
	}
	return <-errc
}

func sockaddr(addr string) (*syscall.SockaddrInet4, error) {
	a, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	sa := &syscall.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	return sa, nil
}

func listenFD(addr string) (int, error) {
	sa, err := sockaddr(addr)
	if err != nil {
		return -1, fmt.Errorf("-listen: %w", err)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		return -1, err
	}
	if err := syscall.Bind(fd, sa); err != nil {
		return -1, fmt.Errorf("bind %s: %w", addr, err)
	}
	return fd, syscall.Listen(fd, 4096)
}

func (l *loop) run() error {
	runtime.LockOSThread()
	evs := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.ep, evs, -1)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			if fd == l.lfd {
				l.accept()
				continue
			}
			if c := l.conn(fd); c != nil {
				l.readable(c)
			}
		}
	}
}

func (l *loop) conn(fd int) *fdConn {
	if fd < len(l.conns) {
		return l.conns[fd]
	}
	return nil
}

func (l *loop) add(c *fdConn) error {
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	return syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, c.fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(c.fd)})
}

func (l *loop) close(c *fdConn) {
	if c.closed {
		return
	}
	c.closed = true
	syscall.Close(c.fd) // also leaves the epoll set
	l.conns[c.fd] = nil
	if c.up {
		l.nUp--
		if c.client != nil {
			l.close(c.client)
		}
	}
}

func (l *loop) accept() {
	for {
		fd, _, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN: another loop took it, or none left
		}
		syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if l.add(&fdConn{fd: fd}) != nil {
			syscall.Close(fd)
		}
	}
}

// readable reads once: level-triggered epoll reports the socket again if
// more is left.
func (l *loop) readable(c *fdConn) {
	n, err := syscall.Read(c.fd, l.buf)
	if errors.Is(err, syscall.EAGAIN) {
		return
	}
	if n <= 0 {
		l.close(c)
		return
	}
	c.in = append(c.in, l.buf[:n]...)
	if c.up {
		l.answer(c)
	} else {
		l.request(c)
	}
}

// request forwards the client's next complete head, if it has one and no
// request of it is in flight.
func (l *loop) request(c *fdConn) {
	if c.busy {
		return
	}
	end := headEnd(c.in)
	if end < 0 {
		if len(c.in) > 16<<10 {
			l.close(c)
		}
		return
	}
	if hasBody(c.in[:end]) {
		syscall.Write(c.fd, []byte(notImplemented))
		l.close(c)
		return
	}
	u := l.upConn()
	if u == nil {
		c.busy = true
		l.waiting = append(l.waiting, c)
		return
	}
	l.send(c, u, end)
}

func (l *loop) send(c, u *fdConn, end int) {
	c.busy = true
	u.client = c
	l.out = append(append(l.out[:0], c.in[:end-2]...), xff...)
	c.in = c.in[:copy(c.in, c.in[end:])]
	if n, err := syscall.Write(u.fd, l.out); err != nil || n != len(l.out) {
		l.close(u)
	}
}

// upConn returns an idle upstream connection, dialling one if the loop has
// fewer than its share; nil when all are busy.
func (l *loop) upConn() *fdConn {
	if n := len(l.idle); n > 0 {
		u := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return u
	}
	if l.nUp >= l.maxUp {
		return nil
	}
	// A blocking connect: on loopback it returns at once.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	if syscall.Connect(fd, l.upstream) != nil || syscall.SetNonblock(fd, true) != nil {
		syscall.Close(fd)
		return nil
	}
	syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	u := &fdConn{fd: fd, up: true}
	if l.add(u) != nil {
		syscall.Close(fd)
		return nil
	}
	l.nUp++
	return u
}

// answer relays the upstream's response once it is complete, then frees the
// connection for the next waiting client.
func (l *loop) answer(u *fdConn) {
	end := headEnd(u.in)
	if end < 0 {
		return
	}
	n := contentLength(u.in[:end])
	if n < 0 || u.client == nil {
		l.close(u)
		return
	}
	if len(u.in) < end+n {
		return
	}
	c := u.client
	u.client = nil
	if !c.closed {
		if w, err := syscall.Write(c.fd, u.in[:end+n]); err != nil || w != end+n {
			l.close(c)
		}
		c.busy = false
	}
	u.in = u.in[:copy(u.in, u.in[end+n:])]
	l.reuse(u)
	if !c.closed && len(c.in) > 0 {
		l.request(c) // a pipelined request
	}
}

// reuse hands a free upstream connection to the first live waiting client,
// or back to the idle list.
func (l *loop) reuse(u *fdConn) {
	for len(l.waiting) > 0 {
		next := l.waiting[0]
		l.waiting = l.waiting[1:]
		if next.closed {
			continue
		}
		if e := headEnd(next.in); e >= 0 {
			l.send(next, u, e)
			return
		}
		next.busy = false
	}
	l.idle = append(l.idle, u)
}
