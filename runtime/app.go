package runtime

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/internal/guestlog"
	"github.com/wasmsrv/wasmsrv/runtime/internal/interrupt"
	"github.com/wasmsrv/wasmsrv/runtime/internal/wasmdata"
)

// AppConfig describes one app: its module and the sandbox it runs in.
type AppConfig struct {
	// Name identifies the app in logs and errors.
	Name string
	// Wasm is the module binary.
	Wasm []byte
	// MemoryLimit caps what each instance may take in bytes: its linear memory,
	// its tables and the host structures of its globals, segments and imports
	// (package interrupt's accounting; linear memory gets what is left, rounded
	// down to 64 KiB pages). 0 means the default, 128 MiB.
	MemoryLimit int64
	// Env is the guest's environment, "KEY=value" entries. Nothing is inherited.
	Env []string
	// Mounts are host directories visible to the guest. None by default.
	Mounts []Mount
	// StartTimeout bounds the start of an instance: the module's start
	// function, _initialize and the start hook together. 0 means 30 s.
	StartTimeout time.Duration
	// HostModules are plugin import modules granted to the app (the core `wasmsrv`
	// module and WASI are always present).
	HostModules []HostModule
	// Plugins names every plugin this build has, granted or not, so that a guest
	// importing one it lacks is told so rather than "not granted". Nil: unknown.
	Plugins []string
	// Logger receives the app's logs; nil means the engine's.
	Logger *slog.Logger
	// NoSnapshot starts every instance afresh: module start function,
	// _initialize and start hook. By default the instances after the first start
	// from a snapshot of one that has run them, when the module allows it
	// (docs/rationale.md, "Instances start from a snapshot").
	NoSnapshot bool
	// Output holds the guest's stdout and stderr lines to the app's log budget;
	// share it with the app's log plugin so both count against one budget. nil
	// means a budget of the app's own with the defaults, around Logger.
	Output *guestlog.Sink
	// CPU is the tenant's side of the fair-share gate every guest call of the
	// app passes (package cpushare): its slots, share and CPU budget. nil: no
	// gate (guest time is still accounted per app, GuestTime).
	CPU *cpushare.Tenant
}

// Mount makes a host directory visible inside the guest.
type Mount struct {
	HostDir, GuestDir string
	ReadOnly          bool
}

// DefaultMemoryLimit is the per-instance memory cap when none is configured.
const DefaultMemoryLimit = 128 << 20

// App is a loaded, validated module with its own wazero Runtime, ready to instantiate.
type App struct {
	name   string
	info   *ModuleInfo
	rt     wazero.Runtime
	cm     wazero.CompiledModule
	modCfg wazero.ModuleConfig
	log    *slog.Logger
	out    *guestlog.Sink // guest output's budget
	cfg    AppConfig
	mounts mounts
	nextID atomic.Uint64
	// allocCtx carries the engine's memory allocator to wazero's instantiation;
	// an instance's callCtx falls back to it, so instantiating adds no context.
	allocCtx context.Context
	// wasmStart: the module had a start function, exported by the rewrite as
	// interrupt.StartExport; newInstance calls it first, under StartTimeout.
	wasmStart bool
	engine    *Engine
	// dataInit: the module's data segments are copied by
	// interrupt.DataInitExport, called first in a fresh instance; globals are
	// the export names of its mutable globals (both for snapshots).
	dataInit bool
	globals  []string
	// snap, when set, is what new instances start from (App.snapshot): it is
	// made by the first newInstance, under snapMu, and read without it once
	// snapDecided is set. calls notes the host calls of its instances.
	snap        *snapshot
	snapMu      sync.Mutex
	snapDecided atomic.Bool
	calls       *hostCallLog
	// guestNS is the time the app's instances spent running guest calls
	// (requests and events; not starts or stop hooks), in nanoseconds.
	guestNS atomic.Int64

	// live holds every instance from its creation to its close, so that
	// Engine.Interrupt reaches them all, wherever they are (serving, idle,
	// starting, running a stop hook); stopped refuses new ones after it.
	mu      sync.Mutex
	live    map[*Instance]struct{}
	stopped bool
}

