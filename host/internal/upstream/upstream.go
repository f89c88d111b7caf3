// Package upstream proxies requests to a group of existing HTTP servers:
// weighted round-robin, least-connections, power-of-two-choices or
// consistent (rendezvous) hashing; keep-alive connection reuse; passive
// ejection (max_fails within fail_timeout) and active health probes; safe
// retries under a budget; X-Forwarded-* handling; WebSocket pass-through.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"golang.org/x/net/http/httpguts"

	"github.com/wasmsrv/wasmsrv/host/internal/forwarded"
	"github.com/wasmsrv/wasmsrv/host/internal/reqlog"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/internal/framing"
	"github.com/wasmsrv/wasmsrv/internal/statuswriter"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
)

// Config describes one upstream group.
type Config struct {
	Name    string
	Servers []ServerConfig
	// Policy is "round_robin" (default), "least_conn", "p2c" or "hash".
	Policy string
	// HashKind is "ip", "header" or "cookie"; HashName names the header or
	// cookie. Requests without the key fall back to round-robin.
	HashKind, HashName string

	Keepalive             int           // idle connections kept per server
	ConnectTimeout        time.Duration // dial
	ResponseHeaderTimeout time.Duration // request sent → response head
	ReadTimeout           time.Duration // longest silence within a response body (0: none)
	MaxFails              int           // failures within FailTimeout that eject a server; 0 disables
	FailTimeout           time.Duration // the window, and how long an ejection lasts
	Retries               int           // extra attempts for idempotent, body-less requests
	RetryBudget           float64       // retries in flight ≤ max(3, budget × requests in flight)

	Health HealthConfig
	// Trusted lists the peers whose inbound X-Forwarded-* headers are kept.
	Trusted []netip.Prefix
	// Observer, if set, hears every attempt, ejection and retry (metrics).
	Observer Observer
}

// Observer hears what a group does; server is the index of the server in
// Config.Servers. It is called on the request path and must not block.
type Observer interface {
	// Attempt: one attempt on a server ended with a response head after took,
	// or failed (no response, or a 502/503/504 from it).
	Attempt(server int, took time.Duration, failed bool)
	// Ejected: the server's failures reached MaxFails.
	Ejected(server int)
	// Retried: the attempt just reported (Attempt) was a retry of a failed one.
	Retried()
}

// ServerConfig is one member.
type ServerConfig struct {
	URL    string
	Weight int
}

// Server is a member with its live state.
type Server struct {
	URL    *url.URL
	Weight int
	id     string
	addr   string // host:port to dial
	index  int    // in Config.Servers, for the Observer

	active atomic.Int64 // requests in flight, for least_conn and p2c
	down   atomic.Bool  // set by active health probes

	mu           sync.Mutex
	fails        int
	windowStart  time.Time
	ejectedUntil time.Time
}

// Active reports requests in flight.
func (s *Server) Active() int64 { return s.active.Load() }

func (s *Server) ejected(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Before(s.ejectedUntil)
}

// fail records a failure and reports whether it ejected the server.
func (s *Server) fail(now time.Time, maxFails int, window time.Duration) bool {
	if maxFails <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.windowStart) > window {
		s.windowStart, s.fails = now, 0
	}
	s.fails++
	if s.fails >= maxFails && !now.Before(s.ejectedUntil) {
		s.ejectedUntil = now.Add(window)
		s.fails = 0
		return true
	}
	return false
}

func (s *Server) restore() {
	s.mu.Lock()
	s.fails, s.ejectedUntil = 0, time.Time{}
	s.mu.Unlock()
}

