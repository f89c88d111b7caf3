package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/wasmsrv/wasmsrv/host/internal/forwarded"
	"github.com/wasmsrv/wasmsrv/host/internal/reqlog"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/internal/framing"
)

// The lean path proxies a plain request (no Upgrade) to a plain-HTTP server
// without httputil.ReverseProxy: the outbound head is written straight from
// the inbound header map (no clone of the request and its headers), and the
// response head is parsed into a pooled map and moved into the client's
// header map (no http.Response). It keeps ReverseProxy's semantics: hop-by-hop
// headers dropped both ways (RFC 9110 §7.6.1), X-Forwarded-* set, TE:
// trailers passed, trailers relayed, bodies of unknown length flushed as they
// come, an upstream failure mid-body aborting the client's response rather
// than ending it cleanly. Upgrades and https servers take ReverseProxy.

// leanOK reports whether r can take the lean path.
func (g *Group) leanOK(r *http.Request) bool {
	return g.allPlain && len(r.Header["Upgrade"]) == 0 && r.Method != http.MethodConnect
}

// exchange is one attempt's response head and the connection it came on;
// pooled, so a request allocates little beyond the client's header values.
type exchange struct {
	status     int
	proto1_0   bool
	hdr        http.Header
	length     int64 // -1: unknown
	chunked    bool
	noBody     bool
	closeAfter bool // the connection cannot carry another request

	pc   *pconn
	addr string
	stop func() bool // unhooks the request's cancellation from pc
	buf  []byte      // body copy buffer
	tmp  []byte      // formatting scratch
	vals []byte      // header values being read
	lim  io.LimitedReader

	filter filter // the attempts' server filter
}

func newExchange() any {
	return &exchange{hdr: make(http.Header, 8), buf: make([]byte, 32<<10), tmp: make([]byte, 0, 64), vals: make([]byte, 0, 1024)}
}

func (g *Group) getExchange() *exchange { return g.exchanges.Get().(*exchange) }

func (ex *exchange) reset() {
	clear(ex.hdr)
	ex.status, ex.proto1_0, ex.length, ex.chunked, ex.noBody, ex.closeAfter = 0, false, -1, false, false, false
	ex.pc, ex.addr, ex.stop = nil, "", nil
}

func (g *Group) putExchange(ex *exchange) {
	if len(ex.hdr) > 64 {
		ex.hdr = make(http.Header, 8) // do not keep a giant map around
	}
	ex.reset()
	g.exchanges.Put(ex)
}

// serveLean is ServeHTTP's lean path: pick, send, retry when safe, relay.
func (g *Group) serveLean(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key, hasKey := "", false
	if g.cfg.Policy == "hash" {
		key, hasKey = g.hashKey(r)
	}
	canRetry := retryable(r)
	var body *clientBody
	if hasBody(r) {
		body = &clientBody{ReadCloser: r.Body}
	}
	ex := g.getExchange()
	defer g.putExchange(ex)
	f := &ex.filter // in the pooled exchange: the balancer interface would make a local escape
	*f = filter{}
	var lastErr error
	timeout := false
	lf := reqlog.Of(w)
	for attempt := 0; ; attempt++ {
		s := g.pickFor(key, hasKey, f)
		if s == nil {
			g.errorHandler(w, r, &Error{Group: g.cfg.Name, Tried: f.names(), Err: lastErr, Timeout: timeout})
			return
		}
		if lf != nil {
			lf.Server = s.URL.Host
		}
		ex.reset()
		s.active.Add(1)
		var start time.Time
		if g.cfg.Observer != nil {
			start = time.Now()
		}
		err := g.h1.send(ctx, r, s, body, g, ex)
		if o := g.cfg.Observer; o != nil {
			o.Attempt(s.index, time.Since(start), err != nil || gatewayStatus(ex.status))
			if attempt > 0 {
				o.Retried()
			}
		}
		if err == nil && !gatewayStatus(ex.status) {
			g.relay(w, r, s, ex)
			return
		}
		if body != nil && body.err != nil {
			g.endAttempt(s, ex)
			g.errorHandler(w, r, body.err)
			return
		}
		if ctx.Err() != nil {
			// The client went away: not the server's fault.
			if err == nil {
				g.relay(w, r, s, ex)
			} else {
				g.endAttempt(s, ex)
			}
			return
		}
		if err != nil {
			lastErr = err
			timeout = isTimeout(err)
		} else {
			lastErr = fmt.Errorf("%s answered %d %s", s.id, ex.status, http.StatusText(ex.status))
		}
		if s.fail(time.Now(), g.cfg.MaxFails, orDefault(g.cfg.FailTimeout, 10*time.Second)) {
			g.log.Warn("upstream server ejected", "server", s.id, "err", lastErr, "for", g.cfg.FailTimeout)
			if o := g.cfg.Observer; o != nil {
				o.Ejected(s.index)
			}
		}
		if !canRetry || attempt >= g.cfg.Retries || !g.retryAllowed() {
			if err == nil {
				g.relay(w, r, s, ex) // pass the upstream's own 502/503/504 on
				return
			}
			g.endAttempt(s, ex)
			g.errorHandler(w, r, &Error{Group: g.cfg.Name, Tried: f.names(), Err: lastErr, Timeout: timeout})
			return
		}
		if err == nil {
			g.h1.drain(ex)
		}
		g.endAttempt(s, ex)
		g.retrying.Add(1)
		defer g.retrying.Add(-1)
	}
}

