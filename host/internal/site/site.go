// Package site assembles a running site from a config file: listeners,
// the router and the per-route middleware, Wasm apps, upstream groups,
// static roots, the response cache and the admin API. Reload builds a new
// generation beside the running one and swaps it atomically; requests and
// WebSockets in flight finish on the generation they started on, and what
// only the old generation used (changed apps' pools, removed upstream
// groups) is closed once it drains.
package site

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/admin"
	"github.com/wasmsrv/wasmsrv/host/internal/cache"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/deploy"
	"github.com/wasmsrv/wasmsrv/host/internal/limit"
	"github.com/wasmsrv/wasmsrv/host/internal/metrics"
	"github.com/wasmsrv/wasmsrv/host/internal/statuspage"
	"github.com/wasmsrv/wasmsrv/host/internal/store"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// Options configure a Site.
type Options struct {
	// ConfigPath is the TOML or YAML file, re-read on every reload.
	ConfigPath string
	// Environ holds the WASMSRV_* overrides (config.SiteEnv; os.Environ through
	// env.ToMap in the CLI), read again on every reload.
	Environ map[string]string
	// Engine compiles the apps' modules. Required when the config has apps.
	Engine *runtime.Engine
	// BuildCacheDir caches built Go guest packages ("" = default).
	BuildCacheDir string
	// Progress shows apps' builds as a live line on a terminal; nil logs them.
	Progress *progress.Meter
	// AccessLog writes one log record per request on the site listeners, in
	// AccessLogFormat (host.AccessLogRecords or host.AccessLogCombined, whose
	// lines go to AccessLogOut), with query strings when AccessLogQuery.
	AccessLog       bool
	AccessLogFormat string
	AccessLogOut    io.Writer
	AccessLogQuery  bool
	// Readiness is what /readyz reports (nil: the site makes its own). The site
	// marks it ready when Serve starts (the config is loaded and every pool warm
	// by then) and draining when Serve's context ends.
	Readiness *admin.Readiness
	// Plugins are the plugins compiled into this build; each app gets the ones its
	// config grants. Nil: apps get no plugins.
	Plugins *registry.Registry
	Logger  *slog.Logger
	// Metrics, if set, counts the site's apps, upstream groups, cache and
	// limits, and the admin listener serves it at /metrics.
	Metrics *metrics.Registry
	// Tracer traces the requests of the site listeners (package tracing); nil:
	// traces off.
	Tracer trace.TracerProvider
	// Observer hears every app's pool (runtime.Observer: metrics); the site
	// adds its own ring of recent crashes for the status page.
	Observer runtime.Observer
}

// Site is the running server. It is an http.Handler (the current
// generation's router) and the admin Controller.
type Site struct {
	opt Options
	log *slog.Logger
	// base outlives generations: health probes and background work hang off it.
	base   context.Context
	cancel context.CancelFunc

	cur atomic.Pointer[generation]
	// cpu is the fair-share gate of every app's guest calls, by tenant; it
	// outlives generations, as tenants' accounts do.
	cpu *cpushare.Scheduler

	// crashes keeps the recent instance failures of every app (the status
	// page); observer is what every app's pool reports to (it and
	// Options.Observer).
	crashes  *statuspage.Crashes
	observer runtime.Observer

	mu        sync.Mutex // serialises reloads and the shared-resource tables
	gen       uint64
	cfg       *config.Config
	apps      map[string]*shared
	groups    map[string]*shared
	store     *cache.Store
	storeSize int64
	retiring  tracker
	// limits is the shared rate-limit store (Redis), when a route uses one.
	limits *limit.RedisBuckets

	// hosting runs the deployed apps of a hosting site (hosting.data_dir set):
	// requests whose Host one of them claims go to it, not to the routes.
	hosting *deploy.Manager
	hstore  store.Store

	// live are the listeners in config order, the admin listener last.
	live []*live
	// adminSock is the admin socket to adopt (AdoptAdmin), bound for adminAddr.
	adminSock *host.Socket
	adminAddr string
	// serveCtx is set while Serve runs: listeners a reload adds start under it.
	serveCtx context.Context
	serveErr chan error
}

