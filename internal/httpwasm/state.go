package httpwasm

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/internal/framing"
	"github.com/wasmsrv/wasmsrv/internal/statuswriter"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// Phases of a request.
const (
	phaseRequest  = iota // in handle_request: the request may change
	phaseResponse        // in handle_response: the request went to the next handler
)

// state is what an instance keeps between calls: the features it enabled
// outside a request (in its start), and the request it is serving.
type state struct {
	features uint32
	ex       *exchange // nil outside a request
}

type stateKey struct{}

// stateOf returns the state of the instance a host function is called from.
func stateOf(ctx context.Context) *state {
	in := runtime.InstanceFrom(ctx)
	if in == nil {
		return &state{} // not an instance of this runtime: nothing is kept
	}
	if st, ok := in.Value(stateKey{}).(*state); ok {
		return st
	}
	st := &state{}
	in.SetValue(stateKey{}, st)
	return st
}

// exchangeOf returns the request a host function is called for, or traps.
func exchangeOf(ctx context.Context, fn string) *exchange {
	ex := stateOf(ctx).ex
	if ex == nil {
		trap(fn, "called outside a request (in the module's start)")
	}
	return ex
}

// exchange is one request as the guest sees and changes it.
type exchange struct {
	// headerBudget is what is left of maxGuestHeaderBytes for this request.
	headerBudget int
	features     uint32
	phase        int
	limit        int64 // bytes any one buffered body may hold

	r   *http.Request // the request, as the guest changes it: &req
	req http.Request  // a shallow copy of the server's
	u   url.URL       // r.URL points here

	// The request body: what the next handler reads is reqRead (what the guest
	// read, kept with buffer_request) then reqRest; or reqNew when the guest
	// wrote a body of its own.
	reqRest     io.Reader
	reqRead     bytes.Buffer
	reqEOF      bool
	reqNew      bytes.Buffer
	reqReplaced bool

	// The response. Before next, the guest's own; after next, the next handler's
	// (buffered with buffer_response, else live: already on its way).
	status      int
	respHeader  http.Header
	respTrailer http.Header
	respBody    bytes.Buffer
	respWritten bool // write_body overwrote the body in this phase
	respReadAt  int  // read_body(response) offset into respBody
	live        bool // the response went out unbuffered: read-only
	liveHeader  http.Header
	liveStatus  int

	// What serve needs per request, kept here so that the pooled exchange
	// carries them instead of allocating them.
	rec recorder
	sw  statuswriter.Writer
}

// reset readies a pooled exchange for r; its buffers keep their memory.
func (ex *exchange) reset(r *http.Request, features uint32, limit int64) {
	ex.clear()
	ex.features, ex.limit, ex.status = features, limit, http.StatusOK
	ex.headerBudget = maxGuestHeaderBytes
	if ex.respHeader == nil {
		ex.respHeader = http.Header{}
	}
	ex.reqRest = r.Body
	if ex.reqRest == nil {
		ex.reqRest = http.NoBody
	}
	ex.u = *r.URL
	ex.req = *r
	ex.req.URL = &ex.u
	ex.r = &ex.req
}

// clear drops every reference to a request, keeping the memory of the
// buffers and of the response header map (its values were copied out as
// slices, never the map itself).
func (ex *exchange) clear() {
	ex.reqRead.Reset()
	ex.reqNew.Reset()
	ex.respBody.Reset()
	clear(ex.respHeader)
	reqRead, reqNew, respBody, respHeader := ex.reqRead, ex.reqNew, ex.respBody, ex.respHeader
	*ex = exchange{reqRead: reqRead, reqNew: reqNew, respBody: respBody, respHeader: respHeader}
}

func (ex *exchange) has(f uint32) bool { return ex.features&f != 0 }

// nextBody is the request body the next handler reads.
func (ex *exchange) nextBody() (io.Reader, int64) {
	if ex.reqReplaced {
		return bytes.NewReader(ex.reqNew.Bytes()), int64(ex.reqNew.Len())
	}
	if ex.reqRead.Len() == 0 {
		return ex.reqRest, -1
	}
	if ex.reqEOF {
		return bytes.NewReader(ex.reqRead.Bytes()), int64(ex.reqRead.Len())
	}
	return io.MultiReader(bytes.NewReader(ex.reqRead.Bytes()), ex.reqRest), -1
}

