package host

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/host/internal/websocket"
	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// RequestRunner is what the gateway needs from a runtime pool (runtime.SyncPool):
// run one request on an instance.
// WSConfig configures WebSockets (both shapes): package websocket's Config,
// which the gateways' configurations carry.
type WSConfig = websocket.Config

type RequestRunner interface {
	Serve(ctx context.Context, ex runtime.Exchange) (int32, error)
}

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// App names the app in logs.
	App string
	// BodyLimit caps request bodies in bytes (413 beyond it); 0 means no limit.
	BodyLimit int64
	// RetryAfter is the Retry-After value, in seconds, sent with 503 (default 1).
	RetryAfter int
	// ResponseBuffer is how much of a response is held in memory until the
	// guest finishes (sync gateway): its instance goes back to the pool
	// before a slow client has taken the bytes. A flush, or a response
	// larger than this, is written through. 0 writes everything through.
	ResponseBuffer int
	// Buffer reads request bodies before the request takes an instance
	// (package bodybuf); the sync gateway only: an async instance is not held by
	// a slow upload.
	Buffer bodybuf.Config
	// WebSocket configures WebSocket connections (package websocket).
	WebSocket WSConfig
	// Traced adds the queue wait and guest call spans to the span of a request
	// traced in front of the gateway (ServerConfig.Tracer); false costs nothing.
	Traced bool
}

// Gateway is the http.Handler that runs requests on a guest app through the ABI.
type Gateway struct {
	pool  RequestRunner
	cfg   GatewayConfig
	log   *slog.Logger
	exs   sync.Pool
	bufs  bodybuf.Pool
	ids   atomic.Uint64
	retry string

	wsOnce  sync.Once
	ws      *websocket.Hub // created by the first WebSocket request (websocket_sync.go)
	wsWatch syncWSWatch
}

// NewGateway returns a handler serving requests from pool.
func NewGateway(pool RequestRunner, cfg GatewayConfig, log *slog.Logger) *Gateway {
	g := &Gateway{pool: pool, cfg: cfg, log: gatewayLog(log).With("app", cfg.App), retry: retryAfter(cfg.RetryAfter)}
	g.exs.New = func() any { return new(syncExchange) }
	return g
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if bodyOverLimit(w, r, g.cfg.BodyLimit) {
		return
	}
	fullDuplex := r.ProtoMajor == 1 && r.ContentLength != 0
	if fullDuplex {
		// Guests interleave body reads with flushed writes (echo, upload progress).
		// Without full duplex, net/http's HTTP/1 server discards up to 256 KiB of the
		// unread body at the first write, and the guest then reads on from the wrong
		// place: the body arrives silently corrupted.
		_ = http.NewResponseController(w).EnableFullDuplex()
	}
	if websocket.IsUpgrade(r) {
		g.serveWebSocket(w, r)
		return
	}
	if fullDuplex {
		// A body left unread in full duplex makes net/http read the next request
		// while the body's reader still counts as busy: it panics ("invalid
		// concurrent Body.Read call", golang/go#68560) and drops the
		// connection. Closing the body before returning settles it first.
		defer r.Body.Close()
	}
	body, ok := g.bufs.ReadAhead(w, r, g.cfg.Buffer, g.cfg.BodyLimit, g.log)
	if !ok {
		return
	}
	defer g.bufs.Release(body)
	rootPath := route.RootPath(r.Context()) // the route strips it (route.Mount)
	ex := g.exs.Get().(*syncExchange)
	ex.reset(g, w, r, rootPath, g.ids.Add(1))
	if g.cfg.Traced {
		ex.trace = tracing.Begin(r.Context(), g.cfg.App)
	}
	code, err := g.pool.Serve(r.Context(), ex)
	ex.trace.End(err) // nil: not traced
	cut := g.finish(ex, code, err)
	ex.reset(nil, nil, nil, "", 0) // drop references before pooling
	g.exs.Put(ex)
	if cut {
		// The head is already out: abort so the client sees an incomplete response
		// (connection close on HTTP/1, RST_STREAM on HTTP/2), not a truncated success.
		panic(http.ErrAbortHandler)
	}
}

