// Package tenant holds the rules of tenants on a hosting site: who a token
// names (operator or one tenant), what each may touch, how a tenant's settings
// bound its apps' (the grants ceiling, the keys only an operator sets) and its
// quotas. The tenant itself is config.Tenant, the one model for tenants of a
// site file and of the API.
package tenant

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/internal/appname"
)

// Principal is who sent an API request.
type Principal struct {
	Operator bool
	Tenant   string // set for a tenant's token
}

// String is the principal in the audit log: "operator" or "tenant:NAME".
func (p Principal) String() string {
	if p.Operator {
		return "operator"
	}
	return "tenant:" + p.Tenant
}

// May reports whether p may read and change tenant's apps.
func (p Principal) May(tenant string) bool {
	return p.Operator || (p.Tenant != "" && p.Tenant == tenant)
}

const tokenPrefix = "wst_"

// NewToken makes a token for tenant and its hash ("sha256:HEX"), the only form
// stored. The token names its tenant (wst_TENANT_SECRET), so a request needs
// one lookup; the secret is 32 random bytes.
func NewToken(tenant string) (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	token = tokenPrefix + tenant + "_" + base64.RawURLEncoding.EncodeToString(b[:])
	return token, Hash(token)
}

// Hash is the stored form of a token.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Named returns the tenant a token claims to be of; ok false for what is not a
// tenant token.
func Named(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", false
	}
	name, _, ok := strings.Cut(rest, "_")
	if !ok || appname.CheckTenant(name) != nil {
		return "", false
	}
	return name, true
}

// Verify reports whether token is one of t's, comparing hashes in constant time.
func Verify(t config.Tenant, token string) bool {
	h := []byte(Hash(token))
	ok := false
	for _, want := range t.Tokens {
		if subtle.ConstantTimeCompare(h, []byte(want)) == 1 {
			ok = true
		}
	}
	return ok
}

// Forbidden is a refusal that loses nothing: a key the tenant may not set, a
// grant above its ceiling, a quota (the API answers 403).
type Forbidden struct{ Msg string }

func (e *Forbidden) Error() string { return e.Msg }

func forbid(format string, a ...any) error { return &Forbidden{fmt.Sprintf(format, a...)} }

// operatorKeys are app settings only an operator sets for a tenant's app: they
// reach the host (its directories and files) or the plugins' sections, which
// come from the tenant's ceiling.
var operatorKeys = []string{"module", "package", "mounts", "plugins", "http_wasm_config"}

// CheckSettings refuses the keys of an app's settings a tenant may not set, and
// secrets the config plugin would read from the host (env:, file:).
func CheckSettings(settings map[string]any, secrets map[string]string) error {
	for _, k := range operatorKeys {
		if _, ok := settings[k]; ok {
			return forbid("settings.%s: set by the server or the operator, not through the deploy API", k)
		}
	}
	for k, v := range secrets {
		if strings.HasPrefix(v, "env:") || strings.HasPrefix(v, "file:") {
			return forbid("secrets.%s: a value starting with env: or file: would be read from the host", k)
		}
	}
	return nil
}

// Apply bounds an app's settings by its tenant: grants must be within the
// ceiling, the plugins' sections are the tenant's (its kv quota bounds its apps' kv
// data together: kv's group_max_bytes over the namespace TENANT_; its
// outbound quota the http and sockets plugins' group_per_minute),
// the secrets go to the config plugin, and the per-instance memory fits (a
// memory_limit the settings leave out is the quota when the default is over
// it). settings are the keys the app set.
func Apply(t config.Tenant, a *config.App, settings map[string]any, secrets map[string]string) error {
	set := map[string]bool{}
	for k := range settings {
		set[k] = true
	}
	ceiling := map[string]bool{"log": true}
	for _, list := range t.Grants {
		for _, g := range strings.Split(list, ",") {
			ceiling[strings.TrimSpace(g)] = true
		}
	}
	var grants []string
	for _, list := range a.Grants {
		for _, g := range strings.Split(list, ",") {
			if g = strings.TrimSpace(g); g == "" {
				continue
			}
			if !ceiling[g] {
				return forbid("settings.grants: plugin %q is not granted to tenant %q", g, t.Name)
			}
			grants = append(grants, g)
		}
	}
	a.Grants = grants
	a.PluginConfig = map[string]map[string]any{}
	for _, g := range grants {
		sec := map[string]any{}
		for k, v := range t.Plugins[g] {
			sec[k] = v
		}
		if g == "kv" && t.Quotas.KVBytes > 0 {
			// The tenant's apps together (their namespaces start with
			// TENANT_), and each alone at most as much.
			sec["max_bytes"] = int64(t.Quotas.KVBytes)
			sec["group"] = t.Name + appname.TenantSep
			sec["group_max_bytes"] = int64(t.Quotas.KVBytes)
		}
		if (g == "http" || g == "sockets") && t.Quotas.Outbound > 0 {
			// The tenant's apps' requests and connects per minute, together
			// (the binary's http and sockets plugins share one count).
			sec["group"] = t.Name + appname.TenantSep
			sec["group_per_minute"] = t.Quotas.Outbound
		}
		a.PluginConfig[g] = sec
	}
	if len(secrets) > 0 {
		if !slices.Contains(grants, "config") {
			return forbid("secrets: the app needs the config plugin granted to read them")
		}
		s := map[string]any{}
		for k, v := range secrets {
			s[k] = v
		}
		a.PluginConfig["config"]["secrets"] = s
	}
	if q := t.Quotas.MemoryPerInstance; q > 0 && a.MemoryLimit > q && !set["memory_limit"] {
		a.MemoryLimit = q // the default is over the quota: the quota is the default
	}
	if q := t.Quotas.MemoryPerInstance; q > 0 && a.MemoryLimit > q {
		return forbid("settings.memory_limit: %s is over tenant %q's quota of %s per instance",
			config.FormatSize(int64(a.MemoryLimit)), t.Name, config.FormatSize(int64(q)))
	}
	return nil
}

// Instances is what an app's pool holds at most: pool_size, or the runtime's
// default for it.
func Instances(a *config.App) int {
	if a.PoolSize > 0 {
		return a.PoolSize
	}
	return 2*runtime.NumCPU() + 1
}

// Usage is what a tenant's apps take: apps, instances and their linear memory
// (each open version's pool counts: a split runs two).
type Usage struct {
	Apps      int
	Instances int
	Memory    int64
}

// Add counts one open pool of a.
func (u *Usage) Add(a *config.App) {
	n := Instances(a)
	u.Instances += n
	u.Memory += int64(n) * int64(a.MemoryLimit)
}

// Check refuses usage over t's quotas.
func (u Usage) Check(t config.Tenant) error {
	q := t.Quotas
	switch {
	case q.Apps > 0 && u.Apps > q.Apps:
		return forbid("quota: tenant %q may have %d apps", t.Name, q.Apps)
	case q.Instances > 0 && u.Instances > q.Instances:
		return forbid("quota: tenant %q may run %d instances, this would make %d (pool_size counts per version; a split runs two pools)", t.Name, q.Instances, u.Instances)
	case q.MemoryTotal > 0 && u.Memory > int64(q.MemoryTotal):
		return forbid("quota: tenant %q may use %s of linear memory in total, this would make %s (instances × memory_limit)",
			t.Name, config.FormatSize(int64(q.MemoryTotal)), config.FormatSize(u.Memory))
	}
	return nil
}
