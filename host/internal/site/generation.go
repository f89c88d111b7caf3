package site

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/appspec"
	"github.com/wasmsrv/wasmsrv/host/internal/cache"
	"github.com/wasmsrv/wasmsrv/host/internal/compress"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/deploy"
	"github.com/wasmsrv/wasmsrv/host/internal/filter"
	"github.com/wasmsrv/wasmsrv/host/internal/headers"
	"github.com/wasmsrv/wasmsrv/host/internal/limit"
	"github.com/wasmsrv/wasmsrv/host/internal/metrics"
	"github.com/wasmsrv/wasmsrv/host/internal/reqlog"
	"github.com/wasmsrv/wasmsrv/host/internal/reqtmpl"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/host/internal/static"
	"github.com/wasmsrv/wasmsrv/host/internal/upstream"
	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// generation is one config's worth of handlers. It is reference counted:
// the site holds one reference while it is current, each request one more.
type generation struct {
	id       uint64
	loaded   time.Time
	handler  http.Handler
	refs     atomic.Int64
	groups   map[string]*upstream.Group
	appNames []string
	apps     map[string]*apps.Running
	store    *cache.Store

	retireOnce atomic.Bool
	retire     func()
	retired    chan struct{} // closed once retire has released everything
}

func (g *generation) acquire() bool {
	for {
		n := g.refs.Load()
		if n <= 0 {
			return false
		}
		if g.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (g *generation) release() {
	if g.refs.Add(-1) == 0 {
		g.retire()
	}
}

// build makes a generation for cfg, reusing unchanged apps, upstream
// groups and the cache store. Called with s.mu held. On error everything
// it acquired is given back.
func (s *Site) build(ctx context.Context, cfg *config.Config) (_ *generation, err error) {
	var held []*shared // resources this generation holds a reference to
	var closers []func() error
	defer func() {
		if err != nil {
			for _, c := range closers {
				c()
			}
			s.releaseShared(held)
		}
	}()
	trusted := trustedPrefixes(cfg)

	appHandlers := map[string]http.Handler{}
	appsByName := map[string]*apps.Running{}
	var appNames []string
	for _, name := range sortedKeys(cfg.Apps) {
		// Pools outlive the reload request that opened them: give them the
		// site's lifetime, not the (admin) request's.
		sh, err := s.app(s.base, cfg, name)
		if err != nil {
			return nil, err
		}
		held = append(held, sh)
		appsByName[name] = sh.val.(*apps.Running)
		appHandlers[name] = appsByName[name].Handler
		if m := s.opt.Metrics; m != nil {
			appHandlers[name] = m.App(name, cfg.Apps[name].Tenant).Wrap(appHandlers[name])
		}
		if appsByName[name].Mode == runtime.ModeCGI {
			appHandlers[name] = cgiApp{appHandlers[name]}
		}
		appNames = append(appNames, name)
	}
	groups := map[string]*upstream.Group{}
	for _, name := range sortedKeys(cfg.Upstreams) {
		sh, err := s.group(name, cfg.Upstreams[name], trusted)
		if err != nil {
			return nil, err
		}
		held = append(held, sh)
		groups[name] = sh.val.(*upstream.Group)
	}
	if s.store == nil || s.storeSize != int64(cfg.Cache.MaxBytes) {
		// A new bound starts an empty cache; an unchanged one keeps entries
		// across reloads.
		s.store, s.storeSize = cache.NewStore(int64(cfg.Cache.MaxBytes)), int64(cfg.Cache.MaxBytes)
	}
	store := s.store
	if m := s.opt.Metrics; m != nil {
		var groupNames []string
		for name := range groups {
			groupNames = append(groupNames, name)
		}
		// Only a config that opened becomes current: the metrics of what it
		// dropped end with it.
		defer func() {
			if err == nil {
				// Deployed apps are not the file's to drop.
				m.Forget(append(slices.Clip(appNames), s.hostedNames()...), groupNames)
				m.SetCache(store.Stats)
			}
		}()
	}
	comp, err := compress.New(0)
	if err != nil {
		return nil, err
	}

	var routes []route.Route
	for i, rc := range cfg.Routes {
		var mws []func(http.Handler) http.Handler
		for j, mc := range rc.Middleware {
			sh, err := s.middleware(s.base, i, j, mc)
			if err != nil {
				return nil, err
			}
			held = append(held, sh)
			mws = append(mws, sh.val.(*apps.Running).Middleware)
		}
		var buckets limit.Buckets
		if rl := rc.RateLimit; rl != nil && rl.Shared {
			if buckets, err = s.buckets(cfg.Plugins.RedisURL); err != nil {
				return nil, fmt.Errorf("routes[%d].rate_limit.shared: %w", i, err)
			}
		}
		h, closer, err := s.routeHandler(i, rc, appHandlers, groups, store, comp, trusted, mws, buckets)
		if err != nil {
			return nil, err
		}
		if closer != nil {
			closers = append(closers, closer)
		}
		routes = append(routes, route.Route{
			Hosts: rc.Hosts, Prefix: rc.Path, Methods: rc.Methods, Strip: rc.Strip(), Handler: logFields(rc, h),
			Name: fmt.Sprintf("routes[%d]", i),
		})
	}
	var handler http.Handler = route.New(routes)
	if s.hosting != nil {
		handler = hostedFirst{s.hosting, handler}
	}
	if len(cfg.Filter.Rules) > 0 {
		rules := make([]filter.Rule, 0, len(cfg.Filter.Rules))
		for _, r := range cfg.Filter.Rules {
			fr := filter.Rule{Name: r.Name, Methods: r.Methods, Path: r.Path, Header: r.Header, HeaderPattern: r.HeaderPattern, Status: r.Status}
			for _, c := range r.CIDRs {
				p, _ := config.ParsePrefix(c)
				fr.CIDRs = append(fr.CIDRs, p)
			}
			rules = append(rules, fr)
		}
		if handler, err = filter.New(rules, cfg.Filter.DryRun, trusted, s.filterDenied(), handler, s.log); err != nil {
			return nil, err
		}
	}
	if cfg.Limits.ConnPerIP > 0 {
		handler = limit.Concurrency(cfg.Limits.ConnPerIP, trusted, s.limitCounts(), handler)
	}

	s.gen++
	g := &generation{id: s.gen, loaded: time.Now(), handler: handler, groups: groups, appNames: appNames, apps: appsByName, store: store,
		retired: make(chan struct{})}
	g.refs.Store(1)
	g.retire = func() {
		s.retiring.add()
		go func() {
			defer s.retiring.done()
			for _, c := range closers {
				c()
			}
			s.mu.Lock()
			s.releaseShared(held)
			s.mu.Unlock()
			s.log.Debug("generation retired", "generation", g.id)
			close(g.retired)
		}()
	}
	return g, nil
}

// app returns the shared app for this config, opening it if the config is
// new or changed. Its errors are the config's: FILE:LINE: apps.NAME.KEY: message.
func (s *Site) app(ctx context.Context, cfg *config.Config, name string) (*shared, error) {
	ac := cfg.Apps[name]
	// %v prints maps sorted: a stable key. The source's fingerprint makes a
	// reload pick up a rebuilt module or edited package even when the
	// config itself did not change.
	key := name + "\x00" + fmt.Sprintf("%+v", ac) + "\x00" + fingerprint(ac.Source())
	if sh := s.apps[key]; sh != nil {
		sh.refs++
		return sh, nil
	}
	if s.opt.Engine == nil {
		return nil, cfg.ErrorAt("apps."+name, errors.New("no Wasm engine configured"))
	}
	spec, err := appspec.Of(name, &ac, appspec.Host{BuildCacheDir: s.opt.BuildCacheDir, Plugins: s.opt.Plugins, Progress: s.opt.Progress, CPU: s.cpu})
	if err == nil {
		var a *apps.Running
		opened := s.instrument(name, spec.Tenant, &spec)
		if a, err = apps.Open(ctx, s.opt.Engine, spec, s.log); err == nil {
			opened(a)
			s.log.Info("app started", "app", name, "mode", a.Mode, "wasm", a.Wasm)
			sh := &shared{key: key, refs: 1, val: a, close: a.Close}
			s.apps[key] = sh
			return sh, nil
		}
	}
	if errors.Is(err, runtime.ErrPoolClosed) {
		return nil, err // the site is stopping: not the config's fault
	}
	return nil, appspec.Error(cfg, name, err)
}

func (s *Site) group(name string, uc config.Upstream, trusted []netip.Prefix) (*shared, error) {
	key := name + "\x00" + fmt.Sprintf("%+v|%v", uc, trusted)
	if sh := s.groups[key]; sh != nil {
		sh.refs++
		return sh, nil
	}
	kind, hname, _ := config.ParseHashKey(uc.HashKey)
	gc := upstream.Config{
		Name: name, Policy: uc.Policy, HashKind: kind, HashName: hname,
		Keepalive: uc.Keepalive, ConnectTimeout: uc.ConnectTimeout.D(), ResponseHeaderTimeout: uc.ResponseHeaderTimeout.D(),
		ReadTimeout: uc.ReadTimeout.D(),
		MaxFails:    uc.MaxFails, FailTimeout: uc.FailTimeout.D(), Retries: uc.Retries, RetryBudget: uc.RetryBudget,
		Health: upstream.HealthConfig{Path: uc.Health.Path, Interval: uc.Health.Interval.D(), Timeout: uc.Health.Timeout.D(),
			Passes: uc.Health.Passes, Fails: uc.Health.Fails},
		Trusted: trusted,
	}
	var urls []string
	for _, m := range uc.Servers {
		gc.Servers = append(gc.Servers, upstream.ServerConfig{URL: m.URL, Weight: m.Weight})
		urls = append(urls, m.URL)
	}
	var gm *metrics.Group
	if m := s.opt.Metrics; m != nil {
		gm = m.Group(name, urls)
		gc.Observer = gm
	}
	g, err := upstream.New(gc, s.log)
	if err != nil {
		return nil, fmt.Errorf("upstreams.%s: %w", name, err)
	}
	if gm != nil {
		servers := g.Servers()
		gm.SetHealth(func(i int) bool { return servers[i].Available() })
	}
	g.Start(s.base)
	sh := &shared{key: key, refs: 1, val: g, close: func(context.Context) error { g.Close(); return nil }}
	s.groups[key] = sh
	return sh, nil
}

// releaseShared drops one reference from each; the last one closes it (in
// the background: draining an app pool can take a while). s.mu held.
func (s *Site) releaseShared(held []*shared) {
	for _, sh := range held {
		sh.refs--
		if sh.refs > 0 {
			continue
		}
		delete(s.apps, sh.key)
		delete(s.groups, sh.key)
		s.retiring.add()
		go func() {
			defer s.retiring.done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := sh.close(ctx); err != nil {
				s.log.Warn("closing retired resource", "err", err)
			}
		}()
	}
}

// routeHandler builds one route's target and its middleware, inner to
// outer: target → cache → http-wasm middleware (mws, the first listed
// outermost) → compression → size limits → per-IP concurrency → rate limit →
// header edits (so 429s and cache HITs get them too). The http-wasm
// middleware sees every request, cache hits included (an auth check), and
// uncompressed bodies; rate limits and size limits refuse before it runs.
func (s *Site) routeHandler(i int, rc config.Route, appHandlers map[string]http.Handler, groups map[string]*upstream.Group,
	store *cache.Store, comp func(http.Handler) http.Handler, trusted []netip.Prefix, mws []func(http.Handler) http.Handler, buckets limit.Buckets) (http.Handler, func() error, error) {
	key := fmt.Sprintf("routes[%d]", i)
	var h http.Handler
	var closer func() error
	origins, err := wsorigin.Parse(rc.WSOrigins)
	if err != nil {
		return nil, nil, fmt.Errorf("%s.ws_origins%w", key, err)
	}
	target := func(name string) http.Handler {
		if a, ok := appHandlers[name]; ok {
			return matchedRoute(a, rc.Path)
		}
		return wsorigin.Guard(origins, s.log.With("route", key), groups[name])
	}
	switch {
	case rc.App != "":
		h = matchedRoute(appHandlers[rc.App], rc.Path)
	case rc.Upstream != "":
		h = target(rc.Upstream)
		// Slow uploads wait here, not in the upstream's workers.
		h = bodybuf.Handler(bodybuf.Config{Memory: rc.ReadAhead(), Timeout: rc.BodyTimeout.D()}, 0, s.log, h)
	case rc.Static != "":
		var fb http.Handler
		if rc.Fallback != "" {
			fb = target(rc.Fallback)
		}
		sh, err := static.New(static.Config{Root: rc.Static, Index: rc.Index, Fallback: fb, CacheControl: rc.CacheControl, Listing: rc.Listing})
		if err != nil {
			return nil, nil, fmt.Errorf("%s.static: %w", key, err)
		}
		h, closer = sh, sh.Close
	case rc.Redirect != "":
		var err error
		if h, err = redirect(rc.Redirect, rc.RedirectCode, trusted); err != nil {
			return nil, nil, fmt.Errorf("%s.redirect: %w", key, err)
		}
	}
	if rc.Cache != nil {
		p := cache.Policy{Key: rc.Cache.Key, TTL: map[int]time.Duration{},
			StaleWhileRevalidate: rc.Cache.StaleWhileRevalidate.D(), StaleIfError: rc.Cache.StaleIfError.D()}
		for code, d := range rc.Cache.TTL {
			if code == "default" {
				p.Default = d.D()
				continue
			}
			n, _ := strconv.Atoi(code)
			p.TTL[n] = d.D()
		}
		ch, err := cache.New(store, p, h, s.log)
		if err != nil {
			return nil, closer, fmt.Errorf("%s.cache: %w", key, err)
		}
		h = ch
	}
	for j := len(mws) - 1; j >= 0; j-- {
		h = mws[j](h)
	}
	if rc.Compression() {
		h = comp(h)
	}
	if rc.MaxBody > 0 || rc.MaxHeader > 0 {
		h = limit.Size(int64(rc.MaxBody), int64(rc.MaxHeader), s.limitCounts(), h)
	}
	if rc.ConnPerIP > 0 {
		h = limit.Concurrency(rc.ConnPerIP, trusted, s.limitCounts(), h)
	}
	if rl := rc.RateLimit; rl != nil {
		rate := limit.RateConfig{Rate: rl.Rate, Burst: rl.Burst, PerIP: rl.Per == "ip", Trusted: trusted, Counts: s.limitCounts()}
		if buckets != nil {
			// Named by what the route matches, the same on every node with this file.
			rate.Shared, rate.Key = buckets, fmt.Sprintf("%s|%s|%s", strings.Join(rc.Hosts, ","), rc.Path, strings.Join(rc.Methods, ","))
		}
		h = limit.NewRate(rate, h)
	}
	if hd := rc.Headers; hd != nil {
		rules := func(r config.HeaderRules) headers.Rules {
			return headers.Rules{Set: r.Set, Add: r.Add, Remove: r.Remove}
		}
		var err error
		if h, err = headers.New(headers.Config{Request: rules(hd.Request), Response: rules(hd.Response), Trusted: trusted}, h); err != nil {
			return nil, closer, fmt.Errorf("%s.headers.%w", key, err)
		}
	}
	return h, closer, nil
}

// hostedNames are the namespaces of the deployed apps (none without hosting).
func (s *Site) hostedNames() []string {
	if s.hosting == nil {
		return nil
	}
	return s.hosting.Names()
}

// instrument gives an app's spec what the site gives every app, the file's
// and the deployed ones: the pool observers (metrics, the status page's crash
// ring) and tracing. It returns what to do once the app is open: point the
// metrics at its pool and plugins' store, and the handler that serves it
// counted (the file's apps are counted where the routes are built, per
// generation; deployed apps by this handler).
func (s *Site) instrument(name, tenant string, spec *apps.Spec) func(*apps.Running) http.Handler {
	var am *metrics.App
	if m := s.opt.Metrics; m != nil {
		am = m.App(name, tenant)
		spec.Pool.Observer = runtime.Observers(spec.Pool.Observer, am)
		spec.WebSocket.Observer = am
		spec.PluginCalls = am.PluginCalls
	}
	spec.Pool.Observer = runtime.Observers(spec.Pool.Observer, s.observer)
	spec.Traced = s.opt.Tracer != nil
	return func(a *apps.Running) http.Handler {
		h := a.Handler
		if am != nil {
			am.SetPool(a.PoolStats)
			am.SetStored(a.StoredBytes)
			h = am.Wrap(h)
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if f := reqlog.Of(w); f != nil {
				f.App = name
			}
			h.ServeHTTP(w, r)
		})
	}
}

// logFields names the route and its app or upstream group in the request's
// access-log record (package reqlog). The route is its path prefix, after its
// hosts when it names any ("api.example.com/v1/").
func logFields(rc config.Route, h http.Handler) http.Handler {
	label := rc.Path
	if len(rc.Hosts) > 0 {
		label = strings.Join(rc.Hosts, ",") + rc.Path
	}
	app, group := rc.App, rc.Upstream
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := reqlog.Of(w); f != nil {
			f.Route, f.App, f.Upstream = label, app, group
		}
		h.ServeHTTP(w, r)
	})
}

