package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/internal/framing"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// CommandRunner runs a WASI command once (runtime.CommandApp).
type CommandRunner interface {
	Run(ctx context.Context, cio runtime.CommandIO) error
}

// CGIConfig configures a CGI handler. Zero values take the defaults noted.
type CGIConfig struct {
	// App names the app in logs.
	App string
	// BodyLimit caps request bodies in bytes (413 beyond it); 0 means no limit.
	BodyLimit int64
	// RetryAfter is the Retry-After value, in seconds, sent with 503 (default 1).
	RetryAfter int
	// MaxHeaderBytes caps the CGI header section a command prints before its body
	// (default 64 KiB); a command that exceeds it gets 500.
	MaxHeaderBytes int
	// Buffer reads request bodies before the command starts (package bodybuf).
	Buffer bodybuf.Config
	// Argv is the command's argv as a WAGI/Spin template (DefaultArgv if
	// empty): whitespace-separated words where ${SCRIPT_NAME} is the request
	// path as sent and ${ARGS} the query's name=value pairs, one argument
	// each (as sent, not decoded).
	Argv string
	// Traced adds the queue wait and guest call spans to the span of a request
	// traced in front of the handler (ServerConfig.Tracer); false costs nothing.
	Traced bool
}

// DefaultArgv is WAGI's and Spin's argv template: the request path, then the
// query's pairs.
const DefaultArgv = "${SCRIPT_NAME} ${ARGS}"

// CGIArgv expands an argv template (CGIConfig.Argv) for r.
func CGIArgv(template string, r *http.Request) []string {
	if template == "" {
		template = DefaultArgv
	}
	rawPath, query := splitRequestURI(r)
	// The target holds no whitespace (the server's guard refuses it), so
	// splitting after the substitution splits the template's words and the
	// query's pairs only.
	s := strings.ReplaceAll(template, "${SCRIPT_NAME}", rawPath)
	s = strings.ReplaceAll(s, "${ARGS}", strings.ReplaceAll(query, "&", " "))
	return strings.Fields(s)
}

type matchedRouteKey struct{}

// WithMatchedRoute marks r as served by a route whose path prefix is prefix:
// CGI commands see it as X_MATCHED_ROUTE ("/api/..."), as WAGI and Spin's Wagi
// executor pass the route that matched. Without it the route is "/...".
func WithMatchedRoute(r *http.Request, prefix string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), matchedRouteKey{}, prefix))
}

// CGIHandler serves requests with a WASI command module run CGI-style (RFC 3875,
// WAGI semantics): request metadata as environment variables, the body on stdin, the
// response parsed from stdout (header lines such as Status, Content-Type and Location,
// a blank line, the body). Each request runs in a fresh instance. The head is held
// until the first body byte (or the command's exit), so a command that fails before
// writing any body still gets a 500. The body streams: what the command wrote is
// flushed to the client as soon as it pauses (sleeps or waits for its stdin) and at
// most cgiFlushDelay after the write, so a command that prints progressively
// streams, while one that prints its answer and exits costs one write to the
// socket (and a small answer gets a Content-Length).
type CGIHandler struct {
	app   CommandRunner
	cfg   CGIConfig
	log   *slog.Logger
	retry string
	bufs  bodybuf.Pool
}

// NewCGIHandler returns a handler serving requests with app.
func NewCGIHandler(app CommandRunner, cfg CGIConfig, log *slog.Logger) *CGIHandler {
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	return &CGIHandler{app: app, cfg: cfg, log: gatewayLog(log).With("app", cfg.App, "mode", "cgi"), retry: retryAfter(cfg.RetryAfter)}
}

