// Package deploy runs a hosting site's deployed apps and serves the deploy API
// (api.go) on the admin listener. Each app is swapped on its own: a change opens
// the pools it needs beside the running ones, swaps the app's routing in one
// atomic store, and retires what the old routing alone used once its requests
// and WebSockets end (or the drain timeout closes them). No other app is
// touched, and requests never wait for a change.
package deploy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/appspec"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/route"
	"github.com/wasmsrv/wasmsrv/host/internal/store"
	"github.com/wasmsrv/wasmsrv/host/internal/tenant"
	"github.com/wasmsrv/wasmsrv/host/internal/websocket"
	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// resync is how often a node of a shared store compares its apps with the store
// besides the change notices.
const resync = 30 * time.Second

// maxValidations bounds the uploads read and validated at once (each holds its
// module in memory and compiles it).
const maxValidations = 2

// VersionHeader names the version that answered, on every response of a
// deployed app (its id's first 12 hex digits).
const VersionHeader = "Wasmsrv-Version"

// Options configure a Manager.
type Options struct {
	Store         store.Store
	Engine        *runtime.Engine
	Plugins       *registry.Registry
	BuildCacheDir string
	Progress      *progress.Meter
	Hosting       config.Hosting
	// OperatorToken is the admin token: the operator's credential on the API.
	OperatorToken string
	// FileApps are the names of the site file's apps (a tenant's namespace may
	// not hold one).
	FileApps []string
	Logger   *slog.Logger
	// CPU is the server's fair-share gate (nil: none): deployed apps run their
	// guests through it as their tenant, like the file's apps.
	CPU *cpushare.Scheduler
	// Instrument, if set, gives each version's spec what the site gives its
	// own apps before it opens (pool observers: metrics, the crash ring;
	// tracing) and returns what serves the opened app: its handler wrapped for
	// per-request metrics and the access log. The app is named by its
	// namespace (TENANT_APP).
	Instrument func(name, tenant string, spec *apps.Spec) func(*apps.Running) http.Handler
}

// Manager runs the deployed apps of a site.
type Manager struct {
	opt  Options
	log  *slog.Logger
	base context.Context
	stop context.CancelFunc

	operatorToken atomic.Pointer[string]

	hosts atomic.Pointer[map[string]*live] // host name → app, replaced whole on a change
	// epoch is the store's identity at the last Sync (store.EpochKey; mu).
	epoch string
	gates atomic.Pointer[map[string]*gate] // tenant → its gate, replaced whole on a change

	mu    sync.Mutex // the tables below
	apps  map[string]*live
	pools map[string]*pool
	// fileHosts are the host patterns of the site file's routes (CheckFile).
	fileHosts []string
	open      map[*pool]struct{} // every pool not closed yet
	tenants   map[string]*gate
	closing   sync.WaitGroup

	// validating holds a slot per upload being read and validated.
	validating chan struct{}
	uploading  map[string]bool // tenants with an upload in progress (mu)
}

// live is one deployed app: its routing, swapped atomically.
type live struct {
	ns     string
	tenant string
	name   string
	cur    atomic.Pointer[routing]
	apply  sync.Mutex // serialises this app's changes
	hosts  []string
}

// routing is where an app's requests go: Canary takes Percent of them.
type routing struct {
	rev     uint64
	tenant  string // tenantPrint of the tenant it was made under
	primary *pool
	canary  *pool
	percent int
	sticky  bool
}

// pool is one version's running app. refs counts the requests on it, plus one
// while any routing uses it (routed > 0); the last release closes it.
type pool struct {
	key     string
	version string
	run     *apps.Running
	handler http.Handler // run.Handler, instrumented
	refs    atomic.Int64
	onZero  func()
	routed  int // routings using it (Manager.mu)
	// versionHeader is the VersionHeader value, made once: responses share it
	// (an append to it reallocates: its capacity is its length).
	versionHeader []string
	timer         *time.Timer
	closeOnce     sync.Once
}

