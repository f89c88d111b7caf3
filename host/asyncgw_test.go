package host

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

func TestAsyncHTTPBasics(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}, WSConfig{})
	resp, body := get(t, s.srv.URL+"/")
	if resp.StatusCode != 200 || body != "hello\n" || resp.Header.Get("Content-Length") != "6" {
		t.Fatalf("hello: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = get(t, s.srv.URL+"/status")
	if resp.StatusCode != 418 {
		t.Fatalf("status: %d", resp.StatusCode)
	}
	resp, _ = get(t, s.srv.URL+"/nothing")
	if resp.StatusCode != 404 {
		t.Fatalf("404: %d", resp.StatusCode)
	}
	// A body bigger than the read-ahead window and a response bigger than the
	// high-water mark exercise BODY and WRITABLE events.
	in := bytes.Repeat([]byte("0123456789"), 30000)
	r2, err := http.Post(s.srv.URL+"/echo", "application/octet-stream", bytes.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 200 || !bytes.Equal(in, out) {
		t.Fatalf("echo: %d, %d bytes back of %d", r2.StatusCode, len(out), len(in))
	}
	resp, body = get(t, s.srv.URL+"/big?n=500")
	if resp.StatusCode != 200 || len(body) != 500000 {
		t.Fatalf("big: %d %d", resp.StatusCode, len(body))
	}
}

// TestAsyncHTTPConcurrent checks every response matches its request id under
// concurrent load, with requests overlapping on the instances.
func TestAsyncHTTPConcurrent(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}, WSConfig{})
	const clients, each = 32, 40
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				id := fmt.Sprintf("%d-%d", i, j)
				resp, err := c.Get(s.srv.URL + "/id?ms=" + fmt.Sprint(j%3) + "&id=" + id)
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || string(b) != "id="+id {
					errs <- fmt.Errorf("request %s: %d %q", id, resp.StatusCode, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := s.pool.Stats()
	if st.Served < clients*each {
		t.Errorf("served %d, want ≥ %d", st.Served, clients*each)
	}
}

// TestAsyncSSEMany holds many SSE streams on one instance, each driven by host
// timers, and checks each stream is complete.
func TestAsyncSSEMany(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{}, WSConfig{})
	const clients, events = 300, 5
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(s.srv.URL + fmt.Sprintf("/sse?n=%d&ms=200", events))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := ""
			for i := 1; i <= events; i++ {
				want += fmt.Sprintf("data: %d\n\n", i)
			}
			if string(b) != want {
				errs <- fmt.Errorf("stream: %q", b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Streams run concurrently: 300 streams of 4 sleeps of 200 ms take about 0.8 s,
	// not 300 × 0.8 s.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s: streams did not run concurrently", d)
	}
}

// TestAsyncTrapFailsOnlyItsRequests: a trap costs the requests on that instance,
// the pool replaces it and keeps serving.
func TestAsyncTrapHTTP(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}, WSConfig{})
	resp, _ := get(t, s.srv.URL+"/trap")
	if resp.StatusCode != 500 {
		t.Fatalf("trap: %d", resp.StatusCode)
	}
	for i := range 20 {
		resp, body := get(t, s.srv.URL+"/")
		if resp.StatusCode != 200 || body != "hello\n" {
			t.Fatalf("after trap, request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	waitUntil(t, "replacement", 10*time.Second, func() bool { return s.pool.Stats().Live == 2 })
	if st := s.pool.Stats(); st.Discarded != 1 {
		t.Errorf("discarded %d, want 1", st.Discarded)
	}
	if !strings.Contains(s.logs.String(), "trap on purpose") {
		t.Errorf("log lacks the guest's panic:\n%s", s.logs.String())
	}
}

// TestAsyncGoGoroutines: goroutines started with wasmsrv.Go park in SDK calls on
// channels while connections run on coroutines; both kinds interleave on one
// instance without stalling it, and the goroutines' sleeps all return.
func TestAsyncGoGoroutines(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 1}, runtime.AsyncConfig{}, WSConfig{})
	done := func() int {
		_, body := get(t, s.srv.URL+"/memstats")
		for _, f := range strings.Fields(body) {
			if v, ok := strings.CutPrefix(f, "spawned_done="); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
		t.Fatalf("no spawned_done in %q", body)
		return 0
	}
	if resp, _ := get(t, s.srv.URL+"/spawn?n=50&ms=400"); resp.StatusCode != 200 {
		t.Fatalf("spawn: %d", resp.StatusCode)
	}
	start := time.Now()
	for i := range 3 {
		if resp, body := get(t, s.srv.URL+fmt.Sprintf("/id?ms=50&id=%d", i)); resp.StatusCode != 200 || body != fmt.Sprintf("id=%d", i) {
			t.Fatalf("request %d beside the goroutines: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := done(); n != 0 && time.Since(start) < 350*time.Millisecond {
		t.Fatalf("%d goroutines done before their sleep was over", n)
	}
	waitUntil(t, "the goroutines' sleeps", 5*time.Second, func() bool { return done() == 50 })
	if resp, body := get(t, s.srv.URL+"/"); resp.StatusCode != 200 || body != "hello\n" {
		t.Fatalf("after: %d %q", resp.StatusCode, body)
	}
	if st := s.pool.Stats(); st.Discarded != 0 {
		t.Errorf("discarded %d instances", st.Discarded)
	}
}

// TestAsyncTrapCostsOnlyItsInstance: requests in flight on both instances when
// one traps: those on the trapped instance get 500, those on the other complete.
func TestAsyncTrapCostsOnlyItsInstance(t *testing.T) {
	s := startAsync(t, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}, WSConfig{})
	const n = 10
	wait := slowGets(t, s.srv.URL, n)
	waitUntil(t, "requests on both instances", 5*time.Second, func() bool {
		c := s.pool.Stats().Conns
		return len(c) == 2 && c[0]+c[1] == n
	})
	if resp, _ := get(t, s.srv.URL+"/trap"); resp.StatusCode != 500 {
		t.Fatalf("trap: %d", resp.StatusCode)
	}
	codes := wait()
	ok, failed := codes[200], codes[500]
	for c := range codes {
		if c != 200 && c != 500 {
			t.Errorf("status %d", c)
		}
	}
	if ok == 0 || failed == 0 || ok+failed != n {
		t.Errorf("%d completed, %d failed of %d: a trap must fail its own instance's requests only", ok, failed, n)
	}
	if st := s.pool.Stats(); st.Discarded != 1 {
		t.Errorf("discarded %d, want 1", st.Discarded)
	}
}
