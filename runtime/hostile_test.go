package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/runtime/internal/interrupt"
)

// The hostile guests of this file are raw WAT written from abi/SPEC.md alone
// (testdata/recurse, startspin, tables; rebuilt by sdk/c/build.sh).

func readWasm(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadApp loads a module on eng (the shared test engine when nil).
func loadApp(t testing.TB, eng *Engine, cfg AppConfig) (*App, *testLog) {
	t.Helper()
	if eng == nil {
		eng = engine(t)
	}
	logs := &testLog{}
	cfg.Logger = logs.logger()
	app, err := eng.Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = app.Close(context.Background()) })
	return app, logs
}

func newPool(t testing.TB, app *App, cfg PoolConfig) *SyncPool {
	t.Helper()
	pool, err := NewSyncPool(context.Background(), app, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pool.Close(ctx)
	})
	return pool
}

// TestLoopFreeRecursionStops: a guest with no loop at all that recurses
// exponentially (directly, through call_indirect, through two functions) ends at
// its deadline, and while it runs the process can still garbage-collect (a
// stop-the-world waits for every goroutine, the guest's too) and serve others.
func TestLoopFreeRecursionStops(t *testing.T) {
	app, _ := loadApp(t, nil, AppConfig{Name: "recurse", Wasm: readWasm(t, "testdata/recurse/recurse.wasm")})
	const timeout = 300 * time.Millisecond
	pool := newPool(t, app, PoolConfig{Workers: 2, RequestTimeout: timeout})

	if ex, _, err := serve(t, pool, "/fib", "20"); err != nil || ex.out.String() != "fib(20) = 6765\n" {
		t.Fatalf("/fib?20: %q, %v", ex.out.String(), err)
	}
	for _, path := range []string{"/fib", "/indirect", "/mutual"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			done := make(chan error, 1)
			start := time.Now()
			go func() {
				_, _, err := serve(t, pool, path, "90")
				done <- err
			}()
			// While it recurses: a GC completes and the other instance serves.
			waitFor(t, "the guest to start", 5*time.Second, func() bool { return pool.Stats().Idle < 2 })
			gc := make(chan struct{})
			go func() { goruntime.GC(); close(gc) }()
			select {
			case <-gc:
			case <-time.After(5 * time.Second):
				t.Fatal("a GC waited more than 5 s for the recursing guest")
			}
			if ex, _, err := serve(t, pool, "/", ""); err != nil || ex.out.String() != "ok\n" {
				t.Fatalf("request beside it: %q, %v", ex.out.String(), err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, ErrDeadline) {
					t.Fatalf("err = %v, want ErrDeadline", err)
				}
				if took := time.Since(start); took > timeout+3*time.Second {
					t.Errorf("took %v with a %v deadline", took, timeout)
				}
			case <-time.After(timeout + 10*time.Second):
				t.Fatalf("still recursing %v past its %v deadline", timeout+10*time.Second, timeout)
			}
			waitFor(t, "the pool to heal", 5*time.Second, func() bool { return pool.Stats().Idle == 2 })
		})
	}
}

// fakeKV is a stand-in for the kv plugin (wasmsrv_kv get and set, plugins/kv/ABI.md):
// the startspin guest's start function spins while a key is set.
type fakeKV struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (f *fakeKV) set(key string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[key] = on
}

func (f *fakeKV) module() HostModule {
	get := func(_ context.Context, mod api.Module, stack []uint64) {
		key, _ := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		f.mu.Lock()
		on := f.keys[string(key)]
		f.mu.Unlock()
		stack[0] = uint64(1)
		if !on {
			stack[0] = uint64(0xffffffff_fffffff8) // -8: not found
		}
	}
	set := func(_ context.Context, mod api.Module, stack []uint64) {
		key, _ := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
		f.set(string(key), true)
		stack[0] = 0
	}
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	return HostModule{Name: "wasmsrv_kv", Funcs: []HostFunc{
		{Name: "get", Params: []api.ValueType{i32, i32, i32, i32}, Results: []api.ValueType{i64}, Fn: get},
		{Name: "set", Params: []api.ValueType{i32, i32, i32, i32, i64}, Results: []api.ValueType{i32}, Fn: set},
	}}
}

