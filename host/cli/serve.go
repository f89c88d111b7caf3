package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/site"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/runtime"
)

const serveUsage = `Usage: wasmsrv serve -c FILE [flags]

Serve a site described by a TOML or YAML config file: listeners, Wasm apps, routes
to apps, upstream groups, static directories and redirects, with caching, limits and
filters. SIGHUP (or POST /reload with the header Wasmsrv-Admin: 1 on the admin
listener) re-reads the file; a bad file is rejected and the running config kept.

Environment overrides: WASMSRV_LISTEN, WASMSRV_ADMIN_ADDR, WASMSRV_ADMIN_TOKEN,
WASMSRV_LOG_LEVEL, WASMSRV_TRUSTED_PROXIES, WASMSRV_SHUTDOWN_TIMEOUT.

Flags:
`

const checkUsage = `Usage: wasmsrv check -c FILE

Validate a site config file (with WASMSRV_* overrides applied) without serving.
Each problem is printed as FILE:LINE: KEY: MESSAGE; the exit status is 1 if any.
`

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", os.Getenv("WASMSRV_CONFIG"), "site config file, .toml/.yaml/.yml [$WASMSRV_CONFIG]")
}

func cmdServe(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	path := configFlag(fs)
	cacheDir := fs.String("cache-dir", os.Getenv("WASMSRV_CACHE_DIR"), "compiled-code and build cache (default: user cache dir; - disables) [$WASMSRV_CACHE_DIR]")
	logFormat := fs.String("log-format", envOr("WASMSRV_LOG_FORMAT", "text"), "text or json [$WASMSRV_LOG_FORMAT]")
	accessLog := fs.Bool("access-log", os.Getenv("WASMSRV_ACCESS_LOG") == "true", "log one line per request [$WASMSRV_ACCESS_LOG]")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if *path == "" || fs.NArg() != 0 {
		fs.Usage()
		return &usageError{"serve needs -c FILE and no other arguments"}
	}
	if *logFormat != "text" && *logFormat != "json" {
		return &usageError{fmt.Sprintf("log-format: %q, want text or json", *logFormat)}
	}
	defer reportJSON(stderr, *logFormat, &err)
	// Read once up front for the log level; the site reads it again itself.
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		return err
	}
	logOut, meter := progressOutput(stderr, *logFormat)
	log := newLogger(logOut, cfg.Server.LogLevel, *logFormat)
	routeLibraryLogs(log)
	// "stopped" is the last record: this runs after every other deferred close.
	sh := shutdownOf(ctx)
	var stopped []any // set once there is a stop to report
	defer func() {
		if stopped != nil {
			sh.stopped(log, stopped...)
		}
	}()

	engineCache, buildCache := "", ""
	if *cacheDir == "-" {
		engineCache = "-"
	} else if *cacheDir != "" {
		engineCache, buildCache = filepath.Join(*cacheDir, "wazero"), filepath.Join(*cacheDir, "builds")
	}
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

	kvPath := cfg.Plugins.KVPath
	if kvPath != "" && !filepath.IsAbs(kvPath) {
		kvPath = filepath.Join(filepath.Dir(cfg.Path), kvPath) // like every path in the file
	}
	reg, err := registry.New(installedPlugins(&config.Run{KVPath: kvPath, RedisURL: cfg.Plugins.RedisURL}, opts.Plugins)...)
	if err != nil {
		return err
	}
	// Runs when serve returns: Serve has closed the apps by then.
	defer func() {
		if err := reg.Close(); err != nil {
			log.Warn("closing plugins", "err", err)
		}
	}()
	s, err := site.New(ctx, site.Options{ConfigPath: *path, Lookup: os.LookupEnv, Engine: eng,
		BuildCacheDir: buildCache, AccessLog: *accessLog, Logger: log, Plugins: reg, Progress: meter})
	if err != nil {
		if ctx.Err() != nil {
			// A signal stopped a build, a compile or the instance starts.
			stopped = []any{"while", "starting"}
			return nil
		}
		return err
	}
	// Catch SIGHUP before announcing anything: a reload sent right after
	// start must not kill the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if err := s.Listen(); err != nil {
		_ = s.Close(context.Background())
		return err
	}
	admin := s.AdminURL()
	if admin == "" {
		admin = "off"
	}
	serving.Store(s)
	urls := s.URLs()
	first := ""
	if len(urls) > 0 {
		first = urls[0]
	}
	announce(stdout, *logFormat, fmt.Sprintf("wasmsrv: serving %s on %s (admin %s)", *path, strings.Join(urls, ", "), admin),
		"url", first, "urls", urls, "admin", admin, "config", *path)
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
	stopped = []any{}
	return s.Serve(ctx)
}

func cmdCheck(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, checkUsage); fs.PrintDefaults() }
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if *path == "" || fs.NArg() != 0 {
		fs.Usage()
		return &usageError{"check needs -c FILE and no other arguments"}
	}
	cfg, err := config.Load(*path, os.LookupEnv)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return fmt.Errorf("%s: invalid", *path)
	}
	fmt.Fprintf(stdout, "%s: ok (%d listeners, %d apps, %d upstream groups, %d routes)\n",
		*path, len(cfg.Listeners), len(cfg.Apps), len(cfg.Upstreams), len(cfg.Routes))
	return nil
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
