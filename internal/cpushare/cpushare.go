// Package cpushare shares the CPU time of guest code between tenants: a
// weighted fair gate in front of every guest call, the accounting of guest time
// per tenant, and a per-tenant CPU budget over a window.
//
// A Scheduler has a small number of execution slots (GOMAXPROCS by default). A
// guest call takes a slot for its duration (Acquire, then Release with the time
// it ran). While slots are free and nobody waits, Acquire is one short critical
// section. When more guest work is runnable than there are slots, callers wait
// in their tenant's own FIFO queue, and each freed slot goes to the waiting
// tenant with the least weighted guest time (start-time fair queuing: a
// tenant's virtual time grows by the time it ran divided by its weight; a
// tenant that comes back from idle starts at the current virtual time, so idle
// time is not banked).
//
// Guest code cannot be paused once it runs (a call ends when it returns or its
// deadline stops it), so slots alone would let a tenant whose calls spin until
// their deadline hold every slot for that long. A tenant is therefore also
// admitted beyond the slots while it runs fewer calls than its share of them
// (slots × weight ÷ the weights of the tenants with work; a tenant with no call
// running is always under it): a tenant over its share waits, one under it
// never waits behind one over it. A tenant counts as having work while it has
// calls running or queued and for Linger after (a tenant of short calls is
// between them most of the time); a tenant alone with work runs as many calls
// as it has, so the gate costs a lone tenant nothing but its bookkeeping.
//
// A tenant's Budget caps its guest time per Window (a fixed window); once it is
// spent, Acquire fails with a *BudgetError that says when the window ends.
package cpushare