// ServeHTTP implements http.Handler.
func (h *CGIHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if bodyOverLimit(w, r, h.cfg.BodyLimit) {
		return
	}
	body, ok := h.bufs.ReadAhead(w, r, h.cfg.Buffer, h.cfg.BodyLimit, h.log)
	if !ok {
		return
	}
	defer h.bufs.Release(body)
	rootPath := route.RootPath(r.Context()) // the route strips it (route.Mount)
	// One allocation for the request's stdin, stdout and the controller they share.
	run := &cgiRun{rc: *http.NewResponseController(w)}
	in, out, rc := &run.in, &run.out, &run.rc
	*in = cgiStdin{body: r.Body, limit: h.cfg.BodyLimit, out: out}
	*out = cgiStdout{w: w, rc: rc, max: h.cfg.MaxHeaderBytes, aborted: &in.aborted, method: r.Method, length: -1}
	abort := func() {
		// Cut off only what is blocked: a read deadline on an idle body would make
		// net/http cancel the request's context and hide the 504.
		in.aborted.Store(true)
		now := time.Now()
		if in.reading.Load() {
			_ = rc.SetReadDeadline(now)
		}
		if out.writing.Load() {
			_ = rc.SetWriteDeadline(now)
		}
	}
	cio := runtime.CommandIO{
		Env: CGIEnv(r, rootPath, localAddr(r.Context())), Args: CGIArgv(h.cfg.Argv, r), Stdin: in, Stdout: out, Abort: abort}
	var tc *tracing.Call
	if h.cfg.Traced {
		if tc = tracing.Begin(r.Context(), h.cfg.App); tc != nil {
			cio.Acquired = func() { tc.Acquired(0) }
		}
	}
	err := h.app.Run(r.Context(), cio)
	tc.End(err) // nil: not traced
	out.stop()
	if in.aborted.Load() {
		// Let the error response through; net/http does not reset these itself.
		_ = rc.SetReadDeadline(time.Time{})
		_ = rc.SetWriteDeadline(time.Time{})
	}
	if h.finish(w, r, in, out, err) {
		panic(http.ErrAbortHandler) // the head is out: the client must see the response is incomplete
	}
}

// finish answers after the command exited or failed; it reports whether the
// response must be cut.
func (h *CGIHandler) finish(w http.ResponseWriter, r *http.Request, in *cgiStdin, out *cgiStdout, err error) (cut bool) {
	if in.tooLarge && !out.sent {
		// The command may have failed on the refused read: the body is the cause.
		h.errorResponse(w, in, tooLargeAnswer, nil)
		return false
	}
	if out.parsed && out.fault == nil && err == nil {
		// The body ends here: it must be as long as the command declared.
		out.fault = checkLength(out.length, out.written, 0, true)
	}
	if out.fault != nil {
		h.log.Error("response body does not match its Content-Length", "err", out.fault, "method", r.Method, "path", r.URL.Path)
		if out.sent {
			return true
		}
		h.errorResponse(w, in, internalError, nil)
		return false
	}
	if err != nil {
		a := answerFor(err)
		logPoolError(h.log, a, err, r)
		if ge := (*runtime.GuestError)(nil); errors.As(err, &ge) {
			// One record per failed run: the error, then the guest's crash
			// report, wasm stack and stderr tail as attributes.
			h.log.Error("command failed", append(ge.LogAttrs(), "method", r.Method, "path", r.URL.Path)...)
		}
		if a.Status == 0 || out.sent {
			return out.sent
		}
		h.errorResponse(w, in, a, err)
		return false
	}
	if out.parsed && !out.sent {
		// A head with no body: it goes out now.
		out.commit()
		return false
	}
	if !out.sent {
		// Exited without finishing its header section.
		switch {
		case out.err != nil:
			h.log.Error("malformed CGI response", "err", out.err, "method", r.Method, "path", r.URL.Path)
		case len(out.head) == 0:
			h.log.Error("command wrote no CGI response on stdout", "method", r.Method, "path", r.URL.Path)
		default:
			h.log.Error("CGI response has no blank line after its headers", "method", r.Method, "path", r.URL.Path)
		}
		h.errorResponse(w, in, errorAnswer{Status: http.StatusInternalServerError, Body: "500 internal server error: the app sent no valid CGI response"}, nil)
	}
	return false
}

