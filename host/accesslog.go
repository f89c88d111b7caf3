package host

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/forwarded"
	"github.com/wasmsrv/wasmsrv/host/internal/reqlog"
	"github.com/wasmsrv/wasmsrv/internal/requestid"
)

// Access log formats (AccessLogConfig.Format).
const (
	// AccessLogRecords writes slog records through the server's logger: JSON or
	// text, as the logger's handler is.
	AccessLogRecords = "log"
	// AccessLogCombined writes Apache's and nginx's "combined" lines to Out, for
	// tools that read them (goaccess, awstats, fail2ban).
	AccessLogCombined = "combined"
)

// AccessLogConfig configures the access log of Observe.
type AccessLogConfig struct {
	// Off turns the records off; the request id is still taken or made and
	// passed on.
	Off bool
	// Format is AccessLogRecords (default) or AccessLogCombined.
	Format string
	// Out takes the combined lines (default: the logger's records are used
	// instead, so Out is required for AccessLogCombined).
	Out io.Writer
	// Query logs the query string too (it often carries tokens: off by default).
	Query bool
	// Trusted are the proxies whose X-Forwarded-For names the client.
	Trusted []netip.Prefix
	// Logger takes the records (default slog.Default()).
	Logger *slog.Logger
}

// AccessLog wraps h with one structured log record per request; see Observe.
func AccessLog(h http.Handler, log *slog.Logger) http.Handler {
	return Observe(h, AccessLogConfig{Logger: log})
}

// Observe wraps h with the request id and the access log. The request id is the
// client's X-Request-ID when it is valid (package requestid: bounded, safe
// characters), else a new one; it replaces the header on the request (so guests
// and upstream servers see it) and is set on the response. Then, unless Off, one
// record per request: time, client (through Trusted proxies), host, method, path,
// query (with Query), protocol, status, bytes in and out, duration, the app,
// route, upstream group and server that served it (see reqlog), user agent,
// referer and request id. A WebSocket is logged with status 101 when it is
// accepted and once more ("websocket closed") when it closes, with its duration
// and the bytes it carried. The recorder is pooled.
func Observe(h http.Handler, cfg AccessLogConfig) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Format == "" {
		cfg.Format = AccessLogRecords
	}
	if cfg.Format == AccessLogCombined && cfg.Out == nil {
		cfg.Format = AccessLogRecords
	}
	a := &accessLog{cfg: cfg}
	a.pool.New = func() any { return new(recorder) }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := requestid.Of(r.Header)
		ids := r.Header[requestid.Header]
		if len(ids) != 1 || ids[0] != id {
			ids = []string{id}
			r.Header[requestid.Header] = ids
		}
		rec := a.pool.Get().(*recorder)
		*rec = recorder{ResponseWriter: w, log: a, r: r, start: time.Now(), id: id, ids: ids}
		if r.Body != nil && r.Body != http.NoBody {
			// The handler gets a copy of the request with the counting body:
			// net/http must keep seeing its own body on its request, or it
			// cannot tell a body closed early and closes the connection with
			// the rest of the upload unread, a reset that can destroy the
			// answer in the client's receive queue (TestCTwins' 2 MiB
			// upload over a 1 MiB limit lost its 200 in 3 runs of 5). One
			// allocation for requests with a body; GETs have none.
			rec.body = countingBody{ReadCloser: r.Body, n: &rec.in}
			r2 := *r
			r2.Body = &rec.body
			r = &r2
			rec.r = r
		}
		defer a.done(rec)
		h.ServeHTTP(rec, r)
	})
}

type accessLog struct {
	cfg  AccessLogConfig
	pool sync.Pool
}

// done logs the request (unless a WebSocket's record went out at its upgrade)
// and returns the recorder to the pool.
func (a *accessLog) done(rec *recorder) {
	if !rec.logged && !a.cfg.Off {
		e := rec.entry(time.Now())
		a.write(rec.r.Context(), "request", &e)
	}
	*rec = recorder{}
	a.pool.Put(rec)
}

// entry is one access-log record.
type entry struct {
	time                         time.Time
	took                         time.Duration
	client                       netip.Addr
	host, method, path, query    string
	proto, ua, referer, id       string
	status                       int
	in, out                      int64
	app, route, upstream, server string
	wsClosed                     bool
}

