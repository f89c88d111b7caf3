package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"slices"
	"testing"
)

// leanHead reads a response head the way exchangeHead does: interim
// responses are skipped, 101 is refused, then the framing is decided.
func leanHead(data []byte, method string) (*exchange, *bufio.Reader, error) {
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	ex := newExchange().(*exchange)
	ex.reset()
	for {
		if err := readHead(br, ex); err != nil {
			return nil, nil, err
		}
		if ex.status >= 200 {
			break
		}
		if ex.status == http.StatusSwitchingProtocols {
			return nil, nil, io.ErrUnexpectedEOF
		}
		clear(ex.hdr)
	}
	return ex, br, ex.frame(method)
}

// FuzzReadHead checks the lean proxy's HTTP/1 response head parser
// (readHead, frame) against net/http's: it never panics, and a head it
// accepts net/http accepts too, with the same status, fields and framing,
// so an upstream cannot make the proxy and a strict client (or the next
// response on the connection) read a response differently.
func FuzzReadHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
		"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nbody to the close",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nEtag: \"x\"\r\n\r\n",
		"HTTP/1.1 200 OK\nSet-Cookie: a=1\nSet-Cookie: b=2\n\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
		"HTTP/1.1 200\r\nConnection: close\r\n\r\nto the end",
		"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: \x01\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX A: 1\r\n\r\n",
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		ex, br, err := leanHead(data, method)
		if err != nil {
			return
		}
		nbr := bufio.NewReader(bytes.NewReader(data))
		var resp *http.Response
		for { // interim responses first, as exchangeHead skips them
			resp, err = http.ReadResponse(nbr, &http.Request{Method: method})
			if err != nil || resp.StatusCode >= 200 {
				break
			}
		}
		if err != nil {
			t.Fatalf("lean accepts a head net/http refuses (%v):\n%q", err, data)
		}
		defer resp.Body.Close()
		if resp.StatusCode != ex.status {
			t.Fatalf("status: lean %d, net/http %d", ex.status, resp.StatusCode)
		}
		for k, vv := range ex.hdr {
			if k == "Content-Length" || k == "Connection" { // net/http takes "close" out
				continue
			}
			if got := resp.Header[k]; !slices.Equal(got, vv) {
				t.Fatalf("%s: lean %q, net/http %q", k, vv, got)
			}
		}
		for k := range resp.Header {
			if _, ok := ex.hdr[k]; !ok && k != "Content-Length" && k != "Transfer-Encoding" && k != "Connection" {
				t.Fatalf("net/http reads a field %s that lean does not", k)
			}
		}
		chunked := len(resp.TransferEncoding) > 0
		switch {
		case ex.noBody:
			if resp.Body != http.NoBody && method != http.MethodHead {
				if n, _ := io.Copy(io.Discard, resp.Body); n > 0 {
					t.Fatalf("lean reads no body, net/http %d bytes", n)
				}
			}
		case ex.chunked != chunked:
			t.Fatalf("chunked: lean %v, net/http %v", ex.chunked, chunked)
		case !ex.chunked && ex.length != resp.ContentLength:
			t.Fatalf("length: lean %d, net/http %d", ex.length, resp.ContentLength)
		}
		if ex.length < 0 && !ex.chunked && !ex.noBody && !ex.closeAfter {
			t.Fatal("a body delimited by the close, on a connection kept for reuse")
		}
		if resp.Close && !ex.closeAfter && !ex.noBody {
			t.Fatalf("net/http closes after this response, lean would reuse the connection: %q", data)
		}
		// Where the body starts, both agree: lean's reader is at the same
		// offset as net/http's, so a body of known length ends at the same byte.
		if !ex.chunked && ex.length > 0 && int64(br.Buffered()) >= ex.length {
			want, _ := io.ReadAll(io.LimitReader(resp.Body, ex.length))
			got, _ := br.Peek(int(ex.length))
			if !bytes.Equal(got, want) {
				t.Fatalf("body: lean %q, net/http %q", got, want)
			}
		}
	})
}