// errorResponse replaces whatever the command set with an error. When the request
// body was not read to its end (over the limit, or cut off at the deadline), the
// connection is closed after the reply: net/http would otherwise try to drain the
// rest of the body first, waiting on the very client that stalled.
func (h *CGIHandler) errorResponse(w http.ResponseWriter, in *cgiStdin, a errorAnswer, err error) {
	a.write(w, err, h.retry, in.tooLarge || in.aborted.Load())
}

// CGIEnv returns the RFC 3875 meta-variables for r, sorted by name. rootPath is the
// mount prefix (SCRIPT_NAME); localAddr is the "ip:port" the request arrived on.
//
// Besides the RFC's variables it sets REQUEST_URI, REQUEST_SCHEME, HTTPS,
// REMOTE_PORT, and WAGI's and Spin's: X_RAW_PATH_INFO (PATH_INFO still
// percent-encoded), X_FULL_URL (scheme, host and target as sent),
// X_MATCHED_ROUTE and X_RAW_COMPONENT_ROUTE (the route's prefix with "/...",
// WithMatchedRoute), X_COMPONENT_ROUTE (the prefix) and X_BASE_PATH ("/").
// Every request header becomes HTTP_<NAME> (upper case, '-' as '_', several values
// joined with ", "), except Content-Type and Content-Length (their own variables),
// Proxy (httpoxy: it would set HTTP_PROXY) and names with characters other than
// letters, digits and '-' (so "X_Foo" cannot pose as "X-Foo", as nginx refuses them).
func CGIEnv(r *http.Request, rootPath, localAddr string) []string {
	rawPath, query := splitRequestURI(r)
	if rootPath != "" {
		rawPath = strings.TrimPrefix(rawPath, rootPath)
		if rawPath == "" || rawPath[0] != '/' {
			rawPath = "/" + rawPath
		}
	}
	pathInfo, err := url.PathUnescape(rawPath)
	if err != nil || strings.IndexByte(pathInfo, 0) >= 0 {
		// Not valid percent-encoding, or a %00 that no environment can carry: pass
		// it as sent.
		pathInfo = rawPath
	}
	serverName, hostPort := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		serverName, hostPort = h, p
	}
	serverPort := hostPort
	if _, p, err := net.SplitHostPort(localAddr); err == nil {
		serverPort = p // RFC 3875 §4.1.15: the port the request was received on
	}
	remoteAddr, remotePort := r.RemoteAddr, ""
	if h, p, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		remoteAddr, remotePort = h, p
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// Every entry is appended to one buffer and sliced out of one string: two
	// allocations instead of one per variable.
	e := cgiEnvBuilder{buf: make([]byte, 0, 512+len(r.RequestURI)*3), ends: make([]int, 0, 24+len(r.Header))}
	e.add("GATEWAY_INTERFACE", "CGI/1.1")
	e.add("SERVER_SOFTWARE", "wasmsrv")
	e.add("SERVER_PROTOCOL", r.Proto)
	e.add("SERVER_NAME", serverName)
	e.add("SERVER_PORT", serverPort)
	e.add("REQUEST_METHOD", r.Method)
	e.add("REQUEST_URI", r.RequestURI)
	e.add("REQUEST_SCHEME", scheme)
	e.add("SCRIPT_NAME", rootPath)
	e.add("PATH_INFO", pathInfo)
	e.add("X_RAW_PATH_INFO", rawPath)
	e.add("QUERY_STRING", query)
	e.add("REMOTE_ADDR", remoteAddr)
	e.add("REMOTE_HOST", remoteAddr)
	e.add("REMOTE_PORT", remotePort)
	e.add("HTTP_HOST", r.Host)
	route, _ := r.Context().Value(matchedRouteKey{}).(string)
	route = strings.TrimSuffix(route, "/")
	e.add("X_MATCHED_ROUTE", route+"/...")
	e.add("X_RAW_COMPONENT_ROUTE", route+"/...")
	if route == "" {
		route = "/"
	}
	e.add("X_COMPONENT_ROUTE", route)
	e.add("X_BASE_PATH", "/")
	e.buf = append(e.buf, "X_FULL_URL="...)
	e.buf = append(append(append(e.buf, scheme...), "://"...), r.Host...)
	if r.RequestURI != "" && r.RequestURI[0] == '/' {
		e.buf = append(e.buf, r.RequestURI...)
	} else {
		e.buf = append(e.buf, r.URL.RequestURI()...)
	}
	e.ends = append(e.ends, len(e.buf))
	if r.TLS != nil {
		e.add("HTTPS", "on")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		e.add("CONTENT_TYPE", ct)
	}
	if r.ContentLength > 0 || r.ContentLength == 0 && r.Header.Get("Content-Length") != "" {
		e.buf = append(e.buf, "CONTENT_LENGTH="...)
		e.buf = strconv.AppendInt(e.buf, r.ContentLength, 10)
		e.ends = append(e.ends, len(e.buf))
	}
	for name, values := range r.Header {
		if !cgiHeaderName(name) {
			continue
		}
		switch name {
		case "Content-Type", "Content-Length", "Proxy", "Host":
			continue
		}
		sep := ", "
		if name == "Cookie" {
			sep = "; " // RFC 6265 §5.4: one Cookie field, pairs joined with "; "
		}
		e.buf = append(e.buf, "HTTP_"...)
		e.buf = appendCGIVarName(e.buf, name)
		e.buf = append(e.buf, '=')
		for i, v := range values {
			if i > 0 {
				e.buf = append(e.buf, sep...)
			}
			e.buf = append(e.buf, v...)
		}
		e.ends = append(e.ends, len(e.buf))
	}
	all := string(e.buf)
	env := make([]string, len(e.ends))
	at := 0
	for i, end := range e.ends {
		env[i], at = all[at:end], end
	}
	slices.Sort(env)
	return env
}