// pickFor chooses the next server for an attempt; nil when none is left.
func (g *Group) pickFor(key string, hasKey bool, f *filter) *Server {
	f.now, f.allowEjected = time.Now(), false
	s := g.bal.pick(key, hasKey, f)
	if s == nil {
		// Everything is ejected: like nginx, try the ejected ones rather
		// than fail outright (passive marks can be stale).
		f.allowEjected = true
		s = g.bal.pick(key, hasKey, f)
	}
	if s != nil && f.nTried < len(f.tried) {
		f.tried[f.nTried] = s
		f.nTried++
	}
	return s
}

func (f *filter) names() []string {
	names := make([]string, f.nTried)
	for i, s := range f.tried[:f.nTried] {
		names[i] = s.id
	}
	return names
}

// endAttempt gives up an attempt's connection (if any) and its in-flight mark.
func (g *Group) endAttempt(s *Server, ex *exchange) {
	g.h1.finish(ex, false)
	s.active.Add(-1)
}

// relay sends ex's response to the client: head, then body, then the
// connection back to the pool.
func (g *Group) relay(w http.ResponseWriter, r *http.Request, s *Server, ex *exchange) {
	defer s.active.Add(-1)
	h := w.Header()
	// Trailer is hop-by-hop, but it tells the client which trailers follow
	// (relayed after the body): it stays.
	trailers := ex.hdr["Trailer"]
	framing.RemoveHopByHop(ex.hdr)
	if trailers != nil {
		ex.hdr["Trailer"] = trailers
	}
	for k, vv := range ex.hdr {
		if len(h[k]) == 0 {
			h[k] = vv // the values were allocated for this response: hand them over
		} else {
			h[k] = append(h[k], vv...)
		}
	}
	w.WriteHeader(ex.status)
	if ex.noBody {
		g.h1.finish(ex, true)
		return
	}
	t := g.h1
	var err error
	var n int64
	switch {
	case !ex.chunked && ex.length >= 0 && int(ex.length) <= ex.pc.br.Buffered():
		// The whole body is already buffered: write it from there.
		var b []byte
		b, err = ex.pc.br.Peek(int(ex.length))
		if err == nil {
			_, err = w.Write(b)
			ex.pc.br.Discard(len(b))
		}
	case !ex.chunked && ex.length >= 0:
		ex.lim = io.LimitedReader{R: deadlineReader{t, ex.pc}, N: ex.length}
		n, err = io.CopyBuffer(writerOnly{w}, &ex.lim, ex.buf)
		if err == nil && n < ex.length {
			err = io.ErrUnexpectedEOF
		}
	case ex.chunked:
		// The chunked reader must read pc.br itself (given anything else it
		// adds its own buffer and reads past the body); the read timeout is
		// armed before each read instead.
		err = copyFlushing(w, httputil.NewChunkedReader(ex.pc.br), ex.buf, t.arm(ex.pc))
		if err == nil {
			err = readTrailers(ex.pc.br, h, trailers)
		}
	default:
		// Delimited by the server closing the connection.
		err = copyFlushing(w, ex.pc.br, ex.buf, t.arm(ex.pc))
		ex.closeAfter = true
	}
	if err != nil {
		t.finish(ex, false)
		if r.Context().Err() == nil {
			g.log.Warn("upstream response cut", "server", s.id, "path", r.URL.Path, "err", err)
		}
		// Headers are out: abort the client's response, so it is not taken
		// as complete (net/http resets the stream or closes the connection).
		panic(http.ErrAbortHandler)
	}
	t.finish(ex, true)
}

