package upstream

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLeanProxySemantics checks what the lean path must keep from
// ReverseProxy, against a real upstream.
func TestLeanProxySemantics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo-headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "X-Secret-Hop")
		w.Header().Set("X-Secret-Hop", "must not reach the client")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Add("Set-Cookie", "a=1")
		w.Header().Add("Set-Cookie", "b=2")
		fmt.Fprintf(w, "hop=%q te=%q conn=%q ua=%q prefix=%q uri=%s",
			r.Header.Get("X-Client-Hop"), r.Header.Get("Te"), r.Header.Get("Connection"),
			r.Header.Get("User-Agent"), r.Header.Get("X-Forwarded-Prefix"), r.RequestURI)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc123")
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(150 * time.Millisecond)
		}
	})
	mux.HandleFunc("/cut", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "only a part")
		w.(http.Flusher).Flush()
		conn, _, _ := http.NewResponseController(w).Hijack()
		conn.Close()
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("z", 300<<10))
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d %q %d", len(b), r.TransferEncoding, r.ContentLength)
	})
	mux.HandleFunc("/notmod", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	up := &http.Server{Handler: mux}
	front := frontOf(t, up)

	t.Run("hop-by-hop headers dropped both ways", func(t *testing.T) {
		req, _ := http.NewRequest("GET", front.URL+"/echo-headers?q=a%20b", nil)
		req.Header.Set("Connection", "X-Client-Hop")
		req.Header.Set("X-Client-Hop", "secret")
		req.Header.Set("Te", "trailers, deflate")
		req.Header.Set("User-Agent", "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := `hop="" te="trailers" conn="" ua="" prefix="" uri=/echo-headers?q=a%20b`; string(b) != want {
			t.Errorf("upstream saw %s\nwant        %s", b, want)
		}
		if resp.Header.Get("X-Secret-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
			t.Errorf("hop-by-hop response headers reached the client: %v", resp.Header)
		}
		if got := resp.Header.Values("Set-Cookie"); len(got) != 2 {
			t.Errorf("Set-Cookie values: %q, want both", got)
		}
	})
	t.Run("trailers relayed", func(t *testing.T) {
		resp, err := http.Get(front.URL + "/trailers")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "body" || resp.Trailer.Get("X-Checksum") != "abc123" {
			t.Errorf("body %q trailer %v", b, resp.Trailer)
		}
	})
	t.Run("stream flushed as it comes", func(t *testing.T) {
		start := time.Now()
		resp, err := http.Get(front.URL + "/stream")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: 0\n" {
			t.Fatalf("first event: %q %v", line, err)
		}
		if took := time.Since(start); took > 250*time.Millisecond {
			t.Errorf("first event after %v: held back until the stream ended", took)
		}
	})
	t.Run("upstream cut mid-body is an error for the client", func(t *testing.T) {
		resp, err := http.Get(front.URL + "/cut")
		if err != nil {
			return // also acceptable: the connection reset before the head
		}
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Error("a cut upstream body reached the client as a complete response")
		}
	})
	t.Run("large body and uploads", func(t *testing.T) {
		_, body, _ := get(t, http.DefaultClient, front.URL+"/big")
		if len(body) != 300<<10 {
			t.Errorf("big body: %d bytes", len(body))
		}
		resp, err := http.Post(front.URL+"/upload", "text/plain", strings.NewReader(strings.Repeat("u", 100000)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != `100000 [] 100000` {
			t.Errorf("upload with length: %s", b)
		}
		// No length: sent on chunked.
		resp, err = http.Post(front.URL+"/upload", "text/plain", io.MultiReader(strings.NewReader("abc"), strings.NewReader("def")))
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != `6 ["chunked"] -1` {
			t.Errorf("chunked upload: %s", b)
		}
	})
	t.Run("HEAD and 304 carry no body", func(t *testing.T) {
		for range 3 { // on the same pooled connection: framing must stay right
			resp, err := http.Head(front.URL + "/big")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("HEAD: %d", resp.StatusCode)
			}
			code, body, h := get(t, http.DefaultClient, front.URL+"/notmod")
			if code != 304 || body != "" || h.Get("Etag") != `"v1"` {
				t.Errorf("304: %d %q %v", code, body, h)
			}
		}
	})
	t.Run("a request without a body goes without one", func(t *testing.T) {
		// HTTP/2 requests that end with their HEADERS frame have a Body that
		// is not http.NoBody and a length of 0: nothing to send, and no
		// "Transfer-Encoding: chunked" on a GET.
		g := front.Config.Handler
		req := httptest.NewRequest("GET", "/upload", io.NopCloser(strings.NewReader("")))
		req.ContentLength = 0
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		if rec.Code != 200 || rec.Body.String() != `0 [] 0` {
			t.Errorf("upstream saw %d %q", rec.Code, rec.Body.String())
		}
	})
	t.Run("a malformed request line is never written", func(t *testing.T) {
		g := front.Config.Handler
		for _, m := range []struct{ method, target, host string }{
			{"GET /evil", "/upload", "x"}, {"G(ET", "/upload", "x"}, {"", "/upload", "x"},
			{"GET", "/upload?a b", "x"}, {"GET", "/upload?a\r\nX: 1", "x"}, {"GET", "/upload", "a b"}, {"GET", "/upload", "a\r\nX: 1"},
		} {
			req := httptest.NewRequest("GET", "/upload", nil)
			req.Method, req.Host = m.method, m.host
			if _, q, ok := strings.Cut(m.target, "?"); ok {
				req.URL.RawQuery = q
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest {
				t.Errorf("%q %q host %q: %d %q", m.method, m.target, m.host, rec.Code, rec.Body.String())
			}
		}
	})
}

// TestLeanRefusesUntrustedFraming: an upstream response whose framing the
// proxy cannot trust gets 502 (as from nginx), and one framed two ways is
// read by its chunks on a connection that is not reused.
func TestLeanRefusesUntrustedFraming(t *testing.T) {
	answers := map[string]string{
		"/two-lengths": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
		"/length-list": "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabc",
		"/bad-length":  "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
		"/gzip-te":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"/two-te":      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"/te-and-cl":   "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"/same-twice":  "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"/version":     "HTTP/1.x 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(c, answers[req.URL.Path]); err != nil {
						return
					}
				}
			}()
		}
	}()
	_, front := newFront(t, Config{Servers: []ServerConfig{{URL: "http://" + ln.Addr().String()}}})
	c := &http.Client{Timeout: 10 * time.Second} // a body read to a close that never comes fails, not hangs
	for _, path := range []string{"/two-lengths", "/length-list", "/bad-length", "/gzip-te", "/two-te", "/version"} {
		if code, body, _ := get(t, c, front.URL+path); code != http.StatusBadGateway {
			t.Errorf("%s: %d %q, want 502", path, code, body)
		}
	}
	if code, body, h := get(t, c, front.URL+"/same-twice"); code != 200 || body != "abc" || len(h["Content-Length"]) != 1 {
		t.Errorf("same length twice: %d %q %v", code, body, h)
	}
	before := conns.Load()
	for range 3 {
		if code, body, h := get(t, c, front.URL+"/te-and-cl"); code != 200 || body != "abc" || h.Get("Content-Length") != "" {
			t.Errorf("chunked with a length: %d %q %v", code, body, h)
		}
	}
	// The first may take an idle connection; each later one needs a new one.
	if n := conns.Load() - before; n < 2 {
		t.Errorf("%d new upstream connections for three responses framed two ways: a connection was reused after one", n)
	}
}

// frontOf serves up on a loopback listener and returns a proxy in front of it.
func frontOf(t *testing.T, up *http.Server) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go up.Serve(ln)
	t.Cleanup(func() { up.Close() })
	_, front := newFront(t, Config{Servers: []ServerConfig{{URL: "http://" + ln.Addr().String()}}})
	return front
}
