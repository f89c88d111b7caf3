package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EHostingGuestsOfTwoTenants: through the real binary, guests of two
// tenants (the plugins' test guest, deployed with the CLI from its package
// dir): alpha's two apps together cannot store more kv data than its kv_bytes
// (ERR_QUOTA, nothing stored lost), beta's writes are not counted with them;
// beta's guest cannot read alpha's secrets, nor publish into or read alpha's
// pub/sub topics.
func TestE2EHostingGuestsOfTwoTenants(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site.toml")
	writeFile(t, cfg, fmt.Sprintf(`
[[listeners]]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
token = %q
[plugins]
kv_path = "kv.db"
[hosting]
data_dir = "data"
[tenants.alpha]
tokens = [%q]
grants = ["kv", "config", "pubsub", "http"]
[tenants.alpha.quotas]
kv_bytes = "2100"
[tenants.beta]
tokens = [%q]
grants = ["kv", "config", "pubsub", "http"]
`, opToken, alphaHash, betaHash))
	settings := filepath.Join(dir, "settings.json")
	writeFile(t, settings, `{"grants": ["kv", "config", "pubsub", "http"]}`)
	h := startHosting(t, cfg)
	c := httpClient(t)
	guestDir := filepath.Join(samplesDir, "..", "plugins", "internal", "testguest")
	for _, d := range []struct{ token, app, host string }{
		{alphaToken, "shop", "shop.alpha.test"}, {alphaToken, "blog", "blog.alpha.test"}, {betaToken, "shop", "shop.beta.test"},
	} {
		if r := h.cli(t, d.token, "deploy", "--app", d.app, "--host", d.host, "--settings", settings, guestDir); r.code != 0 {
			t.Fatalf("deploy %s: %d\n%s%s", d.host, r.code, r.stdout, r.stderr)
		}
	}
	for _, s := range []struct{ token, path, secret string }{
		{alphaToken, "/v1/tenants/alpha/apps/shop", "alpha-secret"}, {betaToken, "/v1/tenants/beta/apps/shop", "beta-secret"},
	} {
		if code, body := h.api(t, s.token, "PUT", s.path, []byte(`{"secrets":{"DB_PASSWORD":"`+s.secret+`"}}`)); code != 200 {
			t.Fatalf("PUT secrets %s: %d %s", s.path, code, body)
		}
	}
	hit := func(host, path string) string {
		t.Helper()
		_, _, body := h.hit(t, c, host, path)
		return strings.TrimSpace(body)
	}

	// kv_bytes over alpha's two apps: 1001 + 1001 bytes fit 2100, a third
	// 1000-byte value in either app does not; beta is not counted.
	if got := hit("shop.alpha.test", "/kv/setsize?k=a&n=1000"); got != "ok" {
		t.Fatalf("alpha shop's first value: %q", got)
	}
	if got := hit("blog.alpha.test", "/kv/setsize?k=b&n=1000"); got != "ok" {
		t.Fatalf("alpha blog's first value: %q", got)
	}
	for _, host := range []string{"shop.alpha.test", "blog.alpha.test"} {
		if got := hit(host, "/kv/setsize?k=c&n=1000"); got != "ERR_QUOTA" {
			t.Errorf("%s over alpha's kv_bytes: %q, want ERR_QUOTA", host, got)
		}
	}
	if got := hit("shop.alpha.test", "/kv/list?p="); got != "a" {
		t.Errorf("alpha shop's keys after the refusals: %q", got)
	}
	if got := hit("shop.beta.test", "/kv/setsize?k=c&n=1000"); got != "ok" {
		t.Errorf("beta counted with alpha: %q", got)
	}

	// Config: secrets are the app's own.
	if got := hit("shop.alpha.test", "/config?k=DB_PASSWORD"); got != "alpha-secret" {
		t.Fatalf("alpha's secret: %q", got)
	}
	for _, k := range []string{"DB_PASSWORD", "alpha_shop.DB_PASSWORD", "../alpha_shop/DB_PASSWORD"} {
		if got := hit("shop.beta.test", "/config?k="+url.QueryEscape(k)); strings.Contains(got, "alpha") {
			t.Errorf("beta's guest read %q: %q", k, got)
		}
	}
	if got := hit("blog.alpha.test", "/config?k=DB_PASSWORD"); strings.Contains(got, "secret") {
		t.Errorf("alpha's blog read alpha shop's secret: %q", got)
	}

	// Pub/sub: alpha's subscriber sees alpha's message first, whatever beta
	// published before it.
	req, _ := http.NewRequest("GET", h.URL+"/sub?t=room&n=1", nil)
	req.Host = "shop.alpha.test"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "subscribed" {
		t.Fatalf("alpha's subscriber: %q %v", sc.Text(), sc.Err())
	}
	for _, topic := range []string{"room", "alpha_shop:room", "alpha_shop/room", "{alpha_shop}room"} {
		hit("shop.beta.test", "/pub?t="+url.QueryEscape(topic)+"&m=from-beta")
	}
	if got := hit("shop.alpha.test", "/pub?t=room&m=from-alpha"); got != "ok" {
		t.Fatalf("alpha publish: %q", got)
	}
	got := make(chan string, 1)
	go func() {
		if sc.Scan() {
			got <- sc.Text()
		}
		close(got)
	}()
	select {
	case m := <-got:
		if m != "from-alpha" {
			t.Errorf("alpha's subscriber got %q, want alpha's own message", m)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("alpha's subscriber got nothing")
	}
}
