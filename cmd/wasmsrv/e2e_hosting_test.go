package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// hostingTokens are fixed test tokens of the file's tenants and their hashes
// (`wasmsrv tenants token NAME` printed them).
const (
	alphaToken = "wst_alpha_myGP0pVLtBVMKqLxmqLNoCCRQJDQk30M7_w6S4Rms5k"
	alphaHash  = "sha256:a8f992008db12fbff89acb7bde66909942473b51e13bd740689aad5c2c0c3690"
	betaToken  = "wst_beta_qihd84akg_O9k1_CxljQ8cbChs7d9HKqwQVWWMxllL0"
	betaHash   = "sha256:8e03c13b9d7a8c2f8401a43a7c21a13d07c1e31c0e5bc2d42393792808dc0436"
	opToken    = "operator-secret-token"
)

var adminURLRe = regexp.MustCompile(`\(admin (http://[^)]+)\)`)

// hostingSite is a running hosting server and how to reach it.
type hostingSite struct {
	*server
	admin string
}

func startHosting(t *testing.T, cfg string) *hostingSite {
	t.Helper()
	s := launch(t, "", nil, "serve", "-c", cfg, "--cache-dir", e2eCache)
	m := adminURLRe.FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("no admin URL in the serving line: %q", s.stdout.String())
	}
	return &hostingSite{server: s, admin: m[1]}
}

