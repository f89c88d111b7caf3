// Command testguest drives the sockets plugin for its tests, in both shapes (built
// with and without -tags wasmsrv_async): each path is one scenario against the
// test's line server, answered as plain text ("ERR_..." or "timeout" on error).
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/smtp"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/sockets"
)

// Kept across requests: the instance's pooled connection and the leaked ones.
var (
	pooled *bufConn
	leaked []net.Conn
)

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func errText(err error) string {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "timeout"
	}
	if errors.Is(err, net.ErrClosed) {
		return "closed"
	}
	var se sockets.Error
	if errors.As(err, &se) {
		s := se.Error()
		return s[strings.Index(s, "ERR_"):]
	}
	return err.Error()
}

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		q, _ := url.ParseQuery(r.RawQuery)
		out, err := route(r.Path, q)
		if err != nil {
			w.WriteHeader(502)
			w.WriteString(errText(err))
			return
		}
		w.WriteString(out)
	})
}

func dialer(q url.Values) *sockets.Dialer {
	return &sockets.Dialer{TLS: q.Get("tls") == "1", ServerName: q.Get("name")}
}

// line sends one line and reads one back.
func line(c net.Conn, rd *bufio.Reader, s string) (string, error) {
	if _, err := io.WriteString(c, s+"\n"); err != nil {
		return "", err
	}
	l, err := rd.ReadString('\n')
	return strings.TrimSuffix(l, "\n"), err
}

