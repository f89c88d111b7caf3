package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/headers"
	"github.com/wasmsrv/wasmsrv/host/internal/reqtmpl"
	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/internal/appname"
)

// Defaults applied when a key is absent.
const (
	DefaultAdminAddr      = "127.0.0.1:9901"
	DefaultCacheBytes     = 64 << 20
	DefaultMaxFails       = 1
	DefaultFailTimeout    = 10 * time.Second
	DefaultKeepalive      = 64
	DefaultConnectTimeout = 5 * time.Second
	DefaultHeaderTimeout  = 60 * time.Second
	DefaultReadTimeout    = 60 * time.Second // nginx proxy_read_timeout
	DefaultRetries        = 2
	DefaultRetryBudget    = 0.2
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 2 * time.Second
)

// Policies names the upstream balancing policies.
var policies = map[string]bool{"round_robin": true, "least_conn": true, "p2c": true, "hash": true}

func (c *Config) defaults() {
	c.hostingDefaults()
	// The settings run has too default to run's defaults (its envDefault tags).
	run := DefaultRun()
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = run.ShutdownTimeout
	}
	if c.Server.LogLevel == "" {
		c.Server.LogLevel = run.LogLevel
	}
	if c.Limits.MaxHeader == 0 {
		c.Limits.MaxHeader = run.MaxHeaderBytes
	}
	if c.Cache.MaxBytes == 0 {
		c.Cache.MaxBytes = DefaultCacheBytes
	}
	for i, l := range c.Listeners {
		if l.ReadHeaderTimeout == 0 {
			c.Listeners[i].ReadHeaderTimeout = run.ReadHeaderTimeout
		}
		if l.IdleTimeout == 0 {
			c.Listeners[i].IdleTimeout = run.IdleTimeout
		}
		if l.TLSCert != "" {
			c.Listeners[i].TLSCert = c.Resolve(l.TLSCert)
		}
		if l.TLSKey != "" {
			c.Listeners[i].TLSKey = c.Resolve(l.TLSKey)
		}
	}
	c.resolveMiddleware()
	for name, a := range c.Apps {
		a.Module = c.Resolve(a.Module)
		a.Package = c.Resolve(a.Package)
		if f, ok := strings.CutPrefix(a.HTTPWasmConfig, "@"); ok && f != "" {
			a.HTTPWasmConfig = "@" + c.Resolve(f)
		}
		for i := range a.Mounts {
			a.Mounts[i].Host = c.Resolve(a.Mounts[i].Host)
		}
		c.Apps[name] = a
	}
	for name, u := range c.Upstreams {
		if u.Policy == "" {
			u.Policy = "round_robin"
		}
		for i := range u.Servers {
			if u.Servers[i].Weight == 0 {
				u.Servers[i].Weight = 1
			}
		}
		if u.Keepalive == 0 {
			u.Keepalive = DefaultKeepalive
		}
		if u.ConnectTimeout == 0 {
			u.ConnectTimeout = Duration(DefaultConnectTimeout)
		}
		if u.ResponseHeaderTimeout == 0 {
			u.ResponseHeaderTimeout = Duration(DefaultHeaderTimeout)
		}
		if u.ReadTimeout == 0 {
			u.ReadTimeout = Duration(DefaultReadTimeout)
		}
		if u.MaxFails == 0 {
			u.MaxFails = DefaultMaxFails
		}
		if u.FailTimeout == 0 {
			u.FailTimeout = Duration(DefaultFailTimeout)
		}
		if u.Retries == 0 {
			u.Retries = DefaultRetries
		}
		if u.RetryBudget == 0 {
			u.RetryBudget = DefaultRetryBudget
		}
		if u.Health.Path != "" {
			if u.Health.Interval == 0 {
				u.Health.Interval = Duration(DefaultHealthInterval)
			}
			if u.Health.Timeout == 0 {
				u.Health.Timeout = Duration(DefaultHealthTimeout)
			}
			if u.Health.Passes == 0 {
				u.Health.Passes = 1
			}
			if u.Health.Fails == 0 {
				u.Health.Fails = 1
			}
		}
		c.Upstreams[name] = u
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Path == "" {
			r.Path = "/"
		}
		if r.Static != "" {
			r.Static = c.Resolve(r.Static)
			if len(r.Index) == 0 {
				r.Index = []string{"index.html"}
			}
		}
		if r.Redirect != "" && r.RedirectCode == 0 {
			r.RedirectCode = 308
		}
		if r.RateLimit != nil && r.RateLimit.Per == "" {
			r.RateLimit.Per = "ip"
		}
	}
	for i := range c.Filter.Rules {
		if c.Filter.Rules[i].Status == 0 {
			c.Filter.Rules[i].Status = 403
		}
	}
}

