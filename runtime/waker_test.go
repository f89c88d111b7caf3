package runtime

import (
	goruntime "runtime"
	"testing"
	"time"
)

// TestWakerNeverBlocks: Wake returns at once even when the instance's bounded
// mailbox is full and its owner busy; the event then waits on a goroutine of its
// own, which gets it in when there is room and ends when the instance goes.
func TestWakerNeverBlocks(t *testing.T) {
	ai := &asyncInst{mail: make(chan event, 1), dead: make(chan struct{})}
	ai.run.Lock() // a busy owner: nothing drains the mailbox
	w := Waker{ai: ai, conn: 7, token: 42}
	if !w.Wake() {
		t.Fatal("Wake on an empty mailbox did not queue")
	}
	wake := func() bool {
		t.Helper()
		done := make(chan bool, 1)
		go func() { done <- w.Wake() }()
		select {
		case queued := <-done:
			return queued
		case <-time.After(2 * time.Second):
			t.Fatal("Wake blocked on a full mailbox")
		}
		return false
	}
	if wake() {
		t.Fatal("Wake on a full mailbox reported it queued at once")
	}
	for i := range 2 {
		select {
		case ev := <-ai.mail: // the owner takes an event; the deferred one gets in
			if ev.kind != ctlPlugin || ev.a != 42 || ev.b != 7 || ev.conn != nil {
				t.Fatalf("event %d = %+v", i, ev)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("event %d never arrived", i)
		}
	}

	// A full mailbox on an instance that then goes: the waiting goroutine ends.
	base := goruntime.NumGoroutine()
	ai.mail <- event{kind: ctlTimer}
	for range 10 {
		wake()
	}
	close(ai.dead)
	ai.over.Store(true)
	deadline := time.Now().Add(2 * time.Second)
	for goruntime.NumGoroutine() > base {
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
