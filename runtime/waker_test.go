package runtime

import (
	goruntime "runtime"
	"testing"
	"time"
)

// TestWakerNeverBlocks: Wake returns at once even when the instance's bounded
// mailbox is full and its owner busy; such events wait in the overflow queue (at
// most a mailbox's worth, the rest are dropped), get in when there is room, and
// are let go when the instance goes.
func TestWakerNeverBlocks(t *testing.T) {
	ai := &asyncInst{mail: make(chan event, 2), dead: make(chan struct{})}
	ai.run.Lock() // a busy owner: nothing drains the mailbox
	w := Waker{ai: ai, conn: 7, token: 42}
	wake := func() bool {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- w.Wake() }()
		select {
		case queued := <-done:
			return queued
		case <-time.After(2 * time.Second):
			t.Fatal("Wake blocked")
		}
		return false
	}
	// Two fit the mailbox, two the overflow queue (plus the one its goroutine
	// holds while it waits for room, if it has started): the rest are dropped.
	queued := 0
	for range 10 {
		if wake() {
			queued++
		}
	}
	if queued < 4 || queued > 5 {
		t.Fatalf("%d of 10 events queued on a mailbox of 2, want 4 or 5", queued)
	}
	for i := range queued {
		select {
		case ev := <-ai.mail: // the owner takes an event; a deferred one gets in
			if ev.kind != ctlPlugin || ev.a != 42 || ev.b != 7 || ev.conn != nil {
				t.Fatalf("event %d = %+v", i, ev)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("event %d never arrived", i)
		}
	}

	pumpDone := func() bool {
		ai.wakes.mu.Lock()
		defer ai.wakes.mu.Unlock()
		return !ai.wakes.pumping && len(ai.wakes.q) == 0
	}
	for deadline := time.Now().Add(2 * time.Second); !pumpDone(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the overflow goroutine did not finish")
		}
	}

	// A full mailbox on an instance that then goes: the overflow is let go.
	base := goruntime.NumGoroutine()
	ai.mail <- event{kind: ctlTimer}
	ai.mail <- event{kind: ctlTimer}
	wake()
	wake()
	close(ai.dead)
	ai.over.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	for goruntime.NumGoroutine() > base || !pumpDone() {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left waiting for a dead instance", goruntime.NumGoroutine()-base)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if w.Wake() {
		t.Fatal("Wake on a gone instance queued")
	}
	if (Waker{}).Wake() || (Waker{}).Armed() {
		t.Fatal("the zero Waker is armed")
	}
}