// api sends an API request with token and returns the status and body.
func (h *hostingSite) api(t *testing.T, token, method, path string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.admin+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Wasmsrv-Admin", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// hit GETs path on the site with Host host: status, version header, body.
func (h *hostingSite) hit(t *testing.T, c *http.Client, host, path string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.URL+path, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Wasmsrv-Version"), string(b)
}

// cli runs a hosting command of the binary against h with token.
func (h *hostingSite) cli(t *testing.T, token string, args ...string) result {
	t.Helper()
	return runWasmsrv(t, 5*time.Minute, []string{"WASMSRV_SERVER=" + h.admin, "WASMSRV_TOKEN=" + token}, args...)
}

// withCustomSection returns wasm with a custom section appended: the same code,
// another content hash (another version).
func withCustomSection(wasm []byte, name, payload string) []byte {
	sec := append([]byte{byte(len(name))}, name...)
	sec = append(sec, payload...)
	out := append(bytes.Clone(wasm), 0, byte(len(sec)))
	return append(out, sec...)
}

// TestE2EHostingTwoTenants is issue 15's "done when": two tenants deploy with
// the CLI; tenant alpha rolls a v2 out at 10% then 100% under steady load (no
// failed request, a WebSocket opened on v1 keeps working), a bad v3 is refused,
// alpha rolls back, the server is killed with -9 and restarted and serves the
// same versions; and every isolation point holds.
func TestE2EHostingTwoTenants(t *testing.T) {
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
drain_timeout = "5m"

[tenants.alpha]
tokens = [%q]
grants = ["kv"]

[tenants.beta]
tokens = [%q]
grants = ["kv"]
[tenants.beta.quotas]
apps = 1
memory_per_instance = "64MiB"
`, opToken, alphaHash, betaHash))
	grantsKV := filepath.Join(dir, "kv.json")
	writeFile(t, grantsKV, `{"grants": ["kv"]}`)

	h := startHosting(t, cfg)
	c := httpClient(t)

	// Both tenants deploy with the CLI, from package directories (built first).
	if r := h.cli(t, alphaToken, "deploy", "--app", "web", "--host", "alpha.test", sample("ws")); r.code != 0 {
		t.Fatalf("alpha deploy web: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := h.cli(t, alphaToken, "deploy", "--app", "counter", "--host", "count.alpha.test", "--settings", grantsKV, sample("counter")); r.code != 0 {
		t.Fatalf("alpha deploy counter: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := h.cli(t, betaToken, "deploy", "--app", "counter", "--host", "beta.test", "--settings", grantsKV, sample("counter")); r.code != 0 {
		t.Fatalf("beta deploy counter: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	code, v1, _ := h.hit(t, c, "alpha.test", "/")
	if code != 200 || v1 == "" {
		t.Fatalf("alpha.test: %d version %q", code, v1)
	}

	// kv: the two tenants' apps named "counter" have namespaces of their own.
	for i := 1; i <= 3; i++ {
		if code, _, body := h.hit(t, c, "beta.test", "/"); code != 200 || strings.TrimSpace(body) != fmt.Sprint(i) {
			t.Fatalf("beta counter hit %d: %d %q", i, code, body)
		}
	}
	if code, _, body := h.hit(t, c, "count.alpha.test", "/"); code != 200 || strings.TrimSpace(body) != "1" {
		t.Fatalf("alpha's counter sees beta's hits: %d %q", code, body)
	}

	// A WebSocket opened on v1.
	wsURL := strings.Replace(h.URL, "http://", "ws://", 1) + "/echo"
	// A WebSocket opened while v1 is the only version.
	ws, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Host": {"alpha.test"}})
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	defer ws.Close()
	echo := func(msg string) {
		t.Helper()
		ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := ws.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatalf("websocket write: %v", err)
		}
		_, b, err := ws.ReadMessage()
		if err != nil || string(b) != msg {
			t.Fatalf("websocket echo: %q %v", b, err)
		}
	}
	echo("before")

	// Steady load on alpha.test while v2 rolls out.
	var (
		stop             atomic.Bool
		total, failed    atomic.Int64
		mu               sync.Mutex
		seen             = map[string]int{}
		wg               sync.WaitGroup
		firstFailure     atomic.Value
		loadDeadline     = time.Now().Add(10 * time.Minute)
		loadClient       = httpClient(t)
		requestAndRecord = func() {
			req, _ := http.NewRequest(http.MethodGet, h.URL+"/", nil)
			req.Host = "alpha.test"
			resp, err := loadClient.Do(req)
			total.Add(1)
			if err != nil {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, err.Error())
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
				firstFailure.CompareAndSwap(nil, resp.Status)
				return
			}
			mu.Lock()
			seen[resp.Header.Get("Wasmsrv-Version")]++
			mu.Unlock()
		}
	)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && time.Now().Before(loadDeadline) {
				requestAndRecord()
			}
		}()
	}

	v1wasm := runWasmsrv(t, 5*time.Minute, nil, "build", "--cache-dir", e2eCache, "-o", filepath.Join(dir, "v1.wasm"), sample("ws"))
	if v1wasm.code != 0 {
		t.Fatalf("build: %s", v1wasm.stderr)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "v1.wasm"))
	v2path := filepath.Join(dir, "v2.wasm")
	writeFile(t, v2path, string(withCustomSection(b, "v", "2")))
	if r := h.cli(t, alphaToken, "deploy", "--app", "web", "--percent", "10", v2path); r.code != 0 {
		t.Fatalf("deploy v2 at 10%%: %d\n%s", r.code, r.stderr)
	}
	var v2 string
	for deadline := time.Now().Add(2 * time.Minute); v2 == ""; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		for v, n := range seen {
			if v != v1 && n > 0 {
				v2 = v
			}
		}
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no request reached v2 at 10%% (%v)", seen)
		}
	}
	mu.Lock()
	atTen := map[string]int{v1: seen[v1], v2: seen[v2]}
	mu.Unlock()
	if r := h.cli(t, alphaToken, "deploy", "--app", "web", v2path); r.code != 0 {
		t.Fatalf("deploy v2 at 100%%: %d\n%s", r.code, r.stderr)
	}
	for i := range 20 {
		if _, v, _ := h.hit(t, c, "alpha.test", "/"); v != v2 {
			t.Fatalf("request %d after v2 at 100%%: version %q, want %q", i, v, v2)
		}
	}
	echo("after v2 took every request") // the WebSocket stays on v1
	stop.Store(true)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the rollout (first: %v)", failed.Load(), total.Load(), firstFailure.Load())
	}
	t.Logf("rollout under load: %d requests, none failed; at 10%%: %v", total.Load(), atTen)

	// A bad v3 is refused and changes nothing.
	bad := filepath.Join(dir, "v3.wasm")
	writeFile(t, bad, string(append([]byte("\x00asm\x01\x00\x00\x00"), 1, 9, 9)))
	if r := h.cli(t, alphaToken, "deploy", "--app", "web", bad); r.code == 0 || !strings.Contains(r.stderr, "422") {
		t.Fatalf("bad v3: exit %d, want a 422 refusal\n%s", r.code, r.stderr)
	}
	if _, v, _ := h.hit(t, c, "alpha.test", "/"); v != v2 {
		t.Fatalf("after the refused v3: version %q, want v2", v)
	}
	r := h.cli(t, alphaToken, "versions", "--app", "web")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("versions after the refused v3 (want v1 and v2):\n%s%s", r.stdout, r.stderr)
	}

	// Rollback.
	if r := h.cli(t, alphaToken, "rollback", "--app", "web"); r.code != 0 || !strings.Contains(r.stdout, v1) {
		t.Fatalf("rollback: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, v, _ := h.hit(t, c, "alpha.test", "/"); v != v1 {
		t.Fatalf("after rollback: version %q, want v1 %q", v, v1)
	}
	echo("after the rollback")

	// Deployed apps are counted like the file's, under their namespace and
	// with their tenant, so an operator can sum a customer's apps.
	fams := scrape(t, h.admin, opToken)
	var alphaWeb float64
	for _, m := range fams["wasmsrv_app_requests_total"].GetMetric() {
		lv := map[string]string{}
		for _, l := range m.GetLabel() {
			lv[l.GetName()] = l.GetValue()
		}
		if lv["app"] == "alpha_web" {
			if lv["tenant"] != "alpha" {
				t.Fatalf("alpha_web counted under tenant %q", lv["tenant"])
			}
			alphaWeb += m.GetCounter().GetValue()
		}
	}
	if alphaWeb == 0 {
		t.Fatalf("no requests of alpha_web in /metrics")
	}
	if v := sampleOf(fams, "wasmsrv_app_guest_calls_total", "app", "alpha_web", "tenant", "alpha"); v <= 0 {
		t.Fatalf("guest calls of alpha_web: %v", v)
	}

	checkIsolation(t, h, c)

	// kill -9, restart: the same versions serve, the kv data is there.
	ws.Close()
	h.cmd.Process.Kill()
	<-h.done
	h = startHosting(t, cfg)
	c = httpClient(t)
	if code, v, _ := h.hit(t, c, "alpha.test", "/"); code != 200 || v != v1 {
		t.Fatalf("after kill -9 and restart: alpha.test %d version %q, want v1 %q", code, v, v1)
	}
	if code, _, body := h.hit(t, c, "beta.test", "/"); code != 200 || strings.TrimSpace(body) != "4" {
		t.Fatalf("after restart: beta counter %d %q, want 4", code, body)
	}
	if r := h.cli(t, alphaToken, "apps"); r.code != 0 || !strings.Contains(r.stdout, "web") || !strings.Contains(r.stdout, v1) {
		t.Fatalf("apps after restart:\n%s%s", r.stdout, r.stderr)
	}
	// The operator's /status shows the deployed apps; a tenant's token is not
	// the operator's there.
	if code, body := h.api(t, opToken, "GET", "/status", nil); code != 200 || !strings.Contains(body, `"alpha_web"`) || !strings.Contains(body, v1) {
		t.Errorf("admin /status: %d\n%s", code, body)
	}
	if code, _ := h.api(t, alphaToken, "GET", "/status", nil); code != 401 {
		t.Errorf("a tenant's token on /status: %d, want 401", code)
	}
}

// checkIsolation tries what one tenant must not do to another, and the quotas.
func checkIsolation(t *testing.T, h *hostingSite, c *http.Client) {
	t.Helper()
	// Beta's token against alpha's app: read, upload, deploy, roll back,
	// delete, settings, audit of another tenant — all 403, whether the app
	// exists or not.
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/v1/tenants/alpha/apps/web", ""},
		{"GET", "/v1/tenants/alpha/apps/nosuch", ""},
		{"GET", "/v1/tenants/alpha/apps", ""},
		{"GET", "/v1/tenants/alpha/apps/web/versions", ""},
		{"POST", "/v1/tenants/alpha/apps/web/versions", "\x00asm\x01\x00\x00\x00"},
		{"POST", "/v1/tenants/alpha/apps/web/deploy", `{"version":"00000000"}`},
		{"POST", "/v1/tenants/alpha/apps/web/rollback", `{}`},
		{"PUT", "/v1/tenants/alpha/apps/web", `{"hosts":["evil.test"]}`},
		{"DELETE", "/v1/tenants/alpha/apps/web", ""},
		{"GET", "/v1/tenants", ""},
		{"POST", "/v1/tenants", `{"name":"mine"}`},
		{"POST", "/v1/tenants/beta/tokens", ``},
		{"DELETE", "/v1/tenants/alpha", ""},
	} {
		if code, body := h.api(t, betaToken, tc.method, tc.path, []byte(tc.body)); code != 403 {
			t.Errorf("beta %s %s: %d %s, want 403", tc.method, tc.path, code, body)
		}
	}
	// No token, a wrong one, one with alpha's name and beta's secret: 401.
	forged := "wst_alpha_" + strings.SplitN(betaToken, "_", 3)[2]
	for _, tok := range []string{"", "nonsense", forged, alphaHash} {
		if code, _ := h.api(t, tok, "GET", "/v1/tenants/alpha/apps", nil); code != 401 {
			t.Errorf("token %q: %d, want 401", tok, code)
		}
	}
	// A host name alpha claims cannot be taken by beta (409), and the refusal
	// changes nothing.
	if code, body := h.api(t, betaToken, "PUT", "/v1/tenants/beta/apps/counter", []byte(`{"hosts":["beta.test","alpha.test"]}`)); code != 409 {
		t.Errorf("beta claims alpha.test: %d %s, want 409", code, body)
	}
	if _, v, _ := h.hit(t, c, "alpha.test", "/"); v == "" {
		t.Error("alpha.test stopped answering after beta's refused claim")
	}
	if code, _, _ := h.hit(t, c, "beta.test", "/peek"); code != 200 {
		t.Errorf("beta.test after its refused claim: %d", code)
	}
	// Quotas: beta may have one app (403), 64 MiB per instance (403); nothing
	// already stored is lost.
	if code, body := h.api(t, betaToken, "PUT", "/v1/tenants/beta/apps/second", []byte(`{}`)); code != 403 {
		t.Errorf("beta's second app: %d %s, want 403", code, body)
	}
	if code, body := h.api(t, betaToken, "PUT", "/v1/tenants/beta/apps/counter", []byte(`{"settings":{"grants":["kv"],"memory_limit":"128MiB"}}`)); code != 403 {
		t.Errorf("beta over its memory quota: %d %s, want 403", code, body)
	}
	// Keys that reach the host or the plugins' sections are the operator's.
	for _, s := range []string{`{"mounts":[{"host":"/","guest":"/root"}]}`, `{"plugins":{"kv":{"max_bytes":1}}}`, `{"module":"/etc/passwd"}`, `{"http_wasm_config":"@/etc/passwd"}`, `{"grants":["http"]}`} {
		if code, body := h.api(t, betaToken, "PUT", "/v1/tenants/beta/apps/counter", []byte(`{"settings":`+s+`}`)); code != 403 {
			t.Errorf("beta settings %s: %d %s, want 403", s, code, body)
		}
	}
	if code, _, body := h.hit(t, c, "beta.test", "/peek"); code != 200 || strings.TrimSpace(body) != "3" {
		t.Errorf("beta's counter after refused changes: %d %q, want 3", code, body)
	}
	// Names and versions that would leave their place: 400 or 422.
	for _, p := range []string{"/v1/tenants/beta/apps/..%2F..%2Fx", "/v1/tenants/beta/apps/a%2Fb", "/v1/tenants/beta/apps/" + strings.Repeat("x", 80)} {
		if code, body := h.api(t, betaToken, "PUT", p, []byte(`{}`)); code != 400 {
			t.Errorf("PUT %s: %d %s, want 400", p, code, body)
		}
	}
	for _, v := range []string{"../../../etc/passwd", "00000000/../x", "ZZZZZZZZZZ"} {
		body, _ := json.Marshal(map[string]string{"version": v})
		if code, out := h.api(t, betaToken, "POST", "/v1/tenants/beta/apps/counter/deploy", body); code != 422 {
			t.Errorf("deploy version %q: %d %s, want 422", v, code, out)
		}
	}
	// The audit log: each tenant sees its own changes only.
	code, body := h.api(t, alphaToken, "GET", "/v1/audit", nil)
	if code != 200 || !strings.Contains(body, `"rollback"`) || strings.Contains(body, `"tenant": "beta"`) {
		t.Errorf("alpha's audit log: %d\n%s", code, body)
	}
	// An API-made tenant with a request-rate quota: 503 beyond it (the issue's
	// status for requests), never 429; and one upload a minute: the second is 429.
	code, body = h.api(t, opToken, "POST", "/v1/tenants", []byte(`{"name":"gamma","quotas":{"rate":1,"burst":2,"uploads":1}}`))
	if code != 201 {
		t.Fatalf("create gamma: %d %s", code, body)
	}
	var created struct{ Token string }
	json.Unmarshal([]byte(body), &created)
	if r := h.cli(t, created.Token, "deploy", "--app", "hello", "--host", "gamma.test", filepath.Join(sample("c-hello"), "main.wasm")); r.code != 0 {
		t.Fatalf("gamma deploy: %d %s", r.code, r.stderr)
	}
	hello, err := os.ReadFile(filepath.Join(sample("c-hello"), "main.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := h.api(t, created.Token, "POST", "/v1/tenants/gamma/apps/hello/versions", withCustomSection(hello, "v", "2")); code != 429 || !strings.Contains(body, "uploads per minute") {
		t.Errorf("gamma's second upload within a minute: %d %s, want 429", code, body)
	}
	limited := 0
	for range 6 {
		switch code, _, _ := h.hit(t, c, "gamma.test", "/"); code {
		case 503:
			limited++
		case 200:
		default:
			t.Errorf("gamma over its rate quota: %d, want 200 or 503", code)
		}
	}
	if limited == 0 {
		t.Error("gamma's rate quota (1/s, burst 2) let 6 quick requests through")
	}
	if code, _, _ := h.hit(t, c, "alpha.test", "/"); code != 200 {
		t.Errorf("alpha limited by gamma's quota: %d", code)
	}
}

// TestE2EHostingTwoNodesOnRedis: two servers share a Redis store; a version
// deployed through one is served by the other within 2 s.
func TestE2EHostingTwoNodesOnRedis(t *testing.T) {
	rd := testkit.StartRedis(t)
	node := func(name string) *hostingSite {
		dir := filepath.Join(t.TempDir(), name)
		os.MkdirAll(dir, 0o755)
		cfg := filepath.Join(dir, "site.toml")
		writeFile(t, cfg, fmt.Sprintf(`
[[listeners]]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
token = %q
[hosting]
data_dir = "data"
redis_url = %q
[tenants.alpha]
tokens = [%q]
`, opToken, rd.URL, alphaHash))
		return startHosting(t, cfg)
	}
	n1, n2 := node("one"), node("two")
	c := httpClient(t)
	hello := filepath.Join(sample("c-hello"), "main.wasm")
	b, _ := os.ReadFile(hello)
	dir := t.TempDir()
	for i, wasm := range [][]byte{b, withCustomSection(b, "v", "2"), withCustomSection(b, "v", "3")} {
		p := filepath.Join(dir, fmt.Sprintf("v%d.wasm", i+1))
		writeFile(t, p, string(wasm))
		if r := n1.cli(t, alphaToken, "deploy", "--app", "hello", "--host", "hello.test", p); r.code != 0 {
			t.Fatalf("deploy v%d on node one: %d %s", i+1, r.code, r.stderr)
		}
		start := time.Now()
		_, want, _ := n1.hit(t, c, "hello.test", "/")
		for {
			code, got, _ := n2.hit(t, c, "hello.test", "/")
			if code == 200 && got == want {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("v%d: node two still serves %d %q 2s after node one serves %q", i+1, code, got, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("v%d served by node two %v after node one", i+1, time.Since(start).Round(time.Millisecond))
	}
	// A rollback on node two reaches node one.
	if r := n2.cli(t, alphaToken, "rollback", "--app", "hello"); r.code != 0 {
		t.Fatalf("rollback on node two: %d %s", r.code, r.stderr)
	}
	_, want, _ := n2.hit(t, c, "hello.test", "/")
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if _, got, _ := n1.hit(t, c, "hello.test", "/"); got == want {
			break
		}
		if time.Since(start) > 2*time.Second {
			t.Fatalf("node one does not serve node two's rollback (%q) after 2s", want)
		}
	}
}

// TestE2EHostingDrainTimeout: a WebSocket left on a replaced version is closed
// (1001) once hosting.drain_timeout has passed; a new one goes to the new
// version.
func TestE2EHostingDrainTimeout(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "site.toml")
	writeFile(t, cfg, fmt.Sprintf(`
[[listeners]]
addr = "127.0.0.1:0"
[admin]
addr = "127.0.0.1:0"
token = %q
[hosting]
data_dir = "data"
drain_timeout = "1s"
[tenants.alpha]
tokens = [%q]
`, opToken, alphaHash))
	h := startHosting(t, cfg)
	v1 := h.runBuild(t, dir)
	v2 := filepath.Join(dir, "v2.wasm")
	b, _ := os.ReadFile(v1)
	writeFile(t, v2, string(withCustomSection(b, "v", "2")))
	if r := h.cli(t, alphaToken, "deploy", "--app", "web", "--host", "alpha.test", v1); r.code != 0 {
		t.Fatalf("deploy v1: %s", r.stderr)
	}
	ws, _, err := websocket.DefaultDialer.Dial(strings.Replace(h.URL, "http://", "ws://", 1)+"/echo", http.Header{"Host": {"alpha.test"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if r := h.cli(t, alphaToken, "deploy", "--app", "web", v2); r.code != 0 {
		t.Fatalf("deploy v2: %s", r.stderr)
	}
	ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
		t.Fatalf("the WebSocket on the replaced version: %v, want a 1001 close at the drain timeout", err)
	}
}

// runBuild builds samples/ws into dir and returns the module's path.
func (h *hostingSite) runBuild(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "v1.wasm")
	if r := runWasmsrv(t, 5*time.Minute, nil, "build", "--cache-dir", e2eCache, "-o", out, sample("ws")); r.code != 0 {
		t.Fatalf("build: %s", r.stderr)
	}
	return out
}

// TestE2ESampleHosting runs samples/hosting/demo.sh against the binary: two
// tenants, a split, a rollout, a rollback, beta's refused attempts.
func TestE2ESampleHosting(t *testing.T) {
	needCurl(t)
	r := runWasmsrvScript(t, filepath.Join(samplesDir, "hosting", "demo.sh"),
		"WASMSRV_BIN="+wasmsrvBin, "WASMSRV_LISTEN=127.0.0.1:0", "WASMSRV_ADMIN_ADDR=127.0.0.1:0", "WASMSRV_CACHE_DIR="+e2eCache)
	if r.code != 0 {
		t.Fatalf("demo.sh: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"(10%)", "rolled back to", "403 Forbidden", "409 Conflict", "== done"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("demo.sh output lacks %q:\n%s\n%s", want, r.stdout, r.stderr)
		}
	}
}

// runWasmsrvScript runs a shell script with env (on the scrubbed environment).
func runWasmsrvScript(t *testing.T, script string, env ...string) result {
	t.Helper()
	cmd := exec.Command("bash", script)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%s still running after 5 minutes\n%s\n%s", script, stdout.String(), stderr.String())
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}
