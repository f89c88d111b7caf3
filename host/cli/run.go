package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/caarlos0/env/v11"
	"golang.org/x/term"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/admin"
	"github.com/wasmsrv/wasmsrv/host/internal/appspec"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/metrics"
	"github.com/wasmsrv/wasmsrv/host/internal/statuspage"
	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// cgiGCPercent is the Go GC target of a process serving a CGI-mode app (see cmdRun).
const cgiGCPercent = 400

const runUsage = `Usage: wasmsrv run [flags] APP

Serve one app. APP is a .wasm module, or a directory holding a Go main package
(built for GOOS=wasip1 with the local Go toolchain, for the shape it declares with
//wasmsrv:mode) or C sources (built with clang --target=wasm32-wasi); builds are
cached by content. 'wasmsrv new DIR' writes a starter app.

OpenTelemetry traces are exported (OTLP over HTTP) when OTEL_EXPORTER_OTLP_ENDPOINT
or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (docs/observability.md).

Flags (each overrides the environment variable shown):
`

func cmdRun(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer) (err error) {
	// The variables, then the flags over them; checked once both are in (a
	// variable may configure a plugin a flag grants).
	cfg, err := config.ParseEnv[config.Run](env.ToMap(os.Environ()))
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
	defer reportJSON(stderr, cfg.LogFormat, &err)
	if fs.NArg() != 1 {
		fs.Usage()
		return &usageError{"run needs exactly one APP (a .wasm file or a Go package directory)"}
	}
	cfg.App.SetSource(fs.Arg(0))
	if err := cfg.Validate(); err != nil {
		return &usageError{err.Error()}
	}
	name := cfg.Name
	if name == "" {
		name = apps.DefaultName(fs.Arg(0))
		if err := appname.Check(name); err != nil {
			return &usageError{fmt.Sprintf("name: the app is named after %s by default, but %v; choose a name with --name", fs.Arg(0), err)}
		}
	}
	logOut, meter := progressOutput(stderr, cfg.LogFormat)
	// One app: every record names it, the server's and the shutdown's too.
	log := withAppName(newLogger(logOut, cfg.LogLevel, cfg.LogFormat), name)
	sh, stop := commandLog(ctx, log)
	defer stop.report() // first deferred, so the last record

	engineCache, buildCache := cfg.Caches()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: engineCache, Progress: meter}, log)
	if err != nil {
		return err
	}
	defer eng.Close(context.Background())
	// A signal while the app starts interrupts its instance starts at once (there
	// is nothing to drain yet); once serving, after the grace period.
	var serving atomic.Bool
	defer sh.serve(log, eng, func() (time.Duration, bool) {
		return cfg.ShutdownTimeout.D(), serving.Load()
	})()

	tp, reg, err := startTracing(ctx, opts, log, installedPlugins(cfg.KVPath, cfg.RedisURL, opts.Plugins))
	if err != nil {
		return err
	}
	// Registered before the plugins close and the app stops, so it runs after
	// them: the spans of the last requests are flushed.
	defer tracing.Shutdown(tp, traceFlushTimeout, log)
	// Runs after app.Close below: per-app plugin state first, then the backends.
	defer func() {
		if err := reg.Close(); err != nil {
			log.Warn("closing plugins", "err", err)
		}
	}()

	spec, err := appspec.Of(name, &cfg.App, appspec.Host{BuildCacheDir: buildCache, Plugins: reg, Progress: meter, CPU: cpushare.New(cpushare.Config{})})
	if err != nil {
		return &usageError{err.Error()}
	}
	spec.Traced = tp != nil
	// Metrics and the status page's crash ring are kept when the admin listener
	// can serve them, and cost nothing otherwise.
	var mreg *metrics.Registry
	var am *metrics.App
	var crashes *statuspage.Crashes
	if cfg.Admin != "" {
		mreg = metrics.New()
		am = mreg.App(name, spec.Tenant)
		crashes = statuspage.NewCrashes(0)
		spec.Pool.Observer = runtime.Observers(spec.Pool.Observer, am, crashes)
		spec.WebSocket.Observer = am
		spec.PluginCalls = am.PluginCalls
	}
	app, err := apps.Open(ctx, eng, spec, log)
	if err != nil {
		if ctx.Err() != nil {
			// A signal stopped the build, the compile or the instance starts.
			stop.stopped("while", "starting")
			return nil
		}
		return err
	}
	serving.Store(true)

	// Compiling or loading a module leaves a large, short-lived heap behind: give it
	// back to the OS before serving so the steady-state footprint is what shows.
	debug.FreeOSMemory()
	if app.Mode == runtime.ModeCGI && os.Getenv("GOGC") == "" {
		// Every CGI request leaves ~15 KiB of garbage (mostly wazero's structures
		// of the fresh instance) while the live heap stays a few MiB, so at Go's
		// default target the collector runs hundreds of times a second: in a
		// loopback load test a hello request took ~40 µs of CPU at GOGC=100 and
		// ~27 µs at 400, for ~8 MiB more heap. GOGC in the environment overrides.
		debug.SetGCPercent(cgiGCPercent)
	}

	// The app is warm: ready once listening, not ready from the first moment
	// of a stop (the listener serves on for drain-delay, then drains).
	ready := &admin.Readiness{}
	var handler http.Handler = app.Handler
	if am != nil {
		am.SetPool(app.PoolStats)
		am.SetStored(app.StoredBytes)
		handler = am.Wrap(handler)
	}
	if cfg.HealthPath != "" {
		handler = admin.Probes(cfg.HealthPath, ready, handler)
	}
	trusted := cfg.Trusted()
	srv := host.NewServer(host.ServerConfig{
		Addr: cfg.Listen, TLSCert: cfg.TLSCert, TLSKey: cfg.TLSKey,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(), IdleTimeout: cfg.IdleTimeout.D(),
		MaxHeaderBytes: int(cfg.MaxHeaderBytes), ShutdownGrace: cfg.ShutdownTimeout.D(), DrainDelay: cfg.DrainDelay.D(),
		AccessLog: cfg.AccessLog, AccessLogFormat: cfg.AccessLogFormat, AccessLogOut: stdout, AccessLogQuery: cfg.AccessLogQuery,
		TrustedProxies: trusted, MaxConnsPerIP: cfg.MaxConnsPerIP, ConnLimitExempt: trusted, Tracer: tracerOf(tp),
	}, handler, log)
	if err := srv.Listen(); err != nil {
		_ = app.Close(context.Background())
		return err
	}
	adm := runAdminServer(cfg.Admin, cfg.AdminToken, app, mreg, ready, crashes, log)
	adminURL := "off"
	if adm != nil {
		if err := adm.Listen(); err != nil {
			_ = srv.Socket().Close()
			_ = app.Close(context.Background())
			return fmt.Errorf("admin listener: %w", err)
		}
		adminURL = adm.URL()
	}
	ready.SetReady()
	defer context.AfterFunc(ctx, ready.Drain)()
	log.Info("serving", "app", app.Name, "mode", app.Mode, "url", srv.URL(), "admin", adminURL)
	line := fmt.Sprintf("wasmsrv: serving %s (%s mode) on %s", app.Name, app.Mode, srv.URL())
	if adm != nil {
		line += " (admin " + adminURL + ")"
	}
	announce(stdout, cfg.LogFormat, line, "url", srv.URL(), "app", app.Name, "mode", app.Mode, "admin", adminURL)

	// The admin listener answers until the app has drained: health and metrics
	// stay readable during a graceful stop.
	adminCtx, stopAdmin := context.WithCancel(context.Background())
	adminDone := make(chan struct{})
	if adm != nil {
		go func() {
			defer close(adminDone)
			if err := adm.Serve(adminCtx); err != nil && !errors.Is(err, host.ErrGraceExpired) {
				log.Warn("admin listener", "err", err)
			}
		}()
	} else {
		close(adminDone)
	}
	defer func() { stopAdmin(); <-adminDone }()

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
	stop.stopped()
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
