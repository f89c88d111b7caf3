package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/store"
	"github.com/wasmsrv/wasmsrv/host/internal/tenant"
	"github.com/wasmsrv/wasmsrv/runtime"
)

type fixture struct {
	m     *Manager
	api   *httptest.Server
	st    store.Store
	token string
}

func newFixture(t *testing.T) *fixture { t.Helper(); return newFixtureWith(t, config.Quotas{}) }

// newFixtureWith is newFixture with acme's quotas q.
func newFixtureWith(t *testing.T, q config.Quotas) *fixture {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureOn(t, q, st)
}

func newFixtureOn(t *testing.T, q config.Quotas, st store.Store) *fixture {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: filepath.Join(os.TempDir(), "wasmsrv-test-cache", "wazero")}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	tok, hash := tenant.NewToken("acme")
	m := New(Options{Store: st, Engine: eng, OperatorToken: "op",
		Hosting: config.Hosting{MaxModule: 1 << 20, DrainTimeout: config.Duration(time.Minute), KeepVersions: 3}, Logger: log})
	if err := m.Start(ctx, map[string]config.Tenant{"acme": {Name: "acme", Tokens: []string{hash}, Quotas: q, FromFile: true}}); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(m.WithPrincipal(m.API()))
	t.Cleanup(func() {
		api.Close()
		m.Close(ctx)
		st.Close()
	})
	return &fixture{m: m, api: api, st: st, token: tok}
}

func (f *fixture) call(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.api.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (f *fixture) upload(t *testing.T, wasm []byte) string {
	t.Helper()
	code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/versions", wasm)
	if code != 201 {
		t.Fatalf("upload: %d %s", code, b)
	}
	var v store.Version
	json.Unmarshal(b, &v)
	return v.ID
}

func hello(t *testing.T) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "samples", "c-hello", "main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// variant is wasm with a custom section: the same code, another version.
func variant(wasm []byte, n int) []byte {
	name := fmt.Sprintf("v%d", n)
	sec := append([]byte{byte(len(name))}, name+"!"...)
	return append(append(bytes.Clone(wasm), 0, byte(len(sec))), sec...)
}

// TestRacingDeploys: many deploys of one app at once end with the running
// routing matching the stored state, and no pool left open that no routing
// uses.
func TestRacingDeploys(t *testing.T) {
	f := newFixture(t)
	w := hello(t)
	f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"hosts":["web.test"],"settings":{"pool_size":1}}`))
	ids := []string{f.upload(t, w), f.upload(t, variant(w, 2)), f.upload(t, variant(w, 3))}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"version":%q,"percent":%d}`, ids[i%3], []int{100, 30, 100, 50}[i%4])
			if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/deploy", []byte(body)); code != 200 {
				t.Errorf("deploy: %d %s", code, b)
			}
		}()
	}
	wg.Wait()
	var a store.App
	f.st.View(context.Background(), func(tx *store.Tx) (err error) { a, err = tx.App("acme", "web"); return })
	f.m.mu.Lock()
	l := f.m.apps["acme_web"]
	f.m.mu.Unlock()
	rt := l.cur.Load()
	if rt.rev != a.Revision || rt.primary.version != a.Active || (a.Canary != "" && (rt.canary == nil || rt.canary.version != a.Canary)) {
		t.Fatalf("running routing rev %d %s, stored rev %d active %s canary %s", rt.rev, rt.primary.version, a.Revision, a.Active, a.Canary)
	}
	want := 1
	if rt.canary != nil {
		want = 2
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		f.m.mu.Lock()
		n := len(f.m.open)
		f.m.mu.Unlock()
		if n == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pools open, want %d", n, want)
		}
	}
	if st := f.m.Status()["acme_web"]; st.Active != a.Active[:12] || len(st.Pools) != want || st.Draining != 0 {
		t.Errorf("status: %+v", st)
	}
	req := httptest.NewRequest("GET", "http://web.test/", nil)
	rec := httptest.NewRecorder()
	f.m.Lookup("WEB.test:8080").ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get(VersionHeader) == "" {
		t.Fatalf("web.test: %d %v", rec.Code, rec.Header())
	}
}

