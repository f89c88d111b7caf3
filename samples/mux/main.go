// Command mux is a small JSON API on the standard net/http ServeMux, run unchanged
// inside a wasmsrv guest through the sdk/go/wasmhttp adapter.
//
//	wasmsrv run ./samples/mux
//	curl localhost:8080/books
//	curl localhost:8080/books/2
//	curl -d '[1,2,3.5]' localhost:8080/sum
package main

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/wasmsrv/wasmsrv/sdk/go/wasmhttp"
)

type book struct {
	ID     int    `json:"id"`
	Title  string `json:"title"`
	Author string `json:"author"`
}

var catalog = []book{
	{1, "The Go Programming Language", "Donovan & Kernighan"},
	{2, "WebAssembly: The Definitive Guide", "Brian Sletten"},
	{3, "High Performance Browser Networking", "Ilya Grigorik"},
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /books", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, catalog)
	})
	mux.HandleFunc("GET /books/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 1 || id > len(catalog) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no book " + r.PathValue("id")})
			return
		}
		writeJSON(w, http.StatusOK, catalog[id-1])
	})
	mux.HandleFunc("POST /sum", func(w http.ResponseWriter, r *http.Request) {
		var nums []float64
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&nums); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want a JSON array of numbers: " + err.Error()})
			return
		}
		var sum float64
		for _, n := range nums {
			sum += n
		}
		writeJSON(w, http.StatusOK, map[string]float64{"sum": sum})
	})
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{
			"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery, "host": r.Host,
			"root_path": wasmhttp.RootPath(r.Context()), "user_agent": r.UserAgent(), "proto": r.Proto,
		})
	})
	wasmhttp.Handle(mux)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func main() {}
