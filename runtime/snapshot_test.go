package runtime

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/tetratelabs/wazero/api"
)

// drawRandom serves one request on in and returns the guest's lines.
func drawRandom(t *testing.T, in *Instance) []string {
	t.Helper()
	ex := newFakeExchange("GET", "/", "", nil)
	if _, err := in.serveSync(ex, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(ex.out.String()), "\n")
}

// TestSnapshotFreshRandomness starts many instances of a Go guest from one
// snapshot and checks that no two draw the same number from any source of
// randomness a Go guest has: the runtime's generators, math/rand,
// math/rand/v2, crypto/rand, hash/maphash seeds, the iteration order of maps
// made before and after the snapshot, and a ChaCha8 seeded at init.
func TestSnapshotFreshRandomness(t *testing.T) {
	ctx := context.Background()
	log := &testLog{}
	app, err := engine(t).Load(ctx, AppConfig{Name: "rand", Wasm: buildGuest(t, "testdata/randguest"), Logger: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if snap, err := app.snapshot(ctx); err != nil || snap == nil {
		t.Fatalf("no snapshot (%v); log:\n%s", err, log.String())
	}
	const n = 200
	seen := map[string]int{}
	for i := range n {
		in, err := app.newInstance(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if in.snap == nil {
			t.Fatal("instance did not start from the snapshot")
		}
		lines := drawRandom(t, in)
		if len(lines) != 10 || lines[0] != "requests on this instance 1" {
			t.Fatalf("guest said %q", lines)
		}
		for _, l := range lines[1:] {
			if j, dup := seen[l]; dup {
				t.Fatalf("instances %d and %d both drew %q", j, i, l)
			}
			seen[l] = i
		}
		in.close(ctx)
	}
}

// threadCPU is the CPU time of the calling thread (lock it first).
func threadCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		b.Skipf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// privateIn sums Private_Dirty + Private_Clean of the mappings of
// /proc/self/smaps that start inside one of the ranges [start, start+len):
// the pages only those linear memories hold.
func privateIn(b *testing.B, ranges [][2]uintptr) int64 {
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		b.Skipf("no smaps: %v", err)
	}
	var total int64
	in := false
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if lo, _, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			start, err := strconv.ParseUint(lo, 16, 64)
			if err != nil {
				continue
			}
			in = false
			for _, r := range ranges {
				if uintptr(start) >= r[0] && uintptr(start) < r[0]+r[1] {
					in = true
				}
			}
			continue
		}
		if in && len(f) == 3 && (f[0] == "Private_Dirty:" || f[0] == "Private_Clean:") {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += kb << 10
		}
	}
	return total
}

// BenchmarkSnapshotStart compares the start of a hello instance, Go
// (samples/hello) and C (samples/c-hello), from the app's snapshot with a
// fresh start (instantiate, _initialize, start hook), in the same iterations:
// wall and CPU time per instance, and per live idle instance (64 of them) the private
// memory of its linear memory (Private_Dirty + Private_Clean of its mappings:
// the pages it does not share with the image) and the Go heap the host keeps
// for it (wazero's module instance: functions, table, globals); and the
// private memory again once each instance has served ten requests.
//
//	go test -run '^$' -bench SnapshotStart -count 5 ./runtime/
func BenchmarkSnapshotStart(b *testing.B) {
	b.Run("go", func(b *testing.B) { benchmarkSnapshotStart(b, buildGuest(b, "../samples/hello")) })
	b.Run("c", func(b *testing.B) {
		bin, err := os.ReadFile("../samples/c-hello/main.wasm")
		if err != nil {
			b.Fatal(err)
		}
		benchmarkSnapshotStart(b, bin)
	})
}

