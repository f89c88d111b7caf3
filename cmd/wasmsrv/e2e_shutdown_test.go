package main

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// openStream starts an SSE request and returns a channel closed at its first event
// and a channel with the stream's outcome.
func openStream(t *testing.T, c *http.Client, url string) (first <-chan struct{}, done <-chan streamOutcome) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	f := make(chan struct{})
	d := make(chan streamOutcome, 1)
	go func() {
		var once sync.Once
		evs, err := readSSE(resp.Body, time.Now(), func(sseEvent) { once.Do(func() { close(f) }) })
		d <- streamOutcome{evs, err, time.Now()}
	}()
	select {
	case <-f:
	case o := <-d:
		t.Fatalf("stream ended before its first event: %v", o.err)
	case <-time.After(10 * time.Second):
		t.Fatal("no first event within 10s")
	}
	return f, d
}

type streamOutcome struct {
	evs []sseEvent
	err error
	at  time.Time
}

func TestE2EGracefulShutdown(t *testing.T) {
	srv := startServer(t, sample("sse"), "--workers", "2")
	_, done := openStream(t, httpClient(t), srv.URL+"/events?n=4&interval=300ms")

	// The first event is out: the request is in flight when the signal lands.
	sigAt := time.Now()
	srv.signal(syscall.SIGTERM)
	var out streamOutcome
	select {
	case out = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("stream did not end within 15s of SIGTERM")
	}
	if out.err != io.EOF || len(out.evs) != 4 {
		t.Errorf("stream across SIGTERM: %d events, ended with %v; want all 4 and a clean end", len(out.evs), out.err)
	}
	code, exited := srv.wait(10 * time.Second)
	if !exited {
		t.Fatalf("process still running 10s after the stream ended (grace is 30s, nothing in flight)\nlogs:\n%s", srv.logs())
	}
	if code != 0 {
		t.Errorf("exit code %d, want 0\nlogs:\n%s", code, srv.logs())
	}
	t.Logf("stream ended %v after SIGTERM", out.at.Sub(sigAt).Round(time.Millisecond))
	if !strings.Contains(srv.logs(), "shutting down") || !strings.Contains(srv.logs(), "msg=stopped") {
		t.Errorf("logs do not record the shutdown:\n%s", srv.logs())
	}
	if strings.Contains(srv.logs(), "grace period over") {
		t.Errorf("the grace period ran out although the stream finished:\n%s", srv.logs())
	}
}

func TestE2EShutdownTimeout(t *testing.T) {
	for _, interval := range []string{"200ms", "8s"} {
		t.Run("interval="+interval, func(t *testing.T) { testShutdownTimeout(t, interval) })
	}
}

// testShutdownTimeout: with a guest that sleeps between events (8s), the process
// must still exit right after the grace period: the pool interrupts the guest
// instead of waiting for it.
func testShutdownTimeout(t *testing.T, interval string) {
	srv := startServer(t, sample("sse"), "--workers", "2", "--shutdown-timeout", "300ms")
	_, done := openStream(t, httpClient(t), srv.URL+"/events?n=40&interval="+interval)
	time.Sleep(100 * time.Millisecond) // the first event is out; the guest is mid-stream

	sigAt := time.Now()
	srv.signal(syscall.SIGTERM)
	code, exited := srv.wait(5 * time.Second)
	exitAfter := time.Since(sigAt)
	if !exited {
		t.Fatalf("process still running 5s after SIGTERM with --shutdown-timeout 300ms\nlogs:\n%s", srv.logs())
	}
	if exitAfter > 1500*time.Millisecond {
		t.Errorf("process exited %v after SIGTERM, want ~300ms grace (within ~1s)", exitAfter)
	}
	if code != 0 {
		t.Errorf("exit code %d, want 0\nlogs:\n%s", code, srv.logs())
	}
	var out streamOutcome
	select {
	case out = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("client stream still open 5s after the server exited")
	}
	if out.err == io.EOF || len(out.evs) >= 40 {
		t.Errorf("stream got %d of 40 events and ended with %v; want it cut (not a clean end)", len(out.evs), out.err)
	}
	if !strings.Contains(srv.logs(), "grace period over") {
		t.Errorf("logs do not say the grace period ran out:\n%s", srv.logs())
	}
	t.Logf("exited %v after SIGTERM; client got %d events, then %v", exitAfter.Round(time.Millisecond), len(out.evs), out.err)
}
