// Command gohttp is the ABI conformance app as an ordinary net/http handler run
// through the SDK's adapter (sdk/go/wasmhttp). It must answer exactly like conform.c
// and gonative (routes: abi/conformance/README.md).
package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/wasmhttp"
)

// started is set by the start hook (SPEC §6), which runs before the instance takes
// traffic.
var started bool

func init() {
	wasmhttp.HandleFunc(conform)
	wasmsrv.OnStart(func() error { started = true; return nil })
}

func main() {}

// num parses the decimal after prefix in s ("size=7"), or -1.
func num(s, prefix string) int {
	v, ok := strings.CutPrefix(s, prefix)
	if !ok || v == "" {
		return -1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 100000000 {
		return -1
	}
	return n
}

func conform(w http.ResponseWriter, r *http.Request) {
	textPlain := func() { w.Header().Set("Content-Type", "text/plain; charset=utf-8") }
	p := r.URL.EscapedPath()
	if r.URL.RawPath != "" {
		p = r.URL.RawPath
	}
	switch {
	case p == "/hello":
		textPlain()
		io.WriteString(w, "Hello from wasmsrv!\n")
	case strings.HasPrefix(p, "/status/"):
		c := num(p, "/status/")
		if c < 200 || c > 999 {
			w.WriteHeader(400)
			return
		}
		textPlain()
		w.WriteHeader(c)
		if c != 204 && c != 304 {
			fmt.Fprintf(w, "status %d\n", c)
		}
	case strings.HasPrefix(p, "/return/"):
		c := num(p, "/return/")
		if c < 100 || c > 599 {
			panic("app error")
		}
		w.WriteHeader(c)
	case p == "/req" || strings.HasPrefix(p, "/req/"):
		var b strings.Builder
		fmt.Fprintf(&b, "method=%s\npath=%s\nquery=%s\nroot=%s\nproto=HTTP/%d.%d\ncontent-length=%d\n",
			r.Method, p, r.URL.RawQuery, wasmhttp.RootPath(r.Context()), r.ProtoMajor, r.ProtoMinor, r.ContentLength)
		// net/http's Header is a map: the host sends names sorted, so sorting the
		// canonical names gives back the order on the wire.
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range names {
			lk := strings.ToLower(k)
			if !strings.HasPrefix(lk, "x-") {
				continue
			}
			for _, v := range r.Header[k] {
				fmt.Fprintf(&b, "h:%s=%s\n", lk, v)
			}
		}
		textPlain()
		io.WriteString(w, b.String())
	case p == "/echo":
		echo(w, r, 65536)
	case p == "/chunks":
		n := num(r.URL.RawQuery, "size=")
		if n < 1 || n > 65536 {
			w.WriteHeader(400)
			return
		}
		echo(w, r, n)
	case p == "/binary":
		b := make([]byte, 256)
		for i := range b {
			b[i] = byte(i)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(b)
	case p == "/empty":
	case p == "/large":
		n := num(r.URL.RawQuery, "n=")
		if n < 0 {
			w.WriteHeader(400)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := make([]byte, 16384)
		for off := 0; off < n; {
			k := 0
			for ; k < len(chunk) && off < n; k, off = k+1, off+1 {
				chunk[k] = byte(off % 251)
			}
			if _, err := w.Write(chunk[:k]); err != nil {
				return
			}
		}
	case p == "/stream":
		n := num(r.URL.RawQuery, "n=")
		if n < 1 || n > 100 {
			w.WriteHeader(400)
			return
		}
		textPlain()
		rc := http.NewResponseController(w)
		for i := range n {
			fmt.Fprintf(w, "chunk %d\n", i)
			if rc.Flush() != nil {
				return
			}
			if i+1 < n {
				time.Sleep(100 * time.Millisecond)
			}
		}
	case p == "/resp-headers":
		h := w.Header()
		h.Add("X-Multi", "one")
		h.Add("X-Multi", "two")
		h.Add("X-Multi", "three")
		h.Add("Set-Cookie", "a=1")
		h.Add("Set-Cookie", "b=2")
		h.Add("X-Bytes", "caf\xc3\xa9")
		textPlain()
		io.WriteString(w, "ok\n")
	case p == "/replace":
		w.Header().Set("X-First", "1")
		w.Header().Del("X-First")
		w.Header().Set("X-Second", "2")
		textPlain()
		w.WriteHeader(503)
		io.WriteString(w, "replaced\n")
	case p == "/started":
		textPlain()
		if started {
			io.WriteString(w, "started\n")
		} else {
			io.WriteString(w, "not started\n")
		}
	case p == "/fail":
		panic("conformance: /fail")
	default:
		w.WriteHeader(404)
	}
}

// echo streams the body back, reading at most size bytes at a time.
func echo(w http.ResponseWriter, r *http.Request, size int) {
	w.Header().Set("Content-Type", "application/octet-stream")
	buf := make([]byte, size)
	for {
		n, err := r.Body.Read(buf)
		if n > size {
			panic("host wrote past the read buffer")
		}
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err == io.EOF {
			return
		}
		if errors.Is(err, wasmsrv.ErrTooLarge) {
			w.WriteHeader(413)
			return
		}
		if err != nil {
			panic(err)
		}
	}
}