func benchmarkSnapshotStart(b *testing.B, bin []byte) {
	ctx := context.Background()
	log := (&testLog{}).logger()
	eng, err := NewEngine(ctx, EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(ctx)
	load := func(noSnap bool) *App {
		app, err := eng.Load(ctx, AppConfig{Name: "hello", Wasm: bin, Logger: log, NoSnapshot: noSnap})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = app.Close(ctx) })
		return app
	}
	snapApp, freshApp := load(false), load(true)
	if snap, err := snapApp.snapshot(ctx); err != nil || snap == nil {
		b.Fatalf("no snapshot (%v)", err)
	}
	const k = 64
	// The starts run on this goroutine, on one thread: its CPU time is what
	// they cost, whatever else the machine runs.
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	measure := func(app *App) (time.Duration, time.Duration, int64, int64, int64) {
		ins := make([]*Instance, 0, k)
		var before, after goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		start, cpu0 := time.Now(), threadCPU(b)
		for range k {
			in, err := app.newInstance(ctx, 0)
			if err != nil {
				b.Fatal(err)
			}
			ins = append(ins, in)
		}
		took, cpu := time.Since(start), threadCPU(b)-cpu0
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		ranges := make([][2]uintptr, 0, k)
		for _, in := range ins {
			mem, _ := in.mod.Memory().Read(0, in.mod.Memory().Size())
			ranges = append(ranges, [2]uintptr{uintptr(unsafe.Pointer(unsafe.SliceData(mem))), uintptr(len(mem))})
		}
		priv := privateIn(b, ranges)
		// The same instances after ten requests each.
		for _, in := range ins {
			for range 10 {
				if _, err := in.serveSync(newFakeExchange("GET", "/", "", nil), 10*time.Second); err != nil {
					b.Fatal(err)
				}
			}
		}
		served := privateIn(b, ranges)
		for _, in := range ins {
			in.close(ctx)
		}
		return took / k, cpu / k, priv / k, served / k, max(int64(after.HeapAlloc)-int64(before.HeapAlloc), 0) / k
	}
	var snapT, freshT, snapC, freshC time.Duration
	var snapM, freshM, snapS, freshS, snapH, freshH int64
	for b.Loop() {
		t, c, m, sv, h := measure(snapApp)
		snapT, snapC, snapM, snapS, snapH = snapT+t, snapC+c, snapM+m, snapS+sv, snapH+h
		t, c, m, sv, h = measure(freshApp)
		freshT, freshC, freshM, freshS, freshH = freshT+t, freshC+c, freshM+m, freshS+sv, freshH+h
	}
	n := float64(b.N)
	b.ReportMetric(float64(snapT.Nanoseconds())/n/1e3, "snapshot-µs/instance")
	b.ReportMetric(float64(freshT.Nanoseconds())/n/1e3, "fresh-µs/instance")
	b.ReportMetric(float64(freshT)/float64(snapT), "fresh/snapshot-time")
	b.ReportMetric(float64(snapC.Nanoseconds())/n/1e3, "snapshot-cpu-µs/instance")
	b.ReportMetric(float64(freshC.Nanoseconds())/n/1e3, "fresh-cpu-µs/instance")
	b.ReportMetric(float64(snapM)/n/(1<<10), "snapshot-private-KiB/instance")
	b.ReportMetric(float64(freshM)/n/(1<<10), "fresh-private-KiB/instance")
	b.ReportMetric(float64(snapS)/n/(1<<10), "snapshot-private-served-KiB/instance")
	b.ReportMetric(float64(freshS)/n/(1<<10), "fresh-private-served-KiB/instance")
	b.ReportMetric(float64(snapH)/n/(1<<10), "snapshot-heap-KiB/instance")
	b.ReportMetric(float64(freshH)/n/(1<<10), "fresh-heap-KiB/instance")
}

// watGuest assembles a sync guest whose _initialize runs init and whose
// handler returns global $n * 1000 + the i32 at 16 after bumping both.
func watGuest(t *testing.T, imports, init string) []byte {
	t.Helper()
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not installed (apt-get install wabt)")
	}
	src := `(module
  ` + imports + `
  (memory (export "memory") 1)
  (global $n (mut i32) (i32.const 0))
  (data (i32.const 16) "\01")
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))
  (func (export "_initialize") ` + init + `)
  (func (export "wasmsrv_handle") (param $ctx i32) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (i32.add (i32.mul (global.get $n) (i32.const 1000)) (i32.load (i32.const 16)))))`
	dir := t.TempDir()
	in, out := filepath.Join(dir, "g.wat"), filepath.Join(dir, "g.wasm")
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(wat2wasm, in, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestSnapshotOnlyWhenSafe: an app whose start keeps state the snapshot would
// not capture, or would make every instance share, starts each instance
// afresh (and says why in the log); one whose start leaves only memory and
// globals starts the others from the snapshot, with that memory and those
// globals.
func TestSnapshotOnlyWhenSafe(t *testing.T) {
	ctx := context.Background()
	touched := 0
	plugin := HostModule{Name: "testplugin", Funcs: []HostFunc{{Name: "touch", Fn: func(context.Context, api.Module, []uint64) { touched++ }}}}
	const wasi = `(import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))`
	for _, tc := range []struct {
		name, imports, init string
		plugins             []HostModule
		why                 string // "" = snapshot
	}{
		{name: "memory and globals", imports: wasi, init: `(global.set $n (i32.const 5)) (i32.store (i32.const 16) (i32.const 7))`},
		{name: "calls the host", imports: `(import "testplugin" "touch" (func $touch))`, init: `(call $touch)`,
			plugins: []HostModule{plugin}, why: "calls the host (testplugin.touch)"},
		{name: "reads randomness", imports: wasi, init: `(drop (call $random (i32.const 64) (i32.const 8)))`,
			why: "read 8 random bytes"},
		{name: "reads the clock", imports: wasi, init: `(drop (call $clock (i32.const 0) (i64.const 1) (i32.const 64)))`,
			why: "bytes of memory different"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &testLog{}
			app, err := engine(t).Load(ctx, AppConfig{Name: "w", Wasm: watGuest(t, tc.imports, tc.init), HostModules: tc.plugins, Logger: log.logger()})
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close(ctx)
			if _, err := app.snapshot(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.why == "" && app.snap == nil || tc.why != "" && (app.snap != nil || !strings.Contains(log.String(), tc.why)) {
				t.Fatalf("snapshot %v; want reason %q; log:\n%s", app.snap != nil, tc.why, log.String())
			}
			for range 3 {
				in, err := app.newInstance(ctx, 0)
				if err != nil {
					t.Fatal(err)
				}
				code, err := in.serveSync(newFakeExchange("GET", "/", "", nil), 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				want := int32(1002)
				if tc.name == "memory and globals" {
					want = 6008
				}
				if code != want {
					t.Errorf("first request of an instance returned %d, want %d", code, want)
				}
				in.close(ctx)
			}
		})
	}
	if touched != 2+3 { // two instances made for the snapshot, then three fresh ones
		t.Errorf("the plugin was called %d times, want 5", touched)
	}
}
