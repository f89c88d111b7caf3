package runtime

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func newHostilePool(t testing.TB, cfg PoolConfig, env ...string) (*SyncPool, *testLog) {
	t.Helper()
	bin := buildGuest(t, "testdata/hostile")
	logs := &testLog{}
	app, err := engine(t).Load(context.Background(), AppConfig{
		Name: "hostile", Wasm: bin, Env: env, Logger: logs.logger(), MemoryLimit: 24 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := NewSyncPool(context.Background(), app, cfg)
	if err != nil {
		_ = app.Close(context.Background())
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pool.Close(ctx); err != nil {
			t.Errorf("pool close: %v", err)
		}
		_ = app.Close(context.Background())
	})
	return pool, logs
}

func serve(t *testing.T, p *SyncPool, path, query string) (*fakeExchange, int32, error) {
	t.Helper()
	ex := newFakeExchange("GET", path, query, nil)
	code, err := p.Serve(context.Background(), ex)
	return ex, code, err
}

// TestHostileGuests checks that each way a guest can fail costs only its request
// and its instance, and that the pool serves the next request on a fresh instance.
func TestHostileGuests(t *testing.T) {
	pool, logs := newHostilePool(t, PoolConfig{Workers: 2, RequestTimeout: 500 * time.Millisecond})
	tests := []struct {
		path, query string
		wantErr     error  // errors.Is target, or nil
		wantKind    string // GuestError kind when wantErr is nil and a failure is expected
		wantCode    int32  // guest's return code when it returns
		wantLog     string // in the host log
		maxTime     time.Duration
	}{
		{path: "/loop", wantErr: ErrDeadline, maxTime: 3 * time.Second},
		{path: "/spin", wantErr: ErrDeadline, maxTime: 3 * time.Second},
		{path: "/sleep", wantErr: ErrDeadline, maxTime: 3 * time.Second},
		{path: "/stream-then-loop", wantErr: ErrDeadline, maxTime: 3 * time.Second},
		{path: "/gopanic", wantKind: FailTrap, wantLog: "goroutine panic on purpose", maxTime: 3 * time.Second},
		{path: "/deadlock", wantKind: FailTrap, wantLog: "all goroutines are asleep", maxTime: 3 * time.Second},
		{path: "/exit", wantKind: FailExit, maxTime: 3 * time.Second},
		{path: "/badhandle", wantKind: FailABI, wantLog: "unknown request handle", maxTime: 3 * time.Second},
		{path: "/badptr", query: "req_head", wantKind: FailABI, wantLog: "req_head: region outside guest memory", maxTime: 3 * time.Second},
		{path: "/badptr", query: "body_read", wantKind: FailABI, wantLog: "body_read: region outside guest memory", maxTime: 3 * time.Second},
		{path: "/badptr", query: "resp_start", wantKind: FailABI, wantLog: "resp_start: region outside guest memory", maxTime: 3 * time.Second},
		{path: "/badptr", query: "resp_write", wantKind: FailABI, wantLog: "resp_write: region outside guest memory", maxTime: 3 * time.Second},
		{path: "/badptr", query: "resp_write_len", wantKind: FailABI, wantLog: "resp_write: region outside guest memory", maxTime: 3 * time.Second},
		{path: "/badptr", query: "disconnected", wantKind: FailABI, wantLog: "disconnected: unknown request handle", maxTime: 3 * time.Second},
		// A panic inside the handler is recovered by the SDK, like net/http does:
		// the request fails with 500 and the instance is kept.
		{path: "/panic", wantCode: 500, wantLog: "handler panic on purpose", maxTime: 3 * time.Second},
		{path: "/stream-then-panic", wantCode: -1, maxTime: 3 * time.Second},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.path, "/")+tc.query, func(t *testing.T) {
			before := pool.Stats()
			start := time.Now()
			_, code, err := serve(t, pool, tc.path, tc.query)
			took := time.Since(start)
			if took > tc.maxTime {
				t.Errorf("took %s, want under %s", took, tc.maxTime)
			}
			switch {
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
			case tc.wantKind != "":
				var ge *GuestError
				if !errors.As(err, &ge) {
					t.Fatalf("err = %v, want a GuestError of kind %q", err, tc.wantKind)
				}
				if ge.Kind != tc.wantKind {
					t.Fatalf("kind = %q (%v), want %q", ge.Kind, ge.Err, tc.wantKind)
				}
			default:
				if err != nil || code != tc.wantCode {
					t.Fatalf("code, err = %d, %v; want %d, nil", code, err, tc.wantCode)
				}
			}
			if tc.wantLog != "" {
				waitFor(t, "log line "+tc.wantLog, 2*time.Second, func() bool { return strings.Contains(logs.String(), tc.wantLog) })
			}
			failed := tc.wantErr != nil || tc.wantKind != ""
			if got := pool.Stats().Discarded - before.Discarded; failed && got != 1 || !failed && got != 0 {
				t.Errorf("discarded %d instances, want failure=%v", got, failed)
			}
			// The pool heals in the background and the next request succeeds.
			waitFor(t, "pool back to full size", 5*time.Second, func() bool { return pool.Stats().Live == 2 })
			ex, code, err := serve(t, pool, "/ok", "")
			if err != nil || code != 0 || ex.out.String() != "ok\n" {
				t.Fatalf("next request: code %d err %v body %q", code, err, ex.out.String())
			}
		})
	}
}

