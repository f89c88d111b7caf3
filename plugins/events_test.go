package plugins_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	goruntime "runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/plugins"
)

// pollInterval is what the Go SDK's async Receive used to sleep between looks
// (a host timer) before completions became events: a parked subscriber then
// heard of a message up to 20 ms late. The fetch poll slept 1, 2, 4, ... 20 ms.
const pollInterval = 20 * time.Millisecond

// hold is how long the tests below keep a completion back while they count the
// guest's looks: ten intervals of the old poll. A guest that parks until the
// completion event looks once (ERR_WOULD_BLOCK) however long the hold; one that
// polls looks again within an interval, and a hold of ten leaves room for a
// poller's timers to be late on a loaded machine. So the hold cannot fail a
// working guest; it only bounds how soon a polling one is caught. How promptly
// the event wakes the guest is a figure: BenchmarkReceiveLatency,
// BenchmarkReceiveLatencyRedis and BenchmarkFetchCompletion measure it.
const hold = 10 * pollInterval

// settleWithin bounds every wait for the guest to reach a state; a working
// guest gets there in milliseconds, this only catches a hung one.
const settleWithin = 30 * time.Second

// receivesWakeOnEvent: a subscriber parked in Receive on an async instance of the
// app at subURL (whose plugin calls c counts) gets rounds messages, each published
// through pubURL only after the test held it back for hold. While it is held
// back the guest must have looked for a message exactly once per Receive (the
// ERR_WOULD_BLOCK answer) and armed one notification, then waited for the event:
// a Receive that polls looks again within pollInterval. The message must then
// arrive, which only the completion event can make happen.
func receivesWakeOnEvent(t *testing.T, c *callCounter, subURL, pubURL, topic string, rounds int) {
	t.Helper()
	const receive, notify = "pubsub.receive", "pubsub.notify"
	sub := subscriber(t, subURL, topic, rounds)
	for i := range rounds {
		c.await(t, wouldBlock(receive), i+1, settleWithin) // the subscriber looked and found nothing
		time.Sleep(hold)                                   // not a synchronisation: the window looks are counted in
		if got := c.get(wouldBlock(receive)); got != i+1 {
			t.Fatalf("round %d: with no message for %s the subscriber looked %d times, want once per Receive (%d): it polls instead of parking until the completion event (counts: %s)", i, hold, got, i+1, c)
		}
		if got := c.get(notify); got != i+1 {
			t.Fatalf("round %d: %d notifications armed, want one per Receive (%d) (counts: %s)", i, got, i+1, c)
		}
		want(t, pubURL+"/pub?t="+topic+"&m=m"+itoa(i), "ok")
		if got := next(t, sub); got != "m"+itoa(i) {
			t.Fatalf("round %d: got %q", i, got)
		}
	}
}

// TestAsyncReceiveWakesOnEvent: on ONE async instance a subscriber parked in
// Receive hears each message through the plugin completion event, not by
// looking on a timer.
func TestAsyncReceiveWakesOnEvent(t *testing.T) {
	c := newCallCounter()
	reg := wrappedRegistry(t, "", "", countCalls(c))
	defer reg.Close()
	s := serveMode(t, reg, "async-rx", guest, "async", allGrants(), 1)
	receivesWakeOnEvent(t, c, s.url, s.url, "lat", 3)
}