// Load compiles and validates a guest. The error names what is wrong with a module
// that is not a wasmsrv guest (errors.Is(err, ErrNotGuest)).
func (e *Engine) Load(ctx context.Context, cfg AppConfig) (*App, error) {
	if cfg.Name == "" {
		cfg.Name = "app"
	}
	if cfg.MemoryLimit == 0 {
		cfg.MemoryLimit = DefaultMemoryLimit
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = e.log
	}
	log = log.With("app", cfg.Name)
	// Fewer data segments first (a Go guest: 31,000 -> 2), then the interrupt
	// checks and the memory accounting; both rewrites are invisible to the guest.
	mod, err := prepare(wasmdata.Merge(cfg.Wasm), cfg.MemoryLimit, !cfg.NoSnapshot && snapshotsSupported && e.alloc != nil)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", cfg.Name, err)
	}
	rt := e.newRuntime(ctx, mod.MemoryPages)
	a := &App{name: cfg.Name, rt: rt, log: log, out: guestOutput(cfg.Output, log), cfg: cfg, wasmStart: mod.Start, engine: e,
		dataInit: mod.DataInit, globals: mod.Globals,
		allocCtx: experimental.WithMemoryAllocator(context.Background(), e.alloc),
		live:     map[*Instance]struct{}{}}
	// A snapshot is made with host modules that note their calls, replaced by
	// the plain ones once it is taken.
	why := a.snapshotPossible(mod.NoSnapshot)
	if why == "" {
		a.calls = &hostCallLog{}
	} else {
		a.snapDecided.Store(true)
		if !cfg.NoSnapshot {
			log.Debug("instances start afresh", "reason", why)
		}
	}
	if err := a.load(ctx, e, mod.Wasm, a.calls); err != nil {
		_ = rt.Close(ctx)
		return nil, fmt.Errorf("app %s: %w", cfg.Name, err)
	}
	if !e.track(a) {
		_ = errors.Join(rt.Close(ctx), a.mounts.close())
		return nil, fmt.Errorf("app %s: %w", cfg.Name, ErrPoolClosed)
	}
	return a, nil
}

// snapshotPossible says why the app's instances cannot start from a snapshot,
// or "".
func (a *App) snapshotPossible(noSnapshot string) string {
	switch {
	case a.cfg.NoSnapshot:
		return "off in the app's settings"
	case noSnapshot != "":
		return noSnapshot
	case !a.dataInit:
		return "snapshots need Linux"
	case len(a.cfg.Mounts) > 0:
		return "the app has mounts: files opened at start would not be open in the copies"
	}
	return ""
}

