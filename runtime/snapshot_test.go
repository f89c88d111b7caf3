package runtime

import (
	"context"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"
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
	if app.snap == nil {
		t.Fatalf("no snapshot; log:\n%s", log.String())
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

// privateBytes is the process's Private_Dirty + Private_Clean in bytes
// (/proc/self/smaps_rollup): memory no other mapping shares.
func privateBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		b.Skipf("no smaps_rollup: %v", err)
	}
	var total int64
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) == 3 && (f[0] == "Private_Dirty:" || f[0] == "Private_Clean:") {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			total += kb << 10
		}
	}
	return total
}

// BenchmarkSnapshotStart compares the start of a Go hello instance
// (samples/hello) from the app's snapshot with a fresh start (instantiate,
// _initialize, start hook), in the same iterations: time per instance, and
// private memory per live idle instance (64 of them), Private_Dirty +
// Private_Clean of the process.
//
//	go test -run '^$' -bench SnapshotStart -count 5 ./runtime/
func BenchmarkSnapshotStart(b *testing.B) {
	ctx := context.Background()
	bin := buildGuest(b, "../samples/hello")
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
	if snapApp.snap == nil {
		b.Fatal("no snapshot")
	}
	const k = 64
	measure := func(app *App) (time.Duration, int64) {
		ins := make([]*Instance, 0, k)
		goruntime.GC()
		priv0 := privateBytes(b)
		start := time.Now()
		for range k {
			in, err := app.newInstance(ctx, 0)
			if err != nil {
				b.Fatal(err)
			}
			ins = append(ins, in)
		}
		took := time.Since(start)
		goruntime.GC()
		priv := privateBytes(b) - priv0
		for _, in := range ins {
			in.close(ctx)
		}
		return took / k, priv / k
	}
	var snapT, freshT time.Duration
	var snapM, freshM int64
	for b.Loop() {
		t, m := measure(snapApp)
		snapT, snapM = snapT+t, snapM+m
		t, m = measure(freshApp)
		freshT, freshM = freshT+t, freshM+m
	}
	n := float64(b.N)
	b.ReportMetric(float64(snapT.Microseconds())/n, "snapshot-µs/instance")
	b.ReportMetric(float64(freshT.Microseconds())/n, "fresh-µs/instance")
	b.ReportMetric(float64(freshT)/float64(snapT), "fresh/snapshot-time")
	b.ReportMetric(float64(snapM)/n/(1<<10), "snapshot-private-KiB/instance")
	b.ReportMetric(float64(freshM)/n/(1<<10), "fresh-private-KiB/instance")
}

func BenchmarkZZSnap(b *testing.B) {
	ctx := context.Background()
	bin := buildGuest(b, "../samples/hello")
	app, err := engine(b).Load(ctx, AppConfig{Name: "hello", Wasm: bin})
	if err != nil {
		b.Fatal(err)
	}
	defer app.Close(ctx)
	for b.Loop() {
		in, err := app.newInstance(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		in.close(ctx)
	}
}
