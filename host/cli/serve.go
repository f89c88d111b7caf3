package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/admin"
	"github.com/wasmsrv/wasmsrv/host/internal/appspec"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/metrics"
	"github.com/wasmsrv/wasmsrv/host/internal/site"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/runtime"
)

const serveUsage = `Usage: wasmsrv serve -c FILE [flags]

Serve a site described by a TOML or YAML config file: listeners, Wasm apps, routes
to apps, upstream groups, static directories and redirects, with caching, limits and
filters. SIGHUP (or POST /reload with the header Wasmsrv-Admin: 1 on the admin
listener) re-reads the file; a bad file is rejected and the running config kept.

Environment overrides: WASMSRV_LISTEN, WASMSRV_ADMIN_ADDR, WASMSRV_ADMIN_TOKEN,
WASMSRV_LOG_LEVEL, WASMSRV_TRUSTED_PROXIES, WASMSRV_SHUTDOWN_TIMEOUT.

OpenTelemetry traces are exported (OTLP over HTTP) when OTEL_EXPORTER_OTLP_ENDPOINT
or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; the other OTEL_* variables apply
(docs/observability.md). The admin listener serves a status page at /ui.

Flags (each overrides the environment variable shown):
`

const checkUsage = `Usage: wasmsrv check -c FILE

Check a site config file (with WASMSRV_* overrides applied) as serve would, without
serving: every key and value, then each app, built and loaded, against its mode.
Each problem is printed as FILE:LINE: KEY: MESSAGE, all of them at once; the exit
status is 1 if any.

Flags:
`

// siteFlags are the flags of serve and check: the file and the process settings,
// each with its WASMSRV_* variable.
type siteFlags struct {
	Config string `env:"CONFIG"`
	config.Process
}

// parseSiteFlags reads the variables, then the flags over them.
func parseSiteFlags(name, usage string, args []string, stderr io.Writer) (*siteFlags, map[string]string, error) {
	environ := env.ToMap(os.Environ())
	sf, err := config.ParseEnv[siteFlags](environ)
	if err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&sf.Config, "c", sf.Config, "site config file, .toml/.yaml/.yml [$WASMSRV_CONFIG]")
	if name == "check" {
		sf.Process.Flags(fs, "log-format", "cache-dir") // check serves nothing to log
	} else {
		sf.Process.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, err
		}
		return nil, nil, &usageError{err.Error()}
	}
	if sf.Config == "" || fs.NArg() != 0 {
		fs.Usage()
		return nil, nil, &usageError{name + " needs -c FILE and no other arguments"}
	}
	if err := sf.Process.Validate(); err != nil {
		return nil, nil, &usageError{err.Error()}
	}
	return &sf, environ, nil
}

func cmdServe(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer) (err error) {
	sf, environ, err := parseSiteFlags("serve", serveUsage, args, stderr)
	if err != nil {
		return err
	}
	path := sf.Config
	defer reportJSON(stderr, sf.LogFormat, &err)
	// Read once up front for the log level; the site reads it again itself.
	cfg, err := config.Load(path, environ)
	if err != nil {
		return err
	}
	logOut, meter := progressOutput(stderr, sf.LogFormat)
	log := newLogger(logOut, cfg.Server.LogLevel, sf.LogFormat)
	sh, stop := commandLog(ctx, log)
	defer stop.report() // first deferred, so the last record

	engineCache, buildCache := sf.Caches()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: engineCache, Progress: meter}, log)
	if err != nil {
		return err
	}
	defer eng.Close(context.Background())
	// A signal while the site starts interrupts its instance starts at once;
	// once serving, after the grace period (read then: a reload may change it).
	var serving atomic.Pointer[site.Site]
	defer sh.serve(log, eng, func() (time.Duration, bool) {
		if s := serving.Load(); s != nil {
			return s.Config().Server.ShutdownTimeout.D(), true
		}
		return cfg.Server.ShutdownTimeout.D(), false
	})()

	tp, reg, err := startTracing(ctx, opts, log, installedPlugins(cfg.Resolve(cfg.Plugins.KVPath), cfg.Plugins.RedisURL, opts.Plugins))
	if err != nil {
		return err
	}
	defer tracing.Shutdown(tp, traceFlushTimeout, log) // after the site and the plugins close
	// Runs when serve returns: Serve has closed the apps by then.
	defer func() {
		if err := reg.Close(); err != nil {
			log.Warn("closing plugins", "err", err)
		}
	}()
	// The admin listener answers the probes while the apps build and warm up:
	// /livez 200, /readyz 503 "starting". The site takes its socket over.
	ready := &admin.Readiness{}
	early, err := startingAdmin(ctx, cfg, ready, log)
	if err != nil {
		return err
	}
	defer early.wait()
	s, err := site.New(ctx, site.Options{ConfigPath: path, Environ: environ, Engine: eng,
		BuildCacheDir: buildCache, Logger: log, Plugins: reg, Progress: meter,
		AccessLog: sf.AccessLog, AccessLogFormat: sf.AccessLogFormat, AccessLogOut: stdout, AccessLogQuery: sf.AccessLogQuery,
		Readiness: ready, Metrics: metrics.New(), Tracer: tracerOf(tp)})
	if err != nil {
		early.stop()
		if ctx.Err() != nil {
			// A signal stopped a build, a compile or the instance starts.
			stop.stopped("while", "starting")
			return nil
		}
		return err
	}
	// Catch SIGHUP before announcing anything: a reload sent right after
	// start must not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s.AdoptAdmin(early.handOver(), cfg.Admin.Listen())
	if err := s.Listen(); err != nil {
		_ = s.Close(context.Background())
		return err
	}
	admin := s.AdminURL()
	if admin == "" {
		admin = "off"
	}
	serving.Store(s)
	// Every pool is warm and the listeners are bound (connections wait in
	// their backlog until Serve accepts): ready before the serving line, which
	// scripts and tests take as the sign to send requests and probes.
	ready.SetReady()
	urls := s.URLs()
	first := ""
	if len(urls) > 0 {
		first = urls[0]
	}
	announce(stdout, sf.LogFormat, fmt.Sprintf("wasmsrv: serving %s on %s (admin %s)", path, strings.Join(urls, ", "), admin),
		"url", first, "urls", urls, "admin", admin, "config", path)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := s.Reload(ctx); err != nil {
					log.Error("reload rejected; keeping the running config", "err", err, "via", "SIGHUP")
				}
			}
		}
	}()
	stop.stopped()
	return s.Serve(ctx)
}

