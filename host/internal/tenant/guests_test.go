package tenant_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/appspec"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/tenant"
	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/plugins"
	plugconfig "github.com/wasmsrv/wasmsrv/plugins/config"
	plughttp "github.com/wasmsrv/wasmsrv/plugins/http"
	"github.com/wasmsrv/wasmsrv/plugins/kv"
	pluglog "github.com/wasmsrv/wasmsrv/plugins/log"
	"github.com/wasmsrv/wasmsrv/plugins/pubsub"
	"github.com/wasmsrv/wasmsrv/plugins/sockets"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// guestSite runs deployed apps the way the hosting manager does: the settings
// bounded by tenant.Apply, the spec from appspec.Of, in the namespace
// TENANT_APP, on the plugins the binary installs (http and sockets sharing one
// outbound count).
type guestSite struct {
	t    *testing.T
	eng  *runtime.Engine
	reg  *registry.Registry
	wasm string
}

func newGuestSite(t *testing.T) *guestSite {
	t.Helper()
	ctx := context.Background()
	wasm := testkit.Guest(t, filepath.Join("..", "..", "..", "plugins", "internal", "testguest"))
	path := filepath.Join(t.TempDir(), "guest.wasm")
	if err := os.WriteFile(path, wasm, 0o600); err != nil {
		t.Fatal(err)
	}
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: filepath.Join(os.TempDir(), "wasmsrv-test-cache", "wazero")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	out := &plugins.Outbound{}
	reg, err := registry.New(pluglog.New(), plugconfig.New(),
		kv.New(kv.Options{Path: filepath.Join(t.TempDir(), "kv.db")}), pubsub.New(pubsub.Options{}),
		&plughttp.Plugin{Outbound: out}, sockets.New(sockets.Options{Outbound: out}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return &guestSite{t: t, eng: eng, reg: reg, wasm: path}
}

// deploy serves app of ten with settings and secrets; it returns the app's URL.
func (s *guestSite) deploy(ten config.Tenant, app string, settings map[string]any, secrets map[string]string) string {
	t := s.t
	t.Helper()
	ac, err := config.AppSettings(settings, s.wasm)
	if err != nil {
		t.Fatal(err)
	}
	if err := tenant.Apply(ten, &ac, settings, secrets); err != nil {
		t.Fatal(err)
	}
	ns, err := appname.Namespace(ten.Name, app)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := appspec.Of(ns, &ac, appspec.Host{Plugins: s.reg})
	if err != nil {
		t.Fatal(err)
	}
	spec.Tenant = ten.Name
	spec.Pool = runtime.PoolConfig{Workers: 3}
	a, err := apps.Open(context.Background(), s.eng, spec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler)
	t.Cleanup(func() {
		srv.Close()
		_ = a.Close(context.Background())
	})
	return srv.URL
}

func get(t *testing.T, u string) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// subscribe opens a streaming /sub of topic; the lines arrive on the channel.
func subscribe(t *testing.T, base, topic string, n int) <-chan string {
	t.Helper()
	resp, err := http.Get(base + "/sub?t=" + url.QueryEscape(topic) + "&n=" + strconv.Itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "subscribed" {
		t.Fatalf("subscribe %s: %q %v", topic, sc.Text(), sc.Err())
	}
	lines := make(chan string, 16)
	go func() {
		defer resp.Body.Close()
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// TestGuestsOfTwoTenants: guests of tenants alpha and beta, each app
// configured by tenant.Apply and run in its namespace as the hosting manager
// runs it. Beta's guest cannot read alpha's config values (its secrets and
// its tenant's vars), nor publish to or read alpha's pub/sub topics under any
// topic name; alpha's apps share one outbound quota (the http plugin's
// requests per minute, ERR_QUOTA beyond) that beta's requests do not take from.
func TestGuestsOfTwoTenants(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up")) }))
	defer up.Close()
	upHost := strings.TrimPrefix(up.URL, "http://")
	s := newGuestSite(t)
	ceiling := func(name string, outbound int) config.Tenant {
		return config.Tenant{Name: name, Grants: []string{"config,pubsub,http,kv"},
			Plugins: map[string]map[string]any{
				"http":   {"allow": []any{upHost}},
				"config": {"vars": map[string]any{"region": name + "-region"}},
			},
			Quotas: config.Quotas{Outbound: outbound}}
	}
	alpha, beta := ceiling("alpha", 3), ceiling("beta", 0)
	settings := map[string]any{"grants": []any{"config", "pubsub", "http", "kv"}}
	a1 := s.deploy(alpha, "shop", settings, map[string]string{"DB_PASSWORD": "alpha-secret"})
	a2 := s.deploy(alpha, "blog", settings, nil)
	b1 := s.deploy(beta, "shop", settings, map[string]string{"DB_PASSWORD": "beta-secret"})

	// Config: each guest sees its own secret and its tenant's vars only.
	if got := get(t, a1+"/config?k=DB_PASSWORD"); got != "alpha-secret" {
		t.Fatalf("alpha's own secret: %q", got)
	}
	if got := get(t, b1+"/config?k=DB_PASSWORD"); got != "beta-secret" {
		t.Errorf("beta's secret: %q", got)
	}
	if got := get(t, b1+"/config?k=region"); got != "beta-region" {
		t.Errorf("beta's region: %q", got)
	}
	if got := get(t, b1+"/config"); strings.Contains(got, "alpha") {
		t.Errorf("beta's config keys name alpha's: %q", got)
	}
	for _, k := range []string{"alpha_shop.DB_PASSWORD", "alpha_shop/DB_PASSWORD", "../alpha_shop/DB_PASSWORD", "alpha.DB_PASSWORD"} {
		if got := get(t, b1+"/config?k="+url.QueryEscape(k)); strings.Contains(got, "alpha") {
			t.Errorf("beta's guest read %q: %q", k, got)
		}
	}
	// Another app of alpha has no secret of the first.
	if got := get(t, a2+"/config?k=DB_PASSWORD"); strings.Contains(got, "secret") {
		t.Errorf("alpha's blog read alpha's shop secret: %q", got)
	}

	// Pub/sub: alpha's subscriber gets alpha's messages, none of beta's,
	// whatever topic name beta tries.
	sub := subscribe(t, a1, "room", 2)
	for _, topic := range []string{"room", "alpha_shop:room", "alpha_shop/room", "alpha_shop.room", "{alpha_shop}room", "../alpha_shop/room", "alpha_shop\x00room"} {
		if got := get(t, b1+"/pub?t="+url.QueryEscape(topic)+"&m=from-beta"); got != "ok" && !strings.HasPrefix(got, "ERR_") {
			t.Errorf("beta publish %q: %q", topic, got)
		}
	}
	if got := get(t, a1+"/pub?t=room&m=from-alpha"); got != "ok" {
		t.Fatalf("alpha publish: %q", got)
	}
	select {
	case m := <-sub:
		if m != "from-alpha" {
			t.Errorf("alpha's subscriber got %q first, want alpha's own message (beta's leaked?)", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alpha's subscriber got nothing")
	}
	// And beta cannot read alpha's topic: beta's subscriber of "room" does not
	// get alpha's next message, but gets beta's.
	bsub := subscribe(t, b1, "room", 1)
	if got := get(t, a1+"/pub?t=room&m=alpha-again"); got != "ok" {
		t.Fatalf("alpha publish: %q", got)
	}
	if got := get(t, b1+"/pub?t=room&m=beta-own"); got != "ok" {
		t.Fatalf("beta publish: %q", got)
	}
	select {
	case m := <-bsub:
		if m != "beta-own" {
			t.Errorf("beta's subscriber got %q, want only beta's message", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("beta's subscriber got nothing")
	}

	// Outbound: alpha's two apps together make 3 requests a minute, then
	// ERR_QUOTA; beta's requests are not counted with them.
	fetch := func(base string) string { return get(t, base+"/fetch?url="+url.QueryEscape(up.URL+"/")) }
	ok := 0
	for i := range 6 {
		base := a1
		if i%2 == 1 {
			base = a2
		}
		switch got := fetch(base); got {
		case "200 up":
			ok++
		case "ERR_QUOTA":
		default:
			t.Errorf("alpha fetch: %q", got)
		}
	}
	if ok != 3 {
		t.Errorf("alpha's apps made %d requests against a quota of 3 per minute together", ok)
	}
	for range 5 {
		if got := fetch(b1); got != "200 up" {
			t.Errorf("beta's fetch while alpha is over its quota: %q", got)
		}
	}
}
