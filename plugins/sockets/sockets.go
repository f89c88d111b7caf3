// Package sockets is the `sockets` plugin (import module wasmsrv_sockets, ABI.md):
// outbound TCP and TLS connections from guests, so database and cache clients
// (PostgreSQL, Redis, SMTP) run inside apps. Deny by default: an app reaches only
// the destinations its allow list names (package netallow), checked on the
// address actually dialled after the host resolved the name, so loopback, private
// networks and cloud metadata services stay out of reach unless listed as IPs or
// CIDRs. TLS is done and verified by the host. Per app it caps open connections
// and, optionally, bytes per time window each way; every connection belongs to the
// instance that opened it and is closed when that instance is recycled, crashes or
// is discarded at a deadline.
//
// Sync instances block in read, write and connect, up to the connection's
// deadlines and never past the request deadline. Async instances never block: the
// host connects, reads and writes on its own goroutines and the guest waits for a
// PLUGIN event armed with notify (core ABI §8.6); wait blocks for the guest code
// that cannot wait for events (lifespan hooks, goroutines the Go SDK does not
// schedule).
package sockets

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/internal/netallow"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Version is the plugin ABI version (ABI.md).
const Version = "1.0"

// Defaults for apps without their own settings.
const (
	DefaultConnectTimeout = 10 * time.Second
	// DefaultMaxConns bounds an app's open connections across its instances.
	DefaultMaxConns = 64
	// DefaultMaxInstanceConns bounds the connections one instance holds, so a
	// guest that leaks them fills its own instance first (and recycling frees them).
	DefaultMaxInstanceConns = 16
	// DefaultBytesWindow is the window of max_bytes_in and max_bytes_out.
	DefaultBytesWindow = time.Minute
)

// Limits of the ABI (ABI.md): a guest length never sizes a host allocation beyond
// these.
const (
	maxAddrLen = 512
	maxNameLen = 253
	// chunk is the most one async read buffers and the most one async write
	// queues: the host keeps at most chunk bytes per direction per connection.
	chunk = 64 << 10
	// closeLinger is how long bytes an async guest queued before close are still
	// written.
	closeLinger = 5 * time.Second
)

// Flags of connect.
const (
	flagTLS  = 1
	flagIPv4 = 2
	flagIPv6 = 4
)

// Directions of set_deadline, notify and wait.
const (
	dirRead  = 1
	dirWrite = 2
)

// Config is the per-app section (ABI.md, "Configuration").
type Config struct {
	// Allow lists the destinations: name[:port], *.domain[:port], IP[:port], CIDR.
	Allow []string `json:"allow"`
	// ConnectTimeout bounds name resolution, connect and TLS handshake (10 s).
	ConnectTimeout plugins.Duration `json:"connect_timeout"`
	// MaxConns bounds the app's open connections (64).
	MaxConns int `json:"max_conns"`
	// MaxInstanceConns bounds the connections one instance holds (16).
	MaxInstanceConns int `json:"max_instance_conns"`
	// MaxBytesIn and MaxBytesOut bound the bytes the app reads and writes per
	// BytesWindow, over all its connections (0: no limit).
	MaxBytesIn  int64            `json:"max_bytes_in"`
	MaxBytesOut int64            `json:"max_bytes_out"`
	BytesWindow plugins.Duration `json:"bytes_window"`
	// TLSCA is a PEM file of the CAs TLS servers are verified against, instead of
	// the system roots.
	TLSCA string `json:"tls_ca"`
	// TLSServerName is the name certificates are verified against when the guest
	// names none (default: the host of the address it connects to).
	TLSServerName string `json:"tls_server_name"`
	// TLSInsecureSkipVerify turns certificate verification off: for test setups only.
	TLSInsecureSkipVerify bool `json:"tls_insecure_skip_verify"`
	// Group and GroupPerMinute bound the connects of a group of apps per
	// minute (a hosting tenant's outbound quota; ERR_QUOTA beyond).
	plugins.OutboundGroup
}

// Resolver looks host names up. *net.Resolver is one; tests inject their own.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options are the plugin's process-wide settings.
type Options struct {
	// Resolver resolves the names guests connect to (default net.DefaultResolver).
	Resolver Resolver
	// Outbound counts the groups' connects (group_per_minute); the binary
	// shares one with the http plugin. Nil: the plugin counts its own.
	Outbound *plugins.Outbound
}

// Plugin is the sockets plugin.
type Plugin struct {
	resolver Resolver
	out      *plugins.Outbound
	chunks   chunkPool // read-ahead buffers, shared by every app
}

// New returns the sockets plugin.
func New(opts Options) *Plugin {
	r := opts.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	out := opts.Outbound
	if out == nil {
		out = &plugins.Outbound{}
	}
	return &Plugin{resolver: r, out: out}
}

// Name implements plugins.Plugin.
func (*Plugin) Name() string { return "sockets" }

// Version implements plugins.Plugin.
func (*Plugin) Version() string { return Version }

