// Package http is the `http` plugin (import module wasmsrv_http, ABI.md): outbound
// HTTP requests from guests, to allow-listed hosts only. Deny by default; private
// and loopback addresses are refused unless listed as IPs or CIDRs. Every request
// has a timeout (never beyond the guest's own request deadline) and a response size
// limit. In sync mode send blocks until the response is read; in async mode it
// returns at once and notify arms a completion event (core EventPlugin).
package http

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	nethttp "net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero/api"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/framing"
	"github.com/wasmsrv/wasmsrv/internal/requestid"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/internal/netallow"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Version is the plugin ABI version (ABI.md). 1.1 added notify.
const Version = "1.1"

// Defaults for apps without their own settings.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxResponse = 4 << 20
	DefaultMaxRequest  = 4 << 20
	// DefaultMaxOpen is how many requests and responses one instance may hold
	// unclosed (an async instance's connections share it).
	DefaultMaxOpen = 256
	maxRedirects   = 5
)

// Config is the per-app section.
type Config struct {
	// Allow lists the hosts the app may reach (package netallow has the forms).
	Allow []string `json:"allow"`
	// Timeout bounds one request, connect to last body byte (default 10 s).
	Timeout plugins.Duration `json:"timeout"`
	// MaxResponse bounds the response body in bytes (default 4 MiB).
	MaxResponse int64 `json:"max_response"`
	// MaxRequest bounds the request body in bytes (default 4 MiB).
	MaxRequest int64 `json:"max_request"`
	// MaxOpen bounds the open handles per instance (default 256).
	MaxOpen int `json:"max_open"`
	// Group and GroupPerMinute bound the requests of a group of apps per
	// minute (a hosting tenant's outbound quota; ERR_QUOTA beyond).
	plugins.OutboundGroup
}

// Plugin is the http plugin. The zero value is ready.
type Plugin struct {
	// Outbound counts the groups' requests (group_per_minute); the binary
	// shares one with the sockets plugin. Nil: the plugin counts its own.
	Outbound *plugins.Outbound
	own      plugins.Outbound
}

// New returns the http plugin.
func New() *Plugin { return &Plugin{} }

// Name implements plugins.Plugin.
func (*Plugin) Name() string { return "http" }

// Version implements plugins.Plugin.
func (*Plugin) Version() string { return Version }

type appHTTP struct {
	allow       *netallow.List
	client      *nethttp.Client
	timeout     time.Duration
	maxResponse int64
	maxRequest  int64
	maxOpen     int
	out         *plugins.Outbound
	group       plugins.OutboundGroup
	log         *slog.Logger
}

// errDenied marks a dial or redirect refused by the allow list.
var errDenied = errors.New("host not allowed")

// Open implements plugins.Plugin.
func (p *Plugin) Open(_ context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var cfg Config
	if err := app.Config.Decode(&cfg); err != nil {
		return nil, err
	}
	if err := cfg.OutboundGroup.Check(app.Name); err != nil {
		return nil, err
	}
	a, tr, err := newApp(cfg, app.Logger.With("plugin", "http"))
	if err != nil {
		return nil, err
	}
	a.out, a.group = p.Outbound, cfg.OutboundGroup
	if a.out == nil {
		a.out = &p.own
	}
	s := plugins.Sig
	i32, i64 := plugins.I32, plugins.I64
	return &plugins.Binding{
		Funcs: []plugins.HostFunc{
			{Name: "send", Params: s(i32, i32, i32, i32), Results: s(i64), Fn: a.send},
			{Name: "response", Params: s(i32, i32, i32), Results: s(i64), Fn: a.response},
			{Name: "close", Params: s(i32), Results: s(i32), Fn: a.close},
			{Name: "notify", Params: s(i32, i32, i32), Results: s(i32), Fn: a.notify},
		},
		Close: func(context.Context) error { tr.CloseIdleConnections(); return nil },
	}, nil
}

