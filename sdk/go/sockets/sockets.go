// Package sockets is the guest binding of the wasmsrv `sockets` plugin
// (plugins/sockets/ABI.md): outbound TCP and TLS connections as net.Conn values, to
// the destinations the operator allow-listed (`wasmsrv run --grant sockets
// --sockets-allow db.internal:5432`). Anything else fails with ErrDenied. Names are
// resolved by the host, TLS is done and verified by the host.
//
// Existing clients plug in through their dialer options:
//
//	// pgx (github.com/jackc/pgx/v5): the host resolves names, so pgx must not.
//	cfg.DialFunc = sockets.Dial
//	cfg.LookupFunc = sockets.LookupHost
//	// go-redis (github.com/redis/go-redis/v9)
//	redis.NewClient(&redis.Options{Addr: "cache:6379", Dialer: sockets.Dial})
//	// net/smtp, over TLS verified by the host
//	conn, err := sockets.DialTLS(ctx, "tcp", "smtp.example.com:465")
//	c, err := smtp.NewClient(conn, "smtp.example.com")
//
// In a sync app a call blocks its instance, up to the connection's deadlines and
// never past the request deadline. In an async app only the calling goroutine
// waits (the instance serves its other connections meanwhile): a connection's
// goroutine or one started with wasmsrv.Go parks on the host's completion event;
// other goroutines — a plain go statement in a library, such as a pool dialling
// in the background — and lifespan hooks wait in the host, which holds the
// instance for that wait. A pool kept in a package variable survives between
// requests in both shapes; in the async shape put a wasmsrv.Semaphore as wide as
// the pool in front of it (a pool's own wait for a free connection would deadlock
// the instance).
package sockets

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

// Error is a status returned by the host.
type Error int32

func (e Error) Error() string { return "sockets: " + pluginabi.StatusText(int32(e)) }

// Timeout reports whether the error is a deadline (net.Error).
func (e Error) Timeout() bool { return e == ErrTimeout }

// Temporary reports whether retrying later may help (net.Error, deprecated there).
func (e Error) Temporary() bool { return e == ErrTimeout || e == ErrUnavailable || e == ErrQuota }

// Errors the host returns. Dial, Read and Write wrap them in *net.OpError; a
// deadline is os.ErrDeadlineExceeded there, as in package net.
const (
	// ErrDenied: the destination is not on the app's allow list, or its name
	// resolves to an address that is not (loopback, private, metadata...).
	ErrDenied = Error(pluginabi.ErrDenied)
	// ErrQuota: the app (or this instance) holds as many connections as it may,
	// or spent its bytes for the current window.
	ErrQuota = Error(pluginabi.ErrQuota)
	// ErrUnavailable: resolving, connecting or the TLS handshake failed, or the
	// connection broke.
	ErrUnavailable = Error(pluginabi.ErrUnavailable)
	// ErrTimeout: a deadline passed (a connection's, the connect timeout, or the
	// request's).
	ErrTimeout = Error(pluginabi.ErrTimeout)
	// ErrBadArgument: a malformed address (host:port with a numeric port) or
	// server name.
	ErrBadArgument = Error(pluginabi.ErrBadArgument)
	// ErrState: not possible now (StartTLS on a TLS connection or with bytes
	// already read).
	ErrState = Error(pluginabi.ErrState)
)

// Flags and directions of the ABI.
const (
	flagTLS  = 1
	flagIPv4 = 2
	flagIPv6 = 4

	dirRead  = 1
	dirWrite = 2
)

// Dialer connects through the host. The zero Dialer makes plain TCP connections.
type Dialer struct {
	// TLS makes the host do a TLS handshake, verified against the system roots
	// or the CA the operator configured for the app.
	TLS bool
	// ServerName is the name the server's certificate is verified against (and
	// sent as SNI); default: the host of the address.
	ServerName string
	// Timeout bounds the connect, TLS handshake included. The app's
	// connect_timeout (10 s by default) bounds it too, and so does a deadline of
	// the context.
	Timeout time.Duration
}

// Dial connects to address ("host:port", numeric port) over network "tcp",
// "tcp4" or "tcp6". Its signature is pgx's DialFunc and go-redis's Dialer.
func Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d Dialer
	return d.DialContext(ctx, network, address)
}

