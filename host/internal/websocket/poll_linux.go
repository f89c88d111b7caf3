//go:build linux

package websocket

import (
	"errors"
	"sync"

	"golang.org/x/sys/unix"
)

// poller waits for WebSocket sockets to become readable with one epoll set, so an
// idle connection costs an epoll registration instead of a parked goroutine with a
// read buffer. Registrations are one-shot: a connection is re-armed only after its
// reader has taken what arrived, so at most one reader runs per connection.
type poller struct {
	epfd, wake int
	mu         sync.Mutex
	conns      map[int32]*Conn
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	return &poller{epfd: epfd, wake: wake, conns: make(map[int32]*Conn)}, nil
}

// arm registers c (first time) or re-arms it for one readiness notification.
func (p *poller) arm(c *Conn) error {
	raw, err := syscallConn(c)
	if err != nil {
		return err
	}
	var cerr error
	err = raw.Control(func(fd uintptr) {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(fd)}
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, known := p.conns[int32(fd)]; known {
			cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
			return
		}
		cerr = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		if cerr == nil {
			p.conns[int32(fd)] = c
			c.fd = int(fd)
		}
	})
	return errors.Join(err, cerr)
}

// remove unregisters c; it must run before the socket is closed, or a new socket
// could reuse the descriptor while it is still registered.
func (p *poller) remove(c *Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns[int32(c.fd)] != c {
		return
	}
	delete(p.conns, int32(c.fd))
	_ = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
}

// run dispatches readiness until close.
func (p *poller) run(h *Hub) {
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			h.log.Error("websocket poller stopped", "err", err)
			return
		}
		for i := range n {
			fd := events[i].Fd
			if int(fd) == p.wake {
				unix.Close(p.epfd)
				unix.Close(p.wake)
				return
			}
			p.mu.Lock()
			c := p.conns[fd]
			p.mu.Unlock()
			if c != nil {
				h.read(c, nil)
			}
		}
	}
}

func (p *poller) close() {
	var one = [8]byte{1}
	_, _ = unix.Write(p.wake, one[:])
}