// TestMemoryBomb: a guest allocating without bound hits its memory limit, which
// costs its instance only.
func TestMemoryBomb(t *testing.T) {
	pool, logs := newHostilePool(t, PoolConfig{Workers: 1, RequestTimeout: 20 * time.Second})
	_, _, err := serve(t, pool, "/bomb", "")
	var ge *GuestError
	if !errors.As(err, &ge) || ge.Kind != FailMemory {
		t.Fatalf("err = %v, want a GuestError of kind %q", err, FailMemory)
	}
	if !strings.Contains(logs.String(), "out of memory") {
		t.Error("the guest's out-of-memory report is not in the log")
	}
	waitFor(t, "replacement", 5*time.Second, func() bool { return pool.Stats().Idle == 1 })
	if ex, _, err := serve(t, pool, "/ok", ""); err != nil || ex.out.String() != "ok\n" {
		t.Fatalf("next request: %v %q", err, ex.out.String())
	}
}

func TestRecycleAfterMaxRequests(t *testing.T) {
	pool, _ := newHostilePool(t, PoolConfig{Workers: 1, MaxRequests: 3})
	var ids []string
	for range 7 {
		ex, _, err := serve(t, pool, "/whoami", "")
		if err != nil {
			t.Fatal(err)
		}
		id, n, _ := strings.Cut(strings.TrimSpace(ex.out.String()), " ")
		ids = append(ids, id+"#"+n)
		waitFor(t, "replacement", 5*time.Second, func() bool { return pool.Stats().Idle == 1 })
	}
	// requests 1-3 on the first instance, 4-6 on the second, 7 on the third
	first, second, third := strings.Split(ids[0], "#")[0], strings.Split(ids[3], "#")[0], strings.Split(ids[6], "#")[0]
	if first == second || second == third {
		t.Fatalf("instances not recycled: %v", ids)
	}
	for i, want := range []string{"1", "2", "3", "1", "2", "3", "1"} {
		if got := strings.Split(ids[i], "#")[1]; got != want {
			t.Fatalf("request %d served as #%s on its instance, want #%s (%v)", i+1, got, want, ids)
		}
	}
	if s := pool.Stats(); s.Recycled != 2 || s.Discarded != 0 {
		t.Fatalf("stats %+v, want 2 recycled, 0 discarded", s)
	}
}

func TestQueueFullAndTimeout(t *testing.T) {
	pool, _ := newHostilePool(t, PoolConfig{Workers: 1, QueueSize: 1, QueueWait: 200 * time.Millisecond, RequestTimeout: 2 * time.Second})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // holds the only instance until its deadline
		defer wg.Done()
		_, _, _ = serve(t, pool, "/sleep", "")
	}()
	waitFor(t, "instance busy", 2*time.Second, func() bool { return pool.Stats().Idle == 0 })
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, _, err := serve(t, pool, "/ok", "")
			errs <- err
		}()
	}
	got := []error{<-errs, <-errs}
	var full, timeout int
	for _, err := range got {
		switch {
		case errors.Is(err, ErrQueueFull):
			full++
		case errors.Is(err, ErrQueueTimeout):
			timeout++
		}
	}
	if full != 1 || timeout != 1 {
		t.Fatalf("errors %v, want one ErrQueueFull and one ErrQueueTimeout", got)
	}
	wg.Wait()
}

