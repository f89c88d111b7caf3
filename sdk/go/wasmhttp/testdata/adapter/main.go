// Command adapter is the test guest of package wasmhttp: a net/http ServeMux run
// through wasmhttp.Handle, with one route per behaviour of the adapter that
// wasmhttp_test.go checks from a real client. It is built for both shapes.
package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/wasmsrv/wasmsrv/sdk/go/wasmhttp"
)

// Info is what /info reports about the *http.Request the adapter built.
type Info struct {
	Method, Path, RawPath, RawQuery, Scheme, URLHost, Host, RequestURI, Proto string
	ProtoMajor                                                                int
	Header                                                                    http.Header
	ContentLength                                                             int64
	TransferEncoding                                                          []string
	RemoteAddr, RootPath, Rest                                                string
	Body                                                                      string
}

func info(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	json.NewEncoder(w).Encode(Info{
		Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery,
		Scheme: r.URL.Scheme, URLHost: r.URL.Host, Host: r.Host, RequestURI: r.RequestURI,
		Proto: r.Proto, ProtoMajor: r.ProtoMajor, Header: r.Header, ContentLength: r.ContentLength,
		TransferEncoding: r.TransferEncoding, RemoteAddr: r.RemoteAddr,
		RootPath: wasmhttp.RootPath(r.Context()), Rest: r.PathValue("rest"), Body: string(body),
	})
}

// pingpong answers each line of the request body as soon as it arrives, flushing,
// so the client can wait for an answer before it sends the next line.
func pingpong(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	sc := bufio.NewScanner(r.Body)
	rc := http.NewResponseController(w)
	for sc.Scan() {
		io.WriteString(w, "got "+sc.Text()+"\n")
		if err := rc.Flush(); err != nil {
			return
		}
	}
	io.WriteString(w, "end\n")
}

func init() {
	mux := http.NewServeMux()
	mux.HandleFunc("/info/{rest...}", info)
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("POST /pingpong", pingpong)
	mux.HandleFunc("GET /status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.Header().Set("X-Code", r.PathValue("code"))
		w.WriteHeader(code)
		io.WriteString(w, "body of "+r.PathValue("code"))
	})
	mux.HandleFunc("GET /sniff", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<!DOCTYPE html><html><body>hi</body></html>")
	})
	mux.HandleFunc("GET /typed", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-mine")
		io.WriteString(w, "<html>")
	})
	mux.HandleFunc("GET /twice", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Header().Set("X-Late", "too late") // after WriteHeader: not sent, as in net/http
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "created")
	})
	mux.HandleFunc("GET /early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints) // 1xx: not forwarded in ABI v1
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /multi", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		w.Header()["x-lower-case"] = []string{"kept"}
		w.Header().Add("X-List", "one")
		w.Header().Add("X-List", "two")
	})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	mux.HandleFunc("GET /panic-after-write", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("boom")
	})
	mux.HandleFunc("GET /bad-code", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(42) })
	mux.HandleFunc("GET /error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no tea here", http.StatusTeapot)
	})
	mux.HandleFunc("GET /redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "target?x=1", http.StatusFound)
	})
	mux.HandleFunc("GET /empty", func(w http.ResponseWriter, r *http.Request) {})
	wasmhttp.Handle(mux)
}

func main() {}
