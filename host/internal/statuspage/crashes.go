// Package statuspage is the admin listener's status page: the page itself
// (plain HTML, CSS and JavaScript embedded in the binary, no build step, no
// third-party origin), which polls the admin API's JSON and redraws in place,
// and the bounded ring of recent instance failures it shows (Crashes, a
// runtime.Observer the pools report to).
package statuspage

import (
	"sync"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// DefaultCrashes is how many recent failures a Crashes keeps.
const DefaultCrashes = 64

// maxErr bounds a failure's message as kept (it may quote the guest's stderr).
const maxErr = 1024

// Crash is one instance failure.
type Crash struct {
	Time     time.Time `json:"time"`
	App      string    `json:"app"`
	Instance uint64    `json:"instance,omitempty"`
	// Kind is "crash" (the guest failed), "deadline" (a call overran its
	// deadline and was stopped) or "start" (an instance failed to start).
	Kind string `json:"kind"`
	// Reason is a crash's GuestError kind (trap, exit, memory, abi) or other.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Crashes keeps the most recent instance failures of every pool that reports
// to it, and how many there were in all per app. The zero value is not usable:
// NewCrashes. Safe for concurrent use; Observe takes a lock for a copy only.
type Crashes struct {
	mu    sync.Mutex
	ring  []Crash
	next  int
	full  bool
	total map[string]int64
	now   func() time.Time
}

// NewCrashes returns a ring of the last n failures (DefaultCrashes when n ≤ 0).
func NewCrashes(n int) *Crashes {
	if n <= 0 {
		n = DefaultCrashes
	}
	return &Crashes{ring: make([]Crash, n), total: map[string]int64{}, now: time.Now}
}

// Observe implements runtime.Observer: it keeps crashes, deadline kills and
// failed starts.
func (c *Crashes) Observe(ev runtime.Event) {
	var kind string
	switch ev.Kind {
	case runtime.EventInstanceCrashed:
		kind = "crash"
	case runtime.EventDeadlineKill:
		kind = "deadline"
	case runtime.EventInstanceStartFailed:
		kind = "start"
	default:
		return
	}
	cr := Crash{Time: c.now(), App: ev.App, Instance: ev.Instance, Kind: kind, Reason: ev.Reason}
	if ev.Err != nil {
		cr.Error = clip(ev.Err.Error())
	}
	c.mu.Lock()
	c.ring[c.next] = cr
	c.next++
	if c.next == len(c.ring) {
		c.next, c.full = 0, true
	}
	c.total[ev.App]++
	c.mu.Unlock()
}

// Snapshot is what the status page shows of the failures.
type Snapshot struct {
	// Recent are the kept failures, newest first.
	Recent []Crash `json:"recent"`
	// Total counts every failure per app since the start (beyond the ring).
	Total map[string]int64 `json:"total"`
}

// Snapshot returns the recent failures, newest first, and the totals.
func (c *Crashes) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.next
	if c.full {
		n = len(c.ring)
	}
	s := Snapshot{Recent: make([]Crash, 0, n), Total: make(map[string]int64, len(c.total))}
	for i := 1; i <= n; i++ {
		s.Recent = append(s.Recent, c.ring[(c.next-i+len(c.ring))%len(c.ring)])
	}
	for k, v := range c.total {
		s.Total[k] = v
	}
	return s
}

// clip bounds s to maxErr bytes on a UTF-8 boundary.
func clip(s string) string {
	if len(s) <= maxErr {
		return s
	}
	i := maxErr
	for i > 0 && s[i]&0xc0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
