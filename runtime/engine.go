// Package runtime runs wasmsrv guests on wazero: it compiles and validates modules
// (with an on-disk compilation cache), creates pre-warmed instances, and schedules
// requests onto them through pools with deadlines, memory limits, recycling and
// crash recovery.
package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmsrv/wasmsrv/internal/progress"
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
}

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
	e := &Engine{log: log, alloc: newMemoryAllocator(), progress: cfg.Progress}
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

// newRuntime makes the wazero Runtime of one app.
func (e *Engine) newRuntime(ctx context.Context, memoryLimit int64) wazero.Runtime {
	pages := uint32(65536)
	if memoryLimit > 0 {
		p := (memoryLimit + 65535) / 65536
		if p < int64(pages) {
			pages = uint32(p)
		}
	}
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
	cm, err := rt.CompileModule(ctx, bin)
	if task.End() {
		e.log.Info("compiled module", "app", name, "took", time.Since(start).Round(time.Millisecond), "cache", e.cacheDir)
	}
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	return cm, nil
}
