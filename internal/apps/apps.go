// Package apps opens an app from its spec: it builds a Go guest package when given a
// directory, loads and validates the module, starts the pool that fits its kind and
// returns the HTTP handler in front of it. `wasmsrv run` and `wasmsrv serve` both
// open apps through here.
package apps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/internal/guestlog"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/scaffold"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// Spec describes one app.
type Spec struct {
	// Name identifies the app: its plugins' namespaces (kv, pubsub) and its log
	// records (default: DefaultName of Source). It must pass appname.Check.
	Name string
	// Tenant is the customer the app belongs to: apps of one tenant share its CPU
	// share and budget ("" = the app is its own tenant, named by Name).
	Tenant string
	// CPU is the server's fair-share gate (nil: none); CPUShare is the
	// tenant's weight and budget in it (the same for every app of a tenant).
	CPU      *cpushare.Scheduler
	CPUShare cpushare.TenantConfig
	// Source is a .wasm file or a Go guest package directory.
	Source string
	// BuildCacheDir is where built Go guests are cached ("" = default).
	BuildCacheDir string
	// BuildTags are passed to go build for package directories.
	BuildTags []string
	// Mode is the shape the app must have: ModeAuto for what it declares (a Go
	// package by its //wasmsrv:mode directive, else sync; a module by its marker
	// export), sync, async (a Go package is built with the wasmsrv_async tag) or
	// cgi (a WASI command). A Mode the package or module contradicts is an error
	// (*ModeError).
	Mode runtime.Mode
	// Async sets the limits of an async pool (async-mode apps).
	Async runtime.AsyncConfig
	// WebSocket configures WebSocket connections (both modes).
	WebSocket host.WSConfig
	// Pool sizes the pool and sets deadlines and recycling.
	Pool runtime.PoolConfig
	// Traced: requests are traced in front of the app (host.ServerConfig.Tracer);
	// the gateway adds the queue wait and guest call spans.
	Traced bool
	// MemoryLimit per instance in bytes (0 = runtime default).
	MemoryLimit int64
	// StartTimeout bounds an instance's start (0 = runtime default, 30 s).
	StartTimeout time.Duration
	// NoSnapshot starts every instance afresh (runtime.AppConfig.NoSnapshot).
	NoSnapshot bool
	// BodyLimit per request in bytes (0 = unlimited).
	BodyLimit int64
	// BodyBuffer reads request bodies ahead for sync and CGI apps.
	BodyBuffer bodybuf.Config
	// ResponseBuffer holds sync apps' responses up to this size (bytes).
	ResponseBuffer int
	// Env and Mounts configure the sandbox.
	Env    []string
	Mounts []runtime.Mount
	// HostModules are extra host modules given to the app as they are.
	HostModules []runtime.HostModule
	// Progress shows a build as a live line on a terminal; nil logs it.
	Progress *progress.Meter
	// Plugins are the plugins compiled into this build; Grants are those the app may
	// import, each with its config section (log is always granted). The granted
	// plugins are opened with the app and closed after it.
	Plugins *registry.Registry
	Grants  registry.Grants
	// PluginCalls, if set, gives the counters of each granted plugin's calls
	// (registry.Counted): metrics.
	PluginCalls func(plugin string) *registry.Calls
	// CGIArgv is a CGI app's argv template (host.CGIConfig.Argv).
	CGIArgv string
	// HTTPWasm configures an http-wasm handler module (ignored for other kinds).
	HTTPWasm HTTPWasmSpec
	// LogRate is the app's log budget in bytes per second: what its guest output
	// (stdout, stderr and the log plugin, all instances together) may add to the
	// log, measured as written (0: guestlog.DefaultRate). Beyond it lines are
	// dropped, counted and reported once per window.
	LogRate int64

	output    *guestlog.Sink // made by Open from LogRate
	checkOnly bool           // Check: stop once the module is loaded and its shape checked
}