// snapshot returns the snapshot new instances start from, or nil. The first
// call makes it (makeSnapshot), or decides there is none; a start that failed
// while making it is the caller's error, and the next call tries again.
func (a *App) snapshot(ctx context.Context) (*snapshot, error) {
	if a.snapDecided.Load() {
		return a.snap, nil
	}
	a.snapMu.Lock()
	defer a.snapMu.Unlock()
	if a.snapDecided.Load() {
		return a.snap, nil
	}
	s, why, err := a.makeSnapshot(ctx, a.calls)
	if err != nil {
		return nil, err
	}
	if s != nil {
		a.log.Debug("instances start from a snapshot", "bytes", s.mem.size, "reseeded", s.reseeded)
	} else {
		a.log.Debug("instances start afresh", "reason", why)
	}
	a.snap = s
	a.snapDecided.Store(true)
	// The imaging instances are closed: the plain host modules replace the
	// ones that noted calls.
	for _, hm := range a.hostModules() {
		if m := a.rt.Module(hm.Name); m != nil {
			if err := m.Close(ctx); err != nil {
				return nil, fmt.Errorf("host module %s: %w", hm.Name, err)
			}
		}
		if err := instantiateHostModule(ctx, a.rt, hm); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// hostModules are the modules an instance imports from: the ABI's and the
// plugins', whose calls give the CPU gate's slot back while they run (a
// plugin's call may block on I/O). The snapshot's imaging instances get them
// wrapped once more (wrapHostModules); serving instances get these.
func (a *App) hostModules() []HostModule {
	hms := append([]HostModule{coreModule()}, a.cfg.HostModules...)
	if a.cfg.CPU != nil {
		for i, hm := range hms {
			if hm.Name != abi.ImportModule && hm.Name != HTTPWasmModule {
				hms[i] = offSlotModule(hm)
			}
		}
	}
	return hms
}

func (a *App) load(ctx context.Context, e *Engine, bin []byte, calls *hostCallLog) error {
	cm, err := e.compile(ctx, a.rt, a.name, bin)
	if err != nil {
		return err
	}
	a.cfg.Wasm = nil // compiled: the binary is megabytes the app no longer needs
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, a.rt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	hms := a.hostModules()
	if calls != nil {
		hms = wrapHostModules(hms, calls)
	}
	for _, hm := range hms {
		if err := instantiateHostModule(ctx, a.rt, hm); err != nil {
			return err
		}
	}
	// Every import is checked against the host modules just instantiated.
	info, err := Validate(cm, a.rt, a.cfg.Plugins)
	if err != nil {
		return err
	}
	a.cm, a.info = cm, info
	mc := wazero.NewModuleConfig().
		WithName(""). // anonymous: other modules cannot import from an instance
		WithSysWalltime().WithSysNanotime().
		WithRandSource(rand.Reader)
	// _initialize is called by newInstance, not as a start function, so that the
	// interrupt flag is reachable (and the start deadline enforceable) while it runs.
	mc = mc.WithStartFunctions()
	for _, kv := range a.cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		mc = mc.WithEnv(k, v)
	}
	a.modCfg, a.mounts, err = withMounts(mc, a.cfg.Mounts)
	return err
}

// offSlotModule returns hm with every function run off the caller's CPU slot
// when called from a sync instance's request: a plugin call that waits on the
// network (http, sockets, a remote kv) holds no slot and is not charged. Async
// instances' plugin calls never block (they park the connection), so they keep
// their slot.
func offSlotModule(hm HostModule) HostModule {
	funcs := make([]HostFunc, len(hm.Funcs))
	for i, f := range hm.Funcs {
		fn := f.Fn
		f.Fn = func(ctx context.Context, mod api.Module, stack []uint64) {
			in := InstanceFrom(ctx)
			if in == nil || !in.slot || in.async != nil {
				fn(ctx, mod, stack)
				return
			}
			in.offSlot(func() { fn(ctx, mod, stack) })
		}
		funcs[i] = f
	}
	hm.Funcs = funcs
	return hm
}

func instantiateHostModule(ctx context.Context, rt wazero.Runtime, hm HostModule) error {
	b := rt.NewHostModuleBuilder(hm.Name)
	for _, f := range hm.Funcs {
		b.NewFunctionBuilder().WithGoModuleFunction(f.Fn, f.Params, f.Results).Export(f.Name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("host module %s: %w", hm.Name, err)
	}
	return nil
}

// Name returns the app's name.
func (a *App) Name() string { return a.name }

// GuestTime is the time the app's instances spent running guest code for
// requests and events since it was loaded (wall time inside the calls, minus
// the guest's sleeps).
func (a *App) GuestTime() time.Duration { return time.Duration(a.guestNS.Load()) }

// Info returns what validation learned about the module.
func (a *App) Info() *ModuleInfo { return a.info }

// Logger returns the app's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Close releases the app's runtime and every instance still open.
func (a *App) Close(ctx context.Context) error {
	a.engine.untrack(a)
	err := errors.Join(a.rt.Close(ctx), a.mounts.close())
	a.snapMu.Lock()
	if a.snap != nil {
		a.snap.mem.close()
	}
	a.snapMu.Unlock()
	return err
}

// interruptAll stops every instance of the app as its deadline would, and
// refuses new ones (Engine.Interrupt).
func (a *App) interruptAll() {
	a.mu.Lock()
	a.stopped = true
	live := make([]*Instance, 0, len(a.live))
	for in := range a.live {
		live = append(live, in)
	}
	a.mu.Unlock()
	for _, in := range live {
		in.expire()
	}
}

// newInstance instantiates the module and makes it ready to serve: from the
// app's snapshot when it has one (about a tenth of a millisecond for a Go
// guest), else by running _initialize and the start hook (milliseconds). Pools
// call it in the background only.
func (a *App) newInstance(ctx context.Context, maxServed int) (*Instance, error) {
	snap, err := a.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	id := a.nextID.Add(1)
	if snap != nil {
		return a.startFrom(ctx, id, maxServed, snap)
	}
	return a.startFresh(ctx, id, maxServed, nil)
}

// instantiate creates the instance's module: its memory from snap's image when
// snap is set; random bytes from randSrc when set.
func (a *App) instantiate(ctx context.Context, id uint64, maxServed int, snap *snapshot, randSrc io.Reader) (*Instance, error) {
	in := &Instance{
		app:       a,
		id:        id,
		stack:     make([]uint64, 4),
		done:      make(chan struct{}),
		stdout:    newLogWriter(a.out, "stdout", slog.LevelInfo, "instance", id),
		stderr:    newLogWriter(a.out, "stderr", slog.LevelWarn, "instance", id),
		maxServed: maxServed,
		snap:      snap,
	}
	in.cctx.in = in
	in.ctx = &in.cctx
	in.timer = time.AfterFunc(math.MaxInt64, in.expire)
	in.timer.Stop()
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return nil, ErrPoolClosed
	}
	a.live[in] = struct{}{}
	a.mu.Unlock()

	cfg := a.modCfg.WithStdout(in.stdout).WithStderr(in.stderr).WithNanosleep(in.sleep)
	if randSrc != nil {
		cfg = cfg.WithRandSource(randSrc)
	}
	// No guest code runs in here: the start section became an export.
	mod, err := a.rt.InstantiateModule(in.ctx, a.cm, cfg)
	if err != nil {
		if mod != nil {
			_ = mod.Close(ctx)
		}
		a.forget(in)
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	in.mod = mod
	if snap != nil {
		// Before the interrupt flag is looked at: the snapshot's globals do
		// not include it, but nothing of the guest's may run first.
		if err := snap.restore(in); err != nil {
			in.close(ctx)
			return nil, err
		}
	}
	in.mu.Lock()
	in.interrupt, _ = mod.ExportedGlobal(interrupt.ExportName).(api.MutableGlobal)
	if in.expired.Load() && in.interrupt != nil {
		in.interrupt.Set(1) // interrupted while instantiating
	}
	in.mu.Unlock()
	switch a.info.Mode {
	case ModeSync:
		in.handle = mod.ExportedFunction(abi.ExportHandle)
	case ModeAsync:
		in.handle = mod.ExportedFunction(abi.ExportOnEvent)
	case ModeHTTPWasm:
		in.handle = mod.ExportedFunction(HTTPWasmHandleRequest)
		if a.info.HasHandleResponse {
			in.handleResponse = mod.ExportedFunction(HTTPWasmHandleResponse)
		}
	}
	return in, nil
}

// startFrom makes an instance from the snapshot: no guest code runs.
func (a *App) startFrom(ctx context.Context, id uint64, maxServed int, snap *snapshot) (*Instance, error) {
	in, err := a.instantiate(ctx, id, maxServed, snap, nil)
	if err != nil {
		return nil, err
	}
	if in.expired.Load() {
		in.close(ctx)
		if a.isStopped() {
			return nil, ErrPoolClosed
		}
		return nil, fmt.Errorf("instance start: %w", ErrDeadline)
	}
	return in, nil
}

// startFresh instantiates the module, runs its start function, _initialize
// and the start hook.
func (a *App) startFresh(ctx context.Context, id uint64, maxServed int, randSrc io.Reader) (*Instance, error) {
	in, err := a.instantiate(ctx, id, maxServed, nil, randSrc)
	if err != nil {
		return nil, err
	}
	mod := in.mod
	// The start function, _initialize and the start hook share one deadline.
	deadline := time.Now().Add(a.cfg.StartTimeout)
	fail := func(what string, err error) (*Instance, error) {
		in.close(ctx)
		switch {
		case a.isStopped():
			return nil, ErrPoolClosed
		case errors.Is(err, ErrDeadline):
			return nil, fmt.Errorf("%s did not finish within the start timeout (%s)", what, a.cfg.StartTimeout)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if a.dataInit {
		if err := in.call(mod.ExportedFunction(interrupt.DataInitExport), time.Until(deadline)); err != nil {
			return fail("the module's data segments", err)
		}
	}
	if a.wasmStart {
		if err := in.call(mod.ExportedFunction(interrupt.StartExport), time.Until(deadline)); err != nil {
			return fail("the module's start function", err)
		}
	}
	if a.info.HasInit {
		if err := in.call(mod.ExportedFunction(abi.ExportInitialize), time.Until(deadline)); err != nil {
			return fail(abi.ExportInitialize, err)
		}
	}
	if a.info.RunsMain {
		if err := in.call(mod.ExportedFunction(abi.ExportStart), time.Until(deadline)); err != nil {
			var exit *sys.ExitError
			if errors.As(err, &exit) && exit.ExitCode() == 0 {
				err = fmt.Errorf("%w (an http-wasm guest's main must return without exiting: build a TinyGo guest with -buildmode=c-shared, or one whose main returns)", err)
			}
			return fail("_start (the guest's main)", err)
		}
	}
	if a.info.HasStart {
		if err := in.hook(abi.ExportOnStart, time.Until(deadline)); err != nil {
			return fail("start hook", err)
		}
	}
	return in, nil
}

// forget drops a closed instance from the live set.
func (a *App) forget(in *Instance) {
	a.mu.Lock()
	delete(a.live, in)
	a.mu.Unlock()
}

func (a *App) isStopped() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopped
}

// stop runs the stop hook of a healthy instance and closes it.
func (a *App) stop(ctx context.Context, in *Instance, timeout time.Duration) {
	if !in.broken && a.info.HasStop {
		if err := in.hook(abi.ExportOnStop, timeout); err != nil {
			a.log.Warn("stop hook failed", "instance", in.id, "err", err)
		}
	}
	in.close(ctx)
}
