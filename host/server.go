// Package host is the HTTP side of wasmsrv: listeners (HTTP/1.1, h2c, TLS with h2),
// the gateway that runs a request on a guest through the ABI, access logs and
// graceful shutdown.
package host

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"

	//lint:ignore SA1019 net/http serves cleartext HTTP/2 with prior knowledge only; h2c also takes HTTP/1.1's Upgrade: h2c (curl --http2; cmd/wasmsrv TestE2EH2CUpgradeCurl)
	"golang.org/x/net/http2/h2c"

	"github.com/wasmsrv/wasmsrv/internal/framing"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
)

// ServerConfig configures a Server. Zero values take the defaults noted.
type ServerConfig struct {
	// Addr is the listen address (default 127.0.0.1:8080).
	Addr string
	// TLSCert and TLSKey are PEM files; with both set the server speaks TLS with
	// HTTP/2 negotiated by ALPN. Without them it speaks HTTP/1.1 and cleartext
	// HTTP/2 (h2c, by prior knowledge or Upgrade).
	TLSCert, TLSKey string
	// ReadHeaderTimeout cuts off clients that are slow to send headers (default 10 s).
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections (default 75 s, nginx's).
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request head; beyond it clients get 431 (default 64 KiB).
	MaxHeaderBytes int
	// ShutdownGrace is how long in-flight requests may take to finish on shutdown
	// (default 30 s, gunicorn's graceful_timeout).
	ShutdownGrace time.Duration
	// AccessLog writes one log record per request (see Observe; the request id
	// is taken or made either way).
	AccessLog bool
	// AccessLogFormat is AccessLogRecords (default: through the logger, JSON or
	// text) or AccessLogCombined (lines on AccessLogOut).
	AccessLogFormat string
	AccessLogOut    io.Writer
	// AccessLogQuery logs query strings too.
	AccessLogQuery bool
	// TrustedProxies are the peers whose X-Forwarded-For names the client in
	// the access log.
	TrustedProxies []netip.Prefix
	// DrainDelay is how long the server goes on accepting and serving after its
	// context ends, before it closes the listener and drains: the time a load
	// balancer needs to see the readiness probe fail and stop sending (0: none).
	DrainDelay time.Duration
	// MaxConnsPerIP caps the open TCP connections one client IP may hold, idle
	// keep-alive connections and WebSockets included; connections beyond it are
	// closed as they are accepted (0: no cap). Peers in ConnLimitExempt (trusted
	// proxies, which carry many clients) are not counted.
	MaxConnsPerIP   int
	ConnLimitExempt []netip.Prefix
	// Tracer, if set, traces every request: a server span (the client's W3C
	// traceparent honoured), whose context the handler's request carries and
	// whose traceparent replaces the request's. nil: no tracing, no cost.
	Tracer trace.TracerProvider
}

func (c *ServerConfig) defaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 75 * time.Second
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 30 * time.Second
	}
}

// Server serves one handler on one listener.
type Server struct {
	cfg  ServerConfig
	log  *slog.Logger
	http *http.Server
	sock *Socket
	tls  bool
	// detached: the socket was handed to a successor; Serve must not close it.
	detached atomic.Bool
	// accepting is Serve's view of the socket, which Detach closes: a server
	// that handed its socket over takes no connection after that.
	accepting atomic.Pointer[handle]
	// open counts accepted connections not yet closed or hijacked, for quiesce.
	open atomic.Int64
}

// NewServer builds a server around h.
func NewServer(cfg ServerConfig, h http.Handler, log *slog.Logger) *Server {
	cfg.defaults()
	if log == nil {
		log = slog.Default()
	}
	h = Observe(guard(h), AccessLogConfig{Off: !cfg.AccessLog, Format: cfg.AccessLogFormat, Out: cfg.AccessLogOut,
		Query: cfg.AccessLogQuery, Trusted: cfg.TrustedProxies, Logger: log})
	if cfg.Tracer != nil {
		h = tracing.Server(cfg.Tracer, h)
	}
	s := &Server{cfg: cfg, log: log, tls: cfg.TLSCert != "" || cfg.TLSKey != ""}
	if !s.tls {
		// h2c.NewHandler handles both prior-knowledge HTTP/2 and the HTTP/1.1
		// Upgrade: h2c dance; plain HTTP/1.1 requests pass straight through.
		//lint:ignore SA1019 see the import: net/http has no Upgrade: h2c, which clients such as curl --http2 use
		h = h2c.NewHandler(h2cUpgraded(h), &http2.Server{IdleTimeout: cfg.IdleTimeout, MaxReadFrameSize: 1 << 20})
		h = h2cUpgradeWithoutBody(h)
	}
	s.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		ConnState:         s.connState,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			// once per connection, so requests do not format the address each time
			return context.WithValue(ctx, localAddrKey{}, c.LocalAddr().String())
		},
	}
	return s
}