// shared is a resource used by one or more generations, closed when the
// last one lets go.
type shared struct {
	key   string
	refs  int
	val   any
	close func(ctx context.Context) error
}

// New loads the config and builds the first generation. Nothing listens
// until Listen.
func New(ctx context.Context, opt Options) (*Site, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	cfg, err := config.Load(opt.ConfigPath, opt.Environ)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if opt.Readiness == nil {
		opt.Readiness = &admin.Readiness{}
	}
	s := &Site{opt: opt, log: opt.Logger, base: base, cancel: cancel, apps: map[string]*shared{}, groups: map[string]*shared{},
		crashes: statuspage.NewCrashes(0), cpu: cpushare.New(cpushare.Config{})}
	s.observer = runtime.Observers(opt.Observer, s.crashes)
	s.mu.Lock()
	defer s.mu.Unlock()
	// The apps outlive ctx, but a stop while the site starts (ctx ends: a
	// signal) ends the builds and compiles of its first generation.
	stopBuilds := context.AfterFunc(ctx, cancel)
	if err := s.startHosting(ctx, cfg); err != nil {
		stopBuilds()
		cancel()
		return nil, err
	}
	g, err := s.build(ctx, cfg)
	stopBuilds()
	if err != nil {
		s.stopHosting(context.Background())
		cancel()
		return nil, err
	}
	s.cfg = cfg
	s.cur.Store(g)
	return s, nil
}

// ServeHTTP serves r on the current generation.
func (s *Site) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for {
		g := s.cur.Load()
		if g.acquire() {
			g.serve(w, r)
			return
		}
		if s.cur.Load() == g {
			// Retired and not replaced: the site is closing.
			w.Header().Set("Connection", "close")
			http.Error(w, "503 shutting down", http.StatusServiceUnavailable)
			return
		}
		// g retired between Load and acquire: the new one is in place.
	}
}

// serve runs r on g, which the caller acquired. A function of its own so the
// release is an open-coded defer, not one allocated inside ServeHTTP's loop.
func (g *generation) serve(w http.ResponseWriter, r *http.Request) {
	defer g.release()
	g.handler.ServeHTTP(w, r)
}

// Config returns the running config.
func (s *Site) Config() *config.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg
}

// AdoptAdmin gives Listen the admin listener's socket, bound (and served, to
// answer the probes) while the site started: Listen adopts it when the config's
// admin.addr is still addr, and closes it otherwise.
func (s *Site) AdoptAdmin(sock *host.Socket, addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adminSock, s.adminAddr = sock, addr
}

// Listen binds the site listeners and the admin listener.
func (s *Site) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.planListeners(s.cfg)
	if sock := s.adminSock; sock != nil {
		// Not adopted: the admin listener moved or went while the site started.
		_ = sock.Close()
		s.adminSock = nil
	}
	if err != nil {
		return err
	}
	s.apply(p)
	return nil
}

// URLs are the site listeners' base URLs (after Listen).
func (s *Site) URLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.live {
		if l.spec.key != "admin" {
			out = append(out, l.srv.URL())
		}
	}
	return out
}

// AdminURL is the admin listener's base URL (after Listen).
func (s *Site) AdminURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.live {
		if l.spec.key == "admin" {
			return l.srv.URL()
		}
	}
	return ""
}

// Serve serves until ctx ends, then stops gracefully: listeners finish
// in-flight requests within server.shutdown_timeout, then apps drain.
func (s *Site) Serve(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	s.serveCtx, s.serveErr = sctx, make(chan error, 1)
	for _, l := range s.live {
		s.start(l)
	}
	s.mu.Unlock()
	s.opt.Readiness.SetReady()
	var first error
	select {
	case <-ctx.Done():
	case first = <-s.serveErr:
	}
	// Not ready from the first moment: the site listeners go on serving for
	// server.drain_delay, then drain; the admin listener answers /readyz with
	// 503 until they are done.
	s.opt.Readiness.Drain()
	cancel()
	s.mu.Lock()
	s.serveCtx = nil // a reload racing the stop binds nothing new
	live := s.live
	s.mu.Unlock()
	for _, l := range live {
		if err := s.stop(l); err != nil && first == nil {
			first = err
		}
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), s.Config().Server.ShutdownTimeout.D()+time.Minute)
	defer cancel2()
	return errors.Join(first, s.Close(ctx2))
}