// checkOrigins validates a WebSocket origin allow-list (package wsorigin).
func checkOrigins(key string, list []string, add func(*Error)) {
	for j, o := range list {
		if err := wsorigin.CheckEntry(o); err != nil {
			add(errf(fmt.Sprintf("%s[%d]", key, j), "%v", err))
		} else if o == "*" && len(list) > 1 {
			add(errf(fmt.Sprintf("%s[%d]", key, j), "\"*\" allows every origin: list nothing else with it"))
		}
	}
}

// Resolve makes a relative path relative to the config file's directory.
func (c *Config) Resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || c.Path == "" {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

func errf(key, format string, a ...any) *Error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, a...)}
}

func (c *Config) validate() []*Error {
	var errs []*Error
	add := func(e *Error) { errs = append(errs, e) }
	c.validateHosting(add)

	if len(c.Listeners) == 0 {
		add(errf("listeners", "at least one listener is required"))
	}
	for i, l := range c.Listeners {
		k := fmt.Sprintf("listeners[%d]", i)
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			add(errf(k+".addr", "bad address %q: want host:port", l.Addr))
		}
		if msg := CheckHealthPath(l.HealthPath); msg != "" {
			add(errf(k+".health_path", "%s", msg))
		}
		if (l.TLSCert == "") != (l.TLSKey == "") {
			add(errf(k+".tls_cert", "tls_cert and tls_key go together: set both or neither"))
		}
		for _, f := range []struct{ key, path string }{{"tls_cert", l.TLSCert}, {"tls_key", l.TLSKey}} {
			if f.path == "" {
				continue
			}
			if _, err := os.Stat(f.path); err != nil {
				add(errf(k+"."+f.key, "cannot read %q: %v", f.path, err))
			}
		}
	}
	if err := checkAdmin(c.Admin.Listen(), c.Admin.Token); err != nil {
		add(err)
	}
	for i, h := range c.Admin.Hosts {
		if err := checkAdminHost(h); err != nil {
			add(errf(fmt.Sprintf("admin.hosts[%d]", i), "%v", err))
		}
	}
	if c.Server.DrainDelay < 0 {
		add(errf("server.drain_delay", "must be >= 0"))
	}
	switch c.Server.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add(errf("server.log_level", "unknown level %q (debug, info, warn, error)", c.Server.LogLevel))
	}
	for i, p := range c.Server.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			add(errf(fmt.Sprintf("server.trusted_proxies[%d]", i), "%v", err))
		}
	}
	for _, name := range sortedKeys(c.Apps) {
		a := c.Apps[name]
		k := "apps." + name
		if err := appname.Check(name); err != nil {
			add(errf(k, "%v", err))
		}
		a.check(func(f string) string {
			if f == "" {
				return k
			}
			return k + "." + f
		}, add)
	}
	checkTenants(c.Apps, add)
	for _, name := range sortedKeys(c.Upstreams) {
		u := c.Upstreams[name]
		k := "upstreams." + name
		if len(u.Servers) == 0 {
			add(errf(k+".servers", "at least one server is required"))
		}
		for i, s := range u.Servers {
			sk := fmt.Sprintf("%s.servers[%d]", k, i)
			if pu, err := url.Parse(s.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				add(errf(sk+".url", "bad upstream URL %q: want http://host:port", s.URL))
			}
			if s.Weight < 0 {
				add(errf(sk+".weight", "must be >= 1"))
			}
		}
		if !policies[u.Policy] {
			add(errf(k+".policy", "unknown policy %q (round_robin, least_conn, p2c, hash)", u.Policy))
		}
		if u.Policy == "hash" {
			if _, _, err := ParseHashKey(u.HashKey); err != nil {
				add(errf(k+".hash_key", "%v", err))
			}
		} else if u.HashKey != "" {
			add(errf(k+".hash_key", "only used with policy = \"hash\""))
		}
		if u.Retries < 0 {
			add(errf(k+".retries", "must be >= 0"))
		}
		if u.RetryBudget < 0 || u.RetryBudget > 1 {
			add(errf(k+".retry_budget", "must be between 0 and 1"))
		}
		if u.MaxFails < 0 {
			add(errf(k+".max_fails", "must be >= 0"))
		}
		if u.Health.Path != "" && !strings.HasPrefix(u.Health.Path, "/") {
			add(errf(k+".health.path", "must start with /"))
		}
	}
	for i, r := range c.Routes {
		k := fmt.Sprintf("routes[%d]", i)
		n := 0
		for _, s := range []string{r.App, r.Upstream, r.Static, r.Redirect} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			add(errf(k, "set exactly one of app, upstream, static or redirect"))
		}
		if !strings.HasPrefix(r.Path, "/") {
			add(errf(k+".path", "must start with /"))
		}
		validateMiddleware(k, r.Middleware, add)
		for j, h := range r.Hosts {
			if err := checkHost(h); err != nil {
				add(errf(fmt.Sprintf("%s.hosts[%d]", k, j), "%v", err))
			}
		}
		for j, m := range r.Methods {
			if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " \t/") {
				add(errf(fmt.Sprintf("%s.methods[%d]", k, j), "bad method %q (upper-case token)", m))
			}
		}
		if r.App != "" {
			if _, ok := c.Apps[r.App]; !ok {
				add(errf(k+".app", "unknown app %q", r.App))
			}
		}
		if r.Upstream != "" {
			if _, ok := c.Upstreams[r.Upstream]; !ok {
				add(errf(k+".upstream", "unknown upstream %q", r.Upstream))
			}
		}
		if r.Static != "" {
			if st, err := os.Stat(r.Static); err != nil || !st.IsDir() {
				add(errf(k+".static", "%q is not a directory", r.Static))
			}
		}
		if r.Fallback != "" {
			if r.Static == "" {
				add(errf(k+".fallback", "only used with static"))
			} else if _, ok := c.Apps[r.Fallback]; !ok {
				if _, ok := c.Upstreams[r.Fallback]; !ok {
					add(errf(k+".fallback", "unknown app or upstream %q", r.Fallback))
				}
			}
		}
		if r.Redirect != "" {
			if _, err := reqtmpl.Compile(r.Redirect); err != nil {
				add(errf(k+".redirect", "%v", err))
			}
			switch r.RedirectCode {
			case 301, 302, 303, 307, 308:
			default:
				add(errf(k+".redirect_code", "must be 301, 302, 303, 307 or 308"))
			}
		}
		if r.Upstream == "" && (r.BufferBody != nil || r.BodyTimeout != 0) {
			key := k + ".buffer_body"
			if r.BufferBody == nil {
				key = k + ".body_timeout"
			}
			if r.App != "" {
				add(errf(key, "only for upstream routes: an app reads bodies ahead by apps.%s.buffer_body", r.App))
			} else {
				add(errf(key, "only for upstream routes"))
			}
		}
		if len(r.WSOrigins) > 0 {
			_, fallbackApp := c.Apps[r.Fallback]
			switch {
			case r.App != "":
				add(errf(k+".ws_origins", "only for routes to an upstream: an app sets apps.%s.ws_origins", r.App))
			case r.Upstream == "" && (r.Fallback == "" || fallbackApp):
				add(errf(k+".ws_origins", "only for routes to an upstream (upstream, or static with an upstream fallback)"))
			default:
				checkOrigins(k+".ws_origins", r.WSOrigins, add)
			}
		}
		if hd := r.Headers; hd != nil {
			for _, d := range []struct {
				name  string
				rules HeaderRules
			}{{"request", hd.Request}, {"response", hd.Response}} {
				hk := k + ".headers." + d.name
				for j, name := range d.rules.Remove {
					if err := headers.CheckName(name); err != nil {
						add(errf(fmt.Sprintf("%s.remove[%d]", hk, j), "%v", err))
					}
				}
				for _, op := range []struct {
					name string
					kv   map[string]string
				}{{"set", d.rules.Set}, {"add", d.rules.Add}} {
					for _, name := range sortedKeys(op.kv) {
						if err := headers.CheckName(name); err != nil {
							add(errf(hk+"."+op.name+"."+name, "%v", err))
						} else if err := headers.CheckValue(op.kv[name]); err != nil {
							add(errf(hk+"."+op.name+"."+name, "%v", err))
						}
					}
				}
			}
		}
		if rl := r.RateLimit; rl != nil {
			if rl.Rate <= 0 {
				add(errf(k+".rate_limit.rate", "must be > 0 requests per second"))
			}
			if rl.Burst < 0 {
				add(errf(k+".rate_limit.burst", "must be >= 0"))
			}
			if rl.Per != "ip" && rl.Per != "route" {
				add(errf(k+".rate_limit.per", "unknown %q (ip or route)", rl.Per))
			}
			if rl.Shared && c.Plugins.RedisURL == "" {
				add(errf(k+".rate_limit.shared", "needs plugins.redis_url: the Redis the nodes share the buckets in"))
			}
		}
		if rc := r.Cache; rc != nil {
			for _, code := range sortedKeys(rc.TTL) {
				if code == "default" {
					continue
				}
				if n, err := strconv.Atoi(code); err != nil || n < 100 || n > 599 {
					add(errf(k+".cache.ttl."+code, "key must be a status code or \"default\""))
				}
			}
			if len(rc.TTL) == 0 {
				add(errf(k+".cache.ttl", "set at least one TTL, e.g. ttl = { 200 = \"60s\" }"))
			}
			if err := CheckKeyTemplate(rc.Key); err != nil {
				add(errf(k+".cache.key", "%v", err))
			}
		}
		if r.ConnPerIP < 0 {
			add(errf(k+".conn_per_ip", "must be >= 0"))
		}
	}
	for i, r := range c.Filter.Rules {
		k := fmt.Sprintf("filter.rules[%d]", i)
		if len(r.Methods) == 0 && r.Path == "" && r.Header == "" && len(r.CIDRs) == 0 {
			add(errf(k, "a rule needs at least one of methods, path, header, cidrs"))
		}
		if r.Path != "" {
			if _, err := regexp.Compile(r.Path); err != nil {
				add(errf(k+".path", "bad pattern: %v", err))
			}
		}
		if r.HeaderPattern != "" {
			if r.Header == "" {
				add(errf(k+".header_pattern", "needs header"))
			}
			if _, err := regexp.Compile(r.HeaderPattern); err != nil {
				add(errf(k+".header_pattern", "bad pattern: %v", err))
			}
		}
		for j, p := range r.CIDRs {
			if _, err := ParsePrefix(p); err != nil {
				add(errf(fmt.Sprintf("%s.cidrs[%d]", k, j), "%v", err))
			}
		}
		if r.Status < 400 || r.Status > 599 {
			add(errf(k+".status", "must be 400..599"))
		}
	}
	if c.Limits.MaxConnsPerIP < 0 {
		add(errf("limits.max_conns_per_ip", "must be >= 0"))
	}
	if c.Limits.ConnPerIP < 0 {
		add(errf("limits.conn_per_ip", "must be >= 0"))
	}
	return errs
}