// Listen binds the listener. It validates the TLS files first, so a bad cert fails
// before anything is served.
func (s *Server) Listen() error {
	if err := s.loadTLS(); err != nil {
		return err
	}
	sock, err := Bind(s.cfg.Addr, s.log)
	if err != nil {
		return err
	}
	s.use(sock)
	return nil
}

// Adopt makes the server accept on a socket another Server bound (see Detach),
// instead of binding its own.
func (s *Server) Adopt(sock *Socket) error {
	if err := s.loadTLS(); err != nil {
		return err
	}
	s.use(sock)
	return nil
}

func (s *Server) use(sock *Socket) {
	sock.LimitPerIP(s.cfg.MaxConnsPerIP, s.cfg.ConnLimitExempt)
	s.sock = sock
}

// Detach hands the socket over: the server accepts no connection from it
// after Detach returns (they queue for the server that Adopts it), serves the
// ones it has until its context is cancelled, and then leaves the socket open.
func (s *Server) Detach() *Socket {
	s.detached.Store(true)
	if h := s.accepting.Load(); h != nil {
		h.Close()
	}
	return s.sock
}

// Socket is the bound socket (after Listen or Adopt).
func (s *Server) Socket() *Socket { return s.sock }

func (s *Server) loadTLS() error {
	if s.tls {
		if s.cfg.TLSCert == "" || s.cfg.TLSKey == "" {
			return errors.New("TLS needs both a certificate and a key file")
		}
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("TLS certificate: %w", err)
		}
		s.http.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return nil
}

// URL is the base URL the server answers on (valid after Listen).
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.sock.Addr().String()
}

// Serve serves until ctx is cancelled, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish within ShutdownGrace, then closes the
// remaining connections. The socket is closed too, unless it was Detached.
func (s *Server) Serve(ctx context.Context) error {
	ln := s.sock.handle(&s.open)
	// Stored before detached is read, as Detach does the reverse: either
	// Detach closes ln, or ln is closed here.
	s.accepting.Store(ln)
	if s.detached.Load() {
		ln.Close()
	}
	defer func() {
		if !s.detached.Load() {
			s.sock.Close()
		}
	}()
	errc := make(chan error, 1)
	go func() {
		if s.tls {
			errc <- s.http.ServeTLS(ln, "", "")
		} else {
			errc <- s.http.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		if !s.detached.Load() || !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		// Detached: accepting stopped, the connections accepted before go on
		// until the context ends, then shut down as below.
		errc <- err
		<-ctx.Done()
	case <-ctx.Done():
		if s.cfg.DrainDelay > 0 {
			// Readiness already says "draining": keep serving while load
			// balancers notice (Kubernetes' preStop sleep, built in).
			s.log.Info("draining: serving on until the load balancers see the readiness probe fail", "addr", s.URL(), "drain_delay", s.cfg.DrainDelay)
			t := time.NewTimer(s.cfg.DrainDelay)
			select {
			case <-t.C:
			case err := <-errc:
				t.Stop()
				errc <- err
			}
		}
	}
	s.log.Debug("listener draining", "addr", s.URL(), "grace", s.cfg.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownGrace)
	defer cancel()
	s.quiesce(sctx, ln)
	err := s.http.Shutdown(sctx)
	if err != nil {
		s.log.Warn("grace period over: closing remaining connections", "err", err)
		_ = s.http.Close()
		<-errc
		return ErrGraceExpired
	}
	<-errc
	return nil
}

// quiesce lets the server's connections end before Shutdown.
// http.Server.Shutdown drops, unanswered, a connection whose first request it
// reads after shutdown began, so a client that connected just before would
// fail (and on a reload that hands the socket over, many do). Instead: stop
// accepting, turn keep-alives off (idle connections close now, busy ones
// answer their request with "Connection: close"), and wait for the open
// connections to close on their own; Shutdown then finds nothing left but
// long streams and silent connections.
func (s *Server) quiesce(ctx context.Context, ln *handle) {
	ln.Close()
	if !s.detached.Load() {
		s.sock.Close()
	}
	s.http.SetKeepAlivesEnabled(false)
	if s.tls {
		// HTTP/2 over TLS learns of the stop from Shutdown's GOAWAY, which
		// also names the last stream served, so nothing is dropped there;
		// waiting here would hold idle h2 connections for the whole grace.
		return
	}
	// Busy connections answer and close; a connection that has sent nothing
	// within a couple of seconds (a browser's speculative preconnect) is left
	// to Shutdown, as are long streams, which it lets run until the grace ends.
	wait, done := context.WithTimeout(ctx, min(s.cfg.ReadHeaderTimeout, 2*time.Second))
	defer done()
	for s.open.Load() > 0 && wait.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// connState counts the server's open HTTP/1 connections (hijacked ones, such
// as WebSockets and h2c, are someone else's to close).
func (s *Server) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if sc, ok := c.(*sockConn); ok && sc.open.CompareAndSwap(true, false) {
		s.open.Add(-1)
	}
}

// ErrGraceExpired is returned by Serve when requests were still running at the end
// of the grace period and their connections were closed; the caller should stop
// the apps' remaining work at once rather than wait for it.
var ErrGraceExpired = errors.New("shutdown grace period expired with requests in flight")

// isH2CUpgrade reports whether h asks for an HTTP/1.1 Upgrade to h2c (RFC 7540 §3.2),
// as h2c.NewHandler decides it.
func isH2CUpgrade(h http.Header) bool {
	return httpguts.HeaderValuesContainsToken(h[textproto.CanonicalMIMEHeaderKey("Upgrade")], "h2c") &&
		httpguts.HeaderValuesContainsToken(h[textproto.CanonicalMIMEHeaderKey("Connection")], "HTTP2-Settings")
}

// h2cUpgradeWithoutBody declines the h2c Upgrade for requests with a body: the h2c
// package reads such a body whole into memory before switching protocols, past any
// body limit. Declining is allowed (the server may ignore Upgrade); the request is
// then served as HTTP/1.1 and its body streams as usual.
func h2cUpgradeWithoutBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.ProtoMajor == 1 && isH2CUpgrade(r.Header) {
			r.Header.Del("Upgrade")
			r.Header.Del("Http2-Settings")
		}
		h.ServeHTTP(w, r)
	})
}

