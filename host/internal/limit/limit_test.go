package limit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var ok = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

func status(t *testing.T, url string, hdr ...string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestRateBurst(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name       string
		perIP      bool
		otherAfter int // status the other client gets after the first exhausts its burst
	}{
		{"per ip", true, 200},
		{"per route", false, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(NewRate(RateConfig{Rate: 0.5, Burst: 5, PerIP: tt.perIP, Trusted: loop}, ok))
			defer srv.Close()
			for i := range 5 {
				if code, _ := status(t, srv.URL, "X-Forwarded-For", "198.51.100.1"); code != 200 {
					t.Fatalf("request %d within burst: %d", i, code)
				}
			}
			code, h := status(t, srv.URL, "X-Forwarded-For", "198.51.100.1")
			if code != 429 {
				t.Fatalf("past burst: %d", code)
			}
			if ra, _ := strconv.Atoi(h.Get("Retry-After")); ra < 1 || ra > 2 {
				t.Errorf("Retry-After %q, want 1..2 at 0.5 rps", h.Get("Retry-After"))
			}
			if code, _ := status(t, srv.URL, "X-Forwarded-For", "198.51.100.2"); code != tt.otherAfter {
				t.Errorf("other client: %d want %d", code, tt.otherAfter)
			}
		})
	}
}

func TestRateRefills(t *testing.T) {
	var counts Counts
	srv := httptest.NewServer(NewRate(RateConfig{Rate: 20, Burst: 1, PerIP: true, Counts: &counts}, ok))
	defer srv.Close()
	status(t, srv.URL)
	if code, _ := status(t, srv.URL); code != 429 {
		t.Fatalf("second immediate request: %d", code)
	}
	if n := counts.Rate.Load(); n != 1 {
		t.Errorf("counted %d refusals, want 1", n)
	}
	time.Sleep(60 * time.Millisecond)
	if code, _ := status(t, srv.URL); code != 200 {
		t.Errorf("after refill: %d", code)
	}
}

func TestConcurrencyPerIP(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
	})
	var counts Counts
	srv := httptest.NewServer(Concurrency(2, nil, &counts, slow))
	defer srv.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { status(t, srv.URL) })
	}
	<-started
	<-started
	if code, _ := status(t, srv.URL); code != 503 {
		t.Errorf("third concurrent request: %d", code)
	}
	if n := counts.ConnPerIP.Load(); n != 1 {
		t.Errorf("counted %d refusals, want 1", n)
	}
	close(release)
	wg.Wait()
	if code, _ := status(t, srv.URL); code != 200 {
		t.Errorf("after release: %d", code)
	}
}

func TestConnsAcquire(t *testing.T) {
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	loop := netip.MustParseAddr("127.0.0.1")
	c := NewConns(2, nil)
	_, c1, ok1 := c.Acquire(peer)
	_, c2, ok2 := c.Acquire(peer)
	_, c3, ok3 := c.Acquire(peer)
	if !ok1 || !ok2 || ok3 || !c1 || !c2 || c3 {
		t.Fatalf("acquired %v %v %v (counted %v %v %v), want the third refused", ok1, ok2, ok3, c1, c2, c3)
	}
	c.Release(loop)
	if n := c.Open(loop); n != 1 {
		t.Fatalf("open after release: %d, want 1", n)
	}
	if _, _, ok := c.Acquire(peer); !ok {
		t.Error("refused after a slot was freed")
	}
	c.Set(2, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	for i := range 3 {
		if _, counted, ok := c.Acquire(peer); !ok || counted {
			t.Fatalf("exempt peer at %d: ok %v counted %v", i, ok, counted)
		}
	}
	c.Set(0, nil)
	if _, counted, ok := c.Acquire(peer); !ok || counted {
		t.Errorf("cap off: ok %v counted %v", ok, counted)
	}
}

func TestSize(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "too big", http.StatusRequestEntityTooLarge)
			return
		}
		io.WriteString(w, "ok")
	})
	var counts Counts
	srv := httptest.NewServer(Size(10, 200, &counts, echo))
	defer srv.Close()
	post := func(body io.Reader, n int64) int {
		req, _ := http.NewRequest("POST", srv.URL, body)
		req.ContentLength = n
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := []struct {
		name string
		code int
		got  func() int
	}{
		{"small body", 200, func() int { return post(strings.NewReader("12345"), 5) }},
		{"declared too big", 413, func() int { return post(strings.NewReader(strings.Repeat("x", 11)), 11) }},
		{"chunked too big", 413, func() int { return post(io.MultiReader(strings.NewReader(strings.Repeat("x", 50))), -1) }},
		{"headers too big", 431, func() int { c, _ := status(t, srv.URL, "X-Big", strings.Repeat("h", 300)); return c }},
		{"headers fine", 200, func() int { c, _ := status(t, srv.URL, "X-Small", "h"); return c }},
	}
	for _, tt := range tests {
		if got := tt.got(); got != tt.code {
			t.Errorf("%s: %d want %d", tt.name, got, tt.code)
		}
	}
	// Declared or streamed, each refusal counts once; nothing else counts.
	if b, h, r := counts.Body.Load(), counts.Header.Load(), counts.Rate.Load(); b != 2 || h != 1 || r != 0 {
		t.Errorf("counted body %d, header %d, rate %d; want 2, 1, 0", b, h, r)
	}
}
