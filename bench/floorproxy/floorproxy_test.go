package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// The floor proxies are benchmark peers: these tests check they answer what
// the bench expects, keep connections alive, and refuse what they do not do.

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestFloorProxy(t *testing.T) {
	modes := map[string]func(listen, upstream string, conns int) error{
		"goroutine": serveGoroutines,
	}
	if runtime.GOOS == "linux" {
		modes["epoll"] = serveEpoll
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s xff=%s", r.Method, r.URL.Path, r.Header.Get("X-Forwarded-For"))
	}))
	defer up.Close()
	for mode, serve := range modes {
		t.Run(mode, func(t *testing.T) {
			addr := freeAddr(t)
			go serve(addr, strings.TrimPrefix(up.URL, "http://"), 4)
			base := "http://" + addr
			waitUp(t, base)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for i := range 16 { // more clients than upstream connections: some wait
				wg.Go(func() {
					for j := range 50 {
						path := fmt.Sprintf("/c%d/r%d", i, j)
						resp, err := client.Get(base + path)
						if err != nil {
							errs <- err
							return
						}
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if want := "GET " + path + " xff=127.0.0.1"; string(b) != want {
							errs <- fmt.Errorf("got %q, want %q", b, want)
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			resp, err := client.Post(base+"/", "text/plain", strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotImplemented {
				t.Errorf("POST with a body: %d, want 501", resp.StatusCode)
			}
		})
	}
}

func waitUp(t *testing.T, base string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			return
		}
	}
	t.Fatalf("%s never answered", base)
}