// h2cUpgraded fixes the request that came with an h2c Upgrade: the h2c package
// serves it as stream 1 of the new HTTP/2 connection but passes the HTTP/1.1
// request unchanged, so handlers would see HTTP/1.1 and the hop-by-hop upgrade
// headers while the response goes out over HTTP/2.
func h2cUpgraded(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && isH2CUpgrade(r.Header) {
			r2 := r.WithContext(r.Context())
			r2.Proto, r2.ProtoMajor, r2.ProtoMinor = "HTTP/2.0", 2, 0
			r2.Header = r.Header.Clone()
			framing.RemoveHopByHop(r2.Header)
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

// guard checks every request before any handler (apps, CGI commands,
// upstreams, static files) sees it, for what net/http's HTTP/1 parser checks
// but its HTTP/2 server lets through: HTTP/2 carries the method, target and
// authority as free-form pseudo-header fields, and ":method GET /evil" would
// otherwise become the request line "GET /evil /a HTTP/1.1" to an upstream.
// It answers 400 to a method that is not a token, a target with whitespace,
// control bytes or DEL, and an authority that is not a valid Host.
//
// It also makes the connection close after a request whose framing a front
// proxy may have read differently (RFC 9112 §6.1): one framed by
// Transfer-Encoding (net/http drops a Content-Length sent with it without a
// trace, golang/go#80942) and any HTTP/1.0 request (net/http ignores and drops
// a Transfer-Encoding on HTTP/1.0, so a chunked body would be read as the
// next request). The cost: chunked uploads and HTTP/1.0 clients get no
// keep-alive.
func guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 {
			// net/http's parser already refused a bad method, target or Host.
			if r.ProtoMinor == 0 || len(r.TransferEncoding) > 0 {
				w = &closingWriter{ResponseWriter: w}
			}
		} else if !framing.IsToken(r.Method) || (r.RequestURI != "" && !framing.ValidTarget(r.RequestURI)) || !httpguts.ValidHostHeader(r.Host) {
			http.Error(w, "400 bad request: malformed method, path or authority", http.StatusBadRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// closingWriter makes the connection close after this response, whatever
// the handler does to the header before it writes the head.
type closingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (c *closingWriter) mark(code int) {
	if !c.wrote && code >= 200 {
		c.wrote = true
		c.ResponseWriter.Header().Set("Connection", "close")
	}
}

func (c *closingWriter) WriteHeader(code int) {
	c.mark(code)
	c.ResponseWriter.WriteHeader(code)
}

func (c *closingWriter) Write(p []byte) (int, error) {
	c.mark(http.StatusOK)
	return c.ResponseWriter.Write(p)
}

// ReadFrom keeps net/http's sendfile path for static files.
func (c *closingWriter) ReadFrom(src io.Reader) (int64, error) {
	c.mark(http.StatusOK)
	if rf, ok := c.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{c.ResponseWriter}, src)
}

// Flush lets handlers that type-assert http.Flusher stream through it.
func (c *closingWriter) Flush() {
	c.mark(http.StatusOK)
	_ = http.NewResponseController(c.ResponseWriter).Flush()
}

// Unwrap keeps http.ResponseController (Flush, Hijack, deadlines) working.
func (c *closingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
