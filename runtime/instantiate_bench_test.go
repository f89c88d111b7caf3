package runtime

import (
	"context"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// BenchmarkInstantiateCvsGo measures what one pre-warmed sync instance costs for the
// same hello app as a C guest (samples/c-hello, wasmsrv.h) and as a Go guest
// (samples/hello): time to instantiate and initialise it, and memory held per live
// instance: its linear memory size (what it may touch), the growth of the
// process's resident set (the pages it did touch; linear memory may live outside the
// Go heap) and of the Go heap (the host's structures). Both guests are measured in the same
// iterations and reported with their ratio, since absolute numbers drift on shared
// machines.
//
//	go test -run '^$' -bench InstantiateCvsGo ./runtime/
func BenchmarkInstantiateCvsGo(b *testing.B) {
	ctx := context.Background()
	cBin, err := os.ReadFile("../samples/c-hello/main.wasm")
	if err != nil {
		b.Fatal(err)
	}
	goBin := buildGuest(b, "../samples/hello")
	log := (&testLog{}).logger()
	eng, err := NewEngine(ctx, EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(ctx)
	load := func(name string, bin []byte) *App {
		app, err := eng.Load(ctx, AppConfig{Name: name, Wasm: bin, Logger: log})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = app.Close(ctx) })
		return app
	}
	cApp, goApp := load("c-hello", cBin), load("go-hello", goBin)

	// measure pre-warms k instances in one pool and returns time, resident and heap
	// bytes per instance.
	measure := func(app *App, k int) (took, cpu time.Duration, rss, heap, linear int64) {
		var before, after goruntime.MemStats
		goruntime.GC()
		goruntime.ReadMemStats(&before)
		rss0 := residentBytes(b)
		cpu0 := testkit.CPUTime(b)
		start := time.Now()
		pool, err := NewSyncPool(ctx, app, PoolConfig{Workers: k})
		took = time.Since(start)
		cpu = testkit.CPUTime(b) - cpu0
		if err != nil {
			b.Fatal(err)
		}
		goruntime.GC()
		goruntime.ReadMemStats(&after)
		rss = residentBytes(b) - rss0
		in := <-pool.idle
		linear = int64(in.mod.Memory().Size())
		pool.idle <- in
		if err := pool.Close(ctx); err != nil {
			b.Fatal(err)
		}
		heap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		return took / time.Duration(k), cpu / time.Duration(k), max(rss, 0) / int64(k), max(heap, 0) / int64(k), linear
	}
	var cTime, goTime, cCPU, goCPU time.Duration
	var cRSS, goRSS, cHeap, goHeap, cLinear, goLinear int64
	for b.Loop() {
		t, c, r, h, l := measure(cApp, 64)
		cTime, cCPU, cRSS, cHeap, cLinear = cTime+t, cCPU+c, cRSS+r, cHeap+h, l
		t, c, r, h, l = measure(goApp, 8)
		goTime, goCPU, goRSS, goHeap, goLinear = goTime+t, goCPU+c, goRSS+r, goHeap+h, l
	}
	n := float64(b.N)
	b.ReportMetric(float64(cTime.Nanoseconds())/n/1e3, "c-µs/instance")
	b.ReportMetric(float64(goTime.Nanoseconds())/n/1e3, "go-µs/instance")
	// CPU time (process user+system) is steadier than wall time on a busy machine.
	b.ReportMetric(float64(cCPU.Nanoseconds())/n/1e3, "c-cpu-µs/instance")
	b.ReportMetric(float64(goCPU.Nanoseconds())/n/1e3, "go-cpu-µs/instance")
	b.ReportMetric(float64(cRSS)/n/1024, "c-rss-KiB/instance")
	b.ReportMetric(float64(goRSS)/n/1024, "go-rss-KiB/instance")
	b.ReportMetric(float64(cLinear)/1024, "c-linear-KiB/instance")
	b.ReportMetric(float64(goLinear)/1024, "go-linear-KiB/instance")
	b.ReportMetric(float64(cHeap)/n/1024, "c-heap-KiB/instance")
	b.ReportMetric(float64(goHeap)/n/1024, "go-heap-KiB/instance")
	b.ReportMetric(float64(goTime)/float64(cTime), "go/c-time")
	if cRSS > 0 {
		b.ReportMetric(float64(goRSS)/float64(cRSS), "go/c-rss")
	}
}

// residentBytes is the process's resident set size (Linux /proc/self/statm).
func residentBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skipf("no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		b.Fatalf("statm: %q", data)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// BenchmarkNewInstance is the life of one sync instance of the hello app as a C
// guest (samples/c-hello) and as a Go guest (samples/hello): instantiate,
// _initialize, close, with its allocations. The per-instance costs the host adds
// (log writers, timer, context) show up here next to wazero's own.
func BenchmarkNewInstance(b *testing.B) {
	ctx := context.Background()
	cBin, err := os.ReadFile("../samples/c-hello/main.wasm")
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range []struct {
		name string
		bin  func() []byte
	}{
		{"c", func() []byte { return cBin }},
		{"go", func() []byte { return buildGuest(b, "../samples/hello") }},
	} {
		b.Run(g.name, func(b *testing.B) {
			log := (&testLog{}).logger()
			app, err := engine(b).Load(ctx, AppConfig{Name: g.name + "-hello", Wasm: g.bin(), Logger: log})
			if err != nil {
				b.Fatal(err)
			}
			defer app.Close(ctx)
			b.ReportAllocs()
			cpu0 := testkit.CPUTime(b)
			for b.Loop() {
				in, err := app.newInstance(ctx, 0)
				if err != nil {
					b.Fatal(err)
				}
				in.close(ctx)
			}
			testkit.ReportCPU(b, cpu0)
		})
	}
}