// cgiEnvBuilder collects "NAME=value" entries back to back.
type cgiEnvBuilder struct {
	buf  []byte
	ends []int // where each entry ends in buf
}

func (e *cgiEnvBuilder) add(name, value string) {
	e.buf = append(append(append(e.buf, name...), '='), value...)
	e.ends = append(e.ends, len(e.buf))
}

func cgiHeaderName(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return name != ""
}

// appendCGIVarName appends a header name as a CGI variable name: upper case, '-'
// as '_'.
func appendCGIVarName(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '-':
			c = '_'
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// cgiRun is the state of one request's run.
type cgiRun struct {
	in  cgiStdin
	out cgiStdout
	rc  http.ResponseController
}

// cgiStdin is the command's stdin: the request body, cut at the body limit.
type cgiStdin struct {
	body     io.Reader
	out      *cgiStdout // flushed before a read: the command is about to wait
	limit    int64
	read     int64
	tooLarge bool
	reading  atomic.Bool // a Read is blocked on the client
	aborted  atomic.Bool // the run is over: refuse further reads and writes
}

// errBodyTooLarge is what the command's read fails with past the body limit.
var errBodyTooLarge = errors.New("request body too large")

// errAborted is what I/O fails with once the run's deadline has passed.
var errAborted = errors.New("request deadline exceeded")

func (s *cgiStdin) Read(p []byte) (int, error) {
	if s.tooLarge {
		return 0, errBodyTooLarge
	}
	if s.body == nil {
		return 0, io.EOF
	}
	if s.limit > 0 && int64(len(p)) > s.limit-s.read+1 {
		p = p[:s.limit-s.read+1] // one byte past the limit tells "over" from "at"
	}
	if s.out != nil {
		_ = s.out.Flush()
	}
	// reading is published before aborted is checked, and abort does the reverse:
	// either this read sees the abort, or the abort sees this read and cuts it off.
	s.reading.Store(true)
	if s.aborted.Load() {
		s.reading.Store(false)
		return 0, errAborted
	}
	n, err := s.body.Read(p)
	s.reading.Store(false)
	s.read += int64(n)
	if s.limit > 0 && s.read > s.limit {
		s.tooLarge = true
		return 0, errBodyTooLarge
	}
	return n, err
}

// cgiFlushDelay bounds how long body bytes a command wrote may wait in net/http's
// buffer while the command keeps running without pausing (computing between two
// writes). A pause (sleep, stdin read) flushes at once, and a command that exits
// leaves the flush to net/http, which then sends a small body with a
// Content-Length in one write. Flushing on every write instead costs a hello
// command a second write syscall (the last chunk): about 15% of the server's CPU.
const cgiFlushDelay = 5 * time.Millisecond

// cgiStdout parses the command's stdout: the CGI header section (RFC 3875 §6),
// then the body, streamed to w.
type cgiStdout struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	max    int
	head   []byte // header section bytes until the blank line
	status int    // parsed from the header section
	parsed bool   // the header section is complete: status and w.Header() are set
	sent   bool   // the head went out (with the first body byte); errors now cut the response
	err    error  // a malformed header section; the rest of stdout is dropped
	method string // the request's: for HEAD, a declared length describes a body that is not sent
	// length is the Content-Length the command declared, which its body
	// must match (-1: none, or no body); written counts the body bytes;
	// fault is why the body broke its framing (the rest is dropped).
	length  int64
	written int64
	fault   error

	writing atomic.Bool  // a write to the client is in progress
	aborted *atomic.Bool // shared with the stdin side: the run is over

	// mu orders the use of w between the command's writes and the flush timer.
	mu      sync.Mutex
	pending bool // body bytes written but not flushed
	stopped bool // the run is over: the handler owns w again
	timer   *time.Timer
	armed   bool
}