// TestAsyncFetchesCompleteOnEvent: overlapping outbound calls on ONE async instance
// each complete when the host posts their completion. The upstream holds every
// response until the test releases it; meanwhile each fetch must have looked for
// its response once (ERR_WOULD_BLOCK) and armed one notification (the old SDK
// looked at 1, 3, 7, 15, 31, 51 ms ...). Released, all complete, which only the
// events can make happen: the SDK waits for them with no timeout.
func TestAsyncFetchesCompleteOnEvent(t *testing.T) {
	const n = 4
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	var arrived sync.WaitGroup
	arrived.Add(n)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/held" {
			arrived.Done()
			<-release
		}
		w.Write([]byte("hi"))
	}))
	defer up.Close()
	defer free() // before Close: a failed test leaves no request held
	c := newCallCounter()
	reg := wrappedRegistry(t, "", "", countCalls(c))
	defer reg.Close()
	grants := allGrants()
	grants["http"] = plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}}
	s := serveMode(t, reg, "async-fetch", guest, "async", grants, 1)
	const response, notify = "http.response", "http.notify"

	// One fetch first, its response at once: the counts start from its.
	want(t, s.url+"/fetch?url="+url.QueryEscape(up.URL+"/now"), "200 hi")
	blocked0, notify0 := c.get(wouldBlock(response)), c.get(notify)

	bodies := make(chan string, n)
	for range n {
		go func() {
			resp, err := http.Get(s.url + "/fetch?url=" + url.QueryEscape(up.URL+"/held"))
			if err != nil {
				bodies <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			bodies <- string(b)
		}()
	}
	c.await(t, wouldBlock(response), blocked0+n, settleWithin) // each looked once and found nothing
	time.Sleep(hold)                                           // not a synchronisation: the window looks are counted in
	if got := c.get(wouldBlock(response)) - blocked0; got != n {
		t.Fatalf("%d fetches held back for %s looked for their response %d times, want once each: they poll instead of parking until the completion event (counts: %s)", n, hold, got, c)
	}
	if got := c.get(notify) - notify0; got != n {
		t.Fatalf("%d fetches armed %d notifications, want one each (counts: %s)", n, got, c)
	}
	waitGroup(t, &arrived, "the held requests to reach the upstream")
	free()
	timeout := time.After(settleWithin)
	for range n {
		select {
		case b := <-bodies:
			if b != "200 hi" {
				t.Errorf("fetch = %q", b)
			}
		case <-timeout:
			t.Fatalf("released fetches did not complete in %s: no completion event woke them (counts: %s)", settleWithin, c)
		}
	}
}

// waitGroup waits for wg, failing the test after settleWithin.
func waitGroup(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(settleWithin):
		t.Fatalf("waited %s for %s", settleWithin, what)
	}
}

// goroutines reports whether any goroutine's stack contains one of frames.
func goroutines(frames ...string) string {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	for _, f := range frames {
		if strings.Contains(b.String(), f) {
			return f
		}
	}
	return ""
}

// settle waits up to 5 s until no goroutine runs one of frames.
func settle(t *testing.T, frames ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := goroutines(frames...)
		if f == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a goroutine is still in %s", f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hostFrames are the host goroutines a pending completion may hold: the outbound
// request, and a Waker waiting for mailbox room.
var hostFrames = []string{"plugins/http.(*appHTTP).send.func", "runtime.Waker.Wake.func"}

// TestAsyncClientLeavesWhilePending: clients that go away while their request waits
// for an outbound response or a message leave nothing behind: the completion that
// comes later is delivered to a connection that is finishing (or dropped), no
// goroutine stays, and the instance serves on.
func TestAsyncClientLeavesWhilePending(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("too late"))
	}))
	defer up.Close()
	reg := testRegistry(t, "", "")
	defer reg.Close()
	grants := allGrants()
	grants["http"] = plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}}
	s := serveMode(t, reg, "async-leave", guest, "async", grants, 1)

	// A fetch whose client hangs up while the upstream holds the response.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/fetch?url="+url.QueryEscape(up.URL+"/"), nil)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	// A subscriber that hangs up while parked in Receive.
	subCtx, subCancel := context.WithCancel(context.Background())
	sreq, _ := http.NewRequestWithContext(subCtx, "GET", s.url+"/sub?t=gone&n=1", nil)
	sresp, err := http.DefaultClient.Do(sreq)
	if err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("subscribed\n"))
	if _, err := sresp.Body.Read(line); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // both parked
	cancel()
	subCancel()
	if err := <-errc; err == nil {
		t.Fatal("the fetch client was not cut off")
	}
	sresp.Body.Close()
	time.Sleep(50 * time.Millisecond)

	// Now the completions come, for connections whose clients are gone.
	close(release)
	want(t, s.url+"/pub?t=gone&m=late", "ok")
	settle(t, hostFrames...)
	// The instance is fine and serves the next requests at once.
	want(t, s.url+"/kv/set?k=x&v=1", "ok")
	sub := subscriber(t, s.url, "gone", 1)
	want(t, s.url+"/pub?t=gone&m=again", "ok")
	if got := next(t, sub); got != "again" {
		t.Fatalf("subscriber got %q", got)
	}
	if l := s.log.String(); strings.Contains(l, "panic") || strings.Contains(l, "discarded") {
		t.Fatalf("the late completions broke something:\n%s", l)
	}
}