// DialTLS is Dial with TLS done and verified by the host.
func DialTLS(ctx context.Context, network, address string) (net.Conn, error) {
	d := Dialer{TLS: true}
	return d.DialContext(ctx, network, address)
}

// LookupHost returns host unresolved: names are resolved by the host when it
// connects, where the allow list checks them and the addresses they resolve to.
// Its signature is pgx's LookupFunc, which must be set to it (pgx would resolve
// the name itself otherwise, and a guest has no resolver).
func LookupHost(_ context.Context, host string) ([]string, error) { return []string{host}, nil }

// DialContext connects to address over network ("tcp", "tcp4" or "tcp6").
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (d *Dialer) dial(ctx context.Context, network, address string) (*Conn, error) {
	var flags uint32
	switch network {
	case "tcp":
	case "tcp4":
		flags |= flagIPv4
	case "tcp6":
		flags |= flagIPv6
	default:
		return nil, &net.OpError{Op: "dial", Net: network, Err: net.UnknownNetworkError(network)}
	}
	if d.TLS {
		flags |= flagTLS
	}
	if err := ctx.Err(); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	timeout := d.Timeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.ErrDeadlineExceeded}
		}
		if timeout <= 0 || left < timeout {
			timeout = left
		}
	}
	h := connect(strPtr(address), uint32(len(address)), flags, strPtr(d.ServerName), uint32(len(d.ServerName)), int64(timeout))
	if h < 0 {
		return nil, &net.OpError{Op: "dial", Net: network, Err: statusErr(int32(h))}
	}
	c := &Conn{h: uint32(h), network: network}
	if err := c.settle("dial"); err != nil {
		closeHandle(c.h)
		return nil, err
	}
	// A Conn dropped without Close gives its connection back when it is
	// collected, as net's do; the host closes what is left with the instance.
	c.cleanup = runtime.AddCleanup(c, func(h uint32) { closeHandle(h) }, c.h)
	return c, nil
}

// Conn is a connection through the host. Its methods may be called from several
// goroutines, as net.Conn's.
type Conn struct {
	h       uint32
	network string
	closed  atomic.Bool
	cleanup runtime.Cleanup
	laddr   net.Addr
	raddr   net.Addr
}

// settle waits until a connect or TLS upgrade in progress (async shape) is done:
// a zero-length write answers 0 once it is, or its error.
func (c *Conn) settle(op string) error {
	for {
		switch rc := int32(write(c.h, nil, 0)); rc {
		case 0:
			return nil
		case pluginabi.ErrWouldBlock:
			if err := c.await(dirWrite, op); err != nil {
				return err
			}
		default:
			return c.opErr(op, statusErr(rc))
		}
	}
}

// notifyRead and notifyWrite are the plugin's notify per direction, in the shape
// wasmsrv.AwaitPlugin calls.
func notifyRead(h, ctx, token uint32) int32  { return notify(h, dirRead, ctx, token) }
func notifyWrite(h, ctx, token uint32) int32 { return notify(h, dirWrite, ctx, token) }

// await waits until the connection is ready for a direction: parked on the
// host's event where the goroutine can be (async shape), blocked in the host
// otherwise.
func (c *Conn) await(dir uint32, op string) error {
	nf := notifyRead
	if dir == dirWrite {
		nf = notifyWrite
	}
	rc := wasmsrv.AwaitPlugin(nf, c.h, -1)
	if rc == pluginabi.ErrUnsupported {
		rc = wait(c.h, dir)
	}
	if c.closed.Load() {
		return c.opErr(op, net.ErrClosed)
	}
	if rc != 0 {
		return c.opErr(op, statusErr(rc))
	}
	return nil
}

// Read reads up to len(b) bytes; io.EOF once the peer closed its side.
func (c *Conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opErr("read", net.ErrClosed)
	}
	if len(b) == 0 {
		return 0, nil
	}
	for {
		n := read(c.h, unsafe.Pointer(&b[0]), uint32(len(b)))
		switch {
		case n > 0:
			return int(n), nil
		case n == 0:
			return 0, io.EOF
		case n == int64(pluginabi.ErrWouldBlock):
			if err := c.await(dirRead, "read"); err != nil {
				return 0, err
			}
		default:
			return 0, c.opErr("read", statusErr(int32(n)))
		}
	}
}