func (p *pool) acquire() bool {
	for {
		n := p.refs.Load()
		if n <= 0 {
			return false
		}
		if p.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (p *pool) release() {
	if p.refs.Add(-1) == 0 {
		p.onZero()
	}
}

// New makes a manager; Start opens the stored apps.
func New(opt Options) *Manager {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	base, stop := context.WithCancel(context.Background())
	m := &Manager{opt: opt, log: opt.Logger.With("hosting", true), base: base, stop: stop,
		apps: map[string]*live{}, pools: map[string]*pool{}, open: map[*pool]struct{}{}, validating: make(chan struct{}, maxValidations), uploading: map[string]bool{}, tenants: map[string]*gate{}}
	m.hosts.Store(&map[string]*live{})
	m.gates.Store(&map[string]*gate{})
	m.SetOperatorToken(opt.OperatorToken)
	return m
}

// Start brings the file's tenants into the store and opens every stored app's
// versions. An app that cannot open is logged and left out; the others serve.
func (m *Manager) Start(ctx context.Context, fileTenants map[string]config.Tenant) error {
	if err := m.FileTenants(ctx, fileTenants); err != nil {
		return err
	}
	if ch := m.opt.Store.Changes(); ch != nil {
		go func() {
			// A notice lost (a dropped Redis connection) is caught up by a
			// periodic sync.
			tick := time.NewTicker(resync)
			defer tick.Stop()
			for {
				select {
				case <-m.base.Done():
					return
				case <-ch:
				case <-tick.C:
				}
				if err := m.Sync(m.base); err != nil {
					m.log.Warn("hosting: applying another node's change", "err", err)
				}
			}
		}()
	}
	return nil
}

// FileTenants puts the site file's tenants in the store (at start and on a
// reload) and applies what changed.
func (m *Manager) FileTenants(ctx context.Context, fileTenants map[string]config.Tenant) error {
	err := m.opt.Store.Update(ctx, func(tx *store.Tx) error {
		for _, t := range fileTenants {
			if err := tx.PutTenant(t); err != nil {
				return err
			}
			if err := tx.Log(store.Audit{Who: "site file", Tenant: t.Name, Action: "tenant.file"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return m.Sync(ctx)
}

// CheckFile refuses a site file whose apps have names in a tenant's namespace
// (TENANT_...), or whose routes name a host a tenant's app claims (tenants of
// the API included); it keeps both for the API's own checks.
func (m *Manager) CheckFile(ctx context.Context, cfg *config.Config) error {
	var (
		ts   []config.Tenant
		apps []store.App
	)
	err := m.opt.Store.View(ctx, func(tx *store.Tx) (err error) {
		if ts, err = tx.Tenants(); err != nil {
			return err
		}
		apps, err = tx.Apps("")
		return err
	})
	if err != nil {
		return err
	}
	names := make([]string, 0, len(cfg.Apps))
	for n := range cfg.Apps {
		names = append(names, n)
		for _, t := range ts {
			if strings.HasPrefix(n, t.Name+appname.TenantSep) {
				return cfg.ErrorAt("apps."+n, fmt.Errorf("the name is in tenant %q's namespace (%s%sAPP): rename the app", t.Name, t.Name, appname.TenantSep))
			}
		}
	}
	var hosts []string
	for i, r := range cfg.Routes {
		for _, pat := range r.Hosts {
			hosts = append(hosts, pat)
			for _, a := range apps {
				for _, h := range a.Hosts {
					if route.MatchHost(pat, h) {
						return cfg.ErrorAt(fmt.Sprintf("routes[%d].hosts", i), fmt.Errorf("%q is claimed by tenant %q's app %q", h, a.Tenant, a.Name))
					}
				}
			}
		}
	}
	m.mu.Lock()
	m.opt.FileApps, m.fileHosts = names, hosts
	m.mu.Unlock()
	return nil
}

// claimable refuses a host name the site's routes name (409) or the tenant may
// not claim (403).
func (m *Manager) claimable(t config.Tenant, h string) error {
	m.mu.Lock()
	file := m.fileHosts
	m.mu.Unlock()
	for _, pat := range file {
		if route.MatchHost(pat, h) {
			return fmt.Errorf("%q is served by the site's routes: %w", h, store.ErrHostTaken)
		}
	}
	if len(t.Hosts) == 0 {
		return nil
	}
	for _, pat := range t.Hosts {
		if route.MatchHost(pat, h) {
			return nil
		}
	}
	return &tenant.Forbidden{Msg: fmt.Sprintf("hosts: tenant %q may claim %s, not %q", t.Name, strings.Join(t.Hosts, ", "), h)}
}

// SetOperatorToken changes the operator's token (a reload).
func (m *Manager) SetOperatorToken(tok string) { m.operatorToken.Store(&tok) }

// Sync makes the running apps match the store: apps whose revision changed
// are applied, removed ones closed (another node's changes, a start).
func (m *Manager) Sync(ctx context.Context) error {
	var (
		all     []store.App
		tenants = map[string]config.Tenant{}
		epoch   string
	)
	err := m.opt.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		if epoch, err = tx.Epoch(); err != nil {
			return err
		}
		ts, err := tx.Tenants()
		if err != nil {
			return err
		}
		for _, t := range ts {
			tenants[t.Name] = t
		}
		all, err = tx.Apps("")
		return err
	})
	if err != nil {
		return err
	}
	m.mu.Lock()
	known := m.epoch
	if epoch != "" {
		m.epoch = epoch
	}
	running := len(m.apps)
	m.mu.Unlock()
	if epoch == "" || known != "" && epoch != known {
		if epoch == "" {
			// The store lost its state (a Redis restarted without
			// persistence): its emptiness is not a list of deletions.
			m.log.Error("hosting: the store has lost its state (Redis restarted without persistence or replicas?); the running apps serve on as they are until a change is written to it",
				"apps", running)
			return nil
		}
		m.log.Warn("hosting: the store was replaced (it lost its state and has been written since); following it", "apps", running)
	}
	seen := map[string]bool{}
	for _, a := range all {
		ns, err := appname.Namespace(a.Tenant, a.Name)
		if err != nil {
			m.log.Error("hosting: stored app has a bad name", "tenant", a.Tenant, "app", a.Name, "err", err)
			continue
		}
		seen[ns] = true
		m.mu.Lock()
		l := m.apps[ns]
		m.mu.Unlock()
		if l != nil {
			if rt := l.cur.Load(); rt != nil && rt.rev == a.Revision && rt.tenant == tenantPrint(tenants[a.Tenant]) {
				continue
			}
		}
		if err := m.apply(ctx, tenants[a.Tenant], a); err != nil {
			m.log.Error("hosting: app not started", "tenant", a.Tenant, "app", a.Name, "err", err)
		}
	}
	m.mu.Lock()
	var gone []*live
	for ns, l := range m.apps {
		if !seen[ns] {
			gone = append(gone, l)
		}
	}
	m.mu.Unlock()
	for _, l := range gone {
		m.remove(l)
	}
	for name, t := range tenants {
		m.setGate(t)
		_ = name
	}
	return nil
}

// Names are the namespaces (TENANT_APP) of the deployed apps.
func (m *Manager) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Collect(maps.Keys(m.apps))
}

// Lookup returns the handler of the deployed app host (a request's Host, port
// allowed) belongs to, nil when none does.
func (m *Manager) Lookup(host string) http.Handler {
	if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
		host = host[:i] // the port (net.SplitHostPort allocates an error without one)
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	l := (*m.hosts.Load())[host]
	if l == nil {
		return nil
	}
	if g := (*m.gates.Load())[l.tenant]; g != nil && (g.rate != nil || g.sem != nil) {
		return g.wrap(l) // (a gate of the uploads quota alone has nothing for requests)
	}
	return l
}

// ServeHTTP serves r on the app's current routing: the pool is taken before
// the request runs and given back after, so a swap never cuts it.
func (l *live) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for range 1000 {
		rt := l.cur.Load()
		if rt == nil || rt.primary == nil {
			http.Error(w, "503 no version of this app is active", http.StatusServiceUnavailable)
			return
		}
		p := rt.pick(r)
		if p.acquire() {
			serve(p, w, r)
			return
		}
		// p retired between the load and the acquire: the new routing is in place.
	}
	http.Error(w, "503 the app is changing", http.StatusServiceUnavailable)
}

func serve(p *pool, w http.ResponseWriter, r *http.Request) {
	defer p.release()
	w.Header()[VersionHeader] = p.versionHeader
	if websocket.IsUpgrade(r) {
		// The socket outlives the request: it holds the pool until it closes
		// (or the drain timeout closes the pool, and it).
		w = &holdingWriter{ResponseWriter: w, p: p}
	}
	p.handler.ServeHTTP(w, r)
}

func (rt *routing) pick(r *http.Request) *pool {
	if rt.canary == nil || rt.percent <= 0 {
		return rt.primary
	}
	var bucket int
	if rt.sticky {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		h := fnv.New32a()
		h.Write([]byte(host))
		bucket = int(h.Sum32() % 100)
	} else {
		bucket = rand.IntN(100)
	}
	if bucket < rt.percent {
		return rt.canary
	}
	return rt.primary
}

// appConfig is an app's settings for version id, bounded by its tenant.
func (m *Manager) appConfig(ctx context.Context, t config.Tenant, a store.App, id string) (config.App, error) {
	path, err := m.opt.Store.ModulePath(ctx, id)
	if err != nil {
		return config.App{}, err
	}
	ac, err := config.AppSettings(a.Settings, path)
	if err != nil {
		return config.App{}, err
	}
	if err := tenant.Apply(t, &ac, a.Settings, a.Secrets); err != nil {
		return config.App{}, err
	}
	return ac, nil
}

// spec is the apps.Spec of an app's settings, through the one mapping.
func (m *Manager) spec(ns string, t config.Tenant, ac *config.App) (apps.Spec, error) {
	spec, err := appspec.Of(ns, ac, appspec.Host{BuildCacheDir: m.opt.BuildCacheDir, Plugins: m.opt.Plugins, Progress: m.opt.Progress, CPU: m.opt.CPU})
	if err != nil {
		return apps.Spec{}, err
	}
	spec.Tenant = t.Name
	return spec, nil
}

// Check loads and validates wasm (a file) as version of a under its settings,
// as Open would, and closes it: what deploy refuses with 422.
func (m *Manager) Check(ctx context.Context, t config.Tenant, a store.App, wasmPath string) error {
	ns, err := appname.Namespace(a.Tenant, a.Name)
	if err != nil {
		return err
	}
	ac, err := config.AppSettings(a.Settings, wasmPath)
	if err != nil {
		return err
	}
	if err := tenant.Apply(t, &ac, a.Settings, a.Secrets); err != nil {
		return err
	}
	spec, err := m.spec(ns, t, &ac)
	if err != nil {
		return err
	}
	_, err = apps.Check(ctx, m.opt.Engine, spec, m.log)
	return err
}

// tenantPrint summarises what of a tenant shapes its apps (grants, sections,
// quotas): a change re-applies them.
func tenantPrint(t config.Tenant) string {
	b, _ := json.Marshal(struct {
		G []string
		P map[string]map[string]any
		Q config.Quotas
	}{t.Grants, t.Plugins, t.Quotas})
	return string(b)
}

// fingerprint keys a pool: the same version under the same settings is the
// same pool (promoting a canary reuses it).
func fingerprint(ns, id string, ac config.App) string {
	b, _ := json.Marshal(ac)
	sum := sha256.Sum256(b)
	return ns + "\x00" + id + "\x00" + hex.EncodeToString(sum[:8])
}

// apply makes the app's routing match a: opens what is missing, swaps,
// releases the old routing's pools.
func (m *Manager) apply(ctx context.Context, t config.Tenant, a store.App) error {
	ns, err := appname.Namespace(a.Tenant, a.Name)
	if err != nil {
		return err
	}
	var l *live
	for {
		m.mu.Lock()
		l = m.apps[ns]
		if l == nil {
			l = &live{ns: ns, tenant: a.Tenant, name: a.Name}
			m.apps[ns] = l
		}
		m.mu.Unlock()
		l.apply.Lock()
		m.mu.Lock()
		current := m.apps[ns] == l
		m.mu.Unlock()
		if current {
			break
		}
		l.apply.Unlock() // removed while this change waited: start again
	}
	defer l.apply.Unlock()
	// The store is the truth: a change that lost a race to a later one or to a
	// delete applies what is stored now.
	err = m.opt.Store.View(ctx, func(tx *store.Tx) error {
		cur, err := tx.App(a.Tenant, a.Name)
		if err != nil {
			return err
		}
		if cur.Revision >= a.Revision {
			a = cur
			t, err = tx.Tenant(a.Tenant)
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		m.removeLocked(l)
		return nil
	}
	if err != nil {
		return err
	}
	tp := tenantPrint(t)
	if rt := l.cur.Load(); rt != nil && (rt.rev > a.Revision || rt.rev == a.Revision && rt.tenant == tp) {
		return nil // a newer change got here first, or nothing changed
	}
	rt := &routing{rev: a.Revision, tenant: tp, percent: a.Percent, sticky: a.Sticky}
	var taken []*pool
	undo := func() {
		for _, p := range taken {
			m.unroute(p)
		}
	}
	if a.Active != "" {
		if rt.primary, err = m.take(ctx, ns, t, a, a.Active); err != nil {
			return err
		}
		taken = append(taken, rt.primary)
	}
	if a.Canary != "" && a.Percent > 0 && a.Canary != a.Active {
		if rt.canary, err = m.take(ctx, ns, t, a, a.Canary); err != nil {
			undo()
			return err
		}
		taken = append(taken, rt.canary)
	}
	old := l.cur.Swap(rt)
	m.mu.Lock()
	l.hosts = a.Hosts
	m.rebuildHosts()
	m.mu.Unlock()
	m.unrouteAll(old)
	m.log.Info("hosting: app routing changed", "tenant", a.Tenant, "app", a.Name, "revision", a.Revision,
		"active", short(a.Active), "canary", short(a.Canary), "percent", a.Percent)
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// take returns the pool of version id of a with one reference for the
// caller's routing, opening it if needed.
func (m *Manager) take(ctx context.Context, ns string, t config.Tenant, a store.App, id string) (*pool, error) {
	ac, err := m.appConfig(ctx, t, a, id)
	if err != nil {
		return nil, err
	}
	key := fingerprint(ns, id, ac)
	m.mu.Lock()
	if p := m.pools[key]; p != nil {
		// In the table means routed: the routings' one reference is held.
		p.routed++
		m.mu.Unlock()
		return p, nil
	}
	m.mu.Unlock()
	spec, err := m.spec(ns, t, &ac)
	if err != nil {
		return nil, err
	}
	var served func(*apps.Running) http.Handler
	if m.opt.Instrument != nil {
		served = m.opt.Instrument(ns, t.Name, &spec)
	}
	run, err := apps.Open(m.base, m.opt.Engine, spec, m.log)
	if err != nil {
		return nil, err
	}
	p := &pool{key: key, version: id, run: run, handler: run.Handler, routed: 1, versionHeader: []string{id[:12]}}
	if served != nil {
		p.handler = served(run)
	}
	p.refs.Store(1)
	p.onZero = func() { m.closePool(p, "drained") }
	m.mu.Lock()
	m.pools[key] = p
	m.open[p] = struct{}{}
	m.mu.Unlock()
	m.log.Info("hosting: version started", "tenant", t.Name, "app", a.Name, "version", short(id), "mode", run.Mode)
	return p, nil
}

// unroute drops a routing's use of p. The last routing gone, p takes no new
// requests; it closes when its last request ends, or at the drain timeout with
// requests and WebSockets still on it.
func (m *Manager) unroute(p *pool) {
	m.mu.Lock()
	p.routed--
	last := p.routed == 0
	if last && m.pools[p.key] == p {
		delete(m.pools, p.key)
	}
	if last {
		p.timer = time.AfterFunc(m.opt.Hosting.DrainTimeout.D(), func() { m.closePool(p, "drain timeout") })
	}
	m.mu.Unlock()
	if last {
		p.release()
	}
}

// closePool closes p once: it drained, or the drain timeout came.
func (m *Manager) closePool(p *pool, why string) {
	p.closeOnce.Do(func() {
		m.mu.Lock()
		if p.timer != nil {
			p.timer.Stop()
		}
		delete(m.open, p)
		m.mu.Unlock()
		m.closing.Add(1)
		go func() {
			defer m.closing.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			m.log.Info("hosting: version closed", "app", p.run.Name, "version", short(p.version), "why", why)
			if err := p.run.Close(ctx); err != nil {
				m.log.Warn("hosting: closing a retired version", "version", short(p.version), "err", err)
			}
		}()
	})
}

func (m *Manager) unrouteAll(rt *routing) {
	if rt == nil {
		return
	}
	for _, p := range []*pool{rt.primary, rt.canary} {
		if p != nil {
			m.unroute(p)
		}
	}
}

// rebuildHosts publishes a new host table. m.mu held.
func (m *Manager) rebuildHosts() {
	t := make(map[string]*live, len(m.apps))
	for _, l := range m.apps {
		for _, h := range l.hosts {
			t[h] = l
		}
	}
	m.hosts.Store(&t)
}

// remove stops serving an app and releases its pools.
func (m *Manager) remove(l *live) {
	l.apply.Lock()
	defer l.apply.Unlock()
	m.removeLocked(l)
}

// removeLocked is remove with l.apply held.
func (m *Manager) removeLocked(l *live) {
	m.mu.Lock()
	if m.apps[l.ns] == l {
		delete(m.apps, l.ns)
	}
	m.rebuildHosts()
	m.mu.Unlock()
	m.unrouteAll(l.cur.Swap(&routing{}))
	m.log.Info("hosting: app removed", "tenant", l.tenant, "app", l.name)
}

// Close stops every app, waiting (within ctx) for them to drain.
func (m *Manager) Close(ctx context.Context) error {
	m.stop()
	m.mu.Lock()
	var all []*live
	for _, l := range m.apps {
		all = append(all, l)
	}
	m.mu.Unlock()
	for _, l := range all {
		m.remove(l)
	}
	m.mu.Lock()
	var open []*pool
	for p := range m.open {
		open = append(open, p)
	}
	m.mu.Unlock()
	for _, p := range open {
		m.closePool(p, "stopping")
	}
	done := make(chan struct{})
	go func() { m.closing.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("hosting: apps still draining: %w", ctx.Err())
	}
}

// AppStatus is a deployed app as the admin /status shows it.
type AppStatus struct {
	Tenant  string        `json:"tenant"`
	App     string        `json:"app"`
	Hosts   []string      `json:"hosts"`
	Active  string        `json:"active,omitempty"`
	Canary  string        `json:"canary,omitempty"`
	Percent int           `json:"percent,omitempty"`
	Pools   []apps.Status `json:"pools,omitempty"`
	// Draining counts pools no routing uses any more that still have requests
	// or WebSockets.
	Draining int `json:"draining,omitempty"`
}

// Status reports the running deployed apps, by namespace.
func (m *Manager) Status() map[string]AppStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]AppStatus, len(m.apps))
	for ns, l := range m.apps {
		st := AppStatus{Tenant: l.tenant, App: l.name, Hosts: l.hosts}
		if rt := l.cur.Load(); rt != nil {
			if rt.primary != nil {
				st.Active = rt.primary.version[:12]
				st.Pools = append(st.Pools, rt.primary.run.Status())
			}
			if rt.canary != nil {
				st.Canary, st.Percent = rt.canary.version[:12], rt.percent
				st.Pools = append(st.Pools, rt.canary.run.Status())
			}
		}
		out[ns] = st
	}
	for p := range m.open {
		if p.routed == 0 {
			ns, _, _ := strings.Cut(p.key, "\x00")
			if st, ok := out[ns]; ok {
				st.Draining++
				out[ns] = st
			}
		}
	}
	return out
}