// writerOnly hides ReadFrom: a ResponseWriter's ReadFrom would sniff and
// copy with its own small buffer.
type writerOnly struct{ io.Writer }

// copyFlushing copies a body of unknown length, flushing each piece as
// it arrives (SSE, streaming APIs).
func copyFlushing(w http.ResponseWriter, src io.Reader, buf []byte, arm func()) error {
	rc := http.NewResponseController(w)
	for {
		arm()
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return werr
			}
			if ferr := rc.Flush(); ferr != nil && !errors.Is(ferr, http.ErrNotSupported) {
				return ferr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// arm returns what re-arms pc's read timeout before a body read.
func (t *h1) arm(pc *pconn) func() {
	return func() {
		if t.readTimeout > 0 {
			pc.conn.SetReadDeadline(time.Now().Add(t.readTimeout))
		}
	}
}

// deadlineReader reads the response body, re-arming the read timeout on
// every read (the longest silence allowed within a body).
type deadlineReader struct {
	t  *h1
	pc *pconn
}

func (d deadlineReader) Read(p []byte) (int, error) {
	if d.t.readTimeout > 0 {
		d.pc.conn.SetReadDeadline(time.Now().Add(d.t.readTimeout))
	}
	return d.pc.br.Read(p)
}

// readTrailers reads the trailer section after the last chunk and hands
// the announced (or any) fields to the client as trailers.
func readTrailers(br *bufio.Reader, h http.Header, announced []string) error {
	tp := textproto.NewReader(br)
	tr, err := tp.ReadMIMEHeader()
	if err != nil {
		return err
	}
	for k, vv := range tr {
		if framing.IsHopByHop(k) {
			continue
		}
		if framing.Listed(announced, k) {
			// Announced in Trailer: net/http sends it as a trailer as is.
			h[k] = vv
			continue
		}
		for _, v := range vv {
			h.Add(http.TrailerPrefix+k, v)
		}
	}
	return nil
}

// send writes r to s on a pooled (or new) connection and reads the response
// head into ex. A reused connection the server closed meanwhile is retried
// once on a fresh one when the request can be replayed.
func (t *h1) send(ctx context.Context, r *http.Request, s *Server, body *clientBody, g *Group, ex *exchange) error {
	replay := body == nil
	for try := 0; ; try++ {
		pc, reused, err := t.conn(ctx, s.addr, try, replay)
		if err != nil {
			return err
		}
		err = t.exchangeLean(ctx, r, s, body, g, ex, pc)
		if err == nil {
			ex.pc, ex.addr = pc, s.addr
			return nil
		}
		if !t.failed(ctx, s.addr, pc, reused, err, try, replay) {
			return err
		}
	}
}

func (t *h1) exchangeLean(ctx context.Context, r *http.Request, s *Server, body *clientBody, g *Group, ex *exchange, pc *pconn) error {
	// Cancelling the request (client gone, deadline) unblocks any read or
	// write on the connection, which is then not reused.
	// It stays hooked while relay reads the body; finish unhooks it.
	stop := context.AfterFunc(ctx, pc.poison)
	if err := t.exchangeHead(ctx, r, s, body, g, ex, pc); err != nil {
		stop()
		return err
	}
	ex.stop = stop
	return nil
}

func (t *h1) exchangeHead(ctx context.Context, r *http.Request, s *Server, body *clientBody, g *Group, ex *exchange, pc *pconn) error {
	if err := g.writeHead(pc.bw, r, s, body != nil, ex); err != nil {
		return err
	}
	if body != nil {
		if err := writeBody(pc.bw, r, body, ex.buf); err != nil {
			return err
		}
	}
	if err := pc.bw.Flush(); err != nil {
		return err
	}
	if t.headTimeout > 0 {
		pc.conn.SetReadDeadline(time.Now().Add(t.headTimeout))
	}
	// Wait for the first byte on its own, so a stale keep-alive connection
	// shows as EOF (see staleConn).
	if _, err := pc.br.Peek(1); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("upstream request: %w", ctx.Err())
		}
		return err
	}
	for {
		if err := readHead(pc.br, ex); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("upstream request: %w", ctx.Err())
			}
			return err
		}
		// Interim answers (100 Continue, 103 Early Hints) precede the real one.
		if ex.status >= 200 {
			break
		}
		if ex.status == http.StatusSwitchingProtocols {
			return errors.New("upstream switched protocols without being asked")
		}
		clear(ex.hdr)
	}
	if t.headTimeout > 0 {
		pc.conn.SetReadDeadline(time.Time{})
	}
	return ex.frame(r.Method)
}

