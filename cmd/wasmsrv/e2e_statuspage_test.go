package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// trapWAT is a sync guest, written from abi/SPEC.md alone, whose every request
// traps.
const trapWAT = `(module
  (memory (export "memory") 1)
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))
  (func (export "wasmsrv_handle") (param i32) (result i32) unreachable))`

// findChromium returns the path of a Chromium, skipping the test without one.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium installed (.ci/run installs Debian's chromium): skipping the browser test")
	return ""
}

func assembleWAT(t *testing.T, name, wat string) string {
	t.Helper()
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not installed (apt-get install wabt)")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, name+".wat")
	if err := os.WriteFile(src, []byte(wat), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, name+".wasm")
	if b, err := exec.Command(wat2wasm, src, "-o", out).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	return out
}

// The status page in headless Chromium, through the real binary: the page is
// the log-in form without the admin token; the token sets a session cookie
// no script can read and no other site's page sends; the page then shows the
// app's pool and the crash the test caused, with its reason, and redraws
// itself when a second crash happens: the numbers change, the page is the
// same document (no navigation, no reload).
func TestE2EStatusPageChromium(t *testing.T) {
	chrome := findChromium(t)
	wasm := assembleWAT(t, "trapper", trapWAT)
	s := startServer(t, wasm, "--name", "trapper", "--workers", "1",
		"--admin", "127.0.0.1:0", "--admin-token", "s3cret-token")
	base := adminURL(t, s)
	c := httpClient(t)
	crash := func() {
		t.Helper()
		if resp, body := get(t, c, s.URL+"/boom"); resp.StatusCode != http.StatusInternalServerError {
			t.Fatalf("a trapping request: %d %q", resp.StatusCode, body)
		}
	}
	crash()

	// Without the token: the log-in form, and no data.
	if resp, body := adminGet(t, base, "", "/ui"); resp.StatusCode != 200 || !strings.Contains(body, `id="login"`) || strings.Contains(body, "trapper") {
		t.Fatalf("/ui without a token: %d %q", resp.StatusCode, body)
	}
	if resp, _ := adminGet(t, base, "", "/crashes"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("/crashes without a token: %d", resp.StatusCode)
	}

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU)...)
	defer cancel()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.Navigate(base+"/ui")); err != nil {
		t.Fatalf("starting Chromium on %s/ui: %v", base, err)
	}
	poll := func(expr, what string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, err := chromedp.Run(tab, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second)))
			if err == nil {
				return
			}
			// The log-in reloads the page: a poll begun on the form ends there
			// (target navigated, its context gone).
			if strings.Contains(err.Error(), "(-32000)") && time.Now().Before(deadline) {
				continue
			}
			html, _ := chromedp.Run(tab, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
			t.Fatalf("%s: %v\npage:\n%s", what, err, html)
		}
	}
	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	poll(`document.getElementById("login") !== null`, "the log-in form")
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("token").value = "wrong";
document.getElementById("login").requestSubmit(); true`)); err != nil {
		t.Fatal(err)
	}
	poll(`document.getElementById("error").textContent === "wrong token"`, "a wrong token refused")
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`document.getElementById("token").value = "s3cret-token";
document.getElementById("login").requestSubmit(); true`)); err != nil {
		t.Fatal(err)
	}
	poll(`document.querySelector('#crashes tbody tr[data-app="trapper"]') !== null`, "the page showing the first crash")

	row := eval(`document.querySelector('#crashes tbody tr[data-app="trapper"]').textContent`)
	if !strings.Contains(row, "crash") || !strings.Contains(row, "trap") || !strings.Contains(row, "unreachable") {
		t.Errorf("crash row %q: want kind crash, reason trap and the trap's message", row)
	}
	if got := eval(`document.getElementById("crash-total").textContent`); got != "1" {
		t.Errorf("crash total %q, want 1", got)
	}
	if got := eval(`document.querySelector('#apps tr[data-app="trapper"] td.failed').textContent`); got != "1" {
		t.Errorf("failed instances %q, want 1", got)
	}
	if got := eval(`document.cookie`); got != "" {
		t.Errorf("a script can read the session cookie: %q", got)
	}
	cookies, err := chromedp.Run(tab, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/ui"}})
	})
	if err != nil {
		t.Fatal(err)
	}
	var session *network.Cookie
	for _, ck := range cookies.Cookies {
		if ck.Name == "wasmsrv_admin" {
			session = ck
		}
	}
	if session == nil || !session.HTTPOnly || session.SameSite != network.CookieSameSiteStrict || strings.Contains(session.Value, "s3cret-token") {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not the token itself", session)
	}

	// A marker only this document has: a navigation or reload would lose it.
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`window.sameDocument = "yes"; true`)); err != nil {
		t.Fatal(err)
	}
	crash()
	poll(`document.getElementById("crash-total").textContent === "2"`, "the page updating to the second crash")
	if got := eval(`window.sameDocument || "reloaded"`); got != "yes" {
		t.Errorf("the page navigated to update: marker %q", got)
	}
	if got := eval(`String(document.querySelectorAll('#crashes tbody tr').length)`); got != "2" {
		t.Errorf("%s crash rows, want 2", got)
	}
	poll(`document.querySelector('#apps tr[data-app="trapper"] td.failed').textContent === "2"`, "the pool's failures updating")

	// The cookie stands for the token for the JSON too (same origin), and a
	// request from another origin with it is refused by the guard.
	req := mustRequest(t, http.MethodGet, base+"/crashes", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	if resp, body := do(t, c, req); resp.StatusCode != 200 || !strings.Contains(body, `"trapper"`) {
		t.Errorf("/crashes with the session cookie: %d %q", resp.StatusCode, body)
	}
	req = mustRequest(t, http.MethodGet, base+"/crashes", nil)
	req.AddCookie(&http.Cookie{Name: session.Name, Value: session.Value})
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if resp, _ := do(t, c, req); resp.StatusCode != http.StatusForbidden {
		t.Errorf("/crashes with the cookie from another site: %d, want 403", resp.StatusCode)
	}
	// A forged or expired session is no session.
	for _, v := range []string{"", "x", "99999999999.AAAA", strings.Replace(session.Value, ".", ".x", 1), "1." + strings.SplitN(session.Value, ".", 2)[1]} {
		req := mustRequest(t, http.MethodGet, base+"/crashes", nil)
		req.AddCookie(&http.Cookie{Name: session.Name, Value: url.QueryEscape(v)})
		if resp, _ := do(t, c, req); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("forged session %q: %d, want 401", v, resp.StatusCode)
		}
	}
}

// wasmsrv serve feeds the same ring: a site app's crash is in /crashes (and so
// on the page) with its reason, and /status splits the pool's instances into
// idle and busy.
func TestE2EServeCrashesInAdmin(t *testing.T) {
	wasm := assembleWAT(t, "trapper", trapWAT)
	dir := t.TempDir()
	s := startAdminSite(t, dir, fmt.Sprintf(`