// headers returns the header map of kind for reading (nil: none).
func (ex *exchange) headers(kind uint64) http.Header {
	switch kind {
	case kindRequest:
		return ex.r.Header
	case kindResponse:
		if ex.live {
			return ex.liveHeader
		}
		return ex.respHeader
	case kindRequestTrailers:
		if !ex.has(FeatureTrailers) {
			return nil
		}
		return ex.r.Trailer
	case kindResponseTrailers:
		if !ex.has(FeatureTrailers) {
			return nil
		}
		if ex.live {
			return liveTrailers(ex.liveHeader)
		}
		return ex.respTrailer
	}
	return nil
}

// liveTrailers are the trailers a next handler set on a live response
// (http.TrailerPrefix keys).
func liveTrailers(h http.Header) http.Header {
	var t http.Header
	for k, v := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			if t == nil {
				t = http.Header{}
			}
			t[textproto.CanonicalMIMEHeaderKey(name)] = v
		}
	}
	return t
}

// writable returns the header map of kind for a change, or traps with the
// reason the change is not allowed.
func (ex *exchange) writable(fn string, kind uint64) http.Header {
	switch kind {
	case kindRequest, kindRequestTrailers:
		if ex.phase != phaseRequest {
			trap(fn, "the request was already passed to the next handler: it can only change in handle_request")
		}
		if kind == kindRequest {
			return ex.r.Header
		}
		if !ex.has(FeatureTrailers) {
			trap(fn, "trailers are not enabled (enable_features with feature_trailers)")
		}
		if ex.r.Trailer == nil {
			ex.r.Trailer = http.Header{}
		}
		return ex.r.Trailer
	case kindResponse, kindResponseTrailers:
		if ex.live {
			trap(fn, "the response was already sent by the next handler: enable feature_buffer_response to change it in handle_response")
		}
		if kind == kindResponse {
			return ex.respHeader
		}
		if !ex.has(FeatureTrailers) {
			trap(fn, "trailers are not enabled (enable_features with feature_trailers)")
		}
		if ex.respTrailer == nil {
			ex.respTrailer = http.Header{}
		}
		return ex.respTrailer
	}
	trap(fn, "unknown header kind "+strconv.FormatUint(kind&0xffffffff, 10))
	return nil
}

// maxGuestHeaderBytes bounds the header names and values (request, response,
// trailers, set or added) and URIs one request's guest may hand the host: each
// is a copy in host memory, and a guest looping over add_header_value with its
// whole memory as the value would otherwise grow the host without bound.
const maxGuestHeaderBytes = 1 << 20

// spend charges n bytes the guest hands the host to the request's budget, or
// traps when it is spent.
func (ex *exchange) spend(fn string, n uint64) {
	if n > uint64(ex.headerBudget) {
		trap(fn, "the headers and URIs this request's guest set exceed "+strconv.Itoa(maxGuestHeaderBytes)+" bytes")
	}
	ex.headerBudget -= int(n)
}

// headerName reads and checks a header name from guest memory.
func headerName(fn string, mod api.Module, ptr, n uint64) string {
	b := region(fn, mod, ptr, n)
	if !framing.IsToken(b) {
		trap(fn, "invalid header name")
	}
	return textproto.CanonicalMIMEHeaderKey(string(b))
}

func hostEnableFeatures(ctx context.Context, _ api.Module, stack []uint64) {
	want := uint32(stack[0]) & supported
	st := stateOf(ctx)
	if st.ex != nil {
		st.ex.features |= want // for this request only
	} else {
		st.features |= want // for every request of this instance
	}
	stack[0] = uint64(supported)
}

// isHost reports whether name is the Host header, which net/http keeps in
// Request.Host rather than in the header map.
func isHost(kind uint64, name string) bool { return kind == kindRequest && name == "Host" }

func hostGetHeaderNames(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnGetHeaderNames)
	kind := uint64(uint32(stack[0]))
	if kind > kindResponseTrailers {
		trap(fnGetHeaderNames, "unknown header kind")
	}
	h := ex.headers(kind)
	var b []byte
	count := 0
	if kind == kindRequest && ex.r.Host != "" {
		b = append(b, "host\x00"...)
		count++
	}
	for k := range h {
		b = append(b, strings.ToLower(k)...)
		b = append(b, 0)
		count++
	}
	n := writeIfFits(fnGetHeaderNames, mod, stack[1], stack[2], b)
	stack[0] = countLen(count, n)
}