// TestAsyncTrapWithPendingCompletions: an instance that traps with an outbound
// request and an armed receive pending is replaced; the completions that come for
// it afterwards are dropped (no panic, no goroutine left), and its subscription is
// gone with it.
func TestAsyncTrapWithPendingCompletions(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("for the dead"))
	}))
	defer up.Close()
	reg := testRegistry(t, "", "")
	defer reg.Close()
	grants := allGrants()
	grants["http"] = plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}}
	s := serveMode(t, reg, "async-trap", guest, "async", grants, 1)

	if code, _ := get(t, s.url+"/trap-pending?t=doomed&url="+url.QueryEscape(up.URL+"/")); code != 500 {
		t.Fatalf("trap-pending = %d, want 500", code)
	}
	// The replacement serves; the completions for the old instance come now.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, _ := get(t, s.url+"/kv/set?k=x&v=1"); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no replacement instance")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	want(t, s.url+"/pub?t=doomed&m=late", "ok")
	settle(t, hostFrames...)
	sub := subscriber(t, s.url, "doomed", 1)
	want(t, s.url+"/pub?t=doomed&m=alive", "ok")
	if got := next(t, sub); got != "alive" {
		t.Fatalf("subscriber got %q", got)
	}
	l := s.log.String()
	if !strings.Contains(l, "discarded") {
		t.Fatalf("the trap was not logged:\n%s", l[max(0, len(l)-3000):])
	}
	if strings.Contains(l, "panic") {
		t.Fatalf("a panic:\n%s", l)
	}
}

