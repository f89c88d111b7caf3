package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/wasmsrv/wasmsrv/internal/appname"
)

// Hosting turns on multi-tenant hosting (docs/hosting.md): tenants deploy apps
// through the admin listener's /v1 API, kept in a store under DataDir.
type Hosting struct {
	// DataDir holds the store: the metadata (bbolt) and the modules by content
	// hash. "" turns hosting off.
	DataDir string `toml:"data_dir" yaml:"data_dir" json:"data_dir"`
	// RedisURL makes the store's metadata and modules live in Redis, shared by
	// several nodes (each keeps a copy of the modules under DataDir).
	RedisURL string `toml:"redis_url" yaml:"redis_url" json:"redis_url"`
	// MaxModule is the largest module an upload may carry.
	MaxModule Size `toml:"max_module" yaml:"max_module" json:"max_module"`
	// DrainTimeout is how long a replaced version's pool keeps its open requests
	// and WebSockets before they are closed.
	DrainTimeout Duration `toml:"drain_timeout" yaml:"drain_timeout" json:"drain_timeout"`
	// KeepVersions is how many versions of an app are kept (the oldest
	// inactive ones beyond are forgotten).
	KeepVersions int `toml:"keep_versions" yaml:"keep_versions" json:"keep_versions"`
}

// Hosting defaults.
const (
	DefaultMaxModule    = 64 << 20
	DefaultDrainTimeout = Duration(60e9)
	DefaultKeepVersions = 100
)

// Tenant is one customer of a hosting site: the one model of a tenant, whether
// declared in a site file ([tenants.NAME]) or created through the API. It owns
// apps, the host names its apps claim, a ceiling of plugin grants and quotas.
type Tenant struct {
	// Name is the tenant's name (the key of [tenants.NAME]; package tenant's rule).
	Name string `toml:"-" yaml:"-" json:"name"`
	// Tokens are the SHA-256 hashes of the tenant's API tokens, "sha256:HEX"
	// (`wasmsrv tenants token` prints a token and its hash).
	Tokens []string `toml:"tokens" yaml:"tokens" json:"-"`
	// Hosts are the host names the tenant's apps may claim: names, or
	// "*.example.com" for any below (empty: any name the site's routes do not
	// name).
	Hosts []string `toml:"hosts" yaml:"hosts" json:"hosts,omitempty"`
	// Grants are the plugins the tenant's apps may be granted (their ceiling).
	Grants []string `toml:"grants" yaml:"grants" json:"grants,omitempty"`
	// Plugins are the sections the granted plugins get for every app of the
	// tenant: the operator's settings (an http allow list), not the tenant's.
	Plugins map[string]map[string]any `toml:"plugins" yaml:"plugins" json:"plugins,omitempty"`
	// Quotas bound what the tenant may use (zero: no bound).
	Quotas Quotas `toml:"quotas" yaml:"quotas" json:"quotas"`
	// FromFile marks a tenant the site file declares: the API cannot delete it.
	FromFile bool `toml:"-" yaml:"-" json:"from_file,omitempty"`
}

// Quotas of a tenant; zero means no bound.
type Quotas struct {
	Apps              int  `toml:"apps" yaml:"apps" json:"apps,omitempty"`
	Instances         int  `toml:"instances" yaml:"instances" json:"instances,omitempty"`
	MemoryTotal       Size `toml:"memory_total" yaml:"memory_total" json:"memory_total,omitempty"`
	MemoryPerInstance Size `toml:"memory_per_instance" yaml:"memory_per_instance" json:"memory_per_instance,omitempty"`
	// Rate is requests per second to the tenant's apps together (503 beyond),
	// with bursts of Burst (default: Rate).
	Rate  int `toml:"rate" yaml:"rate" json:"rate,omitempty"`
	Burst int `toml:"burst" yaml:"burst" json:"burst,omitempty"`
	// Concurrency is requests in flight to the tenant's apps together (503 beyond).
	Concurrency int `toml:"concurrency" yaml:"concurrency" json:"concurrency,omitempty"`
	// KVBytes bounds the kv data of the tenant's apps together (keys and
	// values; the kv plugin's group_max_bytes over the tenant's namespace).
	KVBytes Size `toml:"kv_bytes" yaml:"kv_bytes" json:"kv_bytes,omitempty"`
	// Outbound is outgoing requests per minute of the tenant's apps together
	// (the http plugin's requests; ERR_QUOTA to the guest beyond).
	Outbound int `toml:"outbound" yaml:"outbound" json:"outbound,omitempty"`
	// Uploads is module uploads per minute (each is read and compiled; 429
	// with Retry-After on the API beyond).
	Uploads int `toml:"uploads" yaml:"uploads" json:"uploads,omitempty"`
}