func route(path string, q url.Values) (string, error) {
	ctx := context.Background()
	addr := q.Get("addr")
	network := q.Get("net")
	if network == "" {
		network = "tcp"
	}
	switch path {
	case "/ping":
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return line(c, bufio.NewReader(c), "ping")

	case "/echo":
		// Writes n bytes from a second goroutine while reading them back: reads and
		// writes of one connection at once, and more than the host buffers. In the
		// sync shape a call blocks the whole instance, so the write goes first and
		// must fit in the socket buffers.
		n, _ := strconv.Atoi(q.Get("n"))
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		var werr error
		send := func() {
			_, werr = c.Write(data)
			if werr == nil {
				werr = c.(*sockets.Conn).CloseWrite()
			}
		}
		var wait func()
		if wasmsrv.Async {
			wait = goJoin(send)
		} else {
			send()
		}
		h := sha256.New()
		got, err := io.Copy(h, c)
		if err != nil {
			return "", err
		}
		if wait != nil {
			wait()
		}
		if werr != nil {
			return "", werr
		}
		want := sha256.Sum256(data)
		if got != int64(n) || hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want[:]) {
			return "", errors.New("echo mismatch: got " + strconv.FormatInt(got, 10) + " bytes")
		}
		return "ok " + strconv.FormatInt(got, 10), nil

	case "/pool":
		// One connection per instance, kept between requests.
		if pooled == nil {
			c, err := dialer(q).DialContext(ctx, network, addr)
			if err != nil {
				return "", err
			}
			pooled = &bufConn{Conn: c, r: bufio.NewReader(c)}
		}
		id, err := line(pooled, pooled.r, "id")
		if err != nil {
			pooled.Close()
			pooled = nil
		}
		return id, err

	case "/leak":
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		leaked = append(leaked, c)
		return strconv.Itoa(len(leaked)), nil

	case "/block":
		// Reads from a server that never answers, with no deadline: only the
		// request's own deadline ends it.
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		io.WriteString(c, "silent\n")
		_, err = c.Read(make([]byte, 1))
		return "read returned", err

	case "/deadline":
		ms, _ := strconv.Atoi(q.Get("ms"))
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		io.WriteString(c, "silent\n")
		c.SetReadDeadline(time.Now().Add(time.Duration(ms) * time.Millisecond))
		t0 := time.Now()
		_, err = c.Read(make([]byte, 1))
		if err == nil {
			return "", errors.New("read returned data")
		}
		// The connection stays usable after a deadline.
		c.SetReadDeadline(time.Time{})
		pong, err2 := line(c, bufio.NewReader(c), "ping")
		if err2 != nil {
			return "", err2
		}
		return errText(err) + " after " + time.Since(t0).Round(10*time.Millisecond).String() + ", then " + pong, nil

	case "/halfclose":
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		io.WriteString(c, "half\n")
		if err := c.(*sockets.Conn).CloseWrite(); err != nil {
			return "", err
		}
		if _, err := c.Write([]byte("x")); err == nil {
			return "", errors.New("write after CloseWrite succeeded")
		}
		b, err := io.ReadAll(c)
		return string(b), err

	case "/starttls":
		c, err := sockets.Dial(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		rd := bufio.NewReader(c)
		if ok, err := line(c, rd, "starttls"); err != nil || ok != "go ahead" {
			return "", errors.Join(errors.New("starttls refused: "+ok), err)
		}
		if err := c.(*sockets.Conn).StartTLS(ctx, q.Get("name")); err != nil {
			return "", err
		}
		return line(c, rd, "ping")

	case "/background":
		// A goroutine of a plain go statement dials and talks while the handler
		// waits on a channel, as connection pools do: it cannot park on events,
		// so it waits in the host.
		res := make(chan string, 1)
		go func() {
			c, err := dialer(q).DialContext(ctx, network, addr)
			if err != nil {
				res <- errText(err)
				return
			}
			defer c.Close()
			s, err := line(c, bufio.NewReader(c), "ping")
			if err != nil {
				s = errText(err)
			}
			res <- s
		}()
		return "background " + <-res, nil

	case "/close-while-reading":
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		io.WriteString(c, "silent\n")
		var rerr error
		wait := goJoin(func() { _, rerr = c.Read(make([]byte, 1)) })
		wasmsrv.Sleep(50 * time.Millisecond)
		c.Close()
		wait()
		return "reader got " + errText(rerr), nil

	case "/addrs":
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.LocalAddr().Network() + " " + c.RemoteAddr().String(), nil

	case "/smtp":
		// net/smtp over a connection of the host's.
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		host, _, _ := net.SplitHostPort(addr)
		sc, err := smtp.NewClient(c, host)
		if err != nil {
			c.Close()
			return "", err
		}
		defer sc.Close()
		if err := sc.Mail("app@example.com"); err != nil {
			return "", err
		}
		if err := sc.Rcpt("ops@example.com"); err != nil {
			return "", err
		}
		wc, err := sc.Data()
		if err != nil {
			return "", err
		}
		io.WriteString(wc, "Subject: hello\r\n\r\nsent from a guest\r\n")
		if err := wc.Close(); err != nil {
			return "", err
		}
		return "sent", sc.Quit()

	case "/rtt":
		// n round trips of a line on one connection (BenchmarkRoundTrip).
		n, _ := strconv.Atoi(q.Get("n"))
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		rd := bufio.NewReader(c)
		for range n {
			if _, err := line(c, rd, "ping"); err != nil {
				return "", err
			}
		}
		return "ok", nil

	case "/write":
		// Writes n bytes and closes: for the byte quota.
		n, _ := strconv.Atoi(q.Get("n"))
		c, err := dialer(q).DialContext(ctx, network, addr)
		if err != nil {
			return "", err
		}
		defer c.Close()
		written, err := c.Write(make([]byte, n))
		if err != nil {
			return strconv.Itoa(written) + " " + errText(err), nil
		}
		return strconv.Itoa(written), nil
	}
	return "", errors.New("no such path " + path)
}

// goJoin runs f on a goroutine the SDK schedules and returns a function that
// waits for it to end. The wait is a wasmsrv.Semaphore: in the async shape a
// connection must not wait on a channel for another goroutine that waits on the
// host, and a semaphore parks it the SDK's way.
func goJoin(f func()) (wait func()) {
	done := wasmsrv.NewSemaphore(1)
	done.Acquire()
	wasmsrv.Go(func() {
		defer done.Release()
		f()
	})
	return func() { done.Acquire(); done.Release() }
}

func main() {}