// hostedFirst sends a request whose Host a deployed app claims to it, any
// other to the site's routes. It sits inside the site-wide filter and
// connection limits, which apply to deployed apps too.
type hostedFirst struct {
	m      *deploy.Manager
	routes http.Handler
}

func (h hostedFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a := h.m.Lookup(r.Host); a != nil {
		a.ServeHTTP(w, r)
		return
	}
	h.routes.ServeHTTP(w, r)
}

// cgiApp marks a CGI app's handler: its commands learn the route's prefix
// (X_MATCHED_ROUTE), which costs other apps nothing.
type cgiApp struct{ http.Handler }

// matchedRoute hands a CGI app the route's path prefix (X_MATCHED_ROUTE);
// other handlers are returned as they are.
func matchedRoute(a http.Handler, prefix string) http.Handler {
	if _, cgi := a.(cgiApp); !cgi {
		return a
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.ServeHTTP(w, host.WithMatchedRoute(r, prefix))
	})
}

// redirect answers with code to target, a request template
// (package reqtmpl): "https://{host}{uri}" sends plain HTTP to HTTPS.
func redirect(target string, code int, trusted []netip.Prefix) (http.Handler, error) {
	t, err := reqtmpl.Compile(target)
	if err != nil {
		return nil, err
	}
	vars := reqtmpl.Vars{Trusted: trusted}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, t.String(r, vars), code)
	}), nil
}