// newApp is one app's outbound client: its allow list, limits and the transport
// that checks every address it dials.
func newApp(cfg Config, log *slog.Logger) (*appHTTP, *nethttp.Transport, error) {
	al, err := netallow.Parse(cfg.Allow)
	if err != nil {
		return nil, nil, err
	}
	a := &appHTTP{allow: al, timeout: cfg.Timeout.D(DefaultTimeout),
		maxResponse: cfg.MaxResponse, maxRequest: cfg.MaxRequest, log: log}
	if a.maxResponse <= 0 {
		a.maxResponse = DefaultMaxResponse
	}
	if a.maxRequest <= 0 {
		a.maxRequest = DefaultMaxRequest
	}
	a.maxOpen = cfg.MaxOpen
	if a.maxOpen <= 0 {
		a.maxOpen = DefaultMaxOpen
	}
	dialer := &net.Dialer{Timeout: a.timeout, Control: a.control}
	tr := &nethttp.Transport{
		Proxy:                  nil, // an environment proxy would bypass the allow list
		DialContext:            dialer.DialContext,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        60 * time.Second,
		TLSHandshakeTimeout:    a.timeout,
		ResponseHeaderTimeout:  a.timeout,
		MaxResponseHeaderBytes: 64 << 10,
		ForceAttemptHTTP2:      true,
	}
	a.client = &nethttp.Client{Transport: tr, CheckRedirect: a.checkRedirect}
	return a, tr, nil
}

// control runs for every connection the transport dials, after name resolution:
// the address actually dialled must pass, whatever DNS said.
func (a *appHTTP) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", errDenied, address)
	}
	if !a.allow.AllowsIP(ap.Addr(), int(ap.Port()), false) {
		return fmt.Errorf("%w: %s", errDenied, address)
	}
	return nil
}

func (a *appHTTP) checkRedirect(req *nethttp.Request, via []*nethttp.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if !a.allowsURL(req.URL) {
		return fmt.Errorf("%w: redirect to %s", errDenied, req.URL.Host)
	}
	return nil
}

func (a *appHTTP) allowsURL(u *url.URL) bool {
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return false
		}
		port = n
	}
	return a.allow.AllowsHost(u.Hostname(), port)
}

// handles are one instance's open responses, kept on the instance so they die with
// it even if the guest never closes them.
type handles struct {
	next uint32
	m    map[uint32]*pending
}

// pending is one outbound request: complete at once in sync mode, completed by a host
// goroutine in async mode (done is closed when out/status are set).
type pending struct {
	done   chan struct{}
	out    []byte
	status int32
	cancel context.CancelFunc

	// armed is the guest's notify, fired once when done closes.
	armed plugins.Notification
}

// complete publishes the outcome and fires the armed notification, if any.
func (p *pending) complete(out []byte, status int32) {
	p.out, p.status = out, status
	close(p.done)
	p.armed.Fire()
}

// arm sets the notification (replacing an earlier one) and fires it at once if
// the response is already complete.
func (p *pending) arm(w plugins.Waker) {
	p.armed.Arm(w)
	select {
	case <-p.done:
		p.armed.Fire()
	default:
	}
}

func (p *pending) disarm() { p.armed.Disarm() }

type handlesKey struct{}

func instHandles(ctx context.Context, fn string) (plugins.Instance, *handles) {
	in := plugins.InstanceFrom(ctx)
	if in == nil {
		plugins.Trap(fn, "called outside an instance")
	}
	h, _ := in.Value(handlesKey{}).(*handles)
	if h == nil {
		h = &handles{m: map[uint32]*pending{}}
		in.SetValue(handlesKey{}, h)
		// Requests still running when the instance goes are cancelled.
		in.OnClose(func() {
			for _, p := range h.m {
				p.cancel()
				p.disarm()
			}
		})
	}
	return in, h
}