// Running is an opened app: its handler and what is needed to stop it.
type Running struct {
	Name    string
	Mode    runtime.Mode
	Wasm    string // path of the module actually loaded
	Handler http.Handler
	// Output is the app's guest output budget; Output.Stats() counts what its
	// guests logged and what was dropped.
	Output *guestlog.Sink
	// Middleware is set for an http-wasm app: the guest in front of another
	// handler (a route's target), where Handler has nothing after it.
	Middleware func(next http.Handler) http.Handler
	close      func(ctx context.Context) error
	stats      func() runtime.SyncStats // nil for CGI apps (no instances to report)
	stored     func(ctx context.Context) map[string]int64
	tenant     string // whose CPU share the app's guests run on
}

// StoredBytes reports, by plugin, the bytes the app's plugins hold for it
// (kv's keys and values); empty without such plugins.
func (a *Running) StoredBytes(ctx context.Context) map[string]int64 {
	if a.stored == nil {
		return nil
	}
	return a.stored(ctx)
}

// Close drains the app's pool (stop hooks run) and releases its runtime.
func (a *Running) Close(ctx context.Context) error { return a.close(ctx) }

// Status is what an operator sees of an app's pool (the admin /status).
type Status struct {
	Mode string `json:"mode"`
	// Workers is the pool size; Live the instances running now. Fewer live
	// than workers means instances are being replaced, or cannot start.
	Workers int `json:"workers,omitempty"`
	Live    int `json:"live,omitempty"`
	// Idle and Busy split the live instances: busy ones serve a request (an
	// async one: hold a connection). Waiting counts requests queued for an
	// instance (sync), or open connections (async).
	Idle    int `json:"idle"`
	Busy    int `json:"busy"`
	Waiting int `json:"waiting"`
	// MinWorkers is what a scaling pool keeps however idle (pool_min);
	// ScaledDown counts the instances it gave back for being idle.
	MinWorkers int   `json:"min_workers,omitempty"`
	ScaledDown int64 `json:"scaled_down,omitempty"`
	// Tenant owns the app's CPU share; GuestMS is the time its guests ran
	// (requests and events), in milliseconds.
	Tenant  string `json:"tenant,omitempty"`
	GuestMS int64  `json:"guest_ms"`
	// Served, Discarded (failed: trap, deadline, memory), Recycled.
	Served    int64 `json:"served,omitempty"`
	Discarded int64 `json:"discarded,omitempty"`
	Recycled  int64 `json:"recycled,omitempty"`
	// StartFailures counts instances that failed to start (start function,
	// _initialize or start hook failed or overran the start timeout), the last
	// with its reason and time.
	StartFailures    int64      `json:"start_failures,omitempty"`
	LastStartError   string     `json:"last_start_error,omitempty"`
	LastStartErrorAt *time.Time `json:"last_start_error_at,omitempty"`
}

// PoolStats reports the app's pool counters; false for a CGI app (no
// standing instances).
func (a *Running) PoolStats() (runtime.SyncStats, bool) {
	if a.stats == nil {
		return runtime.SyncStats{}, false
	}
	return a.stats(), true
}

// Status reports the app's pool.
func (a *Running) Status() Status {
	st := Status{Mode: a.Mode.String(), Tenant: a.tenant}
	if a.stats == nil {
		return st
	}
	s := a.stats()
	st.MinWorkers, st.ScaledDown, st.GuestMS = s.MinWorkers, s.ScaledDown, s.GuestTime.Milliseconds()
	st.Workers, st.Live, st.Served, st.Discarded, st.Recycled = s.Workers, s.Live, s.Served, s.Discarded, s.Recycled
	st.Idle, st.Busy, st.Waiting = s.Idle, max(s.Live-s.Idle, 0), s.Waiting
	st.StartFailures, st.LastStartError = s.StartFailures, s.LastStartError
	if !s.LastStartErrorAt.IsZero() {
		at := s.LastStartErrorAt
		st.LastStartErrorAt = &at
	}
	return st
}