// TestUploadLimitsAndRefusals: an upload over the limit is 413, a bad module
// 422, and neither stores anything.
func TestUploadLimitsAndRefusals(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		body []byte
		want int
	}{
		{bytes.Repeat([]byte{0}, 2<<20), 413},
		{[]byte("not wasm at all"), 422},
		{[]byte("\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\x0f"), 422},
		// A valid module that is no wasmsrv guest (no handler export).
		{[]byte("\x00asm\x01\x00\x00\x00"), 422},
	} {
		if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/versions", tc.body); code != tc.want {
			t.Errorf("upload of %d bytes: %d %s, want %d", len(tc.body), code, b, tc.want)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(filepath.Dir(f.st.(*store.Bolt).Path()), "modules"))
	if len(ents) != 0 {
		t.Errorf("refused uploads left %d files", len(ents))
	}
	if code, _ := f.call(t, "GET", "/v1/tenants/acme/apps/web", nil); code != 404 {
		t.Errorf("refused uploads made the app: %d", code)
	}
	// keep_versions = 3: the oldest inactive versions are forgotten.
	w := hello(t)
	first := f.upload(t, w)
	f.call(t, "POST", "/v1/tenants/acme/apps/web/deploy", []byte(fmt.Sprintf(`{"version":%q}`, first)))
	for i := 2; i <= 5; i++ {
		f.upload(t, variant(w, i))
	}
	_, b := f.call(t, "GET", "/v1/tenants/acme/apps/web/versions", nil)
	var vs struct{ Versions []store.Version }
	json.Unmarshal(b, &vs)
	if len(vs.Versions) != 3 || vs.Versions[0].ID != first {
		t.Errorf("versions after 5 uploads with keep_versions 3: %d, the active first kept: %s", len(vs.Versions), b)
	}
}

// TestDeployRacingDelete: deploys racing a delete of the app never leave it
// served, or its pools open, once the store no longer has it.
func TestDeployRacingDelete(t *testing.T) {
	f := newFixture(t)
	w := hello(t)
	for round := range 3 {
		f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"hosts":["web.test"],"settings":{"pool_size":1}}`))
		ids := []string{f.upload(t, w), f.upload(t, variant(w, 2+round))}
		var wg sync.WaitGroup
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if i == 3 {
					f.call(t, "DELETE", "/v1/tenants/acme/apps/web", nil)
					return
				}
				f.call(t, "POST", "/v1/tenants/acme/apps/web/deploy", []byte(fmt.Sprintf(`{"version":%q}`, ids[i%2])))
			}()
		}
		wg.Wait()
		code, _ := f.call(t, "GET", "/v1/tenants/acme/apps/web", nil)
		if code == 200 {
			f.call(t, "DELETE", "/v1/tenants/acme/apps/web", nil)
		}
		if f.m.Lookup("web.test") != nil {
			t.Fatalf("round %d: web.test still served after the app was deleted", round)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			f.m.mu.Lock()
			n, apps := len(f.m.open), len(f.m.apps)
			f.m.mu.Unlock()
			if n == 0 && apps == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d pools open, %d apps live after the delete", round, n, apps)
			}
		}
	}
}

// TestHostClaimsBoundByFileAndTenant: a name the site's routes serve cannot be
// claimed (409, wildcards included), nor one outside the tenant's own hosts
// (403); a route naming a claimed host is refused at reload.
func TestHostClaimsBoundByFileAndTenant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	cfg := &config.Config{Routes: []config.Route{{Hosts: []string{"site.test", "*.op.test"}}}}
	if err := f.m.CheckFile(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"site.test", "SITE.test.", "a.op.test", "a.b.op.test"} {
		if code, b := f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(fmt.Sprintf(`{"hosts":[%q]}`, h))); code != 409 {
			t.Errorf("claim %q: %d %s, want 409", h, code, b)
		}
	}
	f.st.Update(ctx, func(tx *store.Tx) error {
		ten, _ := tx.Tenant("acme")
		ten.Hosts = []string{"*.acme.test", "acme.test"}
		return tx.PutTenant(ten)
	})
	for h, want := range map[string]int{"other.test": 403, "acme.test.evil.test": 403, "xacme.test": 403, "acme.test": 200, "shop.acme.test": 200} {
		if code, b := f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(fmt.Sprintf(`{"hosts":[%q]}`, h))); code != want {
			t.Errorf("claim %q: %d %s, want %d", h, code, b, want)
		}
	}
	if code, b := f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"hosts":["shop.acme.test"]}`)); code != 200 {
		t.Fatalf("claim shop.acme.test: %d %s", code, b)
	}
	cfg.Routes = append(cfg.Routes, config.Route{Hosts: []string{"*.acme.test"}})
	if err := f.m.CheckFile(ctx, cfg); err == nil || !strings.Contains(err.Error(), "shop.acme.test") {
		t.Errorf("a route over a claimed host: %v, want refused", err)
	}
}