// Group is an http.Handler proxying to its servers.
type Group struct {
	cfg     Config
	servers []*Server
	bal     balancer
	proxy   *httputil.ReverseProxy
	base    *http.Transport // https servers and health probes
	h1      *h1             // plain-HTTP servers
	log     *slog.Logger
	// allPlain: every server is plain HTTP, so requests without an Upgrade
	// take the lean path (lean.go) instead of ReverseProxy.
	allPlain  bool
	exchanges sync.Pool // *exchange, for the lean path

	inflight atomic.Int64
	retrying atomic.Int64

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New builds a group. Call Start to run active health probes and Close to
// release idle connections.
func New(cfg Config, log *slog.Logger) (*Group, error) {
	if len(cfg.Servers) == 0 {
		return nil, fmt.Errorf("upstream %q: no servers", cfg.Name)
	}
	g := &Group{cfg: cfg, log: log.With("upstream", cfg.Name)}
	g.exchanges.New = newExchange
	for i, sc := range cfg.Servers {
		u, err := url.Parse(sc.URL)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("upstream %q: server %d: bad URL %q", cfg.Name, i, sc.URL)
		}
		w := sc.Weight
		if w <= 0 {
			w = 1
		}
		g.servers = append(g.servers, &Server{URL: u, Weight: w, id: u.Host, addr: hostPort(u), index: i})
	}
	g.allPlain = true
	for _, s := range g.servers {
		g.allPlain = g.allPlain && s.URL.Scheme == "http"
	}
	switch cfg.Policy {
	case "", "round_robin":
		g.bal = newRoundRobin(g.servers)
	case "least_conn":
		g.bal = newLeastConn(g.servers)
	case "p2c":
		g.bal = &p2c{servers: g.servers}
	case "hash":
		g.bal = newRendezvous(g.servers)
	default:
		return nil, fmt.Errorf("upstream %q: unknown policy %q", cfg.Name, cfg.Policy)
	}
	keep := cfg.Keepalive
	if keep <= 0 {
		keep = 64
	}
	dial := &net.Dialer{Timeout: orDefault(cfg.ConnectTimeout, 5*time.Second), KeepAlive: 30 * time.Second}
	g.base = &http.Transport{
		Proxy:                  nil,
		DialContext:            dial.DialContext,
		MaxIdleConns:           keep * len(g.servers),
		MaxIdleConnsPerHost:    keep,
		IdleConnTimeout:        90 * time.Second,
		ResponseHeaderTimeout:  cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true, // pass Accept-Encoding and bodies through untouched
		MaxResponseHeaderBytes: 64 << 10,
	}
	g.h1 = newH1(dial.DialContext, keep, 90*time.Second, cfg.ResponseHeaderTimeout, cfg.ReadTimeout)
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		ModifyResponse: dropHopByHop,
		Transport:      (*attempts)(g),
		ErrorHandler:   g.errorHandler,
		BufferPool:     newBufferPool(),
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
	return g, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Name is the group's name.
func (g *Group) Name() string { return g.cfg.Name }

// Servers exposes the members (for admin status and tests).
func (g *Group) Servers() []*Server { return g.servers }

// ServeHTTP proxies r to one of the servers.
func (g *Group) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !forwardable(r) {
		// host.Server refuses these before any handler; a Group used on its
		// own must not write them into a request line either.
		http.Error(w, "400 bad request: malformed method, path or authority", http.StatusBadRequest)
		return
	}
	g.inflight.Add(1)
	defer g.inflight.Add(-1)
	// With traces on, a client span around the proxied request (its retries
	// included), whose traceparent the upstream receives.
	if span := tracing.Client(r.Context(), "upstream "+g.cfg.Name, r.Header,
		attribute.String("http.request.method", r.Method), attribute.String("wasmsrv.upstream", g.cfg.Name)); span.IsRecording() {
		sw := &statuswriter.Writer{ResponseWriter: w}
		defer func() { tracing.End(span, sw.Status(), nil) }()
		w = sw
	}
	if g.leanOK(r) {
		g.serveLean(w, r)
		return
	}
	if f := reqlog.Of(w); f != nil {
		// The transport picks the server; it learns where to name it here.
		r = r.WithContext(context.WithValue(r.Context(), logFieldsKey{}, f))
	}
	g.proxy.ServeHTTP(w, r)
}

// logFieldsKey carries the access log's fields to the transport (the
// ReverseProxy path; the lean path sets them directly).
type logFieldsKey struct{}

// Close stops health probes and closes idle upstream connections.
// Requests in flight finish on their own connections.
func (g *Group) Close() {
	if g.stop != nil {
		g.stop()
	}
	g.wg.Wait()
	g.base.CloseIdleConnections()
	g.h1.CloseIdleConnections()
}