// appSockets is one app's state: its policy and the counters of its limits.
type appSockets struct {
	allow          *netallow.List
	resolver       Resolver
	dialer         net.Dialer
	tls            *tls.Config // cloned per connection with its server name
	serverName     string
	connectTimeout time.Duration
	maxConns       int64
	maxInstConns   int
	open           atomic.Int64 // connections (and connects in progress) of the app
	outbound       *plugins.Outbound
	group          plugins.OutboundGroup
	in, out        budget
	chunks         *chunkPool
	log            *slog.Logger
}

// Open implements plugins.Plugin.
func (p *Plugin) Open(_ context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var cfg Config
	if err := app.Config.Decode(&cfg); err != nil {
		return nil, err
	}
	al, err := netallow.Parse(cfg.Allow)
	if err != nil {
		return nil, err
	}
	if err := cfg.OutboundGroup.Check(app.Name); err != nil {
		return nil, err
	}
	for _, v := range []struct {
		key string
		n   int64
	}{{"max_conns", int64(cfg.MaxConns)}, {"max_instance_conns", int64(cfg.MaxInstanceConns)},
		{"max_bytes_in", cfg.MaxBytesIn}, {"max_bytes_out", cfg.MaxBytesOut}} {
		if v.n < 0 {
			return nil, fmt.Errorf("%s: must be ≥ 0", v.key)
		}
	}
	a := &appSockets{
		allow: al, resolver: p.resolver, serverName: cfg.TLSServerName,
		connectTimeout: cfg.ConnectTimeout.D(DefaultConnectTimeout),
		maxConns:       int64(cfg.MaxConns), maxInstConns: cfg.MaxInstanceConns,
		chunks: &p.chunks, log: app.Logger.With("plugin", "sockets"),
		outbound: p.out, group: cfg.OutboundGroup,
	}
	if a.maxConns == 0 {
		a.maxConns = DefaultMaxConns
	}
	if a.maxInstConns == 0 {
		a.maxInstConns = DefaultMaxInstanceConns
	}
	window := cfg.BytesWindow.D(DefaultBytesWindow)
	a.in = budget{max: cfg.MaxBytesIn, window: window}
	a.out = budget{max: cfg.MaxBytesOut, window: window}
	a.dialer = net.Dialer{Control: a.control, KeepAlive: 30 * time.Second}
	a.tls = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.TLSInsecureSkipVerify}
	if cfg.TLSCA != "" {
		pem, err := os.ReadFile(cfg.TLSCA)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: %s holds no PEM certificate", cfg.TLSCA)
		}
		a.tls.RootCAs = pool
	}
	if cfg.TLSInsecureSkipVerify {
		a.log.Warn("TLS certificates of outbound connections are not verified (tls_insecure_skip_verify)")
	}
	s := plugins.Sig
	i32, i64 := plugins.I32, plugins.I64
	return &plugins.Binding{
		Funcs: []plugins.HostFunc{
			{Name: "connect", Params: s(i32, i32, i32, i32, i32, i64), Results: s(i64), Fn: a.hostConnect},
			{Name: "read", Params: s(i32, i32, i32), Results: s(i64), Fn: a.hostRead},
			{Name: "write", Params: s(i32, i32, i32), Results: s(i64), Fn: a.hostWrite},
			{Name: "shutdown", Params: s(i32), Results: s(i32), Fn: a.hostShutdown},
			{Name: "close", Params: s(i32), Results: s(i32), Fn: a.hostClose},
			{Name: "set_deadline", Params: s(i32, i32, i64), Results: s(i32), Fn: a.hostSetDeadline},
			{Name: "notify", Params: s(i32, i32, i32, i32), Results: s(i32), Fn: a.hostNotify},
			{Name: "wait", Params: s(i32, i32), Results: s(i32), Fn: a.hostWait},
			{Name: "starttls", Params: s(i32, i32, i32), Results: s(i32), Fn: a.hostStartTLS},
			{Name: "addr", Params: s(i32, i32, i32, i32), Results: s(i64), Fn: a.hostAddr},
		},
	}, nil
}

// errDenied marks a dial the allow list refused.
var errDenied = errors.New("address not allowed")

// control runs for every connection dialled, on the address itself: whatever
// resolved it, only an allowed address is ever connected to.
func (a *appSockets) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !a.allow.AllowsIP(ap.Addr(), int(ap.Port()), false) {
		return fmt.Errorf("%w: %s", errDenied, address)
	}
	return nil
}

// instance returns the calling instance's connections, trapping outside one.
func (a *appSockets) instance(ctx context.Context, fn string) *instSockets {
	in := plugins.InstanceFrom(ctx)
	if in == nil {
		plugins.Trap(fn, "called outside an instance")
	}
	if is, _ := in.Value(instKey{}).(*instSockets); is != nil {
		return is
	}
	return newInstSockets(ctx, a, in)
}