// tenantName is the app's tenant: Tenant, or the app itself.
func (spec *Spec) tenantName() string {
	if spec.Tenant != "" {
		return spec.Tenant
	}
	return spec.Name
}

// tenant returns the app's tenant in the CPU gate, nil without a gate.
func (spec *Spec) tenant() (*cpushare.Tenant, error) {
	if spec.CPU == nil {
		return nil, nil
	}
	t, err := spec.CPU.Tenant(spec.tenantName(), spec.CPUShare)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", spec.Name, err)
	}
	return t, nil
}

// Open builds (if needed), loads and starts the app described by spec.
func Open(ctx context.Context, eng *runtime.Engine, spec Spec, log *slog.Logger) (*Running, error) {
	if spec.Name == "" {
		spec.Name = DefaultName(spec.Source)
	}
	if err := appname.Check(spec.Name); err != nil {
		return nil, err
	}
	spec.output = guestlog.New(log.With("app", spec.Name).Handler(), guestlog.Config{Rate: spec.LogRate})
	var (
		a   *Running
		err error
	)
	if spec.Plugins != nil {
		a, err = openWithPlugins(ctx, eng, spec, log)
	} else {
		a, err = open(ctx, eng, spec, log)
	}
	if err != nil {
		spec.output.Close()
		return nil, err
	}
	a.Output = spec.output
	if spec.CPU != nil {
		a.tenant = spec.tenantName()
	}
	appClose := a.close
	a.close = func(ctx context.Context) error {
		defer spec.output.Close() // reports drops not reported yet
		return appClose(ctx)
	}
	return a, nil
}

