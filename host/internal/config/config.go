// Package config reads the wasmsrv site file (TOML or YAML), applies WASMSRV_*
// environment overrides and validates it. Every error names the offending key
// and, when it comes from the file, its line.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is a whole site: listeners, apps, upstream groups, routes and the
// shared proxy pieces (cache, filter, limits, admin).
type Config struct {
	Server    Server              `toml:"server" yaml:"server"`
	Admin     Admin               `toml:"admin" yaml:"admin"`
	Listeners []Listener          `toml:"listeners" yaml:"listeners"`
	Apps      map[string]App      `toml:"apps" yaml:"apps"`
	Upstreams map[string]Upstream `toml:"upstreams" yaml:"upstreams"`
	Routes    []Route             `toml:"routes" yaml:"routes"`
	Cache     Cache               `toml:"cache" yaml:"cache"`
	Filter    Filter              `toml:"filter" yaml:"filter"`
	Limits    Limits              `toml:"limits" yaml:"limits"`
	Plugins   Plugins             `toml:"plugins" yaml:"plugins"`
	Hosting   Hosting             `toml:"hosting" yaml:"hosting"`
	Tenants   map[string]Tenant   `toml:"tenants" yaml:"tenants"`

	// Path is the file the config was read from (relative paths in the
	// config are resolved against its directory).
	Path string `toml:"-" yaml:"-"`

	lines locator // the file's keys and their lines
}

// Server holds process-wide settings.
type Server struct {
	LogLevel        string   `toml:"log_level" yaml:"log_level"`
	ShutdownTimeout Duration `toml:"shutdown_timeout" yaml:"shutdown_timeout"`
	// DrainDelay keeps the listeners serving this long after a stop begins,
	// with /readyz failing, before they close.
	DrainDelay Duration `toml:"drain_delay" yaml:"drain_delay"`
	// TrustedProxies are the CIDRs whose X-Forwarded-* headers are believed.
	TrustedProxies []string `toml:"trusted_proxies" yaml:"trusted_proxies"`
}

// Admin is the separate control listener (reload, purge, health).
type Admin struct {
	// Addr is the listener's address: DefaultAdminAddr when the key is absent,
	// and "" turns the admin listener off (read it with Listen).
	Addr  *string `toml:"addr" yaml:"addr"`
	Token string  `toml:"token" yaml:"token"`
	// Hosts are names the admin listener is reached by besides localhost and
	// its address; a request with another Host is refused (DNS rebinding).
	Hosts []string `toml:"hosts" yaml:"hosts"`
}

// Listen is the admin listener's address, "" when it is off.
func (a Admin) Listen() string {
	if a.Addr == nil {
		return DefaultAdminAddr
	}
	return *a.Addr
}

// Listener is one HTTP listening socket.
type Listener struct {
	Addr              string   `toml:"addr" yaml:"addr"`
	ReadHeaderTimeout Duration `toml:"read_header_timeout" yaml:"read_header_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout" yaml:"idle_timeout"`
	// TLSCert and TLSKey (PEM files, relative to the config file) make the
	// listener speak TLS, with HTTP/2 by ALPN. A reload re-reads them.
	TLSCert string `toml:"tls_cert" yaml:"tls_cert"`
	TLSKey  string `toml:"tls_key" yaml:"tls_key"`
	// HealthPath serves /livez and /readyz under this prefix on the listener
	// ("" = off: the admin listener has them).
	HealthPath string `toml:"health_path" yaml:"health_path"`
}

// Plugins holds the process-wide plugin settings (read at start; a change needs a
// restart, per-app sections reload).
type Plugins struct {
	// KVPath is the bbolt file of the kv plugin.
	KVPath string `toml:"kv_path" yaml:"kv_path"`
	// RedisURL makes kv and pubsub use Redis, shared by several nodes, and
	// holds the buckets of shared rate limits.
	RedisURL string `toml:"redis_url" yaml:"redis_url"`
}