func cmdCheck(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer) error {
	sf, environ, err := parseSiteFlags("check", checkUsage, args, stderr)
	if err != nil {
		return err
	}
	path := sf.Config
	cfg, errs := config.Check(path, environ)
	if cfg != nil && len(cfg.Apps) > 0 {
		errs = append(errs, checkApps(ctx, opts, cfg, sf, errs, stderr)...)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return fmt.Errorf("%s: invalid (%d problems)", path, len(errs))
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d apps, %d upstream groups, %d routes)\n",
		path, len(cfg.Listeners), len(cfg.Apps), len(cfg.Upstreams), len(cfg.Routes))
	return nil
}

// checkApps opens each app of cfg as serve would, up to its pool (apps.Check):
// built, loaded with its grants and checked against its mode. An app whose
// settings already have errors is left out.
func checkApps(ctx context.Context, opts *Options, cfg *config.Config, sf *siteFlags, known []*config.Error, stderr io.Writer) []*config.Error {
	log := newLogger(stderr, "warn", sf.LogFormat)
	engineCache, buildCache := sf.Caches()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: engineCache}, log)
	if err != nil {
		return []*config.Error{{File: cfg.Path, Msg: err.Error()}}
	}
	defer eng.Close(context.Background())
	// The plugins' sections are checked as serve opens them; kv keeps its state
	// in a scratch file, not in the running site's.
	scratch, err := os.MkdirTemp("", "wasmsrv-check-")
	if err != nil {
		return []*config.Error{{File: cfg.Path, Msg: err.Error()}}
	}
	defer os.RemoveAll(scratch)
	reg, err := registry.New(installedPlugins(filepath.Join(scratch, "kv.db"), "", opts.Plugins)...)
	if err != nil {
		return []*config.Error{{File: cfg.Path, Msg: err.Error()}}
	}
	defer reg.Close()
	var errs []*config.Error
	for _, name := range slices.Sorted(maps.Keys(cfg.Apps)) {
		key := "apps." + name
		if slices.ContainsFunc(known, func(e *config.Error) bool { return e.Key == key || strings.HasPrefix(e.Key, key+".") }) {
			continue
		}
		a := cfg.Apps[name]
		spec, err := appspec.Of(name, &a, appspec.Host{BuildCacheDir: buildCache, Plugins: reg})
		if err == nil {
			_, err = apps.Check(ctx, eng, spec, log)
		}
		if err != nil {
			errs = append(errs, appspec.Error(cfg, name, err))
		}
	}
	return errs
}

// earlyAdmin is the admin listener while the site starts: it answers the
// probes (not ready: starting) and refuses the rest of the API until the site,
// loaded and warm, takes its socket over.
type earlyAdmin struct {
	srv    *host.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// startingAdmin binds and serves the admin listener of cfg, if it has one.
func startingAdmin(ctx context.Context, cfg *config.Config, ready *admin.Readiness, log *slog.Logger) (*earlyAdmin, error) {
	e := &earlyAdmin{}
	addr := cfg.Admin.Listen()
	if addr == "" {
		return e, nil
	}
	h := admin.Handler(startingSite{}, admin.Config{Addr: addr, Hosts: cfg.Admin.Hosts, Token: cfg.Admin.Token, Readiness: ready}, log)
	e.srv = host.NewServer(host.ServerConfig{Addr: addr, ShutdownGrace: 5 * time.Second}, h, log)
	if err := e.srv.Listen(); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	log.Info("admin listener started; not ready until every app is warm", "addr", e.srv.URL())
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancel, e.done = cancel, make(chan struct{})
	go func() {
		defer close(e.done)
		_ = e.srv.Serve(sctx)
	}()
	return e, nil
}

// handOver stops accepting and returns the socket for the site (nil: none).
// The connections accepted so far are answered, then closed.
func (e *earlyAdmin) handOver() *host.Socket {
	if e.srv == nil {
		return nil
	}
	sock := e.srv.Detach()
	e.cancel()
	return sock
}

// stop closes the listener (the site did not start).
func (e *earlyAdmin) stop() {
	if e.cancel != nil {
		e.cancel()
	}
}

// wait returns once the early server has finished its last connection.
func (e *earlyAdmin) wait() {
	if e.done != nil {
		<-e.done
	}
}

// startingSite is the admin Controller while the site starts.
type startingSite struct{}

func (startingSite) Reload(context.Context) error {
	return errors.New("the site is starting: nothing to reload yet")
}
func (startingSite) Purge(string) int { return 0 }
func (startingSite) Status() any      { return map[string]any{"starting": true} }