// commit sends the parsed head.
func (o *cgiStdout) commit() {
	o.w.WriteHeader(o.status)
	o.sent = true
}

// send writes body bytes to the client; they are flushed when the command pauses,
// after cgiFlushDelay, or when the response ends.
func (o *cgiStdout) send(p []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writing.Store(true) // published before aborted is checked, as in cgiStdin.Read
	if o.aborted.Load() {
		o.writing.Store(false)
		return errAborted
	}
	if !o.sent {
		o.commit()
	}
	_, err := o.w.Write(p)
	o.writing.Store(false)
	if err != nil && !errors.Is(err, http.ErrBodyNotAllowed) {
		return err // the client is gone: the command's write fails
	}
	o.pending = true
	if !o.armed {
		o.armed = true
		if o.timer == nil {
			o.timer = time.AfterFunc(cgiFlushDelay, o.timerFlush)
		} else {
			o.timer.Reset(cgiFlushDelay)
		}
	}
	return nil
}

// Flush sends what the command wrote so far. The runtime calls it when the
// command sleeps (runtime.CommandIO), cgiStdin before a read.
func (o *cgiStdout) Flush() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.flushLocked()
}

func (o *cgiStdout) timerFlush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.armed = false
	_ = o.flushLocked() // a failure shows in the command's next write
}

func (o *cgiStdout) flushLocked() error {
	if !o.pending || o.stopped {
		return nil
	}
	o.writing.Store(true)
	if o.aborted.Load() {
		o.writing.Store(false)
		return errAborted
	}
	err := o.rc.Flush()
	o.writing.Store(false)
	o.pending = false
	return err
}

// stop ends the timer's use of w once the run is over; from then on only the
// handler writes (and net/http flushes what is left).
func (o *cgiStdout) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopped = true
	if o.timer != nil {
		o.timer.Stop()
	}
}

// errFraming is what the command's write fails with once its body broke
// its declared length.
var errFraming = errors.New("response body does not match its Content-Length")

// body sends body bytes, held to the declared length.
func (o *cgiStdout) body(p []byte) error {
	if o.fault != nil {
		return errFraming
	}
	if o.fault = checkLength(o.length, o.written, len(p), false); o.fault != nil {
		return errFraming
	}
	o.written += int64(len(p))
	if !bodyAllowed(int32(o.status)) {
		return nil // a 204 or 304 has no body: the bytes go nowhere
	}
	return o.send(p)
}

