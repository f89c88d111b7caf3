// Command backend is the site sample's upstream: a plain net/http server that
// names itself, so the balancing is visible.
//
//	go run ./samples/site/backend -addr 127.0.0.1:9001 -name b1
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	name := flag.String("name", "backend", "name reported in responses")
	flag.Parse()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "%s: %s %s (prefix %q, client %s)\n", *name, r.Method, r.URL.Path,
			r.Header.Get("X-Forwarded-Prefix"), r.Header.Get("X-Forwarded-For"))
	})
	log.Printf("%s listening on %s", *name, *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}
