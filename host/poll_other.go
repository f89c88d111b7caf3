//go:build !linux

package host

import "errors"

// poller is Linux-only (epoll); elsewhere each WebSocket has a reader goroutine.
type poller struct{}

func newPoller() (*poller, error)   { return nil, errors.New("no epoll on this platform") }
func (p *poller) arm(*wsConn) error { return errors.New("no poller") }
func (p *poller) remove(*wsConn)    {}
func (p *poller) run(*wsHub)        {}
func (p *poller) close()            {}
