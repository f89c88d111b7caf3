package tenant

import (
	"errors"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
)

func TestTokens(t *testing.T) {
	tok, hash := NewToken("acme")
	ten := config.Tenant{Name: "acme", Tokens: []string{hash}}
	if name, ok := Named(tok); !ok || name != "acme" {
		t.Fatalf("Named(%q) = %q %v", tok, name, ok)
	}
	if !Verify(ten, tok) {
		t.Fatal("its own token does not verify")
	}
	other, _ := NewToken("acme")
	secret := strings.SplitN(tok, "_", 3)[2]
	for _, bad := range []string{other, "wst_evil_" + secret, hash, "", tok + "x", strings.ToUpper(tok)} {
		if Verify(ten, bad) {
			t.Errorf("Verify accepted %q", bad)
		}
	}
	for _, bad := range []string{"nonsense", "wst_", "wst_Acme_x", "wst_a_b", "wst_../x_y"} {
		if name, ok := Named(bad); ok && bad != "wst_a_b" {
			t.Errorf("Named(%q) = %q", bad, name)
		}
	}
	if strings.Contains(hash, secret) {
		t.Error("the hash holds the secret")
	}
}

func TestPrincipal(t *testing.T) {
	if !(Principal{Operator: true}).May("x") {
		t.Error("operator may not act for x")
	}
	if (Principal{Tenant: "a"}).May("b") || (Principal{}).May("") || !(Principal{Tenant: "a"}).May("a") {
		t.Error("tenant principal rules")
	}
}

func TestSettingsBoundByTenant(t *testing.T) {
	for _, k := range []string{"module", "package", "mounts", "plugins", "http_wasm_config"} {
		var f *Forbidden
		if err := CheckSettings(map[string]any{k: "x"}, nil); !errors.As(err, &f) {
			t.Errorf("settings key %s: %v, want Forbidden", k, err)
		}
	}
	for _, v := range []string{"env:HOME", "file:/etc/shadow"} {
		if err := CheckSettings(nil, map[string]string{"K": v}); err == nil {
			t.Errorf("secret %q accepted", v)
		}
	}
	ten := config.Tenant{Name: "a", Grants: []string{"kv,config"},
		Plugins: map[string]map[string]any{"kv": {"max_value": 10}}, Quotas: config.Quotas{KVBytes: 1000, MemoryPerInstance: 1 << 20}}
	a := config.DefaultApp()
	a.Grants = []string{"http"}
	if err := Apply(ten, &a, nil, nil); err == nil {
		t.Error("a grant above the ceiling was accepted")
	}
	a = config.DefaultApp()
	a.Grants = []string{"kv", "config"}
	a.PluginConfig = map[string]map[string]any{"kv": {"max_bytes": 1 << 40}}
	if err := Apply(ten, &a, nil, map[string]string{"S": "v"}); err != nil {
		t.Fatal(err)
	}
	if kv := a.PluginConfig["kv"]; kv["max_bytes"] != int64(1000) || kv["max_value"] != 10 || kv["group"] != "a_" || kv["group_max_bytes"] != int64(1000) {
		t.Errorf("kv section %v: want the tenant's, max_bytes and group_max_bytes (group a_) its kv quota", a.PluginConfig["kv"])
	}
	if a.PluginConfig["config"]["secrets"].(map[string]any)["S"] != "v" {
		t.Errorf("config section %v", a.PluginConfig["config"])
	}
	if a.MemoryLimit != 1<<20 {
		t.Errorf("memory_limit %d: the default is over the quota, want the quota", a.MemoryLimit)
	}
	a = config.DefaultApp()
	if err := Apply(ten, &a, map[string]any{"memory_limit": "128MiB"}, nil); err == nil {
		t.Error("memory_limit over the quota accepted")
	}
}

func TestUsage(t *testing.T) {
	ten := config.Tenant{Name: "a", Quotas: config.Quotas{Apps: 2, Instances: 4, MemoryTotal: 4 << 20}}
	a := config.DefaultApp()
	a.PoolSize, a.MemoryLimit = 2, 1<<20
	u := Usage{Apps: 2}
	u.Add(&a)
	u.Add(&a)
	if err := u.Check(ten); err != nil {
		t.Fatal(err)
	}
	u.Add(&a)
	if err := u.Check(ten); err == nil {
		t.Error("6 instances accepted under a quota of 4")
	}
	u = Usage{Apps: 3}
	if err := u.Check(ten); err == nil {
		t.Error("3 apps accepted under a quota of 2")
	}
}