// fingerprint summarises a module file or a package directory's files
// (size and modification time), enough to notice an edit or a rebuild.
func fingerprint(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if !st.IsDir() {
		return fmt.Sprintf("%d/%d", st.Size(), st.ModTime().UnixNano())
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			fmt.Fprintf(&b, "%s/%d/%d;", e.Name(), fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// middleware returns the shared http-wasm middleware j of route i, opening it
// if its config is new or changed (the module's fingerprint included, as for
// apps).
func (s *Site) middleware(ctx context.Context, i, j int, mc config.Middleware) (*shared, error) {
	key := fmt.Sprintf("routes[%d].middleware[%d]", i, j)
	conf, err := mc.ConfigBytes()
	if err != nil {
		return nil, fmt.Errorf("%s.config: %w", key, err)
	}
	skey := key + "\x00" + fmt.Sprintf("%s|%d|%d|%d|%d", mc.Module, mc.PoolSize, mc.MemoryLimit, mc.RequestTimeout, mc.BufferLimit) +
		"\x00" + string(conf) + "\x00" + fingerprint(mc.Module)
	if sh := s.apps[skey]; sh != nil {
		sh.refs++
		return sh, nil
	}
	if s.opt.Engine == nil {
		return nil, fmt.Errorf("%s: no Wasm engine configured", key)
	}
	a, err := apps.Open(ctx, s.opt.Engine, apps.Spec{
		// A name of its own: the log says which middleware; it has no plugins.
		Name: fmt.Sprintf("route%d-middleware%d", i, j), Source: mc.Module, Mode: runtime.ModeHTTPWasm, Progress: s.opt.Progress,
		Pool:        runtime.PoolConfig{Workers: mc.PoolSize, RequestTimeout: mc.RequestTimeout.D(), Observer: s.observer},
		MemoryLimit: int64(mc.MemoryLimit),
		HTTPWasm:    apps.HTTPWasmSpec{Config: conf, BufferLimit: int64(mc.BufferLimit)},
		// Bodies are read ahead (memory, then a temp file) before a request
		// takes an instance, as for apps: a slow upload does not hold one.
		BodyBuffer: bodybuf.Config{Memory: int64(config.DefaultApp().BufferBody)},
	}, s.log)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	s.log.Info("middleware started", "route", i, "middleware", j, "wasm", a.Wasm)
	sh := &shared{key: skey, refs: 1, val: a, close: a.Close}
	s.apps[skey] = sh
	return sh, nil
}

// limitCounts are the counters of the limits' refusals, nil without metrics.
func (s *Site) limitCounts() *limit.Counts {
	if s.opt.Metrics == nil {
		return nil
	}
	return &s.opt.Metrics.Rejected.Limits
}

// filterDenied counts the filter's denials, nil without metrics.
func (s *Site) filterDenied() *atomic.Int64 {
	if s.opt.Metrics == nil {
		return nil
	}
	return &s.opt.Metrics.Rejected.Filter
}