func countLen(count int, n uint32) uint64 {
	if count == 0 {
		return 0
	}
	return uint64(count)<<32 | uint64(n)
}

func hostGetHeaderValues(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnGetHeaderValues)
	kind := uint64(uint32(stack[0]))
	if kind > kindResponseTrailers {
		trap(fnGetHeaderValues, "unknown header kind")
	}
	name := headerName(fnGetHeaderValues, mod, stack[1], stack[2])
	var vs []string
	if isHost(kind, name) {
		if ex.r.Host != "" {
			vs = []string{ex.r.Host}
		}
	} else {
		vs = ex.headers(kind)[name]
	}
	var b []byte
	for _, v := range vs {
		b = append(b, v...)
		b = append(b, 0)
	}
	n := writeIfFits(fnGetHeaderValues, mod, stack[3], stack[4], b)
	stack[0] = countLen(len(vs), n)
}

// headerValue reads and checks a field value from guest memory.
func headerValue(fn string, mod api.Module, ptr, n uint64) string {
	b := region(fn, mod, ptr, n)
	if !framing.ValidValue(b) {
		trap(fn, "invalid header value (control characters)")
	}
	return string(b)
}

func hostSetHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	setHeader(ctx, fnSetHeaderValue, mod, stack, false)
}

func hostAddHeaderValue(ctx context.Context, mod api.Module, stack []uint64) {
	setHeader(ctx, fnAddHeaderValue, mod, stack, true)
}

func setHeader(ctx context.Context, fn string, mod api.Module, stack []uint64, add bool) {
	ex := exchangeOf(ctx, fn)
	kind := uint64(uint32(stack[0]))
	ex.spend(fn, uint64(uint32(stack[2]))+uint64(uint32(stack[4])))
	name := headerName(fn, mod, stack[1], stack[2])
	value := headerValue(fn, mod, stack[3], stack[4])
	h := ex.writable(fn, kind)
	if isHost(kind, name) {
		ex.r.Host = value
		return
	}
	if add {
		h[name] = append(h[name], value)
	} else {
		h[name] = []string{value}
	}
}

func hostRemoveHeader(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnRemoveHeader)
	kind := uint64(uint32(stack[0]))
	name := headerName(fnRemoveHeader, mod, stack[1], stack[2])
	h := ex.writable(fnRemoveHeader, kind)
	delete(h, name)
}

func hostReadBody(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnReadBody)
	kind := uint32(stack[0])
	buf := region(fnReadBody, mod, stack[1], stack[2])
	if len(buf) == 0 {
		trap(fnReadBody, "buf_limit is zero")
	}
	switch kind {
	case kindRequest:
		if ex.phase != phaseRequest {
			trap(fnReadBody, "the request body was already passed to the next handler")
		}
		if ex.reqReplaced || ex.reqEOF {
			stack[0] = 1 << 32 // the guest replaced it, or read it all
			return
		}
		n, err := readSome(ex.reqRest, buf)
		if ex.has(FeatureBufferRequest) {
			if int64(ex.reqRead.Len()+n) > ex.limit {
				trap(fnReadBody, "buffer_request: the request body is larger than the buffer limit ("+strconv.FormatInt(ex.limit, 10)+" bytes)")
			}
			ex.reqRead.Write(buf[:n])
		}
		eof := err != nil // io.EOF, or a broken body: the guest sees its end
		ex.reqEOF = eof
		stack[0] = packEOF(n, eof)
	case kindResponse:
		if ex.live || ex.phase == phaseRequest {
			stack[0] = 1 << 32 // streamed already, or nothing produced yet
			return
		}
		n := copy(buf, ex.respBody.Bytes()[ex.respReadAt:])
		ex.respReadAt += n
		stack[0] = packEOF(n, ex.respReadAt >= ex.respBody.Len())
	default:
		trap(fnReadBody, "unknown body kind")
	}
}

func packEOF(n int, eof bool) uint64 {
	v := uint64(uint32(n))
	if eof {
		v |= 1 << 32
	}
	return v
}

