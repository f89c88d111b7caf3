// Command app is a wasmsrv app on the Go SDK's native API: the smallest and fastest
// Go guests (no net/http inside). It answers every request with a greeting.
//
//	wasmsrv run .
//	curl 'localhost:8080/?name=you'
package main

import (
	"net/url"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

// The SDK registers the handler from init: a guest is a reactor, whose main never
// runs, and each instance serves one request at a time.
func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		q, _ := url.ParseQuery(r.RawQuery)
		name := q.Get("name")
		if name == "" {
			name = "world"
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteString("Hello, " + name + "!\n")
	})
}

func main() {}
