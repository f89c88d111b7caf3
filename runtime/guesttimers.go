package runtime

import "time"

// guestTimers are the timers one async instance's guest set with timer_set
// (SPEC §8): a min-heap on the due time, an index by id, a free list so that
// re-arming allocates nothing, and one Go timer (clock) armed for the earliest,
// whose callback queues a control event for the owner. Like everything of an
// instance below "owner only", only the owner goroutine touches them.
type guestTimers struct {
	heap  timerHeap
	byID  map[uint32]*guestTimer
	free  []*guestTimer
	max   int
	clock *time.Timer
}

// newGuestTimers returns an empty set of at most max timers; fire is called
// (on the Go timer's goroutine) when the earliest is due.
func newGuestTimers(max int, fire func()) guestTimers {
	clock := time.AfterFunc(time.Hour, fire)
	clock.Stop()
	return guestTimers{byID: make(map[uint32]*guestTimer), max: max, clock: clock}
}

// len is the number of armed timers.
func (ts *guestTimers) len() int { return len(ts.heap) }

// set arms (or re-arms) timer id to be due at when. It reports false, and
// changes nothing, when id is new and max timers are armed.
func (ts *guestTimers) set(id uint32, when time.Time) bool {
	if t := ts.byID[id]; t != nil {
		t.when = when
		ts.heap.fix(t.idx)
	} else {
		if len(ts.byID) >= ts.max {
			return false
		}
		var t *guestTimer
		if n := len(ts.free); n > 0 {
			t, ts.free = ts.free[n-1], ts.free[:n-1]
		} else {
			t = new(guestTimer)
		}
		t.id, t.when = id, when
		ts.byID[id] = t
		ts.heap.push(t)
	}
	ts.arm()
	return true
}

// cancel disarms timer id; it reports false if no such timer is armed.
func (ts *guestTimers) cancel(id uint32) bool {
	t := ts.byID[id]
	if t == nil {
		return false
	}
	ts.drop(t.idx)
	ts.arm()
	return true
}

// popDue disarms and returns the earliest timer due at now, if any. The clock
// is not re-armed: call arm after the last one.
func (ts *guestTimers) popDue(now time.Time) (uint32, bool) {
	if len(ts.heap) == 0 || ts.heap[0].when.After(now) {
		return 0, false
	}
	return ts.drop(0), true
}

func (ts *guestTimers) drop(i int) uint32 {
	t := ts.heap.remove(i)
	delete(ts.byID, t.id)
	ts.free = append(ts.free, t)
	return t.id
}

// arm sets the clock for the earliest timer, or stops it when none is left.
func (ts *guestTimers) arm() {
	if len(ts.heap) == 0 {
		ts.clock.Stop()
		return
	}
	ts.clock.Reset(time.Until(ts.heap[0].when))
}

// stop stops the clock for good (the instance is gone).
func (ts *guestTimers) stop() { ts.clock.Stop() }

// guestTimer is one timer a guest set with timer_set.
type guestTimer struct {
	id   uint32
	when time.Time
	idx  int
}

// timerHeap is a min-heap on when (container/heap without the interface boxing).
type timerHeap []*guestTimer

func (h *timerHeap) push(t *guestTimer) {
	*h = append(*h, t)
	t.idx = len(*h) - 1
	h.up(t.idx)
}

func (h *timerHeap) remove(i int) *guestTimer {
	s := *h
	n := len(s) - 1
	t := s[i]
	if i != n {
		s[i] = s[n]
		s[i].idx = i
	}
	s[n] = nil
	*h = s[:n]
	if i != n {
		h.fix(i)
	}
	t.idx = -1
	return t
}

func (h *timerHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h timerHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].when.Before(h[parent].when) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		h[i].idx, h[parent].idx = i, parent
		i = parent
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		j := l
		if r := l + 1; r < n && h[r].when.Before(h[l].when) {
			j = r
		}
		if !h[j].when.Before(h[i].when) {
			break
		}
		h[i], h[j] = h[j], h[i]
		h[i].idx, h[j].idx = i, j
		i = j
	}
	return i > start
}
