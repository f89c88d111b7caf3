package websocket

import (
	"errors"
	"syscall"
)

// syscallConn returns the raw socket of c for the poller.
func syscallConn(c *Conn) (syscall.RawConn, error) {
	sc, ok := c.conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no file descriptor")
	}
	return sc.SyscallConn()
}