func checkHost(h string) error {
	rest := strings.TrimPrefix(h, "*.")
	if rest == "" || strings.ContainsAny(rest, "*/ :") {
		return fmt.Errorf("bad host %q (a name, optionally starting with \"*.\")", h)
	}
	return nil
}

// checkAdminHost accepts a host name or an IP address (no port, no scheme).
func checkAdminHost(h string) error {
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return nil
	}
	if h == "" || len(h) > 253 || strings.Trim(h, ".") == "" {
		return fmt.Errorf("bad host %q (a name or an IP address, without a port)", h)
	}
	for _, c := range strings.ToLower(h) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return fmt.Errorf("bad host %q (a name or an IP address, without a port)", h)
		}
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// ParsePrefix parses a CIDR or a bare IP (as a /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad IP or CIDR %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseHashKey splits "ip", "header:Name" or "cookie:name".
func ParseHashKey(s string) (kind, name string, err error) {
	kind, name, _ = strings.Cut(s, ":")
	switch {
	case kind == "ip" && name == "":
		return kind, "", nil
	case (kind == "header" || kind == "cookie") && name != "":
		return kind, name, nil
	}
	return "", "", fmt.Errorf("bad hash key %q (ip, header:NAME or cookie:NAME)", s)
}

// CheckKeyTemplate checks a cache key template such as
// "{method}:{host}{path}?{query}" or "{header:Accept-Language}".
func CheckKeyTemplate(t string) error {
	_, err := reqtmpl.Compile(t)
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sortStrings(ks)
	return ks
}