// Close retires the current generation, waits (within ctx) for its last
// requests and WebSockets to end, then for apps to drain.
func (s *Site) Close(ctx context.Context) error {
	defer s.cancel()
	s.mu.Lock()
	g := s.cur.Load()
	s.mu.Unlock()
	if g.retireOnce.CompareAndSwap(false, true) {
		g.release()
	}
	select {
	case <-g.retired:
	case <-ctx.Done():
		return fmt.Errorf("stopping: requests still open: %w", ctx.Err())
	}
	err := errors.Join(s.stopHosting(ctx), s.retiring.wait(ctx))
	s.mu.Lock()
	if s.limits != nil {
		_ = s.limits.Close()
	}
	s.mu.Unlock()
	return err
}

// startHosting opens the store and starts the deployed apps.
func (s *Site) startHosting(ctx context.Context, cfg *config.Config) error {
	h := cfg.Hosting
	if h.DataDir == "" {
		return nil
	}
	var st store.Store
	var err error
	if h.RedisURL != "" {
		if st, err = store.OpenRedis(ctx, h.RedisURL, h.DataDir); err != nil {
			return cfg.ErrorAt("hosting.redis_url", err)
		}
	} else if st, err = store.Open(h.DataDir); err != nil {
		return cfg.ErrorAt("hosting.data_dir", err)
	}
	m := deploy.New(deploy.Options{Store: st, Engine: s.opt.Engine, Plugins: s.opt.Plugins, BuildCacheDir: s.opt.BuildCacheDir,
		Progress: s.opt.Progress, Hosting: h, OperatorToken: cfg.Admin.Token, FileApps: sortedKeys(cfg.Apps), Logger: s.log,
		CPU: s.cpu, Instrument: s.instrument})
	err = m.CheckFile(ctx, cfg)
	if err == nil {
		err = m.Start(ctx, cfg.Tenants)
	}
	if err != nil {
		_ = m.Close(ctx)
		st.Close()
		return err
	}
	s.hosting, s.hstore = m, st
	return nil
}

func (s *Site) stopHosting(ctx context.Context) error {
	if s.hosting == nil {
		return nil
	}
	err := s.hosting.Close(ctx)
	return errors.Join(err, s.hstore.Close())
}

// buckets returns the site's connection to the shared rate-limit store, made
// when a route first asks for it. Like the plugins' Redis, the URL is read
// once: a change needs a restart.
func (s *Site) buckets(url string) (*limit.RedisBuckets, error) {
	if s.limits == nil {
		b, err := limit.NewRedisBuckets(url, s.log)
		if err != nil {
			return nil, err
		}
		s.limits = b
	}
	return s.limits, nil
}

// tracker counts background closes. Unlike sync.WaitGroup it allows adding
// while someone waits at zero (a WebSocket may end during shutdown).
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (t *tracker) add() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
}

func (t *tracker) wait(ctx context.Context) error {
	t.mu.Lock()
	if t.n == 0 {
		t.mu.Unlock()
		return nil
	}
	idle := t.idle
	t.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping: apps still draining: %w", ctx.Err())
	}
}

