package runtime

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestGuestTimersOrder drives set, re-set, cancel and popDue in random orders
// against a plain map: timers come out in due order, each once, re-arming
// moves a timer, cancelled ones never come out.
func TestGuestTimersOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now().Add(time.Hour) // the clock never fires during the test
	for round := range 50 {
		ts := newGuestTimers(1<<20, func() {})
		model := map[uint32]time.Time{}
		for range 500 {
			id := uint32(rng.IntN(64))
			switch rng.IntN(4) {
			case 0, 1:
				when := base.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
				if !ts.set(id, when) {
					t.Fatal("set refused under the cap")
				}
				model[id] = when
			case 2:
				_, armed := model[id]
				if ts.cancel(id) != armed {
					t.Fatalf("round %d: cancel(%d) = %v, armed %v", round, id, !armed, armed)
				}
				delete(model, id)
			case 3:
				now := base.Add(time.Duration(rng.IntN(1000)) * time.Millisecond)
				var got []uint32
				last := time.Time{}
				for {
					id, ok := ts.popDue(now)
					if !ok {
						break
					}
					when, armed := model[id]
					if !armed || when.After(now) || when.Before(last) {
						t.Fatalf("round %d: popped %d (armed %v, due %v, now %v, previous %v)", round, id, armed, when, now, last)
					}
					last = when
					delete(model, id)
					got = append(got, id)
				}
				for id, when := range model {
					if !when.After(now) {
						t.Fatalf("round %d: timer %d due %v left at %v (popped %v)", round, id, when, now, got)
					}
				}
			}
			if ts.len() != len(model) || len(ts.byID) != len(model) {
				t.Fatalf("round %d: %d timers (%d by id), want %d", round, ts.len(), len(ts.byID), len(model))
			}
			for i, tm := range ts.heap {
				if tm.idx != i {
					t.Fatalf("round %d: heap index %d holds idx %d", round, i, tm.idx)
				}
			}
		}
		ts.stop()
	}
}

// TestGuestTimersCap: a guest cannot arm more than max timers; re-arming one
// it has is always allowed, and a cancelled one frees its place.
func TestGuestTimersCap(t *testing.T) {
	ts := newGuestTimers(3, func() {})
	defer ts.stop()
	far := time.Now().Add(time.Hour)
	for id := range uint32(3) {
		if !ts.set(id, far) {
			t.Fatalf("set %d refused", id)
		}
	}
	if ts.set(3, far) {
		t.Fatal("a fourth timer was armed past the cap")
	}
	if !ts.set(1, far.Add(time.Second)) {
		t.Fatal("re-arming an existing timer was refused at the cap")
	}
	if !ts.cancel(0) || ts.cancel(0) {
		t.Fatal("cancel: first should succeed, second fail")
	}
	if !ts.set(3, far) {
		t.Fatal("a cancelled timer did not free its place")
	}
}

// TestGuestTimersClock: the Go timer fires for the earliest timer, and not
// once every timer is cancelled.
func TestGuestTimersClock(t *testing.T) {
	fired := make(chan struct{}, 8)
	ts := newGuestTimers(8, func() { fired <- struct{}{} })
	defer ts.stop()
	ts.set(1, time.Now().Add(time.Hour))
	ts.set(2, time.Now().Add(time.Millisecond)) // the earliest re-arms the clock
	select {
	case <-fired:
	case <-time.After(10 * time.Second):
		t.Fatal("the clock did not fire for the earliest timer")
	}
	if id, ok := ts.popDue(time.Now()); !ok || id != 2 {
		t.Fatalf("popDue = %d, %v; want 2", id, ok)
	}
	if _, ok := ts.popDue(time.Now()); ok {
		t.Fatal("a timer due in an hour popped")
	}
	ts.cancel(1)
	ts.set(3, time.Now().Add(50*time.Millisecond))
	ts.cancel(3) // none left: the clock stops
	select {
	case <-fired:
		t.Fatal("the clock fired with no timer armed")
	case <-time.After(300 * time.Millisecond):
	}
}

// TestGuestTimersNoAlloc: re-arming and cycling timers allocates nothing once
// warm (a guest may set a timer per event).
func TestGuestTimersNoAlloc(t *testing.T) {
	ts := newGuestTimers(16, func() {})
	defer ts.stop()
	far := time.Now().Add(time.Hour)
	ids := []uint32{1, 2, 3, 4}
	for _, id := range ids {
		ts.set(id, far)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, id := range slices.Backward(ids) {
			ts.cancel(id)
		}
		for _, id := range ids {
			ts.set(id, far)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per cycle, want 0", allocs)
	}
}
