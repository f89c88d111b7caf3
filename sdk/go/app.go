package wasmsrv

import (
	"fmt"
	"os"
	"runtime/debug"
)

// Handler responds to one request. It is the SDK's counterpart of http.Handler,
// without net/http, for the smallest and fastest guests.
type Handler interface {
	ServeWasm(w *ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w *ResponseWriter, r *Request)

// ServeWasm calls f(w, r).
func (f HandlerFunc) ServeWasm(w *ResponseWriter, r *Request) { f(w, r) }

// The guest is one app: a reactor whose exports are package functions, so the
// registration has to live in package state. Set it from init (c-shared guests run
// package init, never main).
var app struct {
	handler Handler
	onStart func() error
	onStop  func() error
	req     Request
	resp    ResponseWriter
}

// Handle sets the app's handler. Call it from init.
func Handle(h Handler) { app.handler = h }

// HandleFunc sets the app's handler from a function. Call it from init.
func HandleFunc(f func(w *ResponseWriter, r *Request)) { app.handler = HandlerFunc(f) }

// OnStart registers a hook run once per instance before it takes traffic. A non-nil
// error keeps the instance out of rotation; the error text goes to the host log.
func OnStart(f func() error) { app.onStart = f }

// OnStop registers a hook run once per instance when it is retired in an orderly way.
func OnStop(f func() error) { app.onStop = f }

// defaultGCPercent keeps a guest's heap small. Go's minimum heap target is 4 MiB ×
// GOGC/100; a request handler's live heap is tiny, so at 25 an instance settles near
// 4.4 MiB of linear memory instead of 7.5 MiB (measured on the hello sample) for a
// GC every few thousand requests. GOGC in the app's environment overrides it.
const defaultGCPercent = 25

// startInstance runs once per instance before it takes traffic (wasmsrv_on_start).
func startInstance() int32 {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	return runHook("start", app.onStart)
}

func runHook(name string, f func() error) int32 {
	if f == nil {
		return 0
	}
	if err := f(); err != nil {
		fmt.Fprintf(os.Stderr, "wasmsrv: %s hook failed: %v\n", name, err)
		return 1
	}
	return 0
}

// prepare reads the request head into r and resets w; non-zero is the status to
// answer with instead of running the handler.
func prepare(ctx uint32, r *Request, w *ResponseWriter) int32 {
	if err := r.reset(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "wasmsrv: reading request head: %v\n", err)
		return 500
	}
	w.reset(ctx)
	return 0
}

// handle runs the app's handler on a prepared request.
func handle(r *Request, w *ResponseWriter) (code int32) {
	if app.handler == nil {
		fmt.Fprintln(os.Stderr, "wasmsrv: no handler registered (call wasmsrv.Handle from init)")
		return 500
	}
	defer func() {
		if p := recover(); p != nil {
			// Like net/http: a panicking handler costs its request, not the instance.
			fmt.Fprintf(os.Stderr, "wasmsrv: panic serving %s %s: %v\n%s", r.Method, r.Path, p, debug.Stack())
			code = 500
			if w.headSent {
				code = -1 // cut the response: the client must see it is incomplete
			}
		}
	}()
	app.handler.ServeWasm(w, r)
	if r.IsWebSocket() && (r.ws != nil || !w.touched()) {
		// An accepted WebSocket needs no HTTP response; an upgrade the handler
		// neither accepted nor answered is denied (SPEC §9.1): the host sends 403.
		return 0
	}
	w.finish()
	return 0
}