// Reload re-reads the config file. A bad config is rejected and the
// running one kept; a good one is swapped in atomically.
func (s *Site) Reload(ctx context.Context) error {
	cfg, err := config.Load(s.opt.ConfigPath, s.opt.Environ)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var p *listenerPlan
	if s.live != nil {
		if s.serveCtx == nil && s.serveErr != nil {
			return errors.New("reload: the site is stopping")
		}
		if p, err = s.planListeners(cfg); err != nil {
			return err
		}
	}
	if (s.hosting == nil) != (cfg.Hosting.DataDir == "") || s.hosting != nil && cfg.Hosting != s.cfg.Hosting {
		if p != nil {
			p.abort()
		}
		return cfg.ErrorAt("hosting", errors.New("the hosting section changes only with a restart"))
	}
	if s.hosting != nil {
		if err := s.hosting.CheckFile(ctx, cfg); err != nil {
			if p != nil {
				p.abort()
			}
			return err
		}
	}
	g, err := s.build(ctx, cfg)
	if err != nil {
		if p != nil {
			p.abort()
		}
		return err
	}
	old := s.cur.Swap(g)
	s.cfg = cfg
	if s.hosting != nil {
		// After the file is accepted: a rejected file changes no tenant.
		s.hosting.SetOperatorToken(cfg.Admin.Token)
		if err := s.hosting.FileTenants(ctx, cfg.Tenants); err != nil {
			s.log.Error("reload: the file's tenants were not stored", "err", err)
		}
	}
	if p != nil {
		s.apply(p)
	}
	if old.retireOnce.CompareAndSwap(false, true) {
		old.release()
	}
	s.log.Info("config reloaded", "generation", g.id, "file", s.opt.ConfigPath)
	return nil
}

// Purge drops cache entries (admin).
func (s *Site) Purge(pattern string) int {
	s.mu.Lock()
	st := s.store
	s.mu.Unlock()
	if st == nil {
		return 0
	}
	return st.Purge(pattern)
}

// ServerStatus is one upstream member in Status.
type ServerStatus struct {
	URL    string `json:"url"`
	Weight int    `json:"weight"`
	Active int64  `json:"active"`
	Up     bool   `json:"up"`
}

// Status is the admin /status document.
func (s *Site) Status() any {
	g := s.cur.Load()
	ups := map[string][]ServerStatus{}
	for name, grp := range g.groups {
		for _, sv := range grp.Servers() {
			ups[name] = append(ups[name], ServerStatus{URL: sv.URL.String(), Weight: sv.Weight, Active: sv.Active(), Up: sv.Available()})
		}
	}
	var cacheBytes int64
	var cacheEntries int
	if g.store != nil {
		cacheBytes, cacheEntries = g.store.Used(), g.store.Len()
	}
	pools := make(map[string]apps.Status, len(g.apps))
	for name, a := range g.apps {
		pools[name] = a.Status()
	}
	tenants := map[string]TenantStatus{}
	for name, t := range s.cpu.Tenants() {
		tenants[name] = TenantStatus{Weight: t.Weight, BudgetMS: t.Budget.Milliseconds(), UsedMS: t.Used.Milliseconds(),
			Calls: t.Calls, Waited: t.Waited, Refused: t.Refused, Running: t.Running, Waiting: t.Waiting}
	}
	st := map[string]any{
		"generation": g.id, "config": s.opt.ConfigPath, "loaded": g.loaded.Format(time.RFC3339),
		"apps": g.appNames, "pools": pools, "upstreams": ups, "cache": map[string]any{"bytes": cacheBytes, "entries": cacheEntries},
		"tenants": tenants, "cpu_slots": s.cpu.Slots(),
	}
	if s.hosting != nil {
		st["hosted"] = s.hosting.Status()
	}
	return st
}

// TenantStatus is one tenant's CPU share in /status: its weight and budget
// per minute, the guest time its apps used, the guest calls admitted (Waited:
// of which queued behind its share first, Refused: over budget), and the calls
// running and queued now.
type TenantStatus struct {
	Weight   int   `json:"weight"`
	BudgetMS int64 `json:"budget_ms,omitempty"`
	UsedMS   int64 `json:"used_ms"`
	Calls    int64 `json:"calls"`
	Waited   int64 `json:"waited"`
	Refused  int64 `json:"refused"`
	Running  int   `json:"running"`
	Waiting  int   `json:"waiting"`
}

func trustedPrefixes(cfg *config.Config) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range cfg.Server.TrustedProxies {
		if pf, err := config.ParsePrefix(p); err == nil {
			out = append(out, pf)
		}
	}
	return out
}

var _ admin.Controller = (*Site)(nil)
