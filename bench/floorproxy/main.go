// Command floorproxy is a benchmark reference, not a product: the least a Go
// reverse proxy can do per request, to show where the floor lies for any
// proxy written in Go on the machine at hand. It forwards bodiless requests
// to one keep-alive upstream that frames its answers with Content-Length,
// adding X-Forwarded-For/-Proto; no routing, limits or header parsing beyond
// framing. Anything else gets 501 and a closed connection.
//
//	-mode goroutine  one goroutine per connection on Go's netpoller (the model
//	                 of net/http, and so of wasmsrv)
//	-mode epoll      one epoll event loop per core on raw syscalls (the model
//	                 of nginx), Linux only
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
)

// xff is what both modes add to a request head; the bench's client is on
// loopback.
const xff = "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n"

const notImplemented = "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

var (
	errFraming = errors.New("response without Content-Length")
	errHead    = errors.New("head too large")
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to listen on")
	upstream := flag.String("upstream", "127.0.0.1:8081", "upstream host:port")
	mode := flag.String("mode", "goroutine", "goroutine or epoll")
	conns := flag.Int("upstream-conns", 64, "keep-alive connections to the upstream")
	flag.Parse()
	var err error
	switch *mode {
	case "goroutine":
		err = serveGoroutines(*listen, *upstream, *conns)
	case "epoll":
		err = serveEpoll(*listen, *upstream, *conns)
	default:
		err = fmt.Errorf("-mode: want goroutine or epoll, got %q", *mode)
	}
	if err != nil {
		slog.Error("floorproxy", "err", err)
		os.Exit(1)
	}
}

// headEnd returns the length of the complete head at the start of b, or -1.
func headEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return -1
}

// header returns the value of the first header named name in head.
func header(head []byte, name string) ([]byte, bool) {
	for len(head) > 0 {
		i := bytes.IndexByte(head, '\n')
		if i < 0 {
			break
		}
		line := head[:i]
		head = head[i+1:]
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte(name)) {
			return bytes.TrimSpace(v), true
		}
	}
	return nil, false
}

// contentLength finds the Content-Length of a response head; -1 if absent.
func contentLength(head []byte) int {
	if v, ok := header(head, "Content-Length"); ok {
		if n, err := strconv.Atoi(string(v)); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}

// hasBody reports whether a request head announces a body.
func hasBody(head []byte) bool {
	if _, ok := header(head, "Transfer-Encoding"); ok {
		return true
	}
	return contentLength(head) > 0
}

// readHead reads one head from br (goroutine mode).
func readHead(br *bufio.Reader, dst []byte) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return dst, err
		}
		dst = append(dst, line...)
		if len(line) <= 2 {
			return dst, nil
		}
		if len(dst) > 16<<10 {
			return dst, errHead
		}
	}
}
