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
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/admin"
	"github.com/wasmsrv/wasmsrv/host/internal/cache"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
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
	// AccessLog writes one log record per request on the site listeners.
	AccessLog bool
	// Plugins are the plugins compiled into this build; each app gets the ones its
	// config grants. Nil: apps get no plugins.
	Plugins *registry.Registry
	Logger  *slog.Logger
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

	mu        sync.Mutex // serialises reloads and the shared-resource tables
	gen       uint64
	cfg       *config.Config
	apps      map[string]*shared
	groups    map[string]*shared
	store     *cache.Store
	storeSize int64
	retiring  tracker

	// live are the listeners in config order, the admin listener last.
	live []*live
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
	s := &Site{opt: opt, log: opt.Logger, base: base, cancel: cancel, apps: map[string]*shared{}, groups: map[string]*shared{},
		cpu: cpushare.New(cpushare.Config{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	// The apps outlive ctx, but a stop while the site starts (ctx ends: a
	// signal) ends the builds and compiles of its first generation.
	stopBuilds := context.AfterFunc(ctx, cancel)
	g, err := s.build(ctx, cfg)
	stopBuilds()
	if err != nil {
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

// Listen binds the site listeners and the admin listener.
func (s *Site) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.planListeners(s.cfg)
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
	var first error
	select {
	case <-ctx.Done():
	case first = <-s.serveErr:
	}
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
	return s.retiring.wait(ctx)
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
	g, err := s.build(ctx, cfg)
	if err != nil {
		if p != nil {
			p.abort()
		}
		return err
	}
	old := s.cur.Swap(g)
	s.cfg = cfg
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
	return map[string]any{
		"generation": g.id, "config": s.opt.ConfigPath, "loaded": g.loaded.Format(time.RFC3339),
		"apps": g.appNames, "pools": pools, "upstreams": ups, "cache": map[string]any{"bytes": cacheBytes, "entries": cacheEntries},
		"tenants": tenants, "cpu_slots": s.cpu.Slots(),
	}
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
