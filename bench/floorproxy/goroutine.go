package main

import (
	"bufio"
	"io"
	"net"
	"slices"
	"sync"
)

// upConn is a keep-alive connection to the upstream.
type upConn struct {
	c  net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

// upPool is a LIFO of idle upstream connections, dialled on demand.
type upPool struct {
	addr string
	max  int
	mu   sync.Mutex
	idle []*upConn
}

func (p *upPool) get() (*upConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		u := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return u, nil
	}
	p.mu.Unlock()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &upConn{c: c, br: bufio.NewReaderSize(c, 4096), bw: bufio.NewWriterSize(c, 4096)}, nil
}

func (p *upPool) put(u *upConn) {
	p.mu.Lock()
	if len(p.idle) < p.max {
		p.idle = append(p.idle, u)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	u.c.Close()
}

func serveGoroutines(listen, upstream string, conns int) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	pool := &upPool{addr: upstream, max: conns}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go proxyConn(c, pool)
	}
}

// proxyConn serves one client connection: head in, head out, answer back.
func proxyConn(c net.Conn, pool *upPool) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	var head, resp []byte
	for {
		var err error
		if head, err = readHead(br, head[:0]); err != nil {
			return
		}
		if hasBody(head) {
			io.WriteString(c, notImplemented)
			return
		}
		u, err := pool.get()
		if err != nil {
			return
		}
		if resp, err = exchange(u, head, resp[:0]); err != nil {
			u.c.Close()
			return
		}
		pool.put(u)
		bw.Write(resp)
		if bw.Flush() != nil {
			return
		}
	}
}

// exchange forwards head on u and returns the whole answer.
func exchange(u *upConn, head, resp []byte) ([]byte, error) {
	u.bw.Write(head[:len(head)-2]) // without the blank line
	u.bw.WriteString(xff)
	if err := u.bw.Flush(); err != nil {
		return resp, err
	}
	resp, err := readHead(u.br, resp)
	if err != nil {
		return resp, err
	}
	n := contentLength(resp)
	if n < 0 {
		return resp, errFraming
	}
	h := len(resp)
	resp = slices.Grow(resp, n)[:h+n]
	_, err = io.ReadFull(u.br, resp[h:])
	return resp, err
}