func (g *Group) rewrite(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	// The transport fills in the real server; this marks the group.
	out.URL.Scheme = "http"
	out.URL.Host = g.cfg.Name
	out.Host = in.Host
	// ReverseProxy dropped the hop-by-hop fields of its own list, then set
	// Connection and Upgrade again for an upgrade and Te for trailers: drop
	// those that only wasmsrv's one list (framing) names, e.g. HTTP2-Settings.
	for k := range out.Header {
		if framing.IsHopByHop(k) && k != "Connection" && k != "Upgrade" && k != "Te" {
			delete(out.Header, k)
		}
	}
	forwarded.Set(out, in, g.cfg.Trusted)
	if p := route.RootPath(in.Context()); p != "" { // the mount point (route.Mount)
		out.Header.Set("X-Forwarded-Prefix", p)
	}
}

// dropHopByHop is ReverseProxy's ModifyResponse: after ReverseProxy's own
// list, the hop-by-hop fields only framing's list names go too (the lean
// path drops the same set). A 101 keeps its Connection and Upgrade: the
// upgrade needs them.
func dropHopByHop(res *http.Response) error {
	if res.StatusCode != http.StatusSwitchingProtocols {
		framing.RemoveHopByHop(res.Header)
	}
	return nil
}

func (g *Group) hashKey(r *http.Request) (string, bool) {
	switch g.cfg.HashKind {
	case "ip":
		a := forwarded.ClientIP(r, g.cfg.Trusted)
		return a.String(), a.IsValid()
	case "header":
		v := r.Header.Get(g.cfg.HashName)
		return v, v != ""
	case "cookie":
		c, err := r.Cookie(g.cfg.HashName)
		if err != nil || c.Value == "" {
			return "", false
		}
		return c.Value, true
	}
	return "", false
}

// attempts is the group's RoundTripper: it picks a server, and retries on
// another one when that is safe. It runs before ReverseProxy writes
// anything to the client, so a retry never follows a sent byte.
type attempts Group

// Error explains why no upstream answered; its text is the 502/504 body.
type Error struct {
	Group   string
	Tried   []string
	Err     error
	Timeout bool
}

func (e *Error) Error() string {
	if len(e.Tried) == 0 {
		return fmt.Sprintf("upstream group %q: no server available (all ejected or failing health checks)", e.Group)
	}
	return fmt.Sprintf("upstream group %q: tried %s: %v", e.Group, strings.Join(e.Tried, ", "), e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// forwardable reports whether r's method, target and Host can be written
// into an HTTP/1.1 request head unchanged (the path is escaped on the way
// out; the query and an opaque target are sent as they came).
func forwardable(r *http.Request) bool {
	return framing.IsToken(r.Method) && httpguts.ValidHostHeader(r.Host) &&
		(r.URL.RawQuery == "" || framing.ValidTarget(r.URL.RawQuery)) &&
		(r.URL.Opaque == "" || framing.ValidTarget(r.URL.Opaque))
}

// hasBody reports whether r has a body to send: an HTTP/2 request without
// one has a Body that is not http.NoBody, and a length of 0.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

func retryable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
	default:
		if r.Header.Get("Idempotency-Key") == "" {
			return false
		}
	}
	// The body of a proxied request is a stream we cannot replay.
	return !hasBody(r)
}