func open(ctx context.Context, eng *runtime.Engine, spec Spec, log *slog.Logger) (*Running, error) {
	wasmPath := spec.Source
	want := wantMode{mode: spec.Mode, by: "mode " + spec.Mode.String() + " was asked for"}
	if st, err := os.Stat(spec.Source); err == nil && st.IsDir() {
		start := time.Now()
		buildMode := spec.Mode
		if buildMode == runtime.ModeCGI {
			buildMode = runtime.ModeAuto // a command: the SDK's shapes do not apply
		}
		var task *progress.Task // started by the first step: a cached build shows nothing
		r, err := builder.BuildDir(ctx, spec.Source, builder.Options{CacheDir: spec.BuildCacheDir, Tags: spec.BuildTags, Mode: buildMode,
			OnStep: func(step string) {
				if task == nil {
					task = spec.Progress.Start(log, 0, "building guest", "app", spec.Name, "dir", spec.Source)
				}
				task.SetStep(step)
			}})
		if task != nil {
			task.End()
		}
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", spec.Name, err)
		}
		if !r.Cached {
			log.Info("built guest", "app", spec.Name, "dir", spec.Source, "lang", r.Source.Lang, "wasm", r.Path, "took", time.Since(start).Round(time.Millisecond))
		}
		if have, current, ok := scaffold.SDKOf(spec.Source); ok && have != current {
			log.Info("the app builds against another SDK than the one this wasmsrv carries (both speak ABI v1); `wasmsrv new --update-sdk DIR` moves it to this one",
				"app", spec.Name, "dir", spec.Source, "app_sdk", have, "wasmsrv_sdk", current)
		}
		if want.mode == runtime.ModeAuto && r.Source.Mode != runtime.ModeAuto {
			want = wantMode{mode: r.Source.Mode, declared: true,
				by: filepath.Join(spec.Source, r.Source.ModeAt) + " declares " + builder.ModeDirective + " " + r.Source.Mode.String()}
		}
		wasmPath = r.Path
	}
	bin, err := os.ReadFile(wasmPath)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", spec.Name, err)
	}
	var plugins []string
	if spec.Plugins != nil {
		plugins = spec.Plugins.Names()
	}
	gate, err := spec.tenant()
	if err != nil {
		return nil, err
	}
	app, err := eng.Load(ctx, runtime.AppConfig{
		Name: spec.Name, Wasm: bin, MemoryLimit: spec.MemoryLimit, StartTimeout: spec.StartTimeout, NoSnapshot: spec.NoSnapshot,
		Env: spec.Env, Mounts: spec.Mounts, HostModules: spec.HostModules, Plugins: plugins, Logger: log, Output: spec.output,
		CPU: gate,
	})
	if errors.Is(err, runtime.ErrHTTPWasmModule) {
		if err := want.check(spec.Name, runtime.ModeHTTPWasm); err != nil {
			return nil, err
		}
		return openHTTPWasm(ctx, eng, spec, bin, wasmPath, plugins, log)
	}
	if errors.Is(err, runtime.ErrCommandModule) {
		if err := want.check(spec.Name, runtime.ModeCGI); err != nil {
			return nil, err
		}
		if spec.checkOnly {
			return &Running{Name: spec.Name, Mode: runtime.ModeCGI, Wasm: wasmPath, close: func(context.Context) error { return nil }}, nil
		}
		return openCommand(ctx, eng, spec, bin, wasmPath, log)
	}
	if err != nil {
		return nil, err
	}
	if err := want.check(spec.Name, app.Info().Mode); err != nil {
		_ = app.Close(ctx)
		return nil, err
	}
	if spec.checkOnly {
		return &Running{Name: spec.Name, Mode: app.Info().Mode, Wasm: wasmPath, close: app.Close}, nil
	}
	switch app.Info().Mode {
	case runtime.ModeAsync:
		return openAsync(ctx, app, spec, wasmPath, log)
	case runtime.ModeSync:
		pool, err := runtime.NewSyncPool(ctx, app, spec.Pool)
		if err != nil {
			_ = app.Close(ctx)
			return nil, err
		}
		gw := host.NewGateway(pool, host.GatewayConfig{App: spec.Name, BodyLimit: spec.BodyLimit, Buffer: spec.BodyBuffer, ResponseBuffer: spec.ResponseBuffer, WebSocket: spec.WebSocket, Traced: spec.Traced}, log)
		return &Running{Name: spec.Name, Mode: runtime.ModeSync, Wasm: wasmPath, Handler: gw, close: func(ctx context.Context) error {
			gw.Close() // WebSockets first: their guests finish, instances come back
			err := pool.Close(ctx)
			_ = app.Close(ctx)
			return err
		}, stats: pool.Stats}, nil
	default:
		_ = app.Close(ctx)
		return nil, fmt.Errorf("app %s: %s mode is not supported by this build", spec.Name, app.Info().Mode)
	}
}

// Check does what Open does up to the start of the pool: it builds a package,
// loads and validates the module with the app's granted plugins, and checks its
// shape against spec.Mode (*ModeError); then it closes everything. `wasmsrv
// check` refuses what serve would refuse with it.
func Check(ctx context.Context, eng *runtime.Engine, spec Spec, log *slog.Logger) (runtime.Mode, error) {
	spec.checkOnly = true
	a, err := Open(ctx, eng, spec, log)
	if err != nil {
		return runtime.ModeAuto, err
	}
	return a.Mode, a.Close(ctx)
}

// DefaultName is the name of an app opened from src without one: the file name
// without ".wasm", or the directory's name ("." is the current directory's). A
// module named main.wasm (what sdk/c/build.sh and most build scripts write) is
// named after its directory instead, as a Go main package is: samples/c-hello
// and samples/c-hello/main.wasm are both "c-hello". It may not be a valid name
// (appname.Check): callers that offer a choice should check it first.
func DefaultName(src string) string {
	if abs, err := filepath.Abs(src); err == nil {
		src = abs
	}
	src = filepath.Clean(src)
	base := filepath.Base(src)
	if ext := filepath.Ext(base); ext == ".wasm" {
		base = base[:len(base)-len(ext)]
		if base == "main" {
			if dir := filepath.Base(filepath.Dir(src)); dir != "/" && dir != "." {
				base = dir
			}
		}
	}
	if base == "." || base == "/" || base == "" {
		return "app"
	}
	return base
}