func (rec *recorder) entry(now time.Time) entry {
	r := rec.r
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	path, query := splitRequestURI(r)
	e := entry{time: now, took: now.Sub(rec.start), client: forwarded.ClientIP(r, rec.log.cfg.Trusted),
		host: r.Host, method: r.Method, path: path, proto: r.Proto,
		ua: r.Header.Get("User-Agent"), referer: r.Header.Get("Referer"), id: rec.id,
		status: status, in: rec.in, out: rec.bytes,
		app: rec.fields.App, route: rec.fields.Route, upstream: rec.fields.Upstream, server: rec.fields.Server}
	if rec.log.cfg.Query {
		e.query = query
	}
	return e
}

func (a *accessLog) write(ctx context.Context, msg string, e *entry) {
	if a.cfg.Format == AccessLogCombined {
		if e.status == http.StatusSwitchingProtocols && !e.wsClosed {
			return // a WebSocket has one combined line, at its close (as nginx's)
		}
		a.combined(e)
		return
	}
	log := a.cfg.Logger
	if !log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	var buf [20]slog.Attr
	attrs := buf[:0]
	attrs = append(attrs, slog.String("client", e.client.String()), slog.String("host", e.host),
		slog.String("method", e.method), slog.String("path", e.path))
	if e.query != "" {
		attrs = append(attrs, slog.String("query", e.query))
	}
	attrs = append(attrs, slog.String("proto", e.proto), slog.Int("status", e.status),
		slog.Int64("bytes_in", e.in), slog.Int64("bytes_out", e.out), slog.Duration("took", e.took))
	for _, f := range [...]struct{ k, v string }{{"app", e.app}, {"route", e.route}, {"upstream", e.upstream},
		{"server", e.server}, {"user_agent", e.ua}, {"referer", e.referer}} {
		if f.v != "" {
			attrs = append(attrs, slog.String(f.k, f.v))
		}
	}
	attrs = append(attrs, slog.String("request_id", e.id))
	log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
}

// combined writes e as one line of the combined log format:
//
//	client - - [10/Oct/2000:13:55:36 -0700] "GET /a?b HTTP/1.1" 200 2326 "referer" "user agent"
//
// Quotes, backslashes, control bytes and non-ASCII in the request line, the
// referer and the user agent are written as \xHH, as nginx does, so a field
// cannot end early or a client start a line of its own.
func (a *accessLog) combined(e *entry) {
	bp := combinedBufs.Get().(*[]byte)
	b := (*bp)[:0]
	b = e.client.AppendTo(b)
	b = append(b, " - - ["...)
	b = e.time.AppendFormat(b, "02/Jan/2006:15:04:05 -0700")
	b = append(b, "] \""...)
	b = appendEscaped(b, e.method)
	b = append(b, ' ')
	b = appendEscaped(b, e.path)
	if e.query != "" {
		b = append(b, '?')
		b = appendEscaped(b, e.query)
	}
	b = append(b, ' ')
	b = appendEscaped(b, e.proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	b = append(b, ' ')
	if e.out == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, e.out, 10)
	}
	b = append(b, " \""...)
	b = appendOrDash(b, e.referer)
	b = append(b, "\" \""...)
	b = appendOrDash(b, e.ua)
	b = append(b, "\"\n"...)
	_, _ = a.cfg.Out.Write(b)
	*bp = b
	combinedBufs.Put(bp)
}

var combinedBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func appendOrDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return appendEscaped(b, s)
}

func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
			continue
		}
		b = append(b, c)
	}
	return b
}

// recorder captures status and size; Unwrap keeps http.ResponseController
// (Flush, deadlines) working through it. It is the request's reqlog.Fields.
type recorder struct {
	http.ResponseWriter
	log    *accessLog
	r      *http.Request
	start  time.Time
	id     string
	ids    []string // the request's X-Request-Id value: []string{id}
	status int
	bytes  int64
	in     int64
	body   countingBody
	fields reqlog.Fields
	// logged: the record went out at a WebSocket's upgrade.
	logged bool
	// idSet: the response carries the request id.
	idSet bool
}

// LogFields lets handlers name the app, route and upstream (package reqlog).
func (r *recorder) LogFields() *reqlog.Fields { return &r.fields }

