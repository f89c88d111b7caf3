// Command hello is the smallest wasmsrv app and the benchmark guest: it answers every
// request with a short plain-text greeting, through the SDK's native API.
//
//	wasmsrv run ./samples/hello
package main

import wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteString("Hello from wasmsrv!\n")
	})
}

// main is required by the Go toolchain but never runs: the guest is a reactor.
func main() {}