// TestInstanceQuota: instances count per open version (a split runs two pools);
// a change over the quota is 403 and leaves the stored state as it was.
func TestInstanceQuota(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.st.Update(ctx, func(tx *store.Tx) error {
		ten, _ := tx.Tenant("acme")
		ten.Quotas.Instances = 2
		return tx.PutTenant(ten)
	})
	w := hello(t)
	f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"settings":{"pool_size":1}}`))
	v1, v2 := f.upload(t, w), f.upload(t, variant(w, 2))
	if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/deploy", []byte(fmt.Sprintf(`{"version":%q}`, v1))); code != 200 {
		t.Fatalf("v1: %d %s", code, b)
	}
	if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/deploy", []byte(fmt.Sprintf(`{"version":%q,"percent":10}`, v2))); code != 200 {
		t.Fatalf("v2 at 10%% (2 instances): %d %s", code, b)
	}
	// A second app's pool would make 3.
	if code, b := f.call(t, "PUT", "/v1/tenants/acme/apps/api", []byte(`{"settings":{"pool_size":1}}`)); code != 200 {
		t.Fatalf("api without a version takes nothing: %d %s", code, b)
	}
	f.call(t, "POST", "/v1/tenants/acme/apps/api/versions", w)
	if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/api/deploy", []byte(fmt.Sprintf(`{"version":%q}`, v1))); code != 403 {
		t.Errorf("a third instance: %d %s, want 403", code, b)
	}
	// Nor may the split's app grow its pool.
	if code, b := f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"settings":{"pool_size":2}}`)); code != 403 {
		t.Errorf("pool_size 2 on a split: %d %s, want 403", code, b)
	}
	_, b := f.call(t, "GET", "/v1/tenants/acme/apps/web", nil)
	var a store.App
	json.Unmarshal(b, &a)
	if a.Active != v1 || a.Canary != v2 || a.Percent != 10 || a.Settings["pool_size"] != float64(1) {
		t.Errorf("refused changes changed the app: %s", b)
	}
	// Ending the split frees an instance.
	f.call(t, "POST", "/v1/tenants/acme/apps/web/rollback", nil)
	if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/api/deploy", []byte(fmt.Sprintf(`{"version":%q}`, v1))); code != 200 {
		t.Errorf("after the split ended: %d %s", code, b)
	}
}

