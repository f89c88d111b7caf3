package runtime

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/internal/cpushare"
)

// A tenant whose requests spin holds the CPU gate's slots; a second tenant's
// requests are still admitted at once (under their share), while the
// spinner's next request waits in its own queue.
func TestCPUGateSpinnerAndNeighbour(t *testing.T) {
	bin := buildGuest(t, "testdata/hostile")
	// The neighbour competes from its first call on (a linger of an hour).
	sched := cpushare.New(cpushare.Config{Slots: 2, Linger: time.Hour})
	spinT, _ := sched.Tenant("spinner", cpushare.TenantConfig{})
	nbT, _ := sched.Tenant("neighbour", cpushare.TenantConfig{})
	spinApp, _ := loadApp(t, nil, AppConfig{Name: "spin", Wasm: bin, CPU: spinT})
	nbApp, _ := loadApp(t, nil, AppConfig{Name: "nb", Wasm: bin, CPU: nbT})
	spin := newPool(t, spinApp, PoolConfig{Workers: 3, RequestTimeout: 3 * time.Second})
	nb := newPool(t, nbApp, PoolConfig{Workers: 1})
	if _, err := nb.Serve(context.Background(), newFakeExchange("GET", "/ok", "", nil)); err != nil {
		t.Fatal(err)
	}

	spinning := make([]*fakeExchange, 3)
	done := make(chan error, 3)
	for i := range spinning {
		spinning[i] = newFakeExchange("GET", "/loop", "", nil)
		go func() { _, err := spin.Serve(context.Background(), spinning[i]); done <- err }()
	}
	// With the neighbour competing, the spinner's share is one slot of two:
	// one spins on it, one on the free slot, the third waits in its queue.
	waitFor(t, "the spinner's third request queued", 20*time.Second, func() bool {
		st := spinT.Stats()
		return st.Running == 2 && st.Waiting == 1
	})
	for i := range 20 {
		ex := newFakeExchange("GET", "/ok", "", nil)
		if _, err := nb.Serve(context.Background(), ex); err != nil || ex.status != 200 {
			t.Fatalf("neighbour request %d: status %d, %v", i, ex.status, err)
		}
	}
	if st := nbT.Stats(); st.Waited != 0 || st.Calls != 21 {
		t.Fatalf("neighbour: %+v, want 21 calls none queued", st)
	}
	if st := spinT.Stats(); st.Running != 2 || st.Waiting != 1 {
		t.Fatalf("spinner: %+v, want 2 running and 1 waiting throughout", st)
	}
	for range spinning { // the spins end at their deadline
		if err := <-done; !errors.Is(err, ErrDeadline) {
			t.Fatalf("spinner: %v, want its deadline", err)
		}
	}
	if nbApp.GuestTime() <= 0 || spinApp.GuestTime() <= nbApp.GuestTime() {
		t.Fatalf("guest time: spinner %v, neighbour %v", spinApp.GuestTime(), nbApp.GuestTime())
	}
}

// Over its CPU budget, a tenant's requests are refused with ErrCPUBudget (a
// *cpushare.BudgetError saying when to retry); another tenant's go on.
func TestCPUBudgetRefuses(t *testing.T) {
	bin := buildGuest(t, "testdata/hostile")
	sched := cpushare.New(cpushare.Config{Window: time.Hour})
	tn, _ := sched.Tenant("small", cpushare.TenantConfig{Budget: time.Nanosecond})
	app, _ := loadApp(t, nil, AppConfig{Name: "small", Wasm: bin, CPU: tn})
	p := newPool(t, app, PoolConfig{Workers: 1})
	ex := newFakeExchange("GET", "/ok", "", nil)
	if _, err := p.Serve(context.Background(), ex); err != nil {
		t.Fatal("first request:", err)
	}
	_, err := p.Serve(context.Background(), newFakeExchange("GET", "/ok", "", nil))
	var be *cpushare.BudgetError
	if !errors.Is(err, ErrCPUBudget) || !errors.As(err, &be) || be.RetryAfter() < 59*time.Minute {
		t.Fatalf("over budget: %v", err)
	}
}

// A sync request blocked in a plugin call (a kv set waiting on its store)
// holds no CPU slot and is not charged for the wait: another tenant's call
// takes the only slot meanwhile.
func TestCPUGatePluginCallOffSlot(t *testing.T) {
	sched := cpushare.New(cpushare.Config{Slots: 1, Linger: time.Hour})
	waiterT, _ := sched.Tenant("waiter", cpushare.TenantConfig{})
	otherT, _ := sched.Tenant("other", cpushare.TenantConfig{})
	entered, release := make(chan struct{}), make(chan struct{})
	kv := &fakeKV{keys: map[string]bool{}}
	mod := kv.module()
	for i, f := range mod.Funcs {
		if f.Name == "set" {
			set := f.Fn
			mod.Funcs[i].Fn = func(ctx context.Context, m api.Module, stack []uint64) {
				close(entered)
				<-release // the store is slow
				set(ctx, m, stack)
			}
		}
	}
	app, _ := loadApp(t, nil, AppConfig{Name: "waiter", Wasm: readWasm(t, "testdata/startspin/startspin.wasm"),
		HostModules: []HostModule{mod}, CPU: waiterT})
	p := newPool(t, app, PoolConfig{Workers: 1})
	done := make(chan error, 1)
	ex := newFakeExchange("GET", "/arm", "", nil)
	go func() { _, err := p.Serve(context.Background(), ex); done <- err }()
	<-entered
	if st := waiterT.Stats(); st.Running != 0 {
		t.Fatalf("blocked in a plugin call: %+v, want its slot given back", st)
	}
	// The other tenant competes (it lingers) and finds the slot free.
	touch(t, otherT)
	if err := otherT.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := otherT.Stats(); st.Waited != 0 {
		t.Fatalf("other: %+v, queued behind a blocked call", st)
	}
	otherT.Release(0)
	time.Sleep(50 * time.Millisecond) // the blocked time that must not be charged
	close(release)
	if err := <-done; err != nil || ex.out.String() != "armed\n" {
		t.Fatalf("/arm: %q %v", ex.out.String(), err)
	}
	if used := waiterT.Stats().Used; used >= 50*time.Millisecond {
		t.Fatalf("charged %v, the 50 ms blocked in the plugin included", used)
	}
}

// touch makes tn compete: one call, after which it lingers.
func touch(t *testing.T, tn *cpushare.Tenant) {
	t.Helper()
	if err := tn.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	tn.Release(0)
}
