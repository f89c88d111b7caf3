//go:build !linux

package websocket

import "errors"

// poller is Linux-only (epoll); elsewhere each WebSocket has a reader goroutine.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no epoll on this platform") }
func (p *poller) arm(*Conn) error { return errors.New("no poller") }
func (p *poller) remove(*Conn)    {}
func (p *poller) run(*Hub)        {}
func (p *poller) close()          {}