// conn returns the connection of handle h, trapping on an unknown one (SPEC §2).
func (is *instSockets) conn(fn string, h uint64) *sconn {
	is.mu.Lock()
	c := is.m[uint32(h)]
	is.mu.Unlock()
	if c == nil {
		plugins.Trap(fn, fmt.Sprintf("unknown socket handle %d", uint32(h)))
	}
	return c
}

// connect(addr, addr_len, flags, name, name_len, timeout_ns) -> i64
func (a *appSockets) hostConnect(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.connect"
	addrb := plugins.Region(fn, mod, stack[0], stack[1])
	flags := uint32(stack[2])
	nameb := plugins.Region(fn, mod, stack[3], stack[4])
	timeout := time.Duration(int64(stack[5]))
	is := a.instance(ctx, fn)
	if len(addrb) > maxAddrLen || len(nameb) > maxNameLen || flags&^(flagTLS|flagIPv4|flagIPv6) != 0 ||
		flags&(flagIPv4|flagIPv6) == flagIPv4|flagIPv6 || (len(nameb) > 0 && flags&flagTLS == 0) {
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
		return
	}
	t, status := a.target(string(addrb), string(nameb), flags)
	if status != 0 {
		stack[0] = plugins.Status(status)
		return
	}
	if timeout <= 0 || timeout > a.connectTimeout {
		timeout = a.connectTimeout
	}
	h, status := is.connect(ctx, t, timeout)
	if status != 0 {
		stack[0] = plugins.Status(status)
		return
	}
	stack[0] = uint64(h)
}

// read(h, buf, limit) -> i64
func (a *appSockets) hostRead(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.read"
	buf := plugins.Region(fn, mod, stack[1], stack[2])
	c := a.instance(ctx, fn).conn(fn, stack[0])
	stack[0] = c.read(buf)
}

// write(h, data, len) -> i64
func (a *appSockets) hostWrite(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.write"
	data := plugins.Region(fn, mod, stack[1], stack[2])
	c := a.instance(ctx, fn).conn(fn, stack[0])
	stack[0] = c.write(data)
}

// shutdown(h) -> i32
func (a *appSockets) hostShutdown(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.shutdown"
	c := a.instance(ctx, fn).conn(fn, stack[0])
	stack[0] = st32(c.shutdown())
}

// close(h) -> i32
func (a *appSockets) hostClose(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.close"
	is := a.instance(ctx, fn)
	c := is.conn(fn, stack[0])
	is.remove(c)
	c.close(true)
	stack[0] = 0
}

// set_deadline(h, which, timeout_ns) -> i32
func (a *appSockets) hostSetDeadline(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.set_deadline"
	c := a.instance(ctx, fn).conn(fn, stack[0])
	which := uint32(stack[1])
	if which == 0 || which&^(dirRead|dirWrite) != 0 {
		stack[0] = st32(pluginabi.ErrBadArgument)
		return
	}
	var t time.Time
	if ns := int64(stack[2]); ns >= 0 {
		t = time.Now().Add(time.Duration(ns))
	}
	c.setDeadline(which, t)
	stack[0] = 0
}

// notify(h, which, ctx, token) -> i32
func (a *appSockets) hostNotify(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.notify"
	is := a.instance(ctx, fn)
	c := is.conn(fn, stack[0])
	which := uint32(stack[1])
	if which != dirRead && which != dirWrite {
		stack[0] = st32(pluginabi.ErrBadArgument)
		return
	}
	w, ok := is.in.Waker(fn, stack[2], uint32(stack[3]))
	if !ok {
		stack[0] = st32(pluginabi.ErrUnsupported) // sync mode (calls block) or a hook
		return
	}
	c.arm(which, w)
	stack[0] = 0
}

// wait(h, which) -> i32
func (a *appSockets) hostWait(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.wait"
	c := a.instance(ctx, fn).conn(fn, stack[0])
	which := uint32(stack[1])
	if which != dirRead && which != dirWrite {
		stack[0] = st32(pluginabi.ErrBadArgument)
		return
	}
	stack[0] = st32(c.wait(ctx, which))
}

// starttls(h, name, name_len) -> i32
func (a *appSockets) hostStartTLS(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.starttls"
	nameb := plugins.Region(fn, mod, stack[1], stack[2])
	c := a.instance(ctx, fn).conn(fn, stack[0])
	if len(nameb) > maxNameLen {
		stack[0] = st32(pluginabi.ErrBadArgument)
		return
	}
	stack[0] = st32(c.startTLS(ctx, string(nameb)))
}

// addr(h, which, buf, limit) -> i64
func (a *appSockets) hostAddr(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_sockets.addr"
	plugins.Region(fn, mod, stack[2], stack[3])
	c := a.instance(ctx, fn).conn(fn, stack[0])
	which := uint32(stack[1])
	if which > 1 {
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
		return
	}
	s, status := c.addr(which == 1)
	if status != 0 {
		stack[0] = plugins.Status(status)
		return
	}
	stack[0] = plugins.Out(fn, mod, stack[2], stack[3], []byte(s))
}

func st32(code int32) uint64 { return uint64(uint32(code)) }