func (a *attempts) RoundTrip(req *http.Request) (*http.Response, error) {
	g := (*Group)(a)
	key, hasKey := "", false
	if g.cfg.Policy == "hash" {
		key, hasKey = g.hashKey(req)
	}
	canRetry := retryable(req) && req.Header.Get("Upgrade") == ""
	var body *clientBody
	if hasBody(req) {
		// Remember why reading the client's body failed: a body over the
		// limit or an aborted upload is the client's doing, not the server's.
		body = &clientBody{ReadCloser: req.Body}
		r2 := *req
		r2.Body = body
		req = &r2
	}
	var f filter
	var lastErr error
	timeout := false
	for attempt := 0; ; attempt++ {
		s := g.pickFor(key, hasKey, &f)
		if s == nil {
			return nil, &Error{Group: g.cfg.Name, Tried: f.names(), Err: lastErr, Timeout: timeout}
		}
		if lf, ok := req.Context().Value(logFieldsKey{}).(*reqlog.Fields); ok {
			lf.Server = s.URL.Host
		}
		start := time.Now()
		resp, err := g.send(req, s)
		if o := g.cfg.Observer; o != nil {
			o.Attempt(s.index, time.Since(start), err != nil || gatewayStatus(resp.StatusCode))
			if attempt > 0 {
				o.Retried()
			}
		}
		if err == nil && !gatewayStatus(resp.StatusCode) {
			return resp, nil
		}
		if body != nil && body.err != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, body.err
		}
		if req.Context().Err() != nil {
			// The client went away: not the server's fault.
			if resp != nil {
				return resp, nil
			}
			return nil, err
		}
		if err != nil {
			lastErr = err
			timeout = isTimeout(err)
		} else {
			lastErr = fmt.Errorf("%s answered %s", s.id, resp.Status)
		}
		if s.fail(time.Now(), g.cfg.MaxFails, orDefault(g.cfg.FailTimeout, 10*time.Second)) {
			g.log.Warn("upstream server ejected", "server", s.id, "err", lastErr, "for", g.cfg.FailTimeout)
			if o := g.cfg.Observer; o != nil {
				o.Ejected(s.index)
			}
		}
		if !canRetry || attempt >= g.cfg.Retries || !g.retryAllowed() {
			if resp != nil {
				return resp, nil // pass the upstream's own 502/503/504 on
			}
			return nil, &Error{Group: g.cfg.Name, Tried: f.names(), Err: lastErr, Timeout: timeout}
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		g.retrying.Add(1)
		defer g.retrying.Add(-1)
	}
}

// clientBody records the error of reading the client's request body.
type clientBody struct {
	io.ReadCloser
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// retryAllowed applies the budget: retries in flight may not exceed
// max(3, budget × requests in flight), so a failing group is not hammered.
func (g *Group) retryAllowed() bool {
	limit := int64(g.cfg.RetryBudget * float64(g.inflight.Load()))
	return g.retrying.Load() < max(3, limit)
}

func gatewayStatus(code int) bool { return code == 502 || code == 503 || code == 504 }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

func (g *Group) send(req *http.Request, s *Server) (*http.Response, error) {
	out := *req // shallow: only the URL differs per attempt
	u := *req.URL
	u.Scheme, u.Host = s.URL.Scheme, s.URL.Host
	if s.URL.Path != "" && s.URL.Path != "/" {
		u.Path = strings.TrimSuffix(s.URL.Path, "/") + u.Path
		u.RawPath = ""
	}
	out.URL = &u
	s.active.Add(1)
	var resp *http.Response
	var err error
	if u.Scheme == "http" {
		resp, err = g.h1.RoundTrip(&out)
	} else {
		resp, err = g.base.RoundTrip(&out)
	}
	if err != nil {
		s.active.Add(-1)
		return nil, err
	}
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		// WebSocket: ReverseProxy needs the ReadWriteCloser to tunnel.
		resp.Body = &trackedRWC{ReadWriteCloser: rwc, inFlight: inFlight{s: s}}
	} else {
		resp.Body = &trackedBody{ReadCloser: resp.Body, inFlight: inFlight{s: s}}
	}
	return resp, nil
}

// inFlight releases the server's in-flight count once.
type inFlight struct {
	s    *Server
	done atomic.Bool
}

func (f *inFlight) release() {
	if f.done.CompareAndSwap(false, true) {
		f.s.active.Add(-1)
	}
}

// trackedBody releases the server's in-flight count when the response ends;
// trackedRWC does for an upgraded connection (101).
type trackedBody struct {
	io.ReadCloser
	inFlight
}

func (b *trackedBody) Close() error {
	b.release()
	return b.ReadCloser.Close()
}

type trackedRWC struct {
	io.ReadWriteCloser
	inFlight
}

func (b *trackedRWC) Close() error {
	b.release()
	return b.ReadWriteCloser.Close()
}

func (g *Group) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // client gone; nobody to tell
	}
	code := http.StatusBadGateway
	var ue *Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		code = http.StatusRequestEntityTooLarge // a body limit tripped mid-stream
	case errors.As(err, &ue) && ue.Timeout || isTimeout(err):
		code = http.StatusGatewayTimeout
	}
	g.log.Warn("upstream failed", "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s\n%v\n", code, http.StatusText(code), err)
}

// bufferPool lends ReverseProxy its 32 KiB copy buffers.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

// Available reports whether the server may get requests now: not marked
// down by health probes and not ejected by passive checks.
func (s *Server) Available() bool { return !s.down.Load() && !s.ejected(time.Now()) }