// writeHead writes the request line and headers for s.
func (g *Group) writeHead(bw *bufio.Writer, r *http.Request, s *Server, hasBody bool, ex *exchange) error {
	bw.WriteString(r.Method)
	bw.WriteByte(' ')
	if p := s.URL.Path; p != "" && p != "/" {
		bw.WriteString(strings.TrimSuffix(p, "/"))
	}
	if r.URL.Opaque != "" {
		bw.WriteString(r.URL.Opaque)
	} else if ep := r.URL.EscapedPath(); ep != "" {
		bw.WriteString(ep)
	} else {
		bw.WriteByte('/')
	}
	if r.URL.ForceQuery || r.URL.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(r.URL.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(r.Host)
	bw.WriteString("\r\n")
	conn := r.Header["Connection"]
	for k, vv := range r.Header {
		if skipOutbound(k) || (len(conn) > 0 && framing.Listed(conn, k)) {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if httpguts.HeaderValuesContainsToken(r.Header["Te"], "trailers") {
		bw.WriteString("Te: trailers\r\n")
	}
	g.writeForwarded(bw, r, ex)
	if hasBody {
		if r.ContentLength > 0 {
			bw.WriteString("Content-Length: ")
			bw.Write(strconv.AppendInt(ex.tmp[:0], r.ContentLength, 10))
			bw.WriteString("\r\n")
		} else {
			bw.WriteString("Transfer-Encoding: chunked\r\n")
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// writeForwarded writes X-Forwarded-For/-Proto/-Host (and -Prefix) like
// forwarded.Set, without building a header map.
func (g *Group) writeForwarded(bw *bufio.Writer, r *http.Request, ex *exchange) {
	peer := forwarded.Peer(r.RemoteAddr)
	trusted := forwarded.Trusted(peer, g.cfg.Trusted)
	bw.WriteString("X-Forwarded-For: ")
	if prior := r.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
		for _, v := range prior {
			bw.WriteString(v)
			bw.WriteString(", ")
		}
	}
	bw.Write(peer.AppendTo(ex.tmp[:0]))
	bw.WriteString("\r\nX-Forwarded-Proto: ")
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	if v := r.Header.Get("X-Forwarded-Proto"); trusted && v != "" {
		proto = v
	}
	bw.WriteString(proto)
	bw.WriteString("\r\nX-Forwarded-Host: ")
	host := r.Host
	if v := r.Header.Get("X-Forwarded-Host"); trusted && v != "" {
		host = v
	}
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if p := route.RootPath(r.Context()); p != "" {
		bw.WriteString("X-Forwarded-Prefix: ")
		bw.WriteString(p)
		bw.WriteString("\r\n")
	}
}

// writeBody sends the client's body: as is with a known length, chunked
// otherwise.
func writeBody(bw *bufio.Writer, r *http.Request, body io.Reader, buf []byte) error {
	if r.ContentLength > 0 {
		n, err := io.CopyBuffer(bw, io.LimitReader(body, r.ContentLength), buf)
		if err == nil && n < r.ContentLength {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	cw := httputil.NewChunkedWriter(bw)
	if _, err := io.CopyBuffer(cw, body, buf); err != nil {
		return err
	}
	if err := cw.Close(); err != nil {
		return err
	}
	_, err := bw.WriteString("\r\n") // no trailers
	return err
}

// skipOutbound: headers the proxy does not pass on as received (hop-by-hop,
// Te among them, or written by the proxy itself).
func skipOutbound(k string) bool {
	switch k {
	case "Host", "Content-Length", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix":
		return true
	}
	return framing.IsHopByHop(k)
}

// maxResponseHead bounds an upstream's response head, like the Transport's
// MaxResponseHeaderBytes used for https servers.
const maxResponseHead = 64 << 10

var errHeadTooLarge = errors.New("upstream response head over 64 KiB")

// readHead parses a status line and header fields into ex.
func readHead(br *bufio.Reader, ex *exchange) error {
	budget := maxResponseHead
	line, err := readLine(br, &budget)
	if err != nil {
		return err
	}
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ' {
		return fmt.Errorf("malformed upstream status line %q", trimForLog(line))
	}
	ex.proto1_0 = line[7] == '0'
	code, err := strconv.Atoi(string(line[9:12]))
	if err != nil || code < 100 || code > 999 || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("malformed upstream status line %q", trimForLog(line))
	}
	ex.status = code
	// Collect the values in one buffer and make them one string: one
	// allocation for every value of the head, and one for the slices.
	type field struct {
		k          string
		start, end int
	}
	var fields [32]field
	fs := fields[:0]
	vb := ex.vals[:0]
	defer func() { ex.vals = vb[:0] }()
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			return err
		}
		if len(line) == 0 {
			all := string(vb)
			vals := make([]string, len(fs))
			for i, f := range fs {
				vals[i] = all[f.start:f.end]
				if prev := ex.hdr[f.k]; len(prev) > 0 {
					ex.hdr[f.k] = append(prev, vals[i])
				} else {
					ex.hdr[f.k] = vals[i : i+1 : i+1]
				}
			}
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errors.New("upstream sent an obsolete folded header line")
		}
		i := indexByte(line, ':')
		if i <= 0 {
			return fmt.Errorf("malformed upstream header line %q", trimForLog(line))
		}
		name := line[:i]
		if !validName(name) {
			return fmt.Errorf("malformed upstream header name %q", trimForLog(name))
		}
		v := trimOWS(line[i+1:])
		if !httpguts.ValidHeaderFieldValue(string(v)) {
			return fmt.Errorf("bad upstream header value for %q", name)
		}
		fs = append(fs, field{k: canonicalKey(name), start: len(vb), end: len(vb) + len(v)})
		vb = append(vb, v...)
	}
}

// readLine returns one line without its CRLF (LF alone is accepted), within
// the head's budget.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errHeadTooLarge
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if *budget -= len(line); *budget < 0 {
		return nil, errHeadTooLarge
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func validName(b []byte) bool {
	for _, c := range b {
		if !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

func trimForLog(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// commonKeys interns the usual response header names, so canonicalKey
// allocates only for rare ones (a map lookup by string(bytes) does not
// allocate).
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept-Ranges", "Age", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires", "Keep-Alive", "Last-Modified",
		"Link", "Location", "Retry-After", "Server", "Set-Cookie", "Strict-Transport-Security", "Trailer",
		"Transfer-Encoding", "Upgrade", "Vary", "Via", "Www-Authenticate", "X-Content-Type-Options",
		"X-Frame-Options", "X-Request-Id", "Access-Control-Allow-Origin", "Alt-Svc"} {
		m[k] = k
		m[strings.ToLower(k)] = k
	}
	return m
}()

func canonicalKey(b []byte) string {
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

// frame decides how the body is delimited (RFC 9112 §6.3) and whether the
// connection survives it. Like nginx, it refuses framing it cannot trust:
// a Transfer-Encoding other than one "chunked", and Content-Length fields
// that are malformed or disagree; the client then gets 502.
func (ex *exchange) frame(method string) error {
	h := ex.hdr
	ex.closeAfter = ex.proto1_0 && !httpguts.HeaderValuesContainsToken(h["Connection"], "keep-alive") ||
		httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	length := framing.NoLength()
	for _, v := range h["Content-Length"] {
		if err := length.Add(v); err != nil {
			return fmt.Errorf("upstream response: %w", err)
		}
	}
	if te, ok := h["Transfer-Encoding"]; ok {
		switch {
		case ex.proto1_0:
			// HTTP/1.0 has no transfer codings (RFC 9112 §6.1): ignored, as
			// net/http does, and the connection is not trusted further.
			ex.closeAfter = true
		case len(te) != 1 || !strings.EqualFold(textproto.TrimString(te[0]), "chunked"):
			return fmt.Errorf("upstream response has an unsupported Transfer-Encoding %q", te)
		default:
			ex.chunked = true
			if length.N >= 0 {
				// Both: chunked wins (RFC 9112 §6.3), but the connection
				// is not reused after a response framed two ways.
				ex.closeAfter = true
				length = framing.NoLength()
			}
		}
		delete(h, "Transfer-Encoding")
	}
	if cl := h["Content-Length"]; length.N < 0 {
		delete(h, "Content-Length")
	} else if len(cl) > 1 || cl[0] != length.Value() {
		h["Content-Length"] = []string{length.Value()} // one field, the plain number
	}
	switch {
	case method == http.MethodHead || ex.status == http.StatusNoContent || ex.status == http.StatusNotModified:
		ex.noBody, ex.length, ex.chunked = true, 0, false
	case ex.chunked:
		ex.length = -1
	case length.N >= 0:
		ex.length = length.N
		ex.noBody = length.N == 0
	default:
		ex.length = -1
	}
	if !ex.chunked && ex.length < 0 && !ex.noBody {
		ex.closeAfter = true
	}
	return nil
}

// finish returns the connection to the pool when the body was read to its
// end and the exchange allows reuse; closes it otherwise.
func (t *h1) finish(ex *exchange, complete bool) {
	pc := ex.pc
	if pc == nil {
		return
	}
	ex.pc = nil
	if ex.stop != nil && !ex.stop() {
		complete = false // the cancel fired: its deadline poisons the connection
	}
	ex.stop = nil
	if complete && !ex.closeAfter {
		t.put(ex.addr, pc)
		return
	}
	pc.conn.Close()
}

// drain reads a small body that is being dropped (before a retry), so its
// connection can be reused; a large or unframed one closes the connection.
func (t *h1) drain(ex *exchange) {
	if ex.pc == nil {
		return
	}
	if ex.noBody {
		t.finish(ex, true)
		return
	}
	if !ex.chunked && ex.length >= 0 && ex.length <= 64<<10 {
		ex.pc.conn.SetReadDeadline(time.Now().Add(time.Second))
		_, err := ex.pc.br.Discard(int(ex.length))
		ex.pc.conn.SetReadDeadline(time.Time{})
		t.finish(ex, err == nil)
		return
	}
	t.finish(ex, false)
}

// hostPort is u's host:port, with the scheme's default port when u has none.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}