// send(req, req_len, body, body_len) -> i64
func (a *appHTTP) send(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_http.send"
	reqb := plugins.Region(fn, mod, stack[0], stack[1])
	body := plugins.Region(fn, mod, stack[2], stack[3])
	in, hs := instHandles(ctx, fn)
	if len(hs.m) >= a.maxOpen {
		stack[0] = plugins.Status(pluginabi.ErrQuota)
		return
	}
	if int64(len(body)) > a.maxRequest {
		stack[0] = plugins.Status(pluginabi.ErrTooLarge)
		return
	}
	rctx, cancel := context.WithTimeout(ctx, a.timeout)
	req, status := a.decode(rctx, reqb, body)
	if status != 0 {
		cancel()
		stack[0] = plugins.Status(status)
		return
	}
	// A request that will be sent (well formed, its host allowed) counts
	// against the group's requests per minute.
	if a.out != nil && !a.out.Take(a.group, time.Now()) {
		cancel()
		a.log.Debug("request refused: the group is over its requests per minute", "group", a.group.Group, "group_per_minute", a.group.GroupPerMinute)
		stack[0] = plugins.Status(pluginabi.ErrQuota)
		return
	}
	// The outbound request carries the id of the inbound request it serves,
	// so the other side's logs can be joined with ours.
	if id := in.RequestID(); requestid.Valid(id) {
		requestid.Set(req.Header, id)
	}
	// The call continues the request's trace: a client span, its traceparent in
	// the outbound headers (replacing the guest's own, when traces are on).
	span := tracing.Client(in.RequestContext(), req.Method, req.Header,
		attribute.String("http.request.method", req.Method), attribute.String("server.address", req.URL.Host),
		attribute.String("url.full", req.URL.Redacted()))
	p := &pending{done: make(chan struct{}), cancel: cancel}
	if in.Async() {
		// An async instance's calls run on the goroutine of all its connections:
		// the request runs on its own, response() says ERR_WOULD_BLOCK until it
		// is done, and notify() asks for EventPlugin then (ABI.md, "Async mode").
		go func() {
			p.complete(a.do(req, span))
		}()
	} else {
		p.complete(a.do(req, span))
		cancel()
		if p.status != 0 {
			stack[0] = plugins.Status(p.status)
			return
		}
	}
	for {
		hs.next++
		if _, used := hs.m[hs.next]; hs.next != 0 && !used {
			break
		}
	}
	hs.m[hs.next] = p
	stack[0] = uint64(hs.next)
}

// decode parses the request block (ABI.md): method, URL, then header name/value
// items. The body is copied: the request outlives nothing, but the transport may
// read it on another goroutine.
func (a *appHTTP) decode(ctx context.Context, b, body []byte) (*nethttp.Request, int32) {
	method, b, ok1 := pluginabi.NextItem(b)
	rawURL, b, ok2 := pluginabi.NextItem(b)
	if !ok1 || !ok2 {
		return nil, pluginabi.ErrBadArgument
	}
	u, err := url.Parse(string(rawURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, pluginabi.ErrBadArgument
	}
	if !a.allowsURL(u) {
		a.log.Debug("outbound request denied", "host", u.Host)
		return nil, pluginabi.ErrDenied
	}
	m := string(method)
	if m == "" {
		m = nethttp.MethodGet
	}
	var rd io.Reader
	if len(body) > 0 {
		rd = strings.NewReader(string(body))
	}
	req, err := nethttp.NewRequestWithContext(ctx, m, u.String(), rd)
	if err != nil {
		return nil, pluginabi.ErrBadArgument
	}
	for len(b) > 0 {
		k, rest, ok1 := pluginabi.NextItem(b)
		v, rest, ok2 := pluginabi.NextItem(rest)
		if !ok1 || !ok2 {
			return nil, pluginabi.ErrBadArgument
		}
		b = rest
		name := nethttp.CanonicalHeaderKey(string(k))
		switch {
		case name == "Host":
			req.Host = string(v)
		case name == "Content-Length" || framing.IsHopByHop(name):
			// computed by the transport, or hop-by-hop
		default:
			req.Header.Add(name, string(v))
		}
	}
	return req, 0
}

// do performs req (its context carries the app's timeout) and encodes the response
// block; it ends span, req's client span.
func (a *appHTTP) do(req *nethttp.Request, span trace.Span) ([]byte, int32) {
	resp, err := a.client.Do(req)
	if err != nil {
		tracing.End(span, 0, err)
		return nil, a.classify(req, err)
	}
	defer tracing.End(span, resp.StatusCode, nil)
	defer resp.Body.Close()
	out := make([]byte, 8, 512)
	binary.LittleEndian.PutUint32(out, uint32(resp.StatusCode))
	var hs []abi.Header
	for k, vs := range resp.Header {
		for _, v := range vs {
			hs = append(hs, abi.Header{Name: strings.ToLower(k), Value: v})
		}
	}
	out = abi.AppendHeaderBlock(out, hs)
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	if resp.ContentLength > a.maxResponse {
		return nil, pluginabi.ErrTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, a.maxResponse+1))
	if err != nil {
		return nil, a.classify(req, err)
	}
	if int64(len(body)) > a.maxResponse {
		return nil, pluginabi.ErrTooLarge
	}
	return append(out, body...), 0
}

