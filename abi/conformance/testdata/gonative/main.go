// Command gonative is the ABI conformance app on the Go SDK's native API. It must
// answer exactly like conform.c and gohttp (routes: abi/conformance/README.md).
package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

// started is set by the start hook (SPEC §6), which runs before the instance takes
// traffic.
var started bool

func init() {
	wasmsrv.HandleFunc(conform)
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

func conform(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
	textPlain := func() { w.Header().Set("Content-Type", "text/plain; charset=utf-8") }
	p := r.Path
	switch {
	case p == "/hello":
		textPlain()
		w.WriteString("Hello from wasmsrv!\n")
	case strings.HasPrefix(p, "/status/"):
		c := num(p, "/status/")
		if c < 200 || c > 999 {
			w.WriteHeader(400)
			return
		}
		w.WriteHeader(c)
		textPlain()
		if c != 204 && c != 304 {
			fmt.Fprintf(w, "status %d\n", c)
		}
	case strings.HasPrefix(p, "/return/"):
		// The C app returns the code from its handler; the Go SDK's equivalent is a
		// status with nothing written.
		c := num(p, "/return/")
		if c < 100 || c > 599 {
			panic("app error")
		}
		w.WriteHeader(c)
	case p == "/req" || strings.HasPrefix(p, "/req/"):
		var b strings.Builder
		fmt.Fprintf(&b, "method=%s\npath=%s\nquery=%s\nroot=%s\nproto=HTTP/%d.%d\ncontent-length=%d\n",
			r.Method, r.Path, r.RawQuery, r.RootPath, r.ProtoMajor, r.ProtoMinor, r.ContentLength)
		r.Header.Each(func(name, value string) {
			if strings.HasPrefix(name, "x-") {
				fmt.Fprintf(&b, "h:%s=%s\n", name, value)
			}
		})
		textPlain()
		w.WriteString(b.String())
	case p == "/echo":
		echo(w, r, 65536)
	case p == "/chunks":
		n := num(r.RawQuery, "size=")
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
		n := num(r.RawQuery, "n=")
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
		n := num(r.RawQuery, "n=")
		if n < 1 || n > 100 {
			w.WriteHeader(400)
			return
		}
		textPlain()
		for i := range n {
			fmt.Fprintf(w, "chunk %d\n", i)
			if w.Flush() != nil {
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
		w.WriteString("ok\n")
	case p == "/replace":
		w.Header().Set("X-First", "1")
		w.Header().Del("X-First")
		w.Header().Set("X-Second", "2")
		w.WriteHeader(503)
		textPlain()
		w.WriteString("replaced\n")
	case p == "/started":
		textPlain()
		if started {
			w.WriteString("started\n")
		} else {
			w.WriteString("not started\n")
		}
	case p == "/fail":
		panic("conformance: /fail")
	default:
		w.WriteHeader(404)
	}
}

// echo streams the body back, reading at most size bytes at a time.
func echo(w *wasmsrv.ResponseWriter, r *wasmsrv.Request, size int) {
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
		if err == wasmsrv.ErrTooLarge {
			w.WriteHeader(413)
			return
		}
		if err != nil {
			panic(err)
		}
	}
}
