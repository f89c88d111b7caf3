// Command upload is the guest of the bench's slow-upload scenario: it reads the
// request body to its end, as a form or JSON handler does, then answers like
// samples/hello. Its twins are upload in bench/apps/wsgi_hello.py and asgi_hello.py.
package main

import (
	"io"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteString("Hello from wasmsrv!\n")
	})
}

// main is required by the Go toolchain but never runs: the guest is a reactor.
func main() {}
