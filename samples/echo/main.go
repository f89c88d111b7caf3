// Command echo reflects requests, through the SDK's native API:
//
//   - a request with a body gets that body streamed back as it arrives, each chunk
//     flushed, with the request's method, path and query in X-Echo-* headers
//     (with --buffer-body 0: by default a sync app's request body is read in
//     whole before the request takes an instance);
//
//   - a request without a body gets a JSON report of its method, path, query,
//     root path and headers (in order, duplicates kept).
//
//     wasmsrv run ./samples/echo
//     curl -d 'hi' localhost:8080/x?y=1
//     curl localhost:8080/x?y=1
package main

import (
	"encoding/json"
	"io"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

type report struct {
	Method   string      `json:"method"`
	Path     string      `json:"path"`
	Query    string      `json:"query"`
	RootPath string      `json:"root_path"`
	Host     string      `json:"host"`
	Proto    string      `json:"proto"`
	Headers  [][2]string `json:"headers"`
}

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		if r.ContentLength != 0 {
			streamBack(w, r)
			return
		}
		rep := report{Method: r.Method, Path: r.Path, Query: r.RawQuery, RootPath: r.RootPath, Host: r.Host,
			Proto: proto(r), Headers: [][2]string{}}
		r.Header.Each(func(name, value string) { rep.Headers = append(rep.Headers, [2]string{name, value}) })
		b, _ := json.Marshal(rep)
		w.Header().Set("Content-Type", "application/json")
		w.Write(append(b, '\n'))
	})
}

func streamBack(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
	ct := r.Header.Get("content-type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Echo-Method", r.Method)
	w.Header().Set("X-Echo-Path", r.Path)
	w.Header().Set("X-Echo-Query", r.RawQuery)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if w.Flush() != nil {
				return
			}
		}
		if err == io.EOF {
			return
		}
		if err != nil {
			if err == wasmsrv.ErrTooLarge {
				w.WriteHeader(413)
			}
			return
		}
	}
}

func proto(r *wasmsrv.Request) string {
	if r.ProtoMajor == 2 {
		return "HTTP/2.0"
	}
	return "HTTP/1." + string(rune('0'+r.ProtoMinor))
}

func main() {}
