package runtime

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Observe(ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

// count is the number of events of kind (and reason, if given).
func (r *recorder) count(kind EventKind, reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, ev := range r.events {
		if ev.Kind == kind && (reason == "" || ev.Reason == reason) {
			n++
		}
	}
	return n
}

// A sync pool tells its Observer each start, recycle, crash with its reason,
// deadline kill, guest call and queue wait, once each.
func TestSyncPoolObserver(t *testing.T) {
	obs := &recorder{}
	pool, _ := newHostilePool(t, PoolConfig{Workers: 2, MaxRequests: 2, RequestTimeout: 500 * time.Millisecond, Observer: obs})
	if got := obs.count(EventInstanceStarted, ""); got != 2 {
		t.Fatalf("%d starts after pre-warm, want 2", got)
	}
	for _, path := range []string{"/ok", "/gopanic", "/exit", "/badhandle", "/loop"} {
		serve(t, pool, path, "")
		waitFor(t, "pool back to full size", 5*time.Second, func() bool { return pool.Stats().Idle == 2 })
	}
	for _, c := range []struct {
		kind   EventKind
		reason string
		want   int
	}{
		{EventGuestCall, "", 5}, {EventQueueWait, "", 5},
		{EventInstanceCrashed, FailTrap, 1}, {EventInstanceCrashed, FailExit, 1}, {EventInstanceCrashed, FailABI, 1},
		{EventInstanceCrashed, "", 3}, {EventDeadlineKill, "", 1},
	} {
		if got := obs.count(c.kind, c.reason); got != c.want {
			t.Errorf("kind %d reason %q: %d events, want %d", c.kind, c.reason, got, c.want)
		}
	}
	// The instance that served /ok serves one more, then recycles (MaxRequests 2).
	for range 4 {
		serve(t, pool, "/ok", "")
	}
	waitFor(t, "a recycle", 5*time.Second, func() bool { return obs.count(EventInstanceRecycled, "") >= 1 })
	if s := pool.Stats(); int(s.Recycled) != obs.count(EventInstanceRecycled, "") || int(s.Built) != obs.count(EventInstanceStarted, "") {
		t.Errorf("stats %+v disagree with the observer (recycled %d, started %d)", s, obs.count(EventInstanceRecycled, ""), obs.count(EventInstanceStarted, ""))
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, ev := range obs.events {
		if ev.App != "hostile" {
			t.Errorf("event %+v: app %q", ev, ev.App)
		}
		if ev.Kind == EventDeadlineKill && !errors.Is(ev.Err, ErrDeadline) {
			t.Errorf("deadline kill with err %v", ev.Err)
		}
	}
}

// With no Observer, serving allocates no more than with one that does nothing:
// the hook is free when off (and cheap when on).
func BenchmarkSyncPoolObserver(b *testing.B) {
	for _, tc := range []struct {
		name string
		obs  Observer
	}{{"off", nil}, {"on", nopObserver{}}} {
		b.Run(tc.name, func(b *testing.B) {
			pool, _ := newHostilePool(b, PoolConfig{Workers: 1, Observer: tc.obs})
			ex := newFakeExchange("GET", "/ok", "", nil)
			b.ReportAllocs()
			for b.Loop() {
				ex.out.Reset()
				if _, err := pool.Serve(b.Context(), ex); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type nopObserver struct{}

func (nopObserver) Observe(Event) {}

func TestObservers(t *testing.T) {
	if Observers() != nil || Observers(nil, nil) != nil {
		t.Fatal("no observer should be nil")
	}
	a, b := &recorder{}, &recorder{}
	if Observers(nil, a) != Observer(a) {
		t.Error("one observer should be itself")
	}
	Observers(a, nil, b).Observe(Event{Kind: EventGuestCall})
	if a.count(EventGuestCall, "") != 1 || b.count(EventGuestCall, "") != 1 {
		t.Error("each observer should hear the event once")
	}
}
