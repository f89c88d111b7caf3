// Package runtime runs wasmsrv guests on wazero: it compiles and validates modules
// (with an on-disk compilation cache), creates pre-warmed instances, and schedules
// requests onto them through pools with deadlines, memory limits, recycling and
// crash recovery.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/runtime/internal/interrupt"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	// CacheDir holds compiled machine code between runs. Empty means the default
	// under the user cache dir; "-" disables the on-disk cache.
	CacheDir string
	// Progress shows a slow compile as a live line on a terminal; nil logs it.
	Progress *progress.Meter
}

// Engine compiles guest modules. One Engine is shared by every app of a server; each
// app still gets its own wazero Runtime (tenant isolation), while compiled code is
// shared through the compilation cache.
type Engine struct {
	alloc    experimental.MemoryAllocator // guest linear memories (nil: wazero's)
	cache    wazero.CompilationCache
	cacheDir string
	log      *slog.Logger
	progress *progress.Meter

	mu          sync.Mutex
	interrupted bool
	apps        map[interruptible]struct{} // loaded and not closed
}

// interruptible is an app whose guests Engine.Interrupt stops.
type interruptible interface{ interruptAll() }

// NewEngine creates an Engine.
func NewEngine(ctx context.Context, cfg EngineConfig, log *slog.Logger) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	dir := cfg.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "wasmsrv", "wazero")
	}
	e := &Engine{log: log, alloc: newMemoryAllocator(), progress: cfg.Progress, apps: map[interruptible]struct{}{}}
	if dir == "-" {
		e.cache = wazero.NewCompilationCache()
		return e, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("compilation cache dir %q: %w", dir, err)
	}
	c, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, fmt.Errorf("compilation cache dir %q: %w", dir, err)
	}
	e.cache, e.cacheDir = c, dir
	return e, nil
}

// Close releases the compilation cache.
func (e *Engine) Close(ctx context.Context) error { return e.cache.Close(ctx) }

// Interrupt stops every guest of every app loaded by this engine, for good:
// each running call ends as at its deadline (a request gets 504 or a cut
// response, an instance start or a stop hook fails, an async instance is
// discarded with its connections), and no instance or command run can start
// afterwards. A server calls it once its shutdown grace period is over, so that
// no guest, whatever it is doing, can keep the process from exiting.
func (e *Engine) Interrupt() {
	e.mu.Lock()
	e.interrupted = true
	apps := make([]interruptible, 0, len(e.apps))
	for a := range e.apps {
		apps = append(apps, a)
	}
	e.mu.Unlock()
	for _, a := range apps {
		a.interruptAll()
	}
}

// track registers a loaded app for Interrupt; it reports false (and registers
// nothing) once Interrupt was called.
func (e *Engine) track(a interruptible) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.interrupted {
		return false
	}
	e.apps[a] = struct{}{}
	return true
}

func (e *Engine) untrack(a interruptible) {
	e.mu.Lock()
	delete(e.apps, a)
	e.mu.Unlock()
}

// prepare rewrites a module for the runtime (package interrupt): checks the
// guest can be stopped at, its start function moved to an export, its tables
// capped and everything an instance costs counted against memoryLimit.
func prepare(bin []byte, memoryLimit int64, snapshot bool) (*interrupt.Module, error) {
	m, err := interrupt.Instrument(bin, interrupt.Options{MemoryLimit: memoryLimit, Snapshot: snapshot})
	if errors.Is(err, interrupt.ErrOverLimit) {
		return nil, err // a guest, just too big: say so, not "not a guest"
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotGuest, err)
	}
	return m, nil
}

// newRuntime makes the wazero Runtime of one app, its instances' linear
// memories capped at pages (what prepare left of the memory limit).
func (e *Engine) newRuntime(ctx context.Context, pages uint32) wazero.Runtime {
	pages = min(pages, 65536)
	cfg := wazero.NewRuntimeConfig().
		WithCompilationCache(e.cache).
		WithMemoryLimitPages(pages).
		// Not wazero's own interruption: it exits to Go on every loop back-edge
		// (wazero #2466), and Go guests branch through a loop almost everywhere,
		// which made a hello request 3× slower. Modules are instrumented with a
		// cheap check instead (package interrupt; Instance.expire sets the flag).
		WithCloseOnContextDone(false)
	return wazero.NewRuntimeWithConfig(ctx, cfg)
}

// compile compiles bin in rt. A cache miss on a Go guest takes most of a second, so
// a slow compile is announced while it runs and its duration logged after.
func (e *Engine) compile(ctx context.Context, rt wazero.Runtime, name string, bin []byte) (wazero.CompiledModule, error) {
	start := time.Now()
	task := e.progress.Start(e.log, 150*time.Millisecond, "compiling module (first start; cached afterwards)", "app", name, "bytes", len(bin))
	// wazero's compiler checks ctx only in its parallel mode (between
	// functions); a big module takes tens of seconds, and a stop while starting
	// must not wait for it. Two workers at least, so that mode is always on.
	// (Compiling beside a select and abandoning it is no good: the runtime and
	// the cache are closed under the compile, which then panics.)
	cctx := experimental.WithCompilationWorkers(ctx, max(2, goruntime.GOMAXPROCS(0)))
	cm, err := rt.CompileModule(cctx, bin)
	if task.End() {
		e.log.Info("compiled module", "app", name, "took", time.Since(start).Round(time.Millisecond), "cache", e.cacheDir)
	}
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	return cm, nil
}
