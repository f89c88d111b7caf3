package plugins_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	goruntime "runtime"
	"runtime/pprof"
	"slices"
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
// heard of a message up to 20 ms late (in this lockstep test, always ~20 ms).
const pollInterval = 20 * time.Millisecond

// TestAsyncReceiveWakesOnEvent: on ONE async instance a subscriber parked in
// Receive hears each message through the plugin completion event. 50 publish →
// receive round trips have a median far below what a 20 ms poll gives (the
// previous SDK measured 20.5 ms here).
// roundTrips publishes n messages to topic through pubURL, one at a time, each
// after the subscriber got the last, and returns the round trips, sorted.
func roundTrips(t *testing.T, pubURL string, sub <-chan string, topic string, n int) []time.Duration {
	t.Helper()
	lat := make([]time.Duration, n)
	for i := range lat {
		start := time.Now()
		want(t, pubURL+"/pub?t="+topic+"&m=m"+itoa(i), "ok")
		if got := next(t, sub); got != "m"+itoa(i) {
			t.Fatalf("round %d: got %q", i, got)
		}
		lat[i] = time.Since(start)
	}
	slices.Sort(lat)
	return lat
}

func TestAsyncReceiveWakesOnEvent(t *testing.T) {
	reg := testRegistry(t, "", "")
	defer reg.Close()
	s := serveMode(t, reg, "async-rx", guest, "async", allGrants(), 1)
	const n = 50
	lat := roundTrips(t, s.url, subscriber(t, s.url, "lat", n), "lat", n)
	med := lat[n/2]
	t.Logf("publish→receive over HTTP on one async instance: median %s, p90 %s, max %s", med, lat[n*9/10], lat[n-1])
	if med > pollInterval/5 {
		t.Fatalf("median round trip %s: the subscriber is not woken by the event (a %s poll gives up to that)", med, pollInterval)
	}
}

// TestAsyncFetchesCompleteOnEvent: overlapping outbound calls on ONE async instance
// each complete when the host posts their completion. The old poll slept 1, 2, 4,
// ... 20 ms between looks (at 1, 3, 7, 15, 31, 51 ms), so a 32 ms upstream cost it
// ~19 ms more than an instant one; with the event the two differ by the delay only.
func TestAsyncFetchesCompleteOnEvent(t *testing.T) {
	const delay = 32 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(delay)
		}
		w.Write([]byte("hi"))
	}))
	defer up.Close()
	reg := testRegistry(t, "", "")
	defer reg.Close()
	grants := allGrants()
	grants["http"] = plugins.Section{"allow": []string{strings.TrimPrefix(up.URL, "http://")}}
	s := serveMode(t, reg, "async-fetch", guest, "async", grants, 1)

	// median time of par overlapping fetches of path, rounds times over.
	median := func(path string) time.Duration {
		const par, rounds = 4, 5
		fetchURL := s.url + "/fetch?url=" + url.QueryEscape(up.URL+path)
		want(t, fetchURL, "200 hi") // warm the upstream connections
		var mu sync.Mutex
		var took []time.Duration
		for range rounds {
			var wg sync.WaitGroup
			for range par {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now()
					if _, body := get(t, fetchURL); body != "200 hi" {
						t.Errorf("fetch = %q", body)
					}
					mu.Lock()
					took = append(took, time.Since(start))
					mu.Unlock()
				}()
			}
			wg.Wait()
		}
		slices.Sort(took)
		return took[len(took)/2]
	}
	fast, slow := median("/fast"), median("/slow")
	extra := slow - fast - delay
	t.Logf("4 overlapping fetches × 5 rounds: median %s (instant upstream), %s (%s upstream): %s beyond the delay", fast, slow, delay, extra)
	if extra > 5*time.Millisecond {
		t.Fatalf("a %s upstream costs %s more than its delay: completions are not delivered by the event", delay, extra)
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
	var got int
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, body := get(t, s.url+"/floods")
		n, err := strconv.Atoi(body)
		if err != nil {
			t.Fatalf("floods = %q", body)
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
// what node B (its own registry and Redis client, same app) publishes, promptly.
func TestAsyncReceiveOverRedis(t *testing.T) {
	url := startRedis(t)
	regA, regB := testRegistry(t, "", url), testRegistry(t, "", url)
	defer regA.Close()
	defer regB.Close()
	a := serveMode(t, regA, "rchat", guest, "async", allGrants(), 1)
	b := serveMode(t, regB, "rchat", guest, "async", allGrants(), 1)
	const n = 20
	lat := roundTrips(t, b.url, subscriber(t, a.url, "room", n), "room", n)
	t.Logf("publish on node B → receive on node A through Redis: median %s, max %s", lat[n/2], lat[n-1])
	if lat[n/2] > pollInterval/5 {
		t.Fatalf("median round trip %s: the subscriber is not woken by the event", lat[n/2])
	}
}
