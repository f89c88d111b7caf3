package admin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// raw sends one request as written (no client library fills anything in) and
// returns the status and body.
func raw(t *testing.T, addr, req string) (int, string, http.Header) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// request builds a raw HTTP/1.1 request; host "" leaves the Host field out.
func request(method, path, host string, fields ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, path)
	if host != "" {
		fmt.Fprintf(&b, "Host: %s\r\n", host)
	}
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	if method == "POST" {
		b.WriteString("Content-Length: 0\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// TestGuardRefusesBrowserAttacks sends what a hostile web page can make the
// operator's browser send: a Host of the attacker's name (DNS rebinding), an
// Origin of another site, Sec-Fetch-Site from another site, a form POST with no
// custom header (text/plain or a form encoding: CORS-simple), a preflight. None
// reaches the API; what tools send does. Both without and with a token.
func TestGuardRefusesBrowserAttacks(t *testing.T) {
	for _, token := range []string{"", "s3cret"} {
		t.Run("token="+token, func(t *testing.T) {
			f := &fake{}
			srv := httptest.NewServer(Handler(f, Config{Addr: "127.0.0.1:0", Token: token}, slog.New(slog.DiscardHandler)))
			defer srv.Close()
			addr := srv.Listener.Addr().String()
			_, port, _ := net.SplitHostPort(addr)
			auth := ""
			if token != "" {
				auth = "Authorization: Bearer " + token
			}
			with := func(fields ...string) []string {
				if auth != "" {
					fields = append(fields, auth)
				}
				return fields
			}
			change := ChangeHeader + ": 1"
			tests := []struct {
				name, req string
				code      int
			}{
				{"status, loopback IP", request("GET", "/status", addr, with()...), 200},
				{"status, localhost", request("GET", "/status", "localhost:"+port, with()...), 200},
				{"status, LOCALHOST. without port", request("GET", "/status", "LOCALHOST.", with()...), 200},
				{"status, ::1", request("GET", "/status", "[::1]:"+port, with()...), 200},
				{"status, 127.0.0.2", request("GET", "/status", "127.0.0.2", with()...), 200},
				{"status, typed in the address bar", request("GET", "/status", addr, with("Sec-Fetch-Site: none")...), 200},
				{"status, same origin", request("GET", "/status", addr, with("Sec-Fetch-Site: same-origin", "Origin: http://"+addr)...), 200},
				{"reload with the header", request("POST", "/reload", addr, with(change)...), 200},

				{"rebinding: status", request("GET", "/status", "evil.example", with()...), 421},
				{"rebinding: status with port", request("GET", "/status", "evil.example:"+port, with()...), 421},
				{"rebinding: reload", request("POST", "/reload", "evil.example:"+port, with(change)...), 421},
				{"rebinding: a localhost subdomain", request("GET", "/status", "evil.localhost", with()...), 421},
				{"rebinding: a name ending in an IP", request("GET", "/status", "127.0.0.1.evil.example", with()...), 421},
				{"other IP", request("GET", "/status", "10.1.2.3:"+port, with()...), 421},
				{"no Host (HTTP/1.0)", strings.Replace(request("GET", "/status", "", with()...), "HTTP/1.1", "HTTP/1.0", 1), 421},
				{"cross-origin status read", request("GET", "/status", addr, with("Origin: http://evil.example")...), 403},
				{"null origin", request("POST", "/reload", addr, with("Origin: null", change)...), 403},
				{"cross-site fetch", request("POST", "/reload", addr, with("Sec-Fetch-Site: cross-site", change)...), 403},
				{"same-site (other port) fetch", request("POST", "/purge?key=x", addr, with("Sec-Fetch-Site: same-site", "Origin: http://127.0.0.1:1", change)...), 403},
				{"form POST text/plain", request("POST", "/reload", addr, with("Content-Type: text/plain")...), 403},
				{"form POST urlencoded", request("POST", "/purge?key=*", addr, with("Content-Type: application/x-www-form-urlencoded")...), 403},
				{"preflight", request("OPTIONS", "/reload", addr, with("Origin: http://evil.example", "Access-Control-Request-Method: POST", "Access-Control-Request-Headers: "+ChangeHeader)...), 403},
				{"preflight without origin", request("OPTIONS", "/reload", addr, with()...), 403},
			}
			for _, tt := range tests {
				code, body, hdr := raw(t, addr, tt.req)
				if code != tt.code {
					t.Errorf("%s: %d %q, want %d", tt.name, code, body, tt.code)
				}
				for k := range hdr {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Errorf("%s: answered with %s", tt.name, k)
					}
				}
			}
			if f.reloads != 1 || len(f.purged) != 0 {
				t.Errorf("reloads %d, purges %v: only the one good reload may pass", f.reloads, f.purged)
			}
			if token != "" {
				if code, _, _ := raw(t, addr, request("POST", "/reload", addr, change)); code != 401 {
					t.Errorf("no token: %d", code)
				}
			}
		})
	}
}

// TestGuardNames: the listener's own names are localhost, loopback addresses,
// the host of its address and admin.hosts; an unspecified address answers to
// any IP.
func TestGuardNames(t *testing.T) {
	for _, tt := range []struct {
		addr  string
		hosts []string
		ok    []string
		bad   []string
	}{
		{"127.0.0.1:9901", nil, []string{"127.0.0.1:9901", "localhost", "[::1]:1"}, []string{"evil.example", "10.0.0.1", "", "[::ffff:10.0.0.1]"}},
		{"admin.internal:9901", []string{"ops.example.", "10.9.9.9"}, []string{"admin.internal", "ADMIN.internal.:9901", "ops.example", "10.9.9.9:1", "127.0.0.1"}, []string{"evil.example", "10.0.0.1", "internal"}},
		{"0.0.0.0:9901", nil, []string{"10.0.0.1:9901", "[2001:db8::1]:9901", "localhost"}, []string{"evil.example", "host.lan"}},
		{"[::]:9901", []string{"admin.lan"}, []string{"10.0.0.1", "admin.lan:9901"}, []string{"evil.example"}},
		{":9901", nil, []string{"192.0.2.1"}, []string{"evil.example"}},
		{"10.0.0.5:9901", nil, []string{"10.0.0.5:9901", "[::ffff:10.0.0.5]:9901", "127.0.0.1"}, []string{"10.0.0.6", "evil.example"}},
	} {
		g := newGuard(tt.addr, tt.hosts, nil)
		for _, h := range tt.ok {
			if !g.hostOK(h) {
				t.Errorf("%s %v: Host %q refused", tt.addr, tt.hosts, h)
			}
		}
		for _, h := range tt.bad {
			if g.hostOK(h) {
				t.Errorf("%s %v: Host %q accepted", tt.addr, tt.hosts, h)
			}
		}
	}
}

// TestBrowserPageCannotReload opens a page of another origin in headless Chromium
// that tries what a hostile page would: fetch POSTs (text/plain, no-cors, with the
// change header), a form POST, and a read of /status. Nothing reaches the API, and
// the page reads nothing.
func TestBrowserPageCannotReload(t *testing.T) {
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		t.Skip("no Chromium installed (apt-get install chromium): skipping the browser test")
	}
	f := &fake{}
	api := httptest.NewServer(Handler(f, Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler)))
	defer api.Close()
	target := api.URL
	page := `<!doctype html><title>evil</title>
<form id=f method=POST action="` + target + `/reload" enctype="text/plain" target=sink><input name=a value=b></form>
<iframe name=sink></iframe>
<script>
window.results = [];
const note = (what, p) => p.then(r => results.push(what + ": " + (r.type === "opaque" ? "opaque" : r.status)), e => results.push(what + ": error"));
note("text/plain", fetch("` + target + `/reload", {method: "POST", headers: {"Content-Type": "text/plain"}, body: "x"}));
note("no-cors", fetch("` + target + `/purge?key=*", {method: "POST", mode: "no-cors", body: "x"}));
note("with header", fetch("` + target + `/reload", {method: "POST", headers: {"` + ChangeHeader + `": "1"}}));
note("read status", fetch("` + target + `/status").then(r => r.text().then(t => { results.push("status body: " + t.length); return r; })));
document.getElementById("f").submit();
</script>`
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	}))
	defer evil.Close()
	// The attacker's page is on "localhost" (another origin than 127.0.0.1).
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU)...)
	defer cancel()
	tab, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.Navigate(evilURL)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](`window.results && window.results.length >= 4`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the page's requests did not finish: %v", err)
	}
	results, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`window.results`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("page saw: %v", results)
	for _, r := range results {
		if strings.HasPrefix(r, "status body") {
			t.Errorf("the page read the status: %s", r)
		}
	}
	// The form POST navigates the iframe to the admin origin: once it has (its
	// location can no longer be read from here), the POST was answered.
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](`(() => { try { return frames[0].location.href !== "about:blank" && false } catch (e) { return true } })()`,
		chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Errorf("the form POST was not answered: %v", err)
	}
	if f.reloads != 0 || len(f.purged) != 0 {
		t.Errorf("a page of another origin reloaded %d times and purged %v", f.reloads, f.purged)
	}
}