// startSpin returns the startspin guest and its key-value store; the keys set
// in it decide what the start function does.
func startSpin(t *testing.T, keys ...string) (AppConfig, *fakeKV) {
	t.Helper()
	kv := &fakeKV{keys: map[string]bool{}}
	for _, k := range keys {
		kv.set(k, true)
	}
	return AppConfig{Name: "startspin", Wasm: readWasm(t, "testdata/startspin/startspin.wasm"),
		HostModules: []HostModule{kv.module()}}, kv
}

// TestStartFunctionTimeout: a Wasm start function that never ends (recursing or
// looping) is stopped by the start timeout, like _initialize and the start hook;
// the pool cannot start, and says why.
func TestStartFunctionTimeout(t *testing.T) {
	for _, key := range []string{"spin", "loop"} {
		t.Run(key, func(t *testing.T) {
			cfg, _ := startSpin(t, key)
			cfg.StartTimeout = 300 * time.Millisecond
			app, _ := loadApp(t, nil, cfg)
			start := time.Now()
			_, err := NewSyncPool(context.Background(), app, PoolConfig{Workers: 1})
			if err == nil || !strings.Contains(err.Error(), "the module's start function did not finish within the start timeout (300ms)") {
				t.Fatalf("err = %v, want the start function's timeout", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v with a 300ms start timeout", took)
			}
		})
	}
	// Without the key the start function returns and the app serves.
	cfg, _ := startSpin(t)
	app, _ := loadApp(t, nil, cfg)
	pool := newPool(t, app, PoolConfig{Workers: 1})
	if ex, _, err := serve(t, pool, "/", ""); err != nil || ex.out.String() != "ok\n" {
		t.Fatalf("%q, %v", ex.out.String(), err)
	}
}

// TestStartFunctionSpinsLate: instances that start fine until the tenant arms
// its start function. The replacement of a crashed instance then spins: it is
// stopped at the start timeout, logged, counted in Stats with its reason, and
// requests are told the app is unavailable and why, instead of waiting; once the
// cause is gone the pool heals.
func TestStartFunctionSpinsLate(t *testing.T) {
	cfg, kv := startSpin(t)
	cfg.StartTimeout = 200 * time.Millisecond
	app, logs := loadApp(t, nil, cfg)
	pool := newPool(t, app, PoolConfig{Workers: 1, QueueWait: time.Second})
	if ex, _, err := serve(t, pool, "/arm", ""); err != nil || ex.out.String() != "armed\n" {
		t.Fatalf("/arm: %q, %v", ex.out.String(), err)
	}
	if _, _, err := serve(t, pool, "/crash", ""); err == nil {
		t.Fatal("/crash did not fail")
	}
	waitFor(t, "a failed start", 10*time.Second, func() bool { return pool.Stats().StartFailures > 0 })
	st := pool.Stats()
	if !strings.Contains(st.LastStartError, "start function did not finish") || st.LastStartErrorAt.IsZero() {
		t.Errorf("stats %+v lack the reason", st)
	}
	waitFor(t, "the failure in the log", 2*time.Second, func() bool {
		return strings.Contains(logs.String(), "cannot start replacement instance") &&
			strings.Contains(logs.String(), "start function did not finish within the start timeout")
	})
	_, _, err := serve(t, pool, "/", "")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "start function") {
		t.Fatalf("request while no instance can start: %v, want ErrUnavailable with the reason", err)
	}
	kv.set("spin", false)
	waitFor(t, "the pool to heal", 30*time.Second, func() bool { return pool.Stats().Idle == 1 })
	if ex, _, err := serve(t, pool, "/", ""); err != nil || ex.out.String() != "ok\n" {
		t.Fatalf("after healing: %q, %v", ex.out.String(), err)
	}
}

