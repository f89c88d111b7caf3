package wasmsrv

import (
	"errors"
	"io"
	"unsafe"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Request is one incoming request. It is valid only until the handler returns: the
// SDK reuses it for the next request (as net/http reuses its buffers).
type Request struct {
	// Method is the request method as received, e.g. "GET".
	Method string
	// Scheme is "http" or "https".
	Scheme string
	// Path is the raw, still percent-encoded path, without the query and without
	// RootPath.
	Path string
	// RawQuery is the query string without '?', still encoded.
	RawQuery string
	// RootPath is the mount prefix the router stripped (ASGI root_path).
	RootPath string
	// Host is the Host header or HTTP/2 :authority.
	Host string
	// RemoteAddr and LocalAddr are "ip:port".
	RemoteAddr, LocalAddr string
	// ID is the host's request id (also in its access log).
	ID string
	// ProtoMajor and ProtoMinor give the HTTP version.
	ProtoMajor, ProtoMinor int
	// TLS reports whether the connection was TLS.
	TLS bool
	// ContentLength is the declared body length, -1 if unknown.
	ContentLength int64
	// Header holds the request headers with lower-case names, duplicates kept.
	Header Header
	// Body streams the request body from the host.
	Body *Body

	ctx  uint32
	head abi.Head
	body Body
	ws   *WebSocket // set by Accept
}

// headBuf receives the request head; it grows when a head does not fit.
var headBuf = make([]byte, 2048)

func (r *Request) reset(ctx uint32) error {
	n := reqHead(ctx, unsafe.Pointer(&headBuf[0]), uint32(len(headBuf)))
	if n < 0 {
		return errors.New(abi.StatusText(n))
	}
	if int(n) > len(headBuf) {
		headBuf = make([]byte, n)
		if n = reqHead(ctx, unsafe.Pointer(&headBuf[0]), uint32(len(headBuf))); n < 0 || int(n) > len(headBuf) {
			return errors.New("request head changed size")
		}
	}
	// One string for the whole head: every field and header is a substring of it.
	s := string(headBuf[:n])
	h := &r.head
	h.Headers = r.Header.list[:0]
	if err := abi.DecodeHead(s, h); err != nil {
		return err
	}
	f := &h.Fields
	r.Method, r.Scheme, r.Path, r.RawQuery = f[abi.FieldMethod], f[abi.FieldScheme], f[abi.FieldPath], f[abi.FieldQuery]
	r.RootPath, r.Host, r.ID = f[abi.FieldRootPath], f[abi.FieldAuthority], f[abi.FieldRequestID]
	r.RemoteAddr, r.LocalAddr = f[abi.FieldRemoteAddr], f[abi.FieldLocalAddr]
	r.ProtoMajor, r.ProtoMinor = int(h.ProtoMajor), int(h.ProtoMinor)
	r.TLS, r.ContentLength = h.Flags&abi.HeadFlagTLS != 0, h.ContentLength
	r.Header.list = h.Headers
	r.ctx = ctx
	r.ws = nil
	r.body = Body{ctx: ctx}
	r.Body = &r.body
	return nil
}

// Disconnected reports whether the client has gone away (or the deadline passed).
func (r *Request) Disconnected() bool { return disconnected(r.ctx) == 1 }

// Errors returned by the SDK for host status codes.
var (
	// ErrClosed means the client went away; further writes are discarded.
	ErrClosed = errors.New("wasmsrv: connection closed")
	// ErrTooLarge means the request body is over the configured limit (the host
	// answers 413 if the response has not started).
	ErrTooLarge = errors.New("wasmsrv: request body too large")
	// ErrTimeout means the request deadline passed.
	ErrTimeout = errors.New("wasmsrv: request deadline exceeded")
)

func statusErr(code int32) error {
	switch code {
	case abi.ErrClosed:
		return ErrClosed
	case abi.ErrTooLarge:
		return ErrTooLarge
	case abi.ErrTimeout:
		return ErrTimeout
	}
	return errors.New("wasmsrv: host returned " + abi.StatusText(code))
}

// Body is the request body, read from the host as the client sends it.
type Body struct {
	ctx uint32
	eof bool
}

// Read implements io.Reader. It blocks until some bytes arrive or the body ends.
func (b *Body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		r := bodyRead(b.ctx, unsafe.Pointer(&p[0]), uint32(len(p)))
		if r == int64(abi.ErrWouldBlock) {
			waitCtx(b.ctx) // async shape: a BODY event follows
			continue
		}
		if r < 0 {
			return 0, statusErr(int32(r))
		}
		n, eof := abi.UnpackEOF(r)
		if eof {
			b.eof = true
			if n == 0 {
				return 0, io.EOF
			}
		}
		if n > 0 || eof {
			return int(n), nil
		}
	}
}
