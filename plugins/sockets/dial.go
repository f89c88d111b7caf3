package sockets

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// target is a checked connect request: where, which family, and TLS.
type target struct {
	host       string // lower case name, or an IP literal
	ip         netip.Addr
	port       int
	network    string // "ip", "ip4" or "ip6": what the name may resolve to
	tls        bool
	serverName string
}

// target parses and checks a connect request before anything is resolved: the
// address form, the flags, and the allow list for the name or IP the guest gave.
func (a *appSockets) target(addr, name string, flags uint32) (target, int32) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return target{}, pluginabi.ErrBadArgument
	}
	port, err := strconv.Atoi(ps)
	if err != nil || port <= 0 || port > 65535 || ps[0] == '+' {
		return target{}, pluginabi.ErrBadArgument
	}
	t := target{host: strings.ToLower(strings.TrimSuffix(host, ".")), port: port, network: "ip", tls: flags&flagTLS != 0}
	switch {
	case flags&flagIPv4 != 0:
		t.network = "ip4"
	case flags&flagIPv6 != 0:
		t.network = "ip6"
	}
	if ip, err := netip.ParseAddr(t.host); err == nil {
		ip = ip.Unmap()
		if t.network == "ip4" && !ip.Is4() || t.network == "ip6" && !ip.Is6() {
			return target{}, pluginabi.ErrBadArgument
		}
		if !a.allow.AllowsIP(ip, port, true) {
			a.log.Debug("connect denied", "addr", addr)
			return target{}, pluginabi.ErrDenied
		}
		t.ip = ip
	} else if !validName(t.host) {
		return target{}, pluginabi.ErrBadArgument
	} else if !a.allow.AllowsHost(t.host, port) {
		a.log.Debug("connect denied", "addr", addr)
		return target{}, pluginabi.ErrDenied
	}
	if t.tls {
		t.serverName = name
		if t.serverName == "" {
			t.serverName = a.serverName
		}
		if t.serverName == "" {
			t.serverName = t.host
		}
	}
	return t, 0
}

// validName reports whether s is a DNS name (letters, digits, '-', '_', dots).
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// dial resolves t (on the host: the guest never sees or chooses the addresses),
// checks every address against the allow list, connects to the first allowed one
// that answers — by its IP, so a second lookup cannot move the connection — and
// does the TLS handshake if asked.
func (a *appSockets) dial(ctx context.Context, t target) (net.Conn, int32) {
	ips := []netip.Addr{t.ip}
	if !t.ip.IsValid() {
		found, err := a.resolver.LookupNetIP(ctx, t.network, t.host)
		if err != nil {
			a.log.Debug("connect: lookup failed", "host", t.host, "err", err)
			return nil, ctxStatus(ctx, err)
		}
		ips = ips[:0]
		for _, ip := range found {
			if a.allow.AllowsIP(ip, t.port, false) {
				ips = append(ips, ip.Unmap())
			} else {
				a.log.Debug("connect denied: the name resolves to an address that is not allowed", "host", t.host, "ip", ip)
			}
		}
		if len(ips) == 0 {
			return nil, pluginabi.ErrDenied
		}
	}
	var (
		conn    net.Conn
		lastErr error
	)
	for _, ip := range ips {
		c, err := a.dialer.DialContext(ctx, "tcp", netip.AddrPortFrom(ip, uint16(t.port)).String())
		if err == nil {
			conn = c
			break
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if conn == nil {
		a.log.Debug("connect failed", "host", t.host, "port", t.port, "err", lastErr)
		return nil, ctxStatus(ctx, lastErr)
	}
	if !t.tls {
		return conn, 0
	}
	tc, st := a.handshake(ctx, conn, t.serverName)
	if st != 0 {
		_ = conn.Close()
		return nil, st
	}
	return tc, 0
}

// handshake runs a TLS client handshake over conn, verified as the app's config
// says.
func (a *appSockets) handshake(ctx context.Context, conn net.Conn, serverName string) (*tls.Conn, int32) {
	cfg := a.tls.Clone()
	cfg.ServerName = serverName
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		var verr *tls.CertificateVerificationError
		if errors.As(err, &verr) {
			// The operator's concern (a CA to configure), not only the guest's.
			a.log.Warn("TLS certificate of an outbound connection not accepted", "server_name", serverName, "err", err)
		} else {
			a.log.Debug("TLS handshake failed", "server_name", serverName, "err", err)
		}
		return nil, ctxStatus(ctx, err)
	}
	return tc, 0
}

// status maps a Go error to the ABI status a guest sees.
func status(err error) int32 {
	var ne net.Error
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errDenied):
		return pluginabi.ErrDenied
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled), errors.As(err, &ne) && ne.Timeout():
		return pluginabi.ErrTimeout
	case errors.Is(err, net.ErrClosed):
		return pluginabi.ErrClosed
	}
	return pluginabi.ErrUnavailable
}

// ctxStatus is status for an operation under ctx: whatever the error says, a
// context that ended (the connect timeout, the instance's deadline) is a timeout.
func ctxStatus(ctx context.Context, err error) int32 {
	if err != nil && ctx.Err() != nil {
		return pluginabi.ErrTimeout
	}
	return status(err)
}

// closeWrite half-closes a stream: TLS close_notify first, then the TCP FIN.
func closeWrite(conn net.Conn) error {
	if tc, ok := conn.(*tls.Conn); ok {
		if err := tc.CloseWrite(); err != nil {
			return err
		}
		conn = tc.NetConn()
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// isEOF reports a clean end of stream.
func isEOF(err error) bool { return err == io.EOF }

// budget is one direction's byte allowance per window, shared by the app's
// connections. max 0 means no limit and costs nothing.
type budget struct {
	max    int64
	window time.Duration

	mu    sync.Mutex
	start time.Time
	used  int64
}

// reserve takes up to n bytes of the current window and returns how many it took
// (0: the window is spent).
func (b *budget) reserve(n int) int {
	if b.max == 0 {
		return n
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if now := time.Now(); now.Sub(b.start) >= b.window {
		b.start, b.used = now, 0
	}
	room := b.max - b.used
	if room <= 0 {
		return 0
	}
	if int64(n) > room {
		n = int(room)
	}
	b.used += int64(n)
	return n
}

// refund gives back bytes reserved and not used.
func (b *budget) refund(n int) {
	if b.max == 0 || n <= 0 {
		return
	}
	b.mu.Lock()
	b.used = max(0, b.used-int64(n))
	b.mu.Unlock()
}