// head sets the request id on the response, once, whatever the handler put there.
func (r *recorder) head(code int) {
	if !r.idSet && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.idSet = true
		// The request's own slice: one allocation less per request. A handler
		// that Adds to the header gets a new array (capacity 1).
		r.ResponseWriter.Header()[requestid.Header] = r.ids[:1:1]
	}
}

func (r *recorder) WriteHeader(code int) {
	// An interim response (100 Continue, 103 Early Hints) is not the answer:
	// the final status follows it.
	if r.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.status = code
	}
	r.head(code)
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.head(http.StatusOK)
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

// ReadFrom keeps net/http's sendfile path for static files when the access
// log is on: io.Copy finds no ReaderFrom on an embedded interface.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.head(http.StatusOK)
	var n int64
	var err error
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	}
	r.bytes += n
	return n, err
}

// Flush lets handlers that type-assert http.Flusher stream through the recorder.
func (r *recorder) Flush() {
	r.head(http.StatusOK)
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack hands the connection over (a WebSocket, an upgraded upstream
// connection) inside a wrapper that counts its bytes, logs the request when the
// 101 goes out (or at hijack, when the handler already wrote it) and once more
// when the connection closes.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// A proxy writes the 101 it relays with the writer's header (ReverseProxy):
	// the request id goes with it.
	r.head(http.StatusSwitchingProtocols)
	conn, brw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	hc := &hijackedConn{Conn: conn, log: r.log, ctx: context.WithoutCancel(r.r.Context())}
	hc.e = r.entry(time.Now())
	hc.start = r.start
	// Bytes the client sent behind the request head are in brw's buffer
	// already; the rest is read through hc.
	hc.in.Add(int64(brw.Reader.Buffered()))
	if r.status == http.StatusSwitchingProtocols {
		hc.opened()
	}
	r.logged = true // from here on the connection logs, not the request
	return hc, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(hc)), nil
}

// hijackedConn is a connection taken over from net/http.
type hijackedConn struct {
	net.Conn
	log     *accessLog
	ctx     context.Context
	start   time.Time
	e       entry
	in, out atomic.Int64
	// sawHead: the status line has been seen (or written before the hijack).
	sawHead   bool
	closeOnce sync.Once
}

// opened logs the upgrade (status 101).
func (c *hijackedConn) opened() {
	c.sawHead = true
	c.e.status = http.StatusSwitchingProtocols
	if !c.log.cfg.Off {
		e := c.e
		e.took = time.Since(c.start)
		c.log.write(c.ctx, "request", &e)
	}
}

func (c *hijackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

func (c *hijackedConn) Write(p []byte) (int, error) {
	if !c.sawHead {
		// The handler answers on the raw connection: its status line says
		// whether the upgrade happened ("HTTP/1.1 101 ...") or was refused.
		c.sawHead = true
		if len(p) >= 12 && string(p[:7]) == "HTTP/1." {
			if code, err := strconv.Atoi(string(p[9:12])); err == nil {
				if code == http.StatusSwitchingProtocols {
					c.sawHead = false
					c.opened()
				} else {
					c.e.status = code
				}
			}
		}
	}
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// Close logs the connection's end once: 101 (or the refusal's status), the
// whole duration and the bytes it carried after the handshake.
func (c *hijackedConn) Close() error {
	// Logged before the socket closes: once the client sees the end, the
	// record is out.
	c.closeOnce.Do(func() {
		if c.log.cfg.Off {
			return
		}
		e := c.e
		e.wsClosed = true
		e.took = time.Since(c.start)
		e.in, e.out = c.in.Load(), c.out.Load()
		msg := "websocket closed"
		if e.status != http.StatusSwitchingProtocols {
			msg = "request"
		}
		c.log.write(c.ctx, msg, &e)
	})
	return c.Conn.Close()
}

// Unwrap and SyscallConn let the WebSocket hub poll the socket underneath.
func (c *hijackedConn) Unwrap() net.Conn { return c.Conn }

func (c *hijackedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("connection has no file descriptor")
}

// CloseWrite half-closes, as a proxied upgraded connection may.
func (c *hijackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// countingBody counts the request body bytes the handler read.
type countingBody struct {
	io.ReadCloser
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	*b.n += int64(n)
	return n, err
}
