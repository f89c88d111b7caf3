package cpushare

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func tenant(t *testing.T, s *Scheduler, name string, cfg TenantConfig) *Tenant {
	t.Helper()
	tn, err := s.Tenant(name, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

// acquireAsync starts an Acquire and returns a channel that yields its error.
func acquireAsync(ctx context.Context, tn *Tenant) <-chan error {
	c := make(chan error, 1)
	go func() { c <- tn.Acquire(ctx) }()
	return c
}

// waitQueued waits (bounded) until tn has n callers queued.
func waitQueued(t *testing.T, tn *Tenant, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tn.Stats().Waiting != n {
		if time.Now().After(deadline) {
			t.Fatalf("tenant %s: %d queued, want %d", tn.name, tn.Stats().Waiting, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// touch makes tn compete (it lingers after one call).
func touch(t *testing.T, tn *Tenant) {
	t.Helper()
	if err := tn.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	tn.Release(0)
}

// A tenant alone with work is not held to the slots: nobody else wants them.
func TestAloneUnbounded(t *testing.T) {
	s := New(Config{Slots: 1, Linger: 20 * time.Millisecond})
	a := tenant(t, s, "a", TenantConfig{})
	b := tenant(t, s, "b", TenantConfig{})
	ctx := context.Background()
	for range 5 {
		if err := a.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.Stats(); st.Running != 5 || st.Waited != 0 {
		t.Fatalf("alone: %+v, want 5 running none queued", st)
	}
	for range 5 {
		a.Release(0)
	}
	touch(t, b) // b lingers: a is held to its share again
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	second := acquireAsync(ctx, a)
	waitQueued(t, a, 1)
	// Once b has been idle for its linger, a is alone again: a release lets
	// the queued call in, and new ones go at once beyond the slot.
	time.Sleep(40 * time.Millisecond)
	a.Release(0)
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Running != 2 {
		t.Fatalf("alone again: %+v, want 2 running on 1 slot", st)
	}
	a.Release(0)
	a.Release(0)
}

func TestSlotsThenQueue(t *testing.T) {
	s := New(Config{Slots: 2, Linger: time.Hour})
	a := tenant(t, s, "a", TenantConfig{})
	touch(t, tenant(t, s, "b", TenantConfig{}))
	ctx := context.Background()
	for range 2 {
		if err := a.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	third := acquireAsync(ctx, a)
	waitQueued(t, a, 1)
	select {
	case <-third:
		t.Fatal("a third call of one tenant ran beyond 2 slots")
	default:
	}
	a.Release(time.Millisecond)
	if err := <-third; err != nil {
		t.Fatal(err)
	}
	a.Release(0)
	a.Release(0)
	if st := a.Stats(); st.Running != 0 || st.Calls != 3 || st.Waited != 1 || st.Used != time.Millisecond {
		t.Fatalf("stats %+v", st)
	}
}

// A tenant holding every slot with calls that do not end (a spinning guest)
// cannot make another tenant wait: the other is under its share.
func TestSpinnerDoesNotBlockNeighbour(t *testing.T) {
	s := New(Config{Slots: 2})
	a := tenant(t, s, "spinner", TenantConfig{})
	b := tenant(t, s, "neighbour", TenantConfig{})
	ctx := context.Background()
	for range 2 {
		if err := a.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 { // the neighbour's calls, one at a time: never queued
		if err := b.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		b.Release(time.Microsecond)
		if st := b.Stats(); st.Waited != 0 {
			t.Fatalf("call %d of the neighbour queued behind the spinner", i)
		}
	}
	// While the neighbour runs one call, the spinner is over its share (1 of 2
	// slots): its next call waits, and is let in only when a slot frees.
	if err := b.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	more := acquireAsync(ctx, a)
	waitQueued(t, a, 1)
	b.Release(time.Microsecond) // frees nothing of a's share: 2 running, 2 slots
	select {
	case <-more:
		t.Fatal("the spinner ran a third call beyond the slots")
	default:
	}
	a.Release(time.Second)
	if err := <-more; err != nil {
		t.Fatal(err)
	}
}

// A tenant runs up to its weight's part of the slots while others are busy.
func TestWeightedShares(t *testing.T) {
	s := New(Config{Slots: 4})
	heavy := tenant(t, s, "heavy", TenantConfig{Weight: 3})
	light := tenant(t, s, "light", TenantConfig{Weight: 1})
	ctx := context.Background()
	if err := light.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := heavy.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	h4 := acquireAsync(ctx, heavy)
	l2 := acquireAsync(ctx, light)
	waitQueued(t, heavy, 1)
	waitQueued(t, light, 1)
	heavy.Release(time.Millisecond) // heavy is under its 3 of 4 again, light at its 1
	if err := <-h4; err != nil {
		t.Fatal(err)
	}
	select {
	case <-l2:
		t.Fatal("light ran a second call beyond its share")
	default:
	}
	light.Release(time.Millisecond)
	if err := <-l2; err != nil {
		t.Fatal(err)
	}
}

// A freed slot goes to the queued tenant that used the least guest time
// (weighted), among tenants at their share.
func TestLeastVirtualTimeFirst(t *testing.T) {
	s := New(Config{Slots: 4})
	a := tenant(t, s, "a", TenantConfig{})
	b := tenant(t, s, "b", TenantConfig{})
	c := tenant(t, s, "c", TenantConfig{Weight: 2})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Acquire(ctx))
	a.Release(10 * time.Millisecond)
	must(b.Acquire(ctx))
	b.Release(time.Millisecond)
	// Shares of 4 slots: a 1, b 1, c 2; each at its share.
	must(a.Acquire(ctx))
	must(b.Acquire(ctx))
	must(c.Acquire(ctx))
	must(c.Acquire(ctx))
	a2 := acquireAsync(ctx, a)
	waitQueued(t, a, 1)
	b2 := acquireAsync(ctx, b)
	waitQueued(t, b, 1)
	c.Release(0) // one slot frees: b used less than a
	must(<-b2)
	select {
	case <-a2:
		t.Fatal("a went before b, which used less")
	default:
	}
	c.Release(0)
	must(<-a2)
}

func TestBudget(t *testing.T) {
	s := New(Config{Slots: 2, Window: time.Hour})
	a := tenant(t, s, "a", TenantConfig{Budget: 10 * time.Millisecond})
	b := tenant(t, s, "b", TenantConfig{})
	ctx := context.Background()
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	a.Release(4 * time.Millisecond)
	if err := a.Acquire(ctx); err != nil {
		t.Fatal("refused under budget:", err)
	}
	a.Release(6 * time.Millisecond)
	err := a.Acquire(ctx)
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudget) {
		t.Fatalf("over budget: %v, want a *BudgetError", err)
	}
	if be.Retry <= 59*time.Minute || be.Retry > time.Hour {
		t.Fatalf("retry in %v, want the rest of the 1 h window", be.Retry)
	}
	if err := b.Acquire(ctx); err != nil {
		t.Fatal("another tenant refused:", err)
	}
	b.Release(time.Hour)
	if st := a.Stats(); st.Refused != 1 || st.Running != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBudgetWindowRefills(t *testing.T) {
	s := New(Config{Slots: 1, Window: 50 * time.Millisecond})
	a := tenant(t, s, "a", TenantConfig{Budget: time.Millisecond})
	ctx := context.Background()
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	a.Release(time.Second)
	if err := a.Acquire(ctx); err == nil {
		t.Fatal("not refused over budget")
	}
	deadline := time.Now().Add(10 * time.Second)
	for a.Acquire(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("budget never refilled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.Release(0)
}

func TestCancelWhileQueued(t *testing.T) {
	s := New(Config{Slots: 1, Linger: time.Hour})
	a := tenant(t, s, "a", TenantConfig{})
	touch(t, tenant(t, s, "b", TenantConfig{}))
	if err := a.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := acquireAsync(ctx, a)
	waitQueued(t, a, 1)
	cancel()
	if err := <-c; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	a.Release(0)
	if st := a.Stats(); st.Running != 0 || st.Waiting != 0 {
		t.Fatalf("left behind: %+v", st)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != 0 || s.waiting != 0 || s.busyW != 0 || len(s.queued) != 0 {
		t.Fatalf("scheduler left: running %d waiting %d busyW %d queued %d", s.running, s.waiting, s.busyW, len(s.queued))
	}
}

func TestTenantReconfigured(t *testing.T) {
	s := New(Config{})
	a := tenant(t, s, "a", TenantConfig{Weight: 2})
	if again := tenant(t, s, "a", TenantConfig{}); again != a || again.Stats().Weight != 2 {
		t.Fatal("a second app without settings changed the tenant")
	}
	tenant(t, s, "a", TenantConfig{Weight: 3, Budget: time.Second})
	if st := a.Stats(); st.Weight != 3 || st.Budget != time.Second {
		t.Fatalf("reconfigured: %+v", st)
	}
	if _, err := s.Tenant("b", TenantConfig{Weight: -1}); err == nil {
		t.Fatal("a negative weight accepted")
	}
}

// Many tenants and goroutines at once: the counts come back to zero (run
// under -race).
func TestConcurrentBalance(t *testing.T) {
	s := New(Config{Slots: 2})
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 4 {
		tn := tenant(t, s, string(rune('a'+i)), TenantConfig{Weight: i + 1})
		for range 8 {
			wg.Go(func() {
				for range 200 {
					if err := tn.Acquire(ctx); err != nil {
						t.Error(err)
						return
					}
					tn.Release(time.Microsecond)
				}
			})
		}
	}
	wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running != 0 || s.waiting != 0 || s.busyW != 0 || len(s.queued) != 0 {
		t.Fatalf("scheduler left: running %d waiting %d busyW %d queued %d", s.running, s.waiting, s.busyW, len(s.queued))
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	s := New(Config{})
	tn, _ := s.Tenant("a", TenantConfig{})
	ctx := context.Background()
	for b.Loop() {
		_ = tn.Acquire(ctx)
		tn.Release(time.Microsecond)
	}
}