// Upstream is a group of existing HTTP servers behind one balancing policy.
type Upstream struct {
	Servers               []Member `toml:"servers" yaml:"servers"`
	Policy                string   `toml:"policy" yaml:"policy"`
	HashKey               string   `toml:"hash_key" yaml:"hash_key"`
	Keepalive             int      `toml:"keepalive" yaml:"keepalive"`
	ConnectTimeout        Duration `toml:"connect_timeout" yaml:"connect_timeout"`
	ResponseHeaderTimeout Duration `toml:"response_header_timeout" yaml:"response_header_timeout"`
	ReadTimeout           Duration `toml:"read_timeout" yaml:"read_timeout"`
	MaxFails              int      `toml:"max_fails" yaml:"max_fails"`
	FailTimeout           Duration `toml:"fail_timeout" yaml:"fail_timeout"`
	Retries               int      `toml:"retries" yaml:"retries"`
	RetryBudget           float64  `toml:"retry_budget" yaml:"retry_budget"`
	Health                Health   `toml:"health" yaml:"health"`
}

// Member is one server of an upstream group.
type Member struct {
	URL    string `toml:"url" yaml:"url"`
	Weight int    `toml:"weight" yaml:"weight"`
}

// Health configures active probes; an empty Path disables them.
type Health struct {
	Path     string   `toml:"path" yaml:"path"`
	Interval Duration `toml:"interval" yaml:"interval"`
	Timeout  Duration `toml:"timeout" yaml:"timeout"`
	Passes   int      `toml:"passes" yaml:"passes"`
	Fails    int      `toml:"fails" yaml:"fails"`
}

// Route maps host names, a path prefix and methods to exactly one target:
// an app, an upstream group, a static directory or a redirect.
type Route struct {
	Hosts       []string `toml:"hosts" yaml:"hosts"`
	Path        string   `toml:"path" yaml:"path"`
	Methods     []string `toml:"methods" yaml:"methods"`
	StripPrefix *bool    `toml:"strip_prefix" yaml:"strip_prefix"`

	App          string `toml:"app" yaml:"app"`
	Upstream     string `toml:"upstream" yaml:"upstream"`
	Static       string `toml:"static" yaml:"static"`
	Redirect     string `toml:"redirect" yaml:"redirect"`
	RedirectCode int    `toml:"redirect_code" yaml:"redirect_code"`

	// Static options.
	Index        []string `toml:"index" yaml:"index"`
	Fallback     string   `toml:"fallback" yaml:"fallback"` // app name for SPA-style "try files then app"
	CacheControl string   `toml:"cache_control" yaml:"cache_control"`
	Listing      bool     `toml:"listing" yaml:"listing"`

	Cache     *RouteCache `toml:"cache" yaml:"cache"`
	RateLimit *RateLimit  `toml:"rate_limit" yaml:"rate_limit"`
	MaxBody   Size        `toml:"max_body" yaml:"max_body"`
	MaxHeader Size        `toml:"max_header" yaml:"max_header"`
	Compress  *bool       `toml:"compress" yaml:"compress"`
	ConnPerIP int         `toml:"conn_per_ip" yaml:"conn_per_ip"`
	// BufferBody (upstream routes) reads a request body before it goes to
	// the upstream, this much in memory and the rest in a temp file, as
	// nginx's proxy_request_buffering does (default 64KiB; 0 streams it).
	// Apps set theirs in apps.NAME.buffer_body.
	BufferBody *Size `toml:"buffer_body" yaml:"buffer_body"`
	// BodyTimeout is the longest silence while a body is read ahead (408;
	// default 60s).
	BodyTimeout Duration `toml:"body_timeout" yaml:"body_timeout"`
	// WSOrigins (upstream routes, and static routes falling back to one): the
	// web origins, besides the site's own, whose pages may open WebSockets
	// through the route (default: same origin only; "*" leaves it to the
	// upstream). Apps set theirs in apps.NAME.ws_origins.
	WSOrigins []string `toml:"ws_origins" yaml:"ws_origins"`
	// Headers edits the request before the target sees it and every answer
	// of the route (nginx proxy_set_header / add_header / proxy_hide_header).
	Headers *RouteHeaders `toml:"headers" yaml:"headers"`
	// Middleware are http-wasm modules run in order before the target
	// (middleware.go).
	Middleware []Middleware `toml:"middleware" yaml:"middleware"`
}