func TestStartHookFailureKeepsAppOut(t *testing.T) {
	bin := buildGuest(t, "testdata/hostile")
	app, err := engine(t).Load(context.Background(), AppConfig{Name: "nostart", Wasm: bin, Env: []string{"HOSTILE_FAIL_START=1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	_, err = NewSyncPool(context.Background(), app, PoolConfig{Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "refusing to start: HOSTILE_FAIL_START is set") {
		t.Fatalf("err = %v, want the start hook's message", err)
	}
}

func TestStderrGoesToLog(t *testing.T) {
	pool, logs := newHostilePool(t, PoolConfig{Workers: 1})
	if _, _, err := serve(t, pool, "/stderr", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "stderr line in log", 2*time.Second, func() bool {
		s := logs.String()
		return strings.Contains(s, "hostile: a line on stderr") && strings.Contains(s, "app=hostile") && strings.Contains(s, "stream=stderr")
	})
}

// TestCrashLoopIsRateLimited: a guest that dies on every request makes the pool
// rebuild instances, but never faster than the limiter allows.
func TestCrashLoopIsRateLimited(t *testing.T) {
	pool, _ := newHostilePool(t, PoolConfig{Workers: 1, QueueWait: 5 * time.Second})
	start := time.Now()
	for range 12 {
		if _, _, err := serve(t, pool, "/exit", ""); err == nil {
			t.Fatal("exit did not fail the request")
		}
	}
	// The limiter allows max(workers, 4) builds per second with a burst of workers:
	// 12 replacements need at least ~2.5 s.
	if took := time.Since(start); took < 2*time.Second {
		t.Fatalf("12 crash/replace cycles took %s: replacements are not rate-limited", took)
	}
}

// Instances share nothing: each has its own globals and linear memory, and an
// instance built on a reused memory reservation starts from zero.
func TestInstanceStateIsOwn(t *testing.T) {
	bin, err := os.ReadFile("testdata/state/state.wasm")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	app, err := engine(t).Load(ctx, AppConfig{Name: "state", Wasm: bin, MemoryLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	newInst := func() *Instance {
		t.Helper()
		in, err := app.newInstance(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	call := func(in *Instance) int32 {
		t.Helper()
		code, err := in.serveSync(newFakeExchange("GET", "/", "", nil), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	a, b := newInst(), newInst()
	for want := int32(1001); want <= 3003; want += 1001 {
		if got := call(a); got != want {
			t.Fatalf("instance a: %d, want %d", got, want)
		}
	}
	if got := call(b); got != 1001 {
		t.Fatalf("instance b after three requests on a: %d, want 1001 (its own global and memory)", got)
	}
	a.close(ctx)
	c := newInst() // takes a's memory reservation from the allocator's free list
	defer c.close(ctx)
	defer b.close(ctx)
	if got := call(c); got != 1001 {
		t.Fatalf("instance on a reused reservation: %d, want 1001 (zeroed memory, fresh global)", got)
	}
}

// A scaling pool gives its idle instances back down to MinWorkers (zero) and
// starts one again for the next request, which waits for it rather than being
// refused; under concurrent load it grows up to Workers.
func TestSyncPoolScalesToZero(t *testing.T) {
	bin := buildGuest(t, "testdata/hostile")
	app, _ := loadApp(t, nil, AppConfig{Name: "scale", Wasm: bin})
	p := newPool(t, app, PoolConfig{Workers: 3, MinWorkers: 0, IdleTimeout: 50 * time.Millisecond, RequestTimeout: 2 * time.Second})
	if st := p.Stats(); st.Live != 1 || st.MinWorkers != 0 || st.Workers != 3 {
		t.Fatalf("started with %+v, want one live instance (the start check)", st)
	}
	waitFor(t, "the idle instance given back", 20*time.Second, func() bool { return p.Stats().Live == 0 })
	for round := range 2 {
		ex := newFakeExchange("GET", "/ok", "", nil)
		if _, err := p.Serve(context.Background(), ex); err != nil || ex.status != 200 {
			t.Fatalf("round %d: request after idling: status %d, %v", round, ex.status, err)
		}
		waitFor(t, "the idle instance given back again", 20*time.Second, func() bool { return p.Stats().Live == 0 })
	}
	// Three requests at once, each holding its instance (asleep until its 2 s
	// deadline): the pool grows to three.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			ex := newFakeExchange("GET", "/sleep", "", nil)
			if _, err := p.Serve(context.Background(), ex); !errors.Is(err, ErrDeadline) {
				t.Errorf("sleeper: %v, want its deadline", err)
			}
		})
	}
	waitFor(t, "the pool grown to 3", 20*time.Second, func() bool { return p.Stats().Live == 3 })
	wg.Wait()
	waitFor(t, "the grown pool given back", 20*time.Second, func() bool { return p.Stats().Live == 0 })
	if st := p.Stats(); st.ScaledDown < 4 {
		t.Fatalf("stats %+v", st)
	}
}

// MinWorkers instances stay however idle.
func TestSyncPoolKeepsMinWorkers(t *testing.T) {
	bin := buildGuest(t, "testdata/hostile")
	app, _ := loadApp(t, nil, AppConfig{Name: "scale", Wasm: bin})
	p := newPool(t, app, PoolConfig{Workers: 4, MinWorkers: 2, IdleTimeout: 20 * time.Millisecond})
	if st := p.Stats(); st.Live != 2 {
		t.Fatalf("started with %d instances, want MinWorkers 2", st.Live)
	}
	time.Sleep(200 * time.Millisecond) // ten idle timeouts: nothing may go
	if st := p.Stats(); st.Live != 2 || st.ScaledDown != 0 {
		t.Fatalf("after idling: %+v, want 2 live", st)
	}
}
