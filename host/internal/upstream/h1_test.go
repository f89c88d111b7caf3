package upstream

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A server closing idle keep-alive connections must not cost a failed
// request or an ejection: the request is replayed on a fresh connection.
func TestStaleKeepAliveReplayed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := &http.Server{
		IdleTimeout: 30 * time.Millisecond,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
	}
	go srv.Serve(ln)
	defer srv.Close()
	g, front := newFront(t, Config{Servers: []ServerConfig{{URL: "http://" + ln.Addr().String()}}, MaxFails: 1, Retries: 0})
	for i := range 4 {
		if code, body, _ := get(t, http.DefaultClient, front.URL+"/"); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
		time.Sleep(80 * time.Millisecond) // the server drops the idle connection
	}
	if !g.servers[0].Available() {
		t.Error("server ejected for closing idle connections")
	}
	if conns.Load() < 2 {
		t.Errorf("%d connections: the idle close did not happen, test proves nothing", conns.Load())
	}
}

// Connections are reused between requests, and bodies of every framing
// come through intact.
func TestKeepAliveReuseAndFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	srv := &http.Server{
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/chunked":
				for i := range 3 {
					fmt.Fprintf(w, "part%d;", i)
					w.(http.Flusher).Flush()
				}
			case "/empty":
				w.WriteHeader(http.StatusNoContent)
			case "/post":
				b, _ := io.ReadAll(r.Body)
				fmt.Fprintf(w, "got %d bytes", len(b))
			default:
				io.WriteString(w, "plain")
			}
		}),
	}
	go srv.Serve(ln)
	defer srv.Close()
	_, front := newFront(t, Config{Servers: []ServerConfig{{URL: "http://" + ln.Addr().String()}}})
	for range 5 {
		for path, want := range map[string]string{"/chunked": "part0;part1;part2;", "/empty": "", "/x": "plain"} {
			if code, body, _ := get(t, http.DefaultClient, front.URL+path); body != want || code >= 300 {
				t.Errorf("%s: %d %q", path, code, body)
			}
		}
		resp, err := http.Post(front.URL+"/post", "text/plain", strings.NewReader(strings.Repeat("x", 100000)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "got 100000 bytes" {
			t.Errorf("post: %q", b)
		}
		req, _ := http.NewRequest("HEAD", front.URL+"/x", nil)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Errorf("HEAD: %v", err)
		} else {
			resp.Body.Close()
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d upstream connections for 25 sequential requests, want 1 (keep-alive)", n)
	}
}

// A request with a body is not sent on a connection idle long enough for
// the server to be closing it (it could not be replayed).
func TestBodyRequestsAvoidOldConnections(t *testing.T) {
	tr := newH1(nil, 4, time.Minute, 0, 0)
	now := time.Now()
	old := &pconn{lastUsed: now.Add(-10 * time.Second)}
	tr.idle["a:1"] = []*pconn{old}
	if pc := tr.get("a:1", now, freshFor); pc != nil {
		t.Error("10s-idle connection handed to a non-replayable request")
	}
	if pc := tr.get("a:1", now, time.Minute); pc != old {
		t.Error("10s-idle connection not reused for a replayable request")
	}
}

// A body that stalls longer than ReadTimeout is cut, not waited on forever.
func TestReadTimeout(t *testing.T) {
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "start;")
		w.(http.Flusher).Flush()
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		io.WriteString(w, "late")
	}))
	_, front := newFront(t, Config{Servers: []ServerConfig{{URL: srv}}, ReadTimeout: 100 * time.Millisecond})
	start := time.Now()
	resp, err := http.Get(front.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if time.Since(start) > time.Second || strings.Contains(string(b), "late") {
		t.Errorf("stalled body not cut: %q after %v", b, time.Since(start))
	}
}

func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// A client body over the limit answers 413 and does not count against the
// server.
func TestClientBodyErrorIsNotServerFailure(t *testing.T) {
	up := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	g, err := New(Config{Name: "x", Servers: []ServerConfig{{URL: up}}, MaxFails: 1}, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	front := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 10)
		g.ServeHTTP(w, r)
	}))
	req, _ := http.NewRequest("POST", front+"/", io.MultiReader(strings.NewReader(strings.Repeat("x", 5000))))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
	if !g.servers[0].Available() {
		t.Error("server ejected for the client's oversized body")
	}
}

// Interim 1xx answers (100 Continue for a forwarded Expect, 103 Early
// Hints) are not mistaken for the response.
func TestInterimResponses(t *testing.T) {
	up := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hints" {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
		}
		b, _ := io.ReadAll(r.Body) // answers 100 Continue first when asked
		fmt.Fprintf(w, "final %d", len(b))
	}))
	_, front := newFront(t, Config{Servers: []ServerConfig{{URL: up}}})
	if code, body, _ := get(t, http.DefaultClient, front.URL+"/hints"); code != 200 || body != "final 0" {
		t.Errorf("early hints: %d %q", code, body)
	}
	req, _ := http.NewRequest("POST", front.URL+"/upload", strings.NewReader(strings.Repeat("x", 3000)))
	req.Header.Set("Expect", "100-continue")
	resp, err := (&http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Second}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "final 3000" {
		t.Errorf("expect-continue: %d %q", resp.StatusCode, b)
	}
}