func (a *appHTTP) classify(req *nethttp.Request, err error) int32 {
	var ne net.Error
	switch {
	case errors.Is(err, errDenied):
		a.log.Debug("outbound request denied", "url", req.URL.Redacted(), "err", err)
		return pluginabi.ErrDenied
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return pluginabi.ErrTimeout
	case errors.Is(err, context.Canceled):
		return pluginabi.ErrTimeout
	}
	a.log.Debug("outbound request failed", "url", req.URL.Redacted(), "err", err)
	return pluginabi.ErrUnavailable
}

// response(h, buf, limit) -> i64
func (a *appHTTP) response(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_http.response"
	_, hs := instHandles(ctx, fn)
	p, ok := hs.m[uint32(stack[0])]
	if !ok {
		plugins.Trap(fn, fmt.Sprintf("unknown response handle %d", uint32(stack[0])))
	}
	select {
	case <-p.done:
	default:
		stack[0] = plugins.Status(pluginabi.ErrWouldBlock)
		return
	}
	if p.status != 0 {
		plugins.Region(fn, mod, stack[1], stack[2])
		stack[0] = plugins.Status(p.status)
		return
	}
	stack[0] = plugins.Out(fn, mod, stack[1], stack[2], p.out)
}

// close(h) -> i32
func (a *appHTTP) close(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_http.close"
	_, hs := instHandles(ctx, fn)
	p, ok := hs.m[uint32(stack[0])]
	if !ok {
		plugins.Trap(fn, fmt.Sprintf("unknown response handle %d", uint32(stack[0])))
	}
	p.cancel() // stops a request still running (async mode)
	p.disarm()
	delete(hs.m, uint32(stack[0]))
	stack[0] = 0
}

// notify(h, ctx, token) -> i32 (1.1): in async mode, arms a one-shot notification:
// EventPlugin with a = token is posted to connection ctx (0: to the instance) when
// the response of h is complete (or failed), at once if it already is.
func (a *appHTTP) notify(ctx context.Context, _ api.Module, stack []uint64) {
	const fn = "wasmsrv_http.notify"
	in, hs := instHandles(ctx, fn)
	p, ok := hs.m[uint32(stack[0])]
	if !ok {
		plugins.Trap(fn, fmt.Sprintf("unknown response handle %d", uint32(stack[0])))
	}
	w, ok := in.Waker(fn, stack[1], uint32(stack[2]))
	if !ok {
		stack[0] = plugins.Status(pluginabi.ErrUnsupported) // sync mode (send blocks) or a hook
		return
	}
	p.arm(w)
	stack[0] = 0
}