// TestCAsyncNotifyPerConnection: a C guest arms its notifications for its own
// connections (ctx ≠ 0) on ONE async instance: overlapping outbound calls and a
// parked subscriber each get their PLUGIN event on their connection, and a
// completion for a connection the guest already ended is dropped by the host (the
// guest counts any that reach it).
func TestCAsyncNotifyPerConnection(t *testing.T) {
	wasm := buildC(t, "testdata/c-async-notify.c")
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		w.Write([]byte("hi " + r.URL.Path))
	}))
	defer up.Close()
	reg := testRegistry(t, "", "")
	defer reg.Close()
	s := serve(t, reg, "c-notify", wasm, registry.Grants{
		"pubsub": nil,
		"http":   plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}},
		"config": plugins.Section{"vars": map[string]string{"fast": up.URL + "/fast", "slow": up.URL + "/slow"}},
	}, 1)

	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, body := get(t, s.url+"/fetch"); body != "200 hi /fast" {
				t.Errorf("fetch = %q", body)
			}
		}()
	}
	wg.Wait()
	sub := subscriber(t, s.url, "c-room", 1)
	want(t, s.url+"/pub?t=c-room&n=1", "ok") // the guest's topic is the raw query
	if got := next(t, sub); got != "hello" {
		t.Fatalf("subscriber got %q", got)
	}

	// Clients that leave while their outbound request runs.
	var cancels []context.CancelFunc
	errc := make(chan error, 4)
	for range 4 {
		ctx, cancel := context.WithCancel(context.Background())
		cancels = append(cancels, cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", s.url+"/leave", nil)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	for _, c := range cancels {
		c()
	}
	for range cancels {
		if err := <-errc; err == nil {
			t.Fatal("a /leave client was not cut off")
		}
	}
	time.Sleep(100 * time.Millisecond) // the guest ends them on DISCONNECT
	close(release)                     // now their completions come
	settle(t, hostFrames...)
	want(t, s.url+"/stats", "late=0")
	if l := s.log.String(); strings.Contains(l, "panic") || strings.Contains(l, "discarded") {
		t.Fatalf("the late completions broke something:\n%s", l)
	}

	// A guest re-arming a ready handle in a loop (each arm fires at once) gets at
	// most a mailbox plus an overflow queue of events (2 × 4096), not one per call,
	// and no host goroutine per call.
	before := goruntime.NumGoroutine()
	want(t, s.url+"/flood", "ok")
	if n := goruntime.NumGoroutine(); n > before+20 {
		t.Fatalf("%d goroutines after the flood, %d before", n, before)
	}
	// Until the instance has worked through its full mailbox it refuses new
	// connections (503, its backpressure): that is a wait, not an answer. Any
	// count read is a lower bound of the final one, so reading early cannot
	// pass a flood that delivered too many.
	var got int
	for deadline := time.Now().Add(settleWithin); ; time.Sleep(50 * time.Millisecond) {
		code, body := get(t, s.url+"/floods")
		if code == http.StatusServiceUnavailable {
			if time.Now().After(deadline) {
				t.Fatalf("the instance still refuses requests %s after the flood: %q", settleWithin, body)
			}
			continue
		}
		n, err := strconv.Atoi(body)
		if err != nil {
			t.Fatalf("floods = %d %q", code, body)
		}
		if n == got && n > 0 || time.Now().After(deadline) {
			break // settled
		}
		got = n
	}
	t.Logf("200000 notify calls on a ready subscription: %d events delivered", got)
	if got == 0 || got > 2*4096+1 {
		t.Fatalf("the flood delivered %d events, want 1..%d", got, 2*4096+1)
	}
	want(t, s.url+"/stats", "late=0") // and the instance serves on

	// A notification for a connection that is not there traps the guest.
	if code, _ := get(t, s.url+"/bad-ctx"); code != 500 {
		t.Fatalf("bad-ctx = %d, want 500", code)
	}
	if l := s.log.String(); !strings.Contains(l, "unknown request handle") {
		t.Fatalf("the trap is not explained in the log:\n%s", l)
	}
}

// TestAsyncFetchInStartHook: no event can reach a lifespan hook, so there fetch.Do
// falls back to looking on a timer; an async app can still warm up from an upstream.
func TestAsyncFetchInStartHook(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(30 * time.Millisecond)
		w.Write([]byte("warm"))
	}))
	defer up.Close()
	reg := testRegistry(t, "", "")
	defer reg.Close()
	s := serveMode(t, reg, "async-hook", "internal/hookguest", "async", registry.Grants{
		"http":   plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}},
		"config": plugins.Section{"vars": map[string]string{"upstream": up.URL + "/"}},
	}, 1)
	want(t, s.url+"/", "200 warm")
}

// TestAsyncReceiveOverRedis: the completion event also comes from the Redis
// broker's goroutine: a subscriber parked on one async instance of node A hears
// what node B (its own registry and Redis client, same app) publishes, woken by
// the event and not by looking on a timer.
func TestAsyncReceiveOverRedis(t *testing.T) {
	url := startRedis(t)
	c := newCallCounter()
	regA, regB := wrappedRegistry(t, "", url, countCalls(c)), testRegistry(t, "", url)
	defer regA.Close()
	defer regB.Close()
	a := serveMode(t, regA, "rchat", guest, "async", allGrants(), 1)
	b := serveMode(t, regB, "rchat", guest, "async", allGrants(), 1)
	receivesWakeOnEvent(t, c, a.url, b.url, "room", 3)
}
