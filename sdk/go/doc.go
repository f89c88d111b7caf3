// Package wasmsrv is the Go SDK for wasmsrv guests: WebAssembly apps built with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared and served by the wasmsrv host
// through its gateway ABI (abi/SPEC.md).
//
// The native API here does not import net/http, for the smallest and fastest guests.
// To run an existing http.Handler (the std ServeMux or any router) use the
// sdk/go/wasmhttp adapter instead.
//
// A complete app:
//
//	package main
//
//	import (
//		"io"
//		"strconv"
//
//		wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
//	)
//
//	func init() {
//		wasmsrv.OnStart(func() error { return nil }) // once per instance, before traffic
//		wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
//			switch r.Path {
//			case "/":
//				w.Header().Set("Content-Type", "text/plain")
//				w.WriteString("hello\n")
//			case "/upload":
//				n, err := io.Copy(io.Discard, r.Body) // streams from the client
//				if err != nil {
//					w.WriteHeader(400)
//					return
//				}
//				w.WriteString("got " + strconv.FormatInt(n, 10) + " bytes\n")
//			default:
//				w.WriteHeader(404)
//			}
//		})
//	}
//
//	// main is required by the toolchain but never runs: the guest is a reactor, and
//	// package init is where the app registers itself.
//	func main() {}
//
// Serve it with `wasmsrv run ./myapp` (the host builds the package) or build it
// yourself and run the .wasm file.
//
// # Model
//
// Each instance serves one request at a time (the sync shape, like a gunicorn sync
// worker). Package-level state lives as long as the instance; the host recycles
// instances after a configured number of requests and replaces them when they
// crash, so keep shared state outside (in a plugin such as kv). A Request and its
// ResponseWriter are valid only until the handler returns.
//
// The ResponseWriter buffers like net/http's: small responses go out in one piece
// with a Content-Length; Flush sends what was written so far (Server-Sent Events).
// Headers may change until the first byte is sent. A panic in the handler becomes a
// 500 (or a cut response once bytes were sent) and the instance keeps serving.
//
// Goroutines started by a handler run only while the handler is blocked in Go (on a
// channel, a mutex, time.Sleep); they do not run between requests. Do not leave work
// running after the handler returns.
//
// # Async shape
//
// Built with -tags wasmsrv_async (a line //wasmsrv:mode async in the package, or
// wasmsrv run --mode async), the same app runs in the async shape: one instance carries many requests and WebSockets at once, each on its
// own goroutine, and reads and writes still look blocking (the SDK parks the goroutine
// until the host's event arrives). App code must then block only in SDK calls: use
// Sleep instead of time.Sleep, Go instead of go for goroutines that call the SDK, and
// never wait on your own channels or mutexes for another request. docs/async.md has
// the details.
//
// # WebSocket
//
// In both shapes a handler accepts an upgrade request (Request.IsWebSocket) with
// Accept and then uses ReadMessage, WriteMessage and Close; returning without
// accepting (or answering) denies it with 403. In the sync shape a WebSocket holds
// its instance for the life of the connection.
package wasmsrv