// checkAdmin checks an admin listener's address and token (serve's admin.addr and
// admin.token, run's --admin and --admin-token): "" is off; any other address
// must be host:port, and one that is not loopback needs a token. The error's key
// is the file's; run names its flags (runKey).
func checkAdmin(addr, token string) *Error {
	if addr == "" {
		return nil // off: no admin listener (serve's reloads still come by SIGHUP)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return errf("admin.addr", "bad address %q: want host:port, or \"\" for no admin listener", addr)
	}
	if !isLoopback(host) && token == "" {
		return errf("admin.token", "admin listener %q is not loopback: a token is required", addr)
	}
	return nil
}

// checkTenants refuses apps of one tenant that give it different CPU shares or
// budgets: a tenant has one of each.
func checkTenants(apps map[string]App, add func(*Error)) {
	first := map[string]string{} // tenant -> the first app (by name) that names it
	for _, name := range sortedKeys(apps) {
		a := apps[name]
		t := a.Tenant
		if t == "" {
			t = name
		}
		f, ok := first[t]
		if !ok {
			first[t] = name
			continue
		}
		o := apps[f]
		if o.CPUWeight != a.CPUWeight {
			add(errf("apps."+name+".cpu_weight", "%d, but app %s of tenant %s has %d: a tenant has one weight", a.CPUWeight, f, t, o.CPUWeight))
		}
		if o.CPUBudget != a.CPUBudget {
			add(errf("apps."+name+".cpu_budget", "%v, but app %s of tenant %s has %v: a tenant has one budget", a.CPUBudget.D(), f, t, o.CPUBudget.D()))
		}
	}
}
