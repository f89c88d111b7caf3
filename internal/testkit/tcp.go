package testkit

import (
	"net"
	"sync"
	"testing"
)

// Listen is a TCP listener on a loopback port of its own, closed when the test ends.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// ServeConns accepts on ln until the test ends and runs handle for each
// connection on its own goroutine, closing the connection when handle returns.
// The cleanup closes ln and waits for every handler: a test's peer server in a
// few lines (echo, a protocol stub).
func ServeConns(t testing.TB, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
