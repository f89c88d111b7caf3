package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"
)

// wsStatus dials url with an optional Origin and returns the handshake status
// (an open socket gets one echo round trip first).
func wsStatus(t *testing.T, url, origin string) int {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, resp, err := d.Dial(url, h)
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return resp.StatusCode
	}
	defer c.Close()
	if got := wsRoundTrip(t, c, websocket.TextMessage, "hi"); got != "hi" {
		t.Fatalf("echo %q", got)
	}
	return resp.StatusCode
}

// TestE2EWebSocketOrigins: `wasmsrv run` refuses WebSocket upgrades from other
// origins by default, takes an allow-list from --ws-origins and
// WASMSRV_WS_ORIGINS, and says so in the log.
func TestE2EWebSocketOrigins(t *testing.T) {
	strict := startServer(t, sample("ws"), "--mode", "async", "--workers", "1")
	url := "ws://" + strict.Addr + "/echo"
	for _, c := range []struct {
		origin string
		want   int
	}{
		{"", 101},                      // not a browser
		{"http://" + strict.Addr, 101}, // the app's own pages
		{"https://evil.example", 403},  // another site
		{"http://" + strict.Addr + ".evil.example", 403},
	} {
		if got := wsStatus(t, url, c.origin); got != c.want {
			t.Errorf("origin %q: %d, want %d", c.origin, got, c.want)
		}
	}
	if logs := strict.logs(); !strings.Contains(logs, "websocket upgrade refused: origin not allowed") || !strings.Contains(logs, "https://evil.example") {
		t.Errorf("no log line for the refused upgrade:\n%s", logs)
	}

	listed := startServerEnv(t, []string{"WASMSRV_WS_ORIGINS=https://chat.example"}, sample("ws"),
		"--mode", "async", "--workers", "1", "--ws-send-buffer", "64KiB")
	if got := wsStatus(t, "ws://"+listed.Addr+"/echo", "https://chat.example"); got != 101 {
		t.Errorf("allow-listed by WASMSRV_WS_ORIGINS: %d", got)
	}
	if got := wsStatus(t, "ws://"+listed.Addr+"/echo", "https://evil.example"); got != 403 {
		t.Errorf("not listed: %d", got)
	}
	flagged := startServerEnv(t, []string{"WASMSRV_WS_ORIGINS=https://chat.example"}, sample("ws"),
		"--mode", "async", "--workers", "1", "--ws-origins", "https://*.partner.example")
	if got := wsStatus(t, "ws://"+flagged.Addr+"/echo", "https://a.partner.example"); got != 101 {
		t.Errorf("allow-listed by --ws-origins: %d", got)
	}
	if got := wsStatus(t, "ws://"+flagged.Addr+"/echo", "https://chat.example"); got != 403 {
		t.Errorf("the flag replaces the variable's list: %d", got)
	}

	res := runWasmsrv(t, time.Minute, nil, "run", "--ws-origins", "https://chat.example/app", sample("ws"))
	if res.code != 2 || !strings.Contains(res.stderr, "ws-origins[0]") || !strings.Contains(res.stderr, "no path") {
		t.Errorf("a bad --ws-origins: exit %d\n%s", res.code, res.stderr)
	}
}

// TestE2EWebSocketOriginChromium: a page on another origin, in a real
// headless Chromium, tries `new WebSocket(...)` to the app: refused (the
// user's cookies would go with it). The same page succeeds once its origin is
// allow-listed, and the app's own page connects, so the refusal is the
// Origin check's doing and nothing else.
func TestE2EWebSocketOriginChromium(t *testing.T) {
	chrome := findChromium(t)
	// The attacker's page: another port, so another origin.
	page := func(target string) string {
		return `<!doctype html><title>other site</title><script>
window.events = [];
const ws = new WebSocket(` + fmt.Sprintf("%q", target) + `);
ws.onopen = () => { events.push("open"); ws.send("hello"); };
ws.onmessage = (e) => { events.push("message:" + e.data); ws.close(1000); };
ws.onerror = () => events.push("error");
ws.onclose = (e) => { events.push("close:" + e.code); window.done = true; };
</script>`
	}
	var target atomic.Value // the socket the page opens
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page(target.Load().(string)))
	}))
	defer other.Close()

	strict := startServer(t, sample("ws"), "--mode", "async", "--workers", "1")
	listed := startServer(t, sample("ws"), "--mode", "async", "--workers", "1", "--ws-origins", other.URL)

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU)...)
	defer cancel()
	browser, cancelB := chromedp.NewContext(alloc)
	defer cancelB()
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	// run loads pageURL in a new tab, runs script there (if any), waits for
	// window.done and returns window.events.
	run := func(pageURL, script string) []string {
		t.Helper()
		tab, cancel := chromedp.NewContext(browser)
		defer cancel()
		if err := chromedp.Do(tab, chromedp.Navigate(pageURL)); err != nil {
			t.Fatalf("%s: %v", pageURL, err)
		}
		if script != "" {
			if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](script+"; true")); err != nil {
				t.Fatalf("%s: %v", pageURL, err)
			}
		}
		if _, err := chromedp.Run(tab, chromedp.Poll[bool](`window.done === true`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("%s: the socket never closed: %v", pageURL, err)
		}
		got, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`window.events`))
		if err != nil {
			t.Fatalf("%s: %v", pageURL, err)
		}
		return got
	}

	target.Store("ws://" + strict.Addr + "/echo")
	if got := strings.Join(run(other.URL, ""), " "); got != "error close:1006" {
		t.Errorf("the other site's page, same-origin app: events %q, want the connection refused", got)
	}
	if logs := strict.logs(); !strings.Contains(logs, "origin not allowed") || !strings.Contains(logs, "origin="+other.URL) {
		t.Errorf("the refusal is not in the log:\n%s", logs)
	}

	target.Store("ws://" + listed.Addr + "/echo")
	if got := strings.Join(run(other.URL, ""), " "); !strings.HasPrefix(got, "open message:hello close:") {
		t.Errorf("the other site's page, allow-listed: events %q, want it connected", got)
	}

	// The app's own page (samples/ws serves one) connecting to its own socket.
	own := run(strict.URL+"/", `window.events = []; window.done = false;
const own = new WebSocket("ws://" + location.host + "/echo");
own.onopen = () => { events.push("open"); own.send("mine"); };
own.onmessage = (e) => { events.push("message:" + e.data); own.close(1000); };
own.onerror = () => events.push("error");
own.onclose = (e) => { events.push("close:" + e.code); window.done = true; }`)
	if got := strings.Join(own, " "); !strings.HasPrefix(got, "open message:mine close:") {
		t.Errorf("the app's own page: events %q, want it connected", got)
	}
}