// RouteHeaders holds a route's header edits, by direction.
type RouteHeaders struct {
	Request  HeaderRules `toml:"request" yaml:"request"`
	Response HeaderRules `toml:"response" yaml:"response"`
}

// HeaderRules are applied in the order remove, set, add; values are literal.
type HeaderRules struct {
	Set    map[string]string `toml:"set" yaml:"set"`
	Add    map[string]string `toml:"add" yaml:"add"`
	Remove []string          `toml:"remove" yaml:"remove"`
}

// ReadAhead is how much of a request body an upstream route reads ahead in
// memory (BufferBody, default an app's buffer_body; 0 for other routes).
func (r Route) ReadAhead() int64 {
	return sizeOr(r.BufferBody, r.Upstream != "", int64(DefaultApp().BufferBody))
}

// sizeOr is *p when set, else def when the default applies, else 0.
func sizeOr(p *Size, applies bool, def int64) int64 {
	switch {
	case p != nil:
		return int64(*p)
	case applies:
		return def
	}
	return 0
}

// Strip reports whether the route's path prefix is removed before the
// target sees the request (default true for apps and upstreams).
func (r Route) Strip() bool { return r.StripPrefix == nil || *r.StripPrefix }

// Compression reports whether responses may be compressed (default true).
func (r Route) Compression() bool { return r.Compress == nil || *r.Compress }

// RouteCache turns the response cache on for a route.
type RouteCache struct {
	Key                  string              `toml:"key" yaml:"key"`
	TTL                  map[string]Duration `toml:"ttl" yaml:"ttl"`
	StaleWhileRevalidate Duration            `toml:"stale_while_revalidate" yaml:"stale_while_revalidate"`
	StaleIfError         Duration            `toml:"stale_if_error" yaml:"stale_if_error"`
}

// RateLimit is a token bucket: Rate requests per second with Burst.
type RateLimit struct {
	Rate  float64 `toml:"rate" yaml:"rate"`
	Burst int     `toml:"burst" yaml:"burst"`
	Per   string  `toml:"per" yaml:"per"` // "ip" (default) or "route"
	// Shared keeps the buckets in the Redis of plugins.redis_url, so the limit
	// holds across every node using it; while Redis is unreachable each node
	// applies the limit alone.
	Shared bool `toml:"shared" yaml:"shared"`
}

// Cache bounds the shared in-memory response cache.
type Cache struct {
	MaxBytes Size `toml:"max_bytes" yaml:"max_bytes"`
}

// Filter is the rule-based request filter.
type Filter struct {
	DryRun bool   `toml:"dry_run" yaml:"dry_run"`
	Rules  []Rule `toml:"rules" yaml:"rules"`
}

// Rule denies requests matching all of its non-empty conditions.
type Rule struct {
	Name          string   `toml:"name" yaml:"name"`
	Methods       []string `toml:"methods" yaml:"methods"`
	Path          string   `toml:"path" yaml:"path"` // regular expression
	Header        string   `toml:"header" yaml:"header"`
	HeaderPattern string   `toml:"header_pattern" yaml:"header_pattern"`
	CIDRs         []string `toml:"cidrs" yaml:"cidrs"`
	Status        int      `toml:"status" yaml:"status"`
}

// Limits are server-wide connection limits.
type Limits struct {
	// ConnPerIP caps requests in progress per client IP (nginx limit_conn: 503).
	ConnPerIP int `toml:"conn_per_ip" yaml:"conn_per_ip"`
	// MaxConnsPerIP caps open TCP connections per peer IP on every listener,
	// idle keep-alive connections and WebSockets included; trusted proxies are
	// exempt. Connections beyond it are closed on accept.
	MaxConnsPerIP int  `toml:"max_conns_per_ip" yaml:"max_conns_per_ip"`
	MaxHeader     Size `toml:"max_header" yaml:"max_header"`
}

// Duration is a time.Duration written as "1.5s", "250ms".
type Duration time.Duration

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. \"5s\", \"250ms\")", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Size is a byte count written as "512", "64KiB", "1MiB", "2GB".
type Size int64

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// ParseSize parses a byte count with an optional KB/KiB/MB/MiB/GB/GiB suffix.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q (want e.g. \"512\", \"64KiB\", \"1MiB\")", s)
	}
	return n * mult, nil
}
