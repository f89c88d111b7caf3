package statuspage

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wasmsrv/wasmsrv/runtime"
)

func TestCrashesRing(t *testing.T) {
	c := NewCrashes(3)
	tick := time.Unix(1000, 0)
	c.now = func() time.Time { tick = tick.Add(time.Second); return tick }
	if s := c.Snapshot(); len(s.Recent) != 0 || len(s.Total) != 0 {
		t.Fatalf("empty: %+v", s)
	}
	c.Observe(runtime.Event{Kind: runtime.EventGuestCall, App: "a"}) // not a failure
	c.Observe(runtime.Event{Kind: runtime.EventInstanceStarted, App: "a"})
	for i := range 5 {
		c.Observe(runtime.Event{Kind: runtime.EventInstanceCrashed, App: "a", Instance: uint64(i), Reason: "trap", Err: errors.New("boom " + strconv.Itoa(i))})
	}
	c.Observe(runtime.Event{Kind: runtime.EventDeadlineKill, App: "b", Instance: 9, Err: errors.New("deadline")})
	c.Observe(runtime.Event{Kind: runtime.EventInstanceStartFailed, App: "b", Err: errors.New("start hook failed")})
	s := c.Snapshot()
	if len(s.Recent) != 3 {
		t.Fatalf("kept %d, want the last 3", len(s.Recent))
	}
	want := []string{"start", "deadline", "crash"}
	for i, cr := range s.Recent {
		if cr.Kind != want[i] {
			t.Errorf("recent[%d] kind %s, want %s (newest first)", i, cr.Kind, want[i])
		}
	}
	if s.Recent[2].Instance != 4 || s.Recent[2].Reason != "trap" || s.Recent[2].Error != "boom 4" {
		t.Errorf("oldest kept: %+v", s.Recent[2])
	}
	if !s.Recent[0].Time.After(s.Recent[1].Time) {
		t.Error("times out of order")
	}
	if s.Total["a"] != 5 || s.Total["b"] != 2 {
		t.Errorf("totals %v", s.Total)
	}
	s.Total["a"] = 99 // a copy
	if c.Snapshot().Total["a"] != 5 {
		t.Error("the snapshot shares the totals")
	}
}

// A guest controls what its failure says (stderr in the error): it is kept
// bounded, and cut on a character boundary.
func TestCrashesClipsErrors(t *testing.T) {
	c := NewCrashes(0)
	long := strings.Repeat("é", maxErr) // 2 bytes each
	c.Observe(runtime.Event{Kind: runtime.EventInstanceCrashed, App: "a", Err: errors.New(long)})
	got := c.Snapshot().Recent[0].Error
	if len(got) > maxErr+len("…") || !utf8.ValidString(got) {
		t.Errorf("kept %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}