// readSome reads at least one byte into p unless the body ends or fails.
func readSome(r io.Reader, p []byte) (int, error) {
	for range 64 { // readers returning (0, nil) repeatedly: give up, as io does
		n, err := r.Read(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

func hostWriteBody(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnWriteBody)
	kind := uint32(stack[0])
	p := region(fnWriteBody, mod, stack[1], stack[2])
	switch kind {
	case kindRequest:
		if ex.phase != phaseRequest {
			trap(fnWriteBody, "the request was already passed to the next handler")
		}
		if !ex.reqReplaced {
			ex.reqReplaced = true
			ex.reqNew.Reset()
		}
		if int64(ex.reqNew.Len()+len(p)) > ex.limit {
			trap(fnWriteBody, "request body larger than the buffer limit ("+strconv.FormatInt(ex.limit, 10)+" bytes)")
		}
		ex.reqNew.Write(p)
	case kindResponse:
		if ex.live {
			trap(fnWriteBody, "the response was already sent by the next handler: enable feature_buffer_response to change it in handle_response")
		}
		if !ex.respWritten {
			ex.respWritten = true
			ex.respBody.Reset()
			ex.respReadAt = 0
		}
		if int64(ex.respBody.Len()+len(p)) > ex.limit {
			trap(fnWriteBody, "response body larger than the buffer limit ("+strconv.FormatInt(ex.limit, 10)+" bytes)")
		}
		ex.respBody.Write(p)
	default:
		trap(fnWriteBody, "unknown body kind")
	}
}

func hostGetMethod(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnGetMethod)
	stack[0] = uint64(writeStringIfFits(fnGetMethod, mod, stack[0], stack[1], ex.r.Method))
}

func hostSetMethod(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnSetMethod)
	ex.spend(fnSetMethod, uint64(uint32(stack[1])))
	b := region(fnSetMethod, mod, stack[0], stack[1])
	if ex.phase != phaseRequest {
		trap(fnSetMethod, "the request was already passed to the next handler")
	}
	if !framing.IsToken(b) {
		trap(fnSetMethod, "invalid method")
	}
	ex.r.Method = string(b)
}

// uri is the request target as sent: the encoded path and query, "/" at least.
func (ex *exchange) uri() string {
	u := ex.r.URL
	s := u.EscapedPath()
	if s == "" {
		s = "/"
	}
	if u.RawQuery != "" || u.ForceQuery {
		s += "?" + u.RawQuery
	}
	return s
}

func hostGetURI(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnGetURI)
	stack[0] = uint64(writeStringIfFits(fnGetURI, mod, stack[0], stack[1], ex.uri()))
}

func hostSetURI(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnSetURI)
	ex.spend(fnSetURI, uint64(uint32(stack[1])))
	b := region(fnSetURI, mod, stack[0], stack[1])
	if ex.phase != phaseRequest {
		trap(fnSetURI, "the request was already passed to the next handler")
	}
	s := string(b)
	if s == "" {
		s = "/"
	}
	if !framing.ValidTarget(s) || s[0] != '/' {
		trap(fnSetURI, "invalid URI: want an encoded origin-form target (/path?query)")
	}
	u, err := url.ParseRequestURI(s)
	if err != nil {
		trap(fnSetURI, "invalid URI: "+err.Error())
	}
	// The scheme and host stay; the path and the query are the guest's (a URI
	// without a query removes the old one).
	ex.u.Path, ex.u.RawPath, ex.u.RawQuery, ex.u.ForceQuery = u.Path, u.RawPath, u.RawQuery, u.ForceQuery
	ex.r.RequestURI = s
}

func hostGetProtocolVersion(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnGetProtocolVersion)
	proto := ex.r.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	stack[0] = uint64(writeStringIfFits(fnGetProtocolVersion, mod, stack[0], stack[1], proto))
}

func hostGetSourceAddr(ctx context.Context, mod api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnGetSourceAddr)
	stack[0] = uint64(writeStringIfFits(fnGetSourceAddr, mod, stack[0], stack[1], ex.r.RemoteAddr))
}

func hostGetStatusCode(ctx context.Context, _ api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnGetStatusCode)
	if ex.live {
		stack[0] = uint64(ex.liveStatus)
		return
	}
	stack[0] = uint64(ex.status)
}

func hostSetStatusCode(ctx context.Context, _ api.Module, stack []uint64) {
	ex := exchangeOf(ctx, fnSetStatusCode)
	code := int32(uint32(stack[0]))
	if ex.live {
		trap(fnSetStatusCode, "the response was already sent by the next handler: enable feature_buffer_response to change it in handle_response")
	}
	if code < 200 || code > 599 {
		trap(fnSetStatusCode, "status code "+strconv.Itoa(int(code))+" is not a final status (200-599)")
	}
	ex.status = int(code)
}