// Check validates the quotas; key names a quota by its key.
func (q *Quotas) Check(key func(string) string, add func(*Error)) {
	for _, f := range []struct {
		k string
		v int64
	}{{"apps", int64(q.Apps)}, {"instances", int64(q.Instances)}, {"memory_total", int64(q.MemoryTotal)},
		{"memory_per_instance", int64(q.MemoryPerInstance)}, {"rate", int64(q.Rate)}, {"burst", int64(q.Burst)},
		{"concurrency", int64(q.Concurrency)}, {"kv_bytes", int64(q.KVBytes)},
		{"outbound", int64(q.Outbound)}, {"uploads", int64(q.Uploads)}} {
		if f.v < 0 {
			add(errf(key(f.k), "must be >= 0 (0: no bound)"))
		}
	}
}

func (c *Config) hostingDefaults() {
	if c.Hosting.MaxModule == 0 {
		c.Hosting.MaxModule = DefaultMaxModule
	}
	if c.Hosting.DrainTimeout == 0 {
		c.Hosting.DrainTimeout = DefaultDrainTimeout
	}
	if c.Hosting.KeepVersions == 0 {
		c.Hosting.KeepVersions = DefaultKeepVersions
	}
	for name, t := range c.Tenants {
		t.Name, t.FromFile = name, true
		c.Tenants[name] = t
	}
	if c.Hosting.DataDir != "" {
		c.Hosting.DataDir = c.Resolve(c.Hosting.DataDir)
	}
}

func (c *Config) validateHosting(add func(*Error)) {
	h := c.Hosting
	if h.MaxModule < 0 {
		add(errf("hosting.max_module", "must be > 0"))
	}
	if h.DrainTimeout < 0 {
		add(errf("hosting.drain_timeout", "must be > 0"))
	}
	if h.KeepVersions < 0 {
		add(errf("hosting.keep_versions", "must be >= 1"))
	}
	if len(c.Tenants) > 0 && h.DataDir == "" {
		add(errf("hosting.data_dir", "tenants are declared but hosting is off: set hosting.data_dir"))
	}
	if h.DataDir != "" && c.Admin.Listen() == "" {
		add(errf("admin.addr", "hosting needs the admin listener (its /v1 API)"))
	}
	if h.DataDir != "" && c.Admin.Token == "" {
		add(errf("admin.token", "hosting needs an operator token: the admin API is reached by tenants too"))
	}
	for _, name := range sortedKeys(c.Tenants) {
		t := c.Tenants[name]
		k := "tenants." + name
		if err := appname.CheckTenant(name); err != nil {
			add(errf(k, "%v", err))
		}
		for _, a := range sortedKeys(c.Apps) {
			if strings.HasPrefix(a, name+appname.TenantSep) {
				add(errf("apps."+a, "the name is in tenant %q's namespace (%s%sAPP): rename the app", name, name, appname.TenantSep))
			}
		}
		for i, tok := range t.Tokens {
			hexPart, ok := strings.CutPrefix(tok, "sha256:")
			if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
				add(errf(fmt.Sprintf("%s.tokens[%d]", k, i), "want \"sha256:\" and 64 lower-case hex digits (`wasmsrv tenants token` prints one)"))
			}
		}
		t.Quotas.Check(func(q string) string { return k + ".quotas." + q }, add)
	}
}

// AppSettings turns the settings of a deployed app (a JSON object with the keys
// of a file's [apps.NAME] table) into an App with module as its code: the same
// shape checks, defaults and validation as a site file's app, every error naming
// its key. The keys a tenant may not set are the caller's to refuse first.
func AppSettings(settings map[string]any, module string) (App, error) {
	var errs []*Error
	add := func(key, msg string) { errs = append(errs, &Error{Key: key, Msg: msg}) }
	tree := map[string]any{}
	for k, v := range settings {
		tree[k] = jsonNumbers(v)
	}
	tree["module"] = module
	v, ok := shape(tree, reflect.TypeFor[App](), "", add)
	if len(errs) > 0 || !ok {
		return App{}, settingsErrors(errs)
	}
	data, err := toml.Marshal(map[string]any{"apps": map[string]any{"x": v}})
	if err != nil {
		return App{}, err
	}
	cfg := &Config{}
	if err := decodeTOML("", data, cfg); err != nil {
		return App{}, err
	}
	appDefaults(cfg, map[string]any{"apps": map[string]any{"x": v}})
	a := cfg.Apps["x"]
	a.check(func(f string) string { return f }, func(e *Error) { errs = append(errs, e) })
	if len(errs) > 0 {
		return App{}, settingsErrors(errs)
	}
	return a, nil
}

// jsonNumbers makes JSON's float64 numbers integers where they are whole, as a
// TOML or YAML decoder gives them.
func jsonNumbers(v any) any {
	switch x := v.(type) {
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = jsonNumbers(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = jsonNumbers(e)
		}
		return out
	}
	return v
}

func settingsErrors(errs []*Error) error {
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Key < errs[j].Key })
	var b bytes.Buffer
	out := make([]error, 0, len(errs))
	for _, e := range errs {
		b.Reset()
		if e.Key != "" {
			b.WriteString(e.Key + ": ")
		}
		b.WriteString(e.Msg)
		out = append(out, errors.New(b.String()))
	}
	return errors.Join(out...)
}