import (
	"context"
	"errors"
	"fmt"
	goruntime "runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultWindow is the budget window when none is configured.
const DefaultWindow = time.Minute

// DefaultLinger is Config.Linger's default.
const DefaultLinger = 100 * time.Millisecond

// Config sizes a Scheduler. Zero values take the defaults noted.
type Config struct {
	// Slots is the number of guest calls that run at once before callers queue
	// (default GOMAXPROCS).
	Slots int
	// Window is the period a tenant's Budget applies to (default one minute).
	Window time.Duration
	// Linger is how long a tenant still counts as competing after its last
	// call ended (default 100 ms): a tenant whose calls are short is between
	// calls most of the time, and still wants its share.
	Linger time.Duration
}

// TenantConfig is one tenant's share.
type TenantConfig struct {
	// Weight is the tenant's share of contended guest time relative to the other
	// tenants' (default 1).
	Weight int
	// Budget is the guest time the tenant may use per window (0 = unlimited).
	Budget time.Duration
}

// ErrBudget is what a *BudgetError matches with errors.Is.
var ErrBudget = errors.New("tenant CPU budget spent")

// BudgetError refuses a call of a tenant whose budget for the window is spent.
type BudgetError struct {
	Tenant string
	Budget time.Duration
	Window time.Duration
	// Retry is how long until the window ends and the budget is refilled.
	Retry time.Duration
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("tenant %s used its CPU budget (%v per %v); retry in %v",
		e.Tenant, e.Budget, e.Window, e.Retry.Round(time.Second))
}

// Is makes errors.Is(err, ErrBudget) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudget }

// RetryAfter is when to try again (the host's Retry-After).
func (e *BudgetError) RetryAfter() time.Duration { return e.Retry }

// Scheduler is the gate every guest call of its tenants passes.
type Scheduler struct {
	slots     int
	window    time.Duration
	lingerFor time.Duration

	mu      sync.Mutex
	tenants map[string]*Tenant
	running int       // calls holding a slot (or admitted under their share)
	waiting int       // callers queued, over all tenants
	queued  []*Tenant // tenants with callers queued
	busyW   int       // sum of the weights of tenants with running or queued calls
	lingerW int       // sum of the weights of tenants idle for less than lingerFor
	linger  []*Tenant // the lingering tenants, each once (listed)
	clock   time.Time // the end of the latest call: the scheduler's coarse now
	pruned  time.Time // when linger was last pruned
	vclock  float64   // virtual time: the start tag of the last call dispatched
	waiters sync.Pool // *waiter
}

// New returns a Scheduler.
func New(cfg Config) *Scheduler {
	if cfg.Slots <= 0 {
		cfg.Slots = goruntime.GOMAXPROCS(0)
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Linger <= 0 {
		cfg.Linger = DefaultLinger
	}
	s := &Scheduler{slots: cfg.Slots, window: cfg.Window, lingerFor: cfg.Linger, tenants: map[string]*Tenant{}}
	s.waiters.New = func() any { return &waiter{ready: make(chan struct{}, 1)} }
	return s
}

// Slots returns the number of execution slots.
func (s *Scheduler) Slots() int { return s.slots }

// Tenant returns the tenant of that name, creating it with cfg. Every app of a
// tenant shares it. A later call with another non-zero weight or budget sets
// them (a reloaded configuration): a tenant has one of each, the latest.
func (s *Scheduler) Tenant(name string, cfg TenantConfig) (*Tenant, error) {
	if cfg.Weight < 0 || cfg.Budget < 0 {
		return nil, fmt.Errorf("tenant %s: weight and budget must not be negative", name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tenants[name]; ok {
		if cfg.Weight != 0 && cfg.Weight != t.weight {
			if t.running > 0 || t.head < len(t.queue) {
				s.busyW += cfg.Weight - t.weight
			} else if t.lingering {
				s.lingerW += cfg.Weight - t.weight
			}
			t.weight = cfg.Weight
		}
		if cfg.Budget != t.budget {
			t.budget = cfg.Budget
			t.spentFlag.Store(false) // judged again at the next charge
		}
		return t, nil
	}
	if cfg.Weight == 0 {
		cfg.Weight = 1
	}
	t := &Tenant{s: s, name: name, weight: cfg.Weight, budget: cfg.Budget, vtime: s.vclock}
	s.tenants[name] = t
	return t, nil
}

// Tenant is one tenant's side of the gate: its queue, share and accounting.
type Tenant struct {
	s      *Scheduler
	name   string
	weight int
	budget time.Duration

	// under s.mu
	running int
	queue   []*waiter
	head    int // queue[head:] are waiting
	vtime   float64
	// lingering: idle since lingerAt, less than the scheduler's lingerFor ago
	// (give or take a quarter of it: pruneLocked runs that often)
	lingering bool
	listed    bool // in the scheduler's linger list
	lingerAt  time.Time
	winEnd    time.Time
	winUsed   time.Duration

	used      atomic.Int64 // guest time since start, ns
	calls     atomic.Int64
	waited    atomic.Int64 // calls that queued
	refused   atomic.Int64 // calls refused for the budget
	spentFlag atomic.Bool  // the budget of the current window is spent
}

type waiter struct {
	ready chan struct{}
}

// Name returns the tenant's name.
func (t *Tenant) Name() string { return t.name }

// Acquire waits for a slot for one guest call of the tenant. It fails with a
// *BudgetError when the tenant's budget for the window is spent, or with ctx's
// error when ctx ends first. Every successful Acquire needs one Release.
func (t *Tenant) Acquire(ctx context.Context) error {
	if t.budget > 0 && t.spentFlag.Load() {
		if err := t.OverBudget(); err != nil {
			return err
		}
	}
	return t.acquire(ctx.Done(), ctx.Err)
}

// AcquireSlot is Acquire without the budget check or a context, for calls that
// must run once their connection was admitted (an async instance's events).
func (t *Tenant) AcquireSlot() { _ = t.acquire(nil, nil) }

func (t *Tenant) acquire(done <-chan struct{}, cause func() error) error {
	s := t.s
	s.mu.Lock()
	s.pruneLocked()
	if t.head == len(t.queue) && (s.aloneLocked(t) || s.underShareLocked(t) || (s.running < s.slots && s.waiting == 0)) {
		t.startLocked()
		s.mu.Unlock()
		t.calls.Add(1)
		return nil
	}
	w := s.waiters.Get().(*waiter)
	if t.head == len(t.queue) && t.running == 0 {
		s.becomeBusyLocked(t)
	}
	if t.head == len(t.queue) {
		s.queued = append(s.queued, t)
	}
	t.queue = append(t.queue, w)
	s.waiting++
	s.mu.Unlock()
	t.waited.Add(1)
	select {
	case <-w.ready:
		s.waiters.Put(w)
		t.calls.Add(1)
		return nil
	case <-done:
	}
	s.mu.Lock()
	if t.remove(w) {
		s.waiting--
		if t.head == len(t.queue) {
			s.unqueueLocked(t)
			if t.running == 0 {
				s.idleLocked(t)
			}
		}
		s.mu.Unlock()
		s.waiters.Put(w)
		return cause()
	}
	s.mu.Unlock()
	// Dispatched as ctx ended: the slot is ours, give it back.
	<-w.ready
	s.waiters.Put(w)
	t.calls.Add(1)
	t.Release(0)
	return cause()
}

// startLocked admits one call of t at once.
func (t *Tenant) startLocked() {
	s := t.s
	if t.running == 0 {
		s.becomeBusyLocked(t)
	}
	t.running++
	s.running++
}

// becomeBusyLocked counts t's weight among the busy tenants and moves its
// virtual time up to the clock: time spent idle is not credit.
func (s *Scheduler) becomeBusyLocked(t *Tenant) {
	if t.lingering {
		t.lingering = false
		s.lingerW -= t.weight
	}
	s.busyW += t.weight
	if t.vtime < s.vclock {
		t.vtime = s.vclock
	}
}

// idleLocked moves t, whose last call just ended, from the busy tenants to
// the lingering ones.
func (s *Scheduler) idleLocked(t *Tenant) {
	s.busyW -= t.weight
	t.lingerAt = s.clock
	if !t.lingering {
		t.lingering = true
		s.lingerW += t.weight
	}
	if !t.listed {
		t.listed = true
		s.linger = append(s.linger, t)
	}
}

// pruneLocked stops counting the tenants idle for lingerFor. It walks the
// lingering tenants at most every quarter of lingerFor, by the clock of the
// latest call's end: a call costs no clock read of its own for it.
func (s *Scheduler) pruneLocked() {
	if s.clock.Sub(s.pruned) < s.lingerFor/4 {
		return
	}
	s.pruned = s.clock
	kept := s.linger[:0]
	for _, t := range s.linger {
		switch {
		case !t.lingering: // busy again since: listed again when it goes idle
			t.listed = false
		case s.clock.Sub(t.lingerAt) >= s.lingerFor:
			t.lingering, t.listed = false, false
			s.lingerW -= t.weight
		default:
			kept = append(kept, t)
		}
	}
	clear(s.linger[len(kept):])
	s.linger = kept
}

// counted reports whether t's weight is in busyW or lingerW.
func (t *Tenant) counted() bool { return t.running > 0 || t.head < len(t.queue) || t.lingering }

// aloneLocked reports whether no other tenant competes for the CPU (none
// busy or lingering): then t runs as many calls as it has, slots or not.
func (s *Scheduler) aloneLocked(t *Tenant) bool {
	w := s.busyW + s.lingerW
	if t.counted() {
		w -= t.weight
	}
	return w == 0
}

// underShareLocked reports whether t runs fewer calls than its share of the
// slots, whatever they hold: its weight's part of them among the busy tenants
// (t counted). A tenant with no call running is always under it.
func (s *Scheduler) underShareLocked(t *Tenant) bool {
	w := s.busyW + s.lingerW
	if !t.counted() {
		w += t.weight
	}
	// running < slots × weight ÷ w, in integers
	return t.running*max(w, 1) < s.slots*t.weight
}

// remove takes w out of t's queue if it is still there.
func (t *Tenant) remove(w *waiter) bool {
	for i := t.head; i < len(t.queue); i++ {
		if t.queue[i] == w {
			copy(t.queue[i:], t.queue[i+1:])
			t.queue[len(t.queue)-1] = nil
			t.queue = t.queue[:len(t.queue)-1]
			return true
		}
	}
	return false
}

func (s *Scheduler) unqueueLocked(t *Tenant) {
	for i, x := range s.queued {
		if x == t {
			s.queued = append(s.queued[:i], s.queued[i+1:]...)
			break
		}
	}
	t.queue, t.head = t.queue[:0], 0
}

// Release gives back the slot of one call that ran the guest for used.
func (t *Tenant) Release(used time.Duration) { t.ReleaseAt(time.Now(), used) }

// ReleaseAt is Release for a call that ended at now (the caller's clock read,
// reused).
func (t *Tenant) ReleaseAt(now time.Time, used time.Duration) {
	s := t.s
	t.used.Add(int64(used))
	s.mu.Lock()
	if now.After(s.clock) {
		s.clock = now
	}
	t.running--
	s.running--
	t.vtime += float64(used) / float64(t.weight)
	if t.budget > 0 {
		t.chargeLocked(now, used)
	}
	if t.running == 0 && t.head == len(t.queue) {
		s.idleLocked(t)
	}
	if s.waiting > 0 {
		s.pruneLocked()
		s.dispatchLocked()
	}
	s.mu.Unlock()
}

// chargeLocked adds used to the budget window ending after now.
func (t *Tenant) chargeLocked(now time.Time, used time.Duration) {
	if now.After(t.winEnd) {
		t.winEnd, t.winUsed = now.Add(t.s.window), 0
	}
	t.winUsed += used
	if t.winUsed >= t.budget {
		t.spentFlag.Store(true)
	}
}

// dispatchLocked hands free slots (and shares) to queued callers: first the
// tenants under their share, then by least virtual time.
func (s *Scheduler) dispatchLocked() {
	for s.waiting > 0 {
		free := s.running < s.slots
		var best *Tenant
		bestUnder := false
		for _, t := range s.queued {
			under := s.underShareLocked(t) || s.aloneLocked(t)
			if !free && !under {
				continue
			}
			if best == nil || (under && !bestUnder) || (under == bestUnder && t.vtime < best.vtime) {
				best, bestUnder = t, under
			}
		}
		if best == nil {
			return
		}
		w := best.queue[best.head]
		best.queue[best.head] = nil
		best.head++
		s.waiting--
		best.running++
		s.running++
		if best.vtime > s.vclock {
			s.vclock = best.vtime
		}
		if best.head == len(best.queue) {
			s.unqueueLocked(best)
		}
		w.ready <- struct{}{}
	}
}

// OverBudget returns a *BudgetError while the tenant's budget for the current
// window is spent, else nil.
func (t *Tenant) OverBudget() error {
	if t.budget <= 0 || !t.spentFlag.Load() {
		return nil
	}
	now := time.Now()
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if !now.Before(t.winEnd) {
		t.spentFlag.Store(false)
		t.winEnd, t.winUsed = now.Add(t.s.window), 0
		return nil
	}
	t.refused.Add(1)
	return &BudgetError{Tenant: t.name, Budget: t.budget, Window: t.s.window, Retry: t.winEnd.Sub(now)}
}

// Stats is a snapshot of one tenant's accounting.
type Stats struct {
	Weight  int
	Budget  time.Duration
	Used    time.Duration // guest time since the scheduler started
	Calls   int64         // guest calls admitted
	Waited  int64         // of which queued first
	Refused int64         // calls refused for the budget
	Running int           // calls running now
	Waiting int           // calls queued now
}

// Tenants returns every tenant's counters by name.
func (s *Scheduler) Tenants() map[string]Stats {
	s.mu.Lock()
	ts := make([]*Tenant, 0, len(s.tenants))
	for _, t := range s.tenants {
		ts = append(ts, t)
	}
	s.mu.Unlock()
	out := make(map[string]Stats, len(ts))
	for _, t := range ts {
		out[t.name] = t.Stats()
	}
	return out
}

// Stats returns the tenant's counters.
func (t *Tenant) Stats() Stats {
	t.s.mu.Lock()
	running, waiting, weight, budget := t.running, len(t.queue)-t.head, t.weight, t.budget
	t.s.mu.Unlock()
	return Stats{Weight: weight, Budget: budget, Used: time.Duration(t.used.Load()),
		Calls: t.calls.Load(), Waited: t.waited.Load(), Refused: t.refused.Load(), Running: running, Waiting: waiting}
}