// TestTableLimits: tables count against the memory limit. A module whose
// initial tables do not fit is refused naming the table; growing tables fails
// within the limit, whatever the guest asks for.
func TestTableLimits(t *testing.T) {
	_, err := engine(t).Load(context.Background(), AppConfig{Name: "bigtable", MemoryLimit: 16 << 20,
		Wasm: readWasm(t, "testdata/tables/bigtable.wasm")})
	if !errors.Is(err, interrupt.ErrOverLimit) || errors.Is(err, ErrNotGuest) ||
		!strings.Contains(err.Error(), "table 1 (funcref) has 100000000 initial entries, 762.9MiB at 8 bytes each, over the memory limit of 16MiB") {
		t.Fatalf("err = %v, want the table named against the limit", err)
	}

	const limit = 16 << 20
	app, _ := loadApp(t, nil, AppConfig{Name: "tables", MemoryLimit: limit, Wasm: readWasm(t, "testdata/tables/tables.wasm")})
	pool := newPool(t, app, PoolConfig{Workers: 1})
	var before goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&before)
	ex, _, err := serve(t, pool, "/bomb", "")
	if err != nil || ex.out.String() != "entries 4\n" {
		t.Fatalf("/bomb: %q, %v; want every table.grow of 100M entries to fail", ex.out.String(), err)
	}
	ex, _, err = serve(t, pool, "/creep", "")
	if err != nil {
		t.Fatal(err)
	}
	var entries int64
	if _, err := fmt.Sscanf(ex.out.String(), "entries %d\n", &entries); err != nil {
		t.Fatalf("/creep: %q", ex.out.String())
	}
	// Tables that grow share 1/16 of the limit: 131,072 entries of 8 bytes.
	if entries < 4+100000 || entries*interrupt.TableEntryBytes > limit/16+64 {
		t.Errorf("/creep grew the tables to %d entries; want about %d", entries, 4+limit/16/interrupt.TableEntryBytes)
	}
	var after goruntime.MemStats
	goruntime.GC()
	goruntime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > limit/8 {
		t.Errorf("the host heap grew by %d bytes for the tables of one instance with a %d-byte limit", grew, limit)
	}
	// Linear memory gets what the tables' maxima leave.
	in := <-pool.idle
	pages, _ := in.mod.Memory().Definition().Max()
	pool.idle <- in
	if total := int64(pages)*65536 + entries*interrupt.TableEntryBytes; total > limit {
		t.Errorf("memory of %d pages and %d table entries: %d bytes, over the %d limit", pages, entries, total, limit)
	}
}

// TestEngineInterrupt: Engine.Interrupt stops whatever guest code runs (a
// request recursing with an hour-long deadline, an instance start spinning with
// an hour-long start timeout) and lets no new instance start.
func TestEngineInterrupt(t *testing.T) {
	eng, err := NewEngine(context.Background(), EngineConfig{CacheDir: "-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	app, _ := loadApp(t, eng, AppConfig{Name: "recurse", Wasm: readWasm(t, "testdata/recurse/recurse.wasm")})
	pool := newPool(t, app, PoolConfig{Workers: 1, RequestTimeout: time.Hour})
	cfg, _ := startSpin(t, "spin")
	cfg.StartTimeout = time.Hour
	spinApp, _ := loadApp(t, eng, cfg)

	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, _, err := serve(t, pool, "/fib", "90")
		errs <- err
	}()
	go func() {
		defer wg.Done()
		_, err := NewSyncPool(context.Background(), spinApp, PoolConfig{Workers: 1})
		errs <- err
	}()
	waitFor(t, "the request to run", 5*time.Second, func() bool { return pool.Stats().Idle == 0 })
	time.Sleep(100 * time.Millisecond) // the start function is spinning by now, or soon will be
	start := time.Now()
	eng.Interrupt()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("guests still running 10 s after Interrupt")
	}
	t.Logf("stopped %v after Interrupt", time.Since(start))
	for range 2 {
		if err := <-errs; err == nil {
			t.Error("a guest call succeeded after Interrupt")
		}
	}
	if _, err := app.newInstance(context.Background(), 0); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("new instance after Interrupt: %v, want ErrPoolClosed", err)
	}
	if _, err := eng.Load(context.Background(), AppConfig{Wasm: readWasm(t, "testdata/recurse/recurse.wasm")}); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("load after Interrupt: %v, want ErrPoolClosed", err)
	}
}
