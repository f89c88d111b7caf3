package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caarlos0/env/v11"
	"golang.org/x/term"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// cgiGCPercent is the Go GC target of a process serving a CGI-mode app (see cmdRun).
const cgiGCPercent = 400

const runUsage = `Usage: wasmsrv run [flags] APP

Serve one app. APP is a .wasm module, or a directory holding a Go main package
(built for GOOS=wasip1 with the local Go toolchain, for the shape it declares with
//wasmsrv:mode) or C sources (built with clang --target=wasm32-wasi); builds are
cached by content. 'wasmsrv new DIR' writes a starter app.

Flags (each overrides the environment variable shown):
`

func cmdRun(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.LoadRun(env.ToMap(os.Environ()))
	if err != nil {
		return &usageError{err.Error()}
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, runUsage); fs.PrintDefaults() }
	cfg.Flags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if err := cfg.Validate(); err != nil {
		return &usageError{err.Error()}
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return &usageError{"run needs exactly one APP (a .wasm file or a Go package directory)"}
	}
	name := cfg.Name
	if name == "" {
		name = apps.DefaultName(fs.Arg(0))
		if err := appname.Check(name); err != nil {
			return &usageError{fmt.Sprintf("name: the app is named after %s by default, but %v; choose a name with --name", fs.Arg(0), err)}
		}
	}
	logOut, meter := progressOutput(stderr, cfg.LogFormat)
	log := newLogger(logOut, cfg.LogLevel, cfg.LogFormat)

	engineCache, buildCache := "", ""
	if cfg.CacheDir == "-" {
		engineCache = "-"
	} else if cfg.CacheDir != "" {
		engineCache, buildCache = filepath.Join(cfg.CacheDir, "wazero"), filepath.Join(cfg.CacheDir, "builds")
	}
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: engineCache, Progress: meter}, log)
	if err != nil {
		return err
	}
	defer eng.Close(context.Background())
	// A signal while the app starts interrupts its instance starts at once (there
	// is nothing to drain yet); once serving, after the grace period.
	var serving atomic.Bool
	defer boundShutdown(ctx, func() time.Duration {
		if !serving.Load() {
			return 0
		}
		return cfg.ShutdownTimeout.D()
	}, eng, log)()

	reg, err := registry.New(installedPlugins(cfg, opts.Plugins)...)
	if err != nil {
		return err
	}
	// Runs after app.Close below: per-app plugin state first, then the backends.
	defer func() {
		if err := reg.Close(); err != nil {
			log.Warn("closing plugins", "err", err)
		}
	}()

	origins, _ := wsorigin.Parse(cfg.WSOrigins) // checked by cfg.Validate
	var mounts []runtime.Mount
	for _, d := range cfg.Dirs {
		hg, ro, _ := config.ParseMount(d)
		mounts = append(mounts, runtime.Mount{HostDir: hg[0], GuestDir: hg[1], ReadOnly: ro})
	}
	hwConfig, err := httpWasmConfig(cfg.HTTPWasmConfig)
	if err != nil {
		return &usageError{err.Error()}
	}
	app, err := apps.Open(ctx, eng, apps.Spec{
		Name:          name,
		Source:        fs.Arg(0),
		BuildCacheDir: buildCache,
		Pool: runtime.PoolConfig{
			Workers: cfg.Workers, QueueSize: cfg.QueueSize, QueueWait: cfg.QueueWait.D(),
			RequestTimeout: cfg.Timeout.D(), MaxRequests: cfg.MaxRequests, MaxRequestsJitter: cfg.MaxRequestsJitter,
		},
		Mode: cfg.Mode,
		Async: runtime.AsyncConfig{
			MaxConns: cfg.LimitConcurrency, MaxConnsPerInstance: cfg.MaxConnsPerInst, EventTimeout: cfg.EventTimeout.D(),
		},
		WebSocket: host.WSConfig{
			MaxMessage: int64(cfg.WSMaxMessage), PingInterval: cfg.WSPingInterval.D(), PingTimeout: cfg.WSPingTimeout.D(),
			Compression: cfg.WSCompression, SendBuffer: int(cfg.WSSendBuffer), Origins: origins,
		},
		MemoryLimit:    int64(cfg.MemoryLimit),
		StartTimeout:   cfg.StartTimeout.D(),
		BodyLimit:      int64(cfg.BodyLimit),
		BodyBuffer:     bodybuf.Config{Memory: int64(cfg.BufferBody), Timeout: cfg.BodyTimeout.D()},
		ResponseBuffer: int(cfg.BufferResponse),
		Env:            cfg.Env,
		Mounts:         mounts,
		Plugins:        reg,
		Grants:         runGrants(cfg),
		LogRate:        int64(cfg.LogRate),
		Progress:       meter,
		HTTPWasm:       apps.HTTPWasmSpec{Config: hwConfig, DefaultStatus: cfg.DefaultStatus},
		CGIArgv:        cfg.Argv,
	}, log)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, runtime.ErrPoolClosed) {
			log.Info("stopped while starting")
			return nil
		}
		return err
	}
	serving.Store(true)

	// Compiling or loading a module leaves a large, short-lived heap behind: give it
	// back to the OS before serving so the steady-state footprint is what shows.
	debug.FreeOSMemory()
	if app.Mode == "cgi" && os.Getenv("GOGC") == "" {
		// Every CGI request leaves ~15 KiB of garbage (mostly wazero's structures
		// of the fresh instance) while the live heap stays a few MiB, so at Go's
		// default target the collector runs hundreds of times a second: in a
		// loopback load test a hello request took ~40 µs of CPU at GOGC=100 and
		// ~27 µs at 400, for ~8 MiB more heap. GOGC in the environment overrides.
		debug.SetGCPercent(cgiGCPercent)
	}

	srv := host.NewServer(host.ServerConfig{
		Addr: cfg.Listen, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(), IdleTimeout: cfg.IdleTimeout.D(),
		MaxHeaderBytes: int(cfg.MaxHeaderBytes), ShutdownGrace: cfg.ShutdownTimeout.D(),
		AccessLog: cfg.AccessLog, MaxConnsPerIP: cfg.MaxConnsPerIP,
	}, app.Handler, log)
	if err := srv.Listen(); err != nil {
		_ = app.Close(context.Background())
		return err
	}
	log.Info("serving", "app", app.Name, "mode", app.Mode, "url", srv.URL())
	fmt.Fprintf(stdout, "wasmsrv: serving %s (%s mode) on %s\n", app.Name, app.Mode, srv.URL())

	serveErr := srv.Serve(ctx)
	// In-flight requests are done, or the grace period is over and what still
	// runs is interrupted now; then stop hooks run.
	drain := 10 * time.Second
	if errors.Is(serveErr, host.ErrGraceExpired) {
		drain, serveErr = 0, nil
	}
	cctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := app.Close(cctx); err != nil {
		log.Warn("app did not drain cleanly", "err", err)
	}
	log.Info("stopped")
	return serveErr
}

// progressOutput returns where logs go and the Meter that shows long work (a
// build, a first compile) as a live line: stderr itself and no Meter unless stderr
// is a terminal taking text logs (a pipe, a file or JSON logs get log records).
func progressOutput(stderr io.Writer, format string) (io.Writer, *progress.Meter) {
	f, ok := stderr.(*os.File)
	if !ok || format != "text" || os.Getenv("TERM") == "dumb" || !term.IsTerminal(int(f.Fd())) {
		return stderr, nil
	}
	fd := int(f.Fd())
	m := progress.NewTerminal(f, func() int {
		w, _, err := term.GetSize(fd)
		if err != nil {
			return 0
		}
		return w
	})
	return m, m
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// httpWasmConfig is the get_config of an http-wasm guest: the value as given,
// or the contents of the file named after an @.
func httpWasmConfig(v string) ([]byte, error) {
	path, ok := strings.CutPrefix(v, "@")
	if !ok {
		return []byte(v), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("http-wasm-config: %w", err)
	}
	return b, nil
}