// Write implements io.Writer for the guest's stdout.
func (o *cgiStdout) Write(p []byte) (int, error) {
	if o.parsed {
		if len(p) == 0 {
			return 0, nil
		}
		if err := o.body(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if o.err != nil {
		return len(p), nil
	}
	start := max(len(o.head)-3, 0) // the blank line may straddle two writes
	// Copy no more than the header section may hold (plus its blank line), so a
	// command cannot make the host buffer an unbounded "header".
	take := min(len(p), max(o.max+3-len(o.head), 0))
	o.head = append(o.head, p[:take]...)
	end, bodyAt := headerEnd(o.head, start)
	if end < 0 || end > o.max {
		if end >= 0 || take < len(p) {
			o.err = fmt.Errorf("CGI header section over %d bytes", o.max)
		}
		return len(p), nil
	}
	if err := o.parseHead(o.head[:end]); err != nil {
		o.err = err
		return len(p), nil
	}
	head, rest := o.head[bodyAt:], p[take:]
	o.head = nil
	if len(head) > 0 && len(rest) > 0 {
		// One flush for one write of the command.
		head = append(head, rest...)
		rest = nil
	}
	for _, body := range [][]byte{head, rest} {
		if len(body) == 0 {
			continue
		}
		if err := o.body(body); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// headerEnd finds the blank line ending the header section, searching from start.
// Lines end with LF or CRLF. It returns the end of the header lines and where the
// body starts, or -1.
func headerEnd(b []byte, start int) (end, bodyAt int) {
	for i := start; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		// b[i] ends a line; is the next line empty?
		if i == 0 {
			return 0, 1 // no headers at all
		}
		if i == 1 && b[0] == '\r' {
			return 0, 2
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 1, i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 1, i + 3
		}
	}
	return -1, 0
}

// parseHead parses the header lines into the response head, which goes out with
// the first body byte (commit). The host's framing rules apply as to a guest's
// resp_start (guestHeaders): hop-by-hop fields and those a Connection line
// names are dropped, Content-Length lines must agree on one number.
func (o *cgiStdout) parseHead(block []byte) error {
	h := o.w.Header()
	status, location := 0, false
	length := framing.NoLength()
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return fmt.Errorf("CGI header line without a colon: %q", truncate(line))
		}
		value = bytes.TrimSpace(value)
		key := http.CanonicalHeaderKey(string(name))
		if !httpguts.ValidHeaderFieldName(key) || !httpguts.ValidHeaderFieldValue(string(value)) {
			return fmt.Errorf("invalid CGI header line %q", truncate(line))
		}
		switch key {
		case "Status":
			code, err := parseStatus(value)
			if err != nil {
				return err
			}
			status = code
			continue
		case "Location":
			location = true
		case "Content-Length":
			if err := length.Add(string(value)); err != nil {
				return err
			}
			continue
		}
		if framing.IsHopByHop(key) && key != "Connection" {
			continue
		}
		h.Add(key, string(value))
	}
	if len(h["Connection"]) > 0 {
		if framing.Listed(h["Connection"], "Content-Length") {
			return errors.New("CGI Connection line names Content-Length")
		}
		framing.RemoveHopByHop(h) // the fields Connection names, then Connection itself
	}
	if status == 0 {
		status = http.StatusOK
		if location {
			status = http.StatusFound // RFC 3875 §6.2.3: a Location alone redirects
		}
	}
	if length.N >= 0 && status != http.StatusNoContent {
		h["Content-Length"] = []string{length.Value()}
	}
	o.length = bodyLength(o.method, int32(status), length.N)
	o.status, o.parsed = status, true
	return nil
}

// parseStatus reads "404" or "404 Not Found". 1xx codes are refused: a command
// cannot send interim responses.
func parseStatus(v []byte) (int, error) {
	code, _, _ := bytes.Cut(v, []byte{' '})
	n, err := strconv.Atoi(string(code))
	if err != nil || len(code) != 3 || n < 200 {
		return 0, fmt.Errorf("invalid CGI Status %q", truncate(v))
	}
	return n, nil
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