// finish completes the response after the guest returned or failed. It reports
// whether the response must be cut.
func (g *Gateway) finish(ex *syncExchange, code int32, err error) (cut bool) {
	if err != nil {
		a := answerFor(err)
		logPoolError(g.log, a, err, ex.r)
		if a.Status == 0 || ex.headSent {
			return ex.headSent
		}
		g.errorResponse(ex, a, err)
		return false
	}
	switch {
	case ex.tooLarge && !ex.headSent && !ex.committed:
		g.errorResponse(ex, tooLargeAnswer, nil)
		return false
	case ex.refused != nil && !ex.committed:
		// The guest's last resp_start was refused and it never made a valid
		// one: there is no head to send (SPEC §4).
		g.log.Error("app response refused: no valid head", "err", ex.refused, "method", ex.r.Method, "path", ex.r.URL.Path)
		g.errorResponse(ex, internalError, nil)
		return false
	case ex.headSent || ex.committed:
		if !validCode(code) && !ex.ended {
			if ex.headSent {
				return true
			}
			// Held, so nothing reached the client: answer cleanly.
			g.log.Error("app returned an error code", "code", code, "method", ex.r.Method, "path", ex.r.URL.Path)
			g.errorResponse(ex, internalError, nil)
			return false
		}
		if !ex.ended && ex.fault == nil {
			// Returned without an END write: the body ends here.
			if err := checkLength(ex.length, ex.body, 0, true); err != nil {
				ex.fail(err)
			}
		}
	case code == 0 || (finalCode(code) && ex.started):
		ex.Write(nil, abi.WriteEnd) // send the held (or default) head with an empty body
	case finalCode(code):
		ex.status = code
		ex.Write(nil, abi.WriteEnd)
	default:
		g.log.Error("app returned an error code", "code", code, "method", ex.r.Method, "path", ex.r.URL.Path)
		g.errorResponse(ex, internalError, nil)
		return false
	}
	if ex.fault != nil {
		// The body disagreed with its Content-Length: never a short or
		// overlong body that looks complete (SPEC §4).
		g.log.Error("response body does not match its Content-Length", "err", ex.fault, "method", ex.r.Method, "path", ex.r.URL.Path)
		if ex.headSent {
			return true
		}
		g.errorResponse(ex, internalError, nil)
		return false
	}
	ex.sendHeld()
	return false
}

// finalCode reports whether a handler's result is a status the host may
// answer with (SPEC §5): a final status, never an interim (1xx) one.
func finalCode(code int32) bool { return code >= 200 && code <= 599 }

// validCode reports whether a handler's result is not an application error.
func validCode(code int32) bool { return code == 0 || finalCode(code) }

// errorResponse replaces the guest's response with a's.
func (g *Gateway) errorResponse(ex *syncExchange, a errorAnswer, err error) {
	aborted := ex.aborted.Load()
	if aborted {
		// Abort expired the connection's deadlines to unblock the guest's I/O:
		// lift the write deadline so this response can go out, and close the
		// connection after it rather than reuse one with a half-read body.
		_ = http.NewResponseController(ex.w).SetWriteDeadline(time.Time{})
	}
	a.write(ex.w, err, g.retry, aborted)
	ex.headSent, ex.ended = true, true
}

// Mount returns a shallow copy of r for an app mounted under prefix (as a
// site's route mounts it): the path loses the prefix, and the gateways report
// the prefix to the guest as the root path (ASGI root_path, CGI SCRIPT_NAME).
// An embedder serving an app under a prefix calls it before the gateway.
func Mount(r *http.Request, prefix string) *http.Request { return route.Mount(r, prefix) }