[admin]
addr = "127.0.0.1:0"
token = "site-token"

[[listeners]]
addr = "127.0.0.1:0"

[apps.trapper]
module = %q
pool_size = 2

[[routes]]
app = "trapper"
`, wasm))
	if resp, body := get(t, httpClient(t), s.URL+"/"); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("a trapping request: %d %q", resp.StatusCode, body)
	}
	// The crash is recorded as the instance is discarded, before the 500 is
	// written (the pool reports it on the request's goroutine).
	resp, body := adminGet(t, s.Admin, "site-token", "/crashes")
	var snap struct {
		Recent []struct{ App, Kind, Reason, Error string }
		Total  map[string]int
	}
	if err := json.Unmarshal([]byte(body), &snap); resp.StatusCode != 200 || err != nil {
		t.Fatalf("/crashes: %d %q %v", resp.StatusCode, body, err)
	}
	if len(snap.Recent) != 1 || snap.Recent[0].App != "trapper" || snap.Recent[0].Kind != "crash" ||
		snap.Recent[0].Reason != "trap" || snap.Total["trapper"] != 1 {
		t.Errorf("/crashes: %s", body)
	}
	resp, body = adminGet(t, s.Admin, "site-token", "/status")
	if resp.StatusCode != 200 || !strings.Contains(body, `"idle"`) || !strings.Contains(body, `"busy": 0`) {
		t.Errorf("/status: %d %s", resp.StatusCode, body)
	}
	if resp, body := adminGet(t, s.Admin, "", "/ui"); resp.StatusCode != 200 || !strings.Contains(body, `id="login"`) {
		t.Errorf("/ui without the token: %d %q", resp.StatusCode, body)
	}
	if resp, body := adminGet(t, s.Admin, "site-token", "/ui"); resp.StatusCode != 200 || !strings.Contains(body, `id="crashes"`) {
		t.Errorf("/ui with the token: %d %q", resp.StatusCode, body)
	}
}