// Write writes b whole, or returns an error with the count written.
func (c *Conn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	done := 0
	for done < len(b) {
		n := write(c.h, unsafe.Pointer(&b[done]), uint32(len(b)-done))
		switch {
		case n > 0:
			done += int(n)
		case n == int64(pluginabi.ErrWouldBlock):
			if err := c.await(dirWrite, "write"); err != nil {
				return done, err
			}
		case n == 0:
			return done, c.opErr("write", io.ErrShortWrite)
		default:
			return done, c.opErr("write", statusErr(int32(n)))
		}
	}
	return done, nil
}

// Close closes the connection; goroutines blocked in Read or Write return
// net.ErrClosed. Bytes already written are still sent.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return c.opErr("close", net.ErrClosed)
	}
	c.cleanup.Stop()
	closeHandle(c.h)
	return nil
}

// CloseWrite half-closes the connection: the peer reads the end of the stream
// after the bytes already written; reading goes on.
func (c *Conn) CloseWrite() error {
	if c.closed.Load() {
		return c.opErr("close", net.ErrClosed)
	}
	for {
		switch rc := shutdown(c.h); rc {
		case 0:
			return nil
		case pluginabi.ErrWouldBlock:
			if err := c.await(dirWrite, "close"); err != nil {
				return err
			}
		default:
			return c.opErr("close", statusErr(rc))
		}
	}
}

// StartTLS upgrades the connection to TLS, done and verified by the host
// (serverName "": the connected address, or the app's tls_server_name): for
// protocols that begin in plain text (SMTP's STARTTLS, PostgreSQL's SSLRequest).
// Nothing may have been read ahead of the handshake.
func (c *Conn) StartTLS(ctx context.Context, serverName string) error {
	if c.closed.Load() {
		return c.opErr("starttls", net.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return c.opErr("starttls", err)
	}
	for {
		switch rc := starttls(c.h, strPtr(serverName), uint32(len(serverName))); rc {
		case 0:
			return c.settle("starttls")
		case pluginabi.ErrWouldBlock:
			if err := c.await(dirWrite, "starttls"); err != nil {
				return err
			}
		default:
			return c.opErr("starttls", statusErr(rc))
		}
	}
}

// SetDeadline sets the read and write deadlines (zero: none). The host enforces
// them, so a blocked call returns at the deadline in both shapes.
func (c *Conn) SetDeadline(t time.Time) error { return c.setDeadline(dirRead|dirWrite, t) }

// SetReadDeadline sets the read deadline.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadline(dirRead, t) }

// SetWriteDeadline sets the write deadline.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(dirWrite, t) }

func (c *Conn) setDeadline(which uint32, t time.Time) error {
	if c.closed.Load() {
		return c.opErr("set deadline", net.ErrClosed)
	}
	ns := int64(-1)
	if !t.IsZero() {
		ns = max(0, int64(time.Until(t)))
	}
	if rc := setDeadline(c.h, which, ns); rc != 0 {
		return c.opErr("set deadline", statusErr(rc))
	}
	return nil
}

// LocalAddr returns the host's local address of the connection.
func (c *Conn) LocalAddr() net.Addr {
	if c.laddr == nil {
		c.laddr = c.fetchAddr(0)
	}
	return c.laddr
}

// RemoteAddr returns the address connected to.
func (c *Conn) RemoteAddr() net.Addr {
	if c.raddr == nil {
		c.raddr = c.fetchAddr(1)
	}
	return c.raddr
}

func (c *Conn) fetchAddr(which uint32) net.Addr {
	var buf [64]byte
	n := addr(c.h, which, unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if n < 0 || n > int64(len(buf)) || c.closed.Load() {
		return &net.TCPAddr{}
	}
	ap, err := netip.ParseAddrPort(string(buf[:n]))
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}

func (c *Conn) opErr(op string, err error) error {
	oe := &net.OpError{Op: op, Net: c.network, Err: err}
	if c.raddr != nil {
		oe.Addr = c.raddr
	}
	return oe
}

// statusErr turns a host status into the error net.Conn users expect.
func statusErr(rc int32) error {
	switch rc {
	case pluginabi.ErrTimeout:
		return os.ErrDeadlineExceeded
	case pluginabi.ErrClosed:
		return net.ErrClosed
	}
	return Error(rc)
}

func strPtr(s string) unsafe.Pointer {
	if s == "" {
		return nil
	}
	return unsafe.Pointer(unsafe.StringData(s))
}