// TestSecretsNeverShown: secrets are stored for the guest, the API and the audit
// log show their names only; values the config plugin would read from the host
// are refused.
func TestSecretsNeverShown(t *testing.T) {
	f := newFixture(t)
	f.st.Update(context.Background(), func(tx *store.Tx) error {
		ten, _ := tx.Tenant("acme")
		ten.Grants = []string{"config"}
		return tx.PutTenant(ten)
	})
	code, b := f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"settings":{"grants":["config"]},"secrets":{"DB_PASSWORD":"hunter2-very-secret"}}`))
	if code != 200 {
		t.Fatalf("put: %d %s", code, b)
	}
	for _, p := range []string{"/v1/tenants/acme/apps/web", "/v1/tenants/acme/apps", "/v1/audit"} {
		_, b := f.call(t, "GET", p, nil)
		if strings.Contains(string(b), "hunter2") {
			t.Errorf("GET %s shows a secret's value: %s", p, b)
		}
		if !strings.Contains(string(b), "DB_PASSWORD") {
			t.Errorf("GET %s does not name the secret: %s", p, b)
		}
	}
	if code, b := f.call(t, "PUT", "/v1/tenants/acme/apps/web", []byte(`{"secrets":{"K":"file:/etc/shadow"}}`)); code != 403 {
		t.Errorf("a file: secret: %d %s, want 403", code, b)
	}
	// Stored for the guest (tenant.Apply puts them in the config plugin's section).
	var a store.App
	f.st.View(context.Background(), func(tx *store.Tx) (err error) { a, err = tx.App("acme", "web"); return })
	if a.Secrets["DB_PASSWORD"] != "hunter2-very-secret" {
		t.Errorf("stored secrets %v", a.Secrets)
	}
}

// TestUploadsWaitForASlot: no more than maxValidations uploads are read and
// validated at once; the others wait (their client may give up).
func TestUploadsWaitForASlot(t *testing.T) {
	f := newFixture(t)
	for range maxValidations {
		f.m.validating <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", f.api.URL+"/v1/tenants/acme/apps/web/versions", bytes.NewReader(hello(t)))
	req.Header.Set("Authorization", "Bearer "+f.token)
	waited := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		waited <- err
	}()
	// The tenant's second upload meanwhile: 429, it has one in progress.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.m.mu.Lock()
		busy := f.m.uploading["acme"]
		f.m.mu.Unlock()
		if busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first upload never started")
		}
	}
	if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/versions", hello(t)); code != 429 {
		t.Errorf("a second upload of the tenant: %d %s, want 429", code, b)
	}
	cancel()
	if err := <-waited; err == nil || strings.Contains(err.Error(), "answered") {
		t.Fatalf("an upload with every slot taken: %v, want it waiting until its client gave up", err)
	}
	<-f.m.validating
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		f.m.mu.Lock()
		busy := f.m.uploading["acme"]
		f.m.mu.Unlock()
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the abandoned upload kept the tenant's turn")
		}
	}
	f.upload(t, hello(t))
}

// TestUploadQuota: a tenant over its uploads per minute gets 429 with
// Retry-After before its module is read (nothing compiled, nothing stored);
// what it uploaded before stays; a tenant without the quota is not counted.
func TestUploadQuota(t *testing.T) {
	f := newFixtureWith(t, config.Quotas{Uploads: 2})
	mod := hello(t)
	v1 := f.upload(t, mod)
	// A garbage module counts as well: reading it is the cost.
	if code, b := f.call(t, "POST", "/v1/tenants/acme/apps/web/versions", []byte("\x00asm garbage")); code != 422 {
		t.Fatalf("garbage upload: %d %s, want 422", code, b)
	}
	for i, body := range [][]byte{mod, []byte("\x00asm\x01\x00\x00\x00"), bytes.Repeat([]byte{0}, 1000)} {
		req, _ := http.NewRequest("POST", f.api.URL+"/v1/tenants/acme/apps/web/versions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != 429 || ra < 1 || !strings.Contains(string(b), "uploads per minute") {
			t.Errorf("upload %d over the quota: %d Retry-After %q %s, want 429 with Retry-After >= 1", i+3, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	code, b := f.call(t, "GET", "/v1/tenants/acme/apps/web/versions", nil)
	if code != 200 || !strings.Contains(string(b), v1) {
		t.Errorf("versions after the refusals: %d %s, want %s kept", code, b, v1)
	}
	if ok, _ := f.m.takeUpload("beta"); !ok {
		t.Error("a tenant without an uploads quota was refused")
	}
}
