// Command app is a wasmsrv app written against net/http: an http.ServeMux with
// path patterns, run unchanged through the SDK's wasmhttp adapter (any router or
// middleware that is an http.Handler works the same way).
//
//	wasmsrv run .
//	curl localhost:8080/hello/you
//	curl -d 'some bytes' localhost:8080/echo
package main

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/wasmsrv/wasmsrv/sdk/go/wasmhttp"
)

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "Try GET /hello/NAME or POST /echo.\n")
	})
	mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"greeting": "Hello, " + r.PathValue("name") + "!"})
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		io.Copy(w, r.Body) // streams: the body is not held in memory
	})
	wasmhttp.Handle(mux)
}

func main() {}
