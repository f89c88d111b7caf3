package host

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serveOn starts srv and returns a stop function that cancels it and waits.
func serveOn(t *testing.T, srv *Server) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func text(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })
}

// rawGet sends one keep-alive request on c and returns the body, or an error
// when the server closed the connection instead of answering.
func rawGet(c net.Conn, br *bufio.Reader) (string, error) {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestMaxConnsPerIP(t *testing.T) {
	srv := NewServer(ServerConfig{Addr: "127.0.0.1:0", MaxConnsPerIP: 2}, text("ok"), nil)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	serveOn(t, srv)
	addr := srv.Socket().Addr().String()
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	// Two idle keep-alive connections hold both slots.
	c1, b1 := dial()
	c2, b2 := dial()
	for i, c := range []struct {
		c net.Conn
		b *bufio.Reader
	}{{c1, b1}, {c2, b2}} {
		if body, err := rawGet(c.c, c.b); err != nil || body != "ok" {
			t.Fatalf("connection %d: %q %v", i+1, body, err)
		}
	}
	c3, b3 := dial()
	if body, err := rawGet(c3, b3); err == nil {
		t.Fatalf("third connection from the same IP was served: %q", body)
	}
	// Closing one frees its slot.
	c1.Close()
	var body string
	var err error
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		c4, b4 := dial()
		if body, err = rawGet(c4, b4); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil || body != "ok" {
		t.Fatalf("after closing one: %q %v", body, err)
	}
	// The second connection was never disturbed.
	if body, err := rawGet(c2, b2); err != nil || body != "ok" {
		t.Fatalf("held connection: %q %v", body, err)
	}
}

// TestHandoverKeepsConnections swaps the server on a socket (what a reload
// with changed listener settings does) under a stream of new connections and
// an in-flight slow request: nothing fails, new connections reach the new
// server, and the slow request finishes on the old one.
func TestHandoverKeepsConnections(t *testing.T) {
	release := make(chan struct{})
	slowStarted := make(chan struct{})
	oldH := http.NewServeMux()
	oldH.Handle("/", text("old"))
	oldH.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(slowStarted)
		<-release
		io.WriteString(w, "slow done")
	})
	old := NewServer(ServerConfig{Addr: "127.0.0.1:0"}, oldH, nil)
	if err := old.Listen(); err != nil {
		t.Fatal(err)
	}
	stopOld := serveOn(t, old)
	url := "http://" + old.Socket().Addr().String()

	slow := make(chan string, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			slow <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		slow <- string(b)
	}()
	<-slowStarted

	// A client opening a new connection per request, all the while.
	var failures, okOld, okNew atomic.Int64
	stopLoad := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			resp, err := client.Get(url)
			if err != nil {
				failures.Add(1)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch string(b) {
			case "old":
				okOld.Add(1)
			case "new":
				okNew.Add(1)
			default:
				failures.Add(1)
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)

	next := NewServer(ServerConfig{Addr: "127.0.0.1:0"}, text("new"), nil)
	if err := next.Adopt(old.Detach()); err != nil {
		t.Fatal(err)
	}
	serveOn(t, next)
	go stopOld() // waits for the slow request
	time.Sleep(200 * time.Millisecond)
	close(release)
	if got := <-slow; got != "slow done" {
		t.Errorf("in-flight request across the handover: %q", got)
	}
	time.Sleep(100 * time.Millisecond)
	close(stopLoad)
	<-loadDone
	if failures.Load() != 0 || okOld.Load() == 0 || okNew.Load() == 0 {
		t.Errorf("requests: %d failed, %d old, %d new; want 0 failed and some of each", failures.Load(), okOld.Load(), okNew.Load())
	}
	if resp, err := http.Get(url); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "new") {
			t.Errorf("after the handover: %q", b)
		}
	}
}

func TestSocketCloseEndsServe(t *testing.T) {
	srv := NewServer(ServerConfig{Addr: "127.0.0.1:0"}, text("ok"), nil)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	stop := serveOn(t, srv)
	addr := srv.Socket().Addr().String()
	stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal(fmt.Errorf("socket still accepting after Serve returned"))
	}
}

// A server that handed its socket over takes no connection after Detach
// returns, even while it still serves (its retirement runs later, on a
// goroutine of its own): the connection waits for the successor. Before, the
// old server's accept loop took the next connection, so a reload that had
// returned still served the old config (or certificate) to the next client.
func TestDetachTakesNoNewConnection(t *testing.T) {
	old := NewServer(ServerConfig{Addr: "127.0.0.1:0"}, text("old"), nil)
	if err := old.Listen(); err != nil {
		t.Fatal(err)
	}
	url := old.URL()
	serveOn(t, old) // still serving, not stopped, for the whole test
	// A first connection shows the old server accepts.
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second}
	if resp, err := c.Get(url); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "old" {
			t.Fatalf("before the handover: %q", b)
		}
	}
	next := NewServer(ServerConfig{Addr: "127.0.0.1:0"}, text("new"), nil)
	if err := next.Adopt(old.Detach()); err != nil {
		t.Fatal(err)
	}
	// Connections made before the successor serves wait for it.
	got := make(chan string, 3)
	for range 3 {
		go func() {
			resp, err := c.Get(url)
			if err != nil {
				got <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got <- string(b)
		}()
	}
	serveOn(t, next)
	for range 3 {
		if b := <-got; b != "new" {
			t.Errorf("a connection made after Detach was answered %q, want the successor's \"new\"", b)
		}
	}
}
