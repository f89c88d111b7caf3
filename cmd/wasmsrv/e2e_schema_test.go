package main

// End-to-end tests of the one app model (issue 12): serve takes every app setting
// run has, check refuses what serve refuses and says all of it at once, and every
// variable's error names it.

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// serve runs samples/ws and samples/chat from their package directories with mode =
// "async" (serve dropped the mode once, building them sync and refusing them), with
// settings serve had no key for before (limit_concurrency, queue_size,
// max_requests, ws_max_message); a WebSocket round trip through each.
func TestE2EServeAsyncPackages(t *testing.T) {
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = ""

[[listeners]]
addr = "127.0.0.1:0"

[apps.ws]
package = %q
mode = "async"
pool_size = 1
limit_concurrency = 50
queue_size = 10
max_requests = 100000
ws_max_message = "8KiB"

[apps.chat]
package = %q
mode = "async"
pool_size = 2
grants = ["pubsub"]

[[routes]]
path = "/echo"
strip_prefix = false
app = "ws"

[[routes]]
path = "/chat"
app = "chat"
`, sample("ws"), sample("chat")))
	unlock := warmLock(sample("chat")) // serve builds both packages; the lock covers chat
	res := runWasmsrv(t, 5*time.Minute, nil, "check", "-c", cfg, "--cache-dir", e2eCache)
	unlock()
	if res.code != 0 || !strings.Contains(res.stdout, "ok (1 listeners, 2 apps") {
		t.Fatalf("check: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	srv := startWasmsrv(t, nil, sample("ws"), "serve", "-c", cfg, "--cache-dir", e2eCache)
	for _, app := range []string{"ws", "chat"} {
		if !strings.Contains(srv.logs(), `msg="app started" app=`+app+` mode=async`) {
			t.Errorf("%s not started async:\n%s", app, srv.logs())
		}
	}

	echo := wsDial(t, "ws://"+srv.Addr+"/echo")
	if got := wsRoundTrip(t, echo, websocket.TextMessage, "hi"); got != "hi" {
		t.Errorf("echo %q", got)
	}
	// ws_max_message reached the app: a larger message closes the connection with 1009.
	_ = echo.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := echo.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 9<<10))); err != nil {
		t.Fatal(err)
	}
	_ = echo.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := echo.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("a 9KiB message with ws_max_message = 8KiB: %v, want close 1009", err)
	}

	// Two clients of the chat room: what one says, both hear (pubsub, async pool).
	a := wsDial(t, "ws://"+srv.Addr+"/chat/ws?room=e2e")
	b := wsDial(t, "ws://"+srv.Addr+"/chat/ws?room=e2e")
	if got := wsRoundTrip(t, a, websocket.TextMessage, "hello from a"); got != "hello from a" {
		t.Errorf("a hears %q", got)
	}
	_ = b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, got, err := b.ReadMessage(); err != nil || string(got) != "hello from a" {
		t.Errorf("b hears %q, %v", got, err)
	}
}

// check refuses what serve refuses, all at once, each as FILE:LINE: key: message in
// the file's words (no Go type names), with a suggestion for a misspelt key; serve
// refuses the same file with the same lines.
func TestE2ECheckReportsEverything(t *testing.T) {
	cfg := writeSite(t, fmt.Sprintf(`[admin]
addr = ""

[[listeners]]
addr = "127.0.0.1:0"

[apps.cgi]
module = %q
mode = "sync"

[apps.web]
module = %q
pool_sise = 2
queue_size = "many"
memory_limit = "lots"
ws_send_buffer = 0

[[routes]]
app = "ghost"
`, sample("c-cgi/main.wasm"), sample("c-cgi/main.wasm")))
	res := runWasmsrv(t, time.Minute, nil, "check", "-c", cfg, "--cache-dir", e2eCache)
	if res.code != 1 {
		t.Errorf("exit %d, want 1", res.code)
	}
	for _, want := range []string{
		cfg + `:9: apps.cgi.mode: mode sync was asked for, but the module is a WASI command`,
		cfg + `:13: apps.web.pool_sise: unknown key (did you mean "pool_size"?)`,
		cfg + `:14: apps.web.queue_size: wrong type: got the string "many", want a whole number`,
		cfg + `:15: apps.web.memory_limit: bad size "lots"`,
		cfg + `:16: apps.web.ws_send_buffer: must be > 0`,
		cfg + `:19: routes[0].app: unknown app "ghost"`,
	} {
		if !strings.Contains(res.stderr, want+"") {
			t.Errorf("check's output lacks %q:\n%s", want, res.stderr)
		}
	}
	if goType := regexp.MustCompile(`config\.|struct field|\bint64?\b|\[\]string`); goType.MatchString(res.stderr) {
		t.Errorf("check's output names Go types (%q):\n%s", goType.FindString(res.stderr), res.stderr)
	}

	// serve says the same about the mode (a file with only that problem), in the same form.
	only := writeSite(t, fmt.Sprintf("[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[apps.cgi]\nmodule = %q\nmode = \"sync\"\n\n[[routes]]\napp = \"cgi\"\n", sample("c-cgi/main.wasm")))
	want := only + ":9: apps.cgi.mode: mode sync was asked for, but the module is a WASI command"
	if res := runWasmsrv(t, time.Minute, nil, "check", "-c", only, "--cache-dir", e2eCache); res.code != 1 || !strings.Contains(res.stderr, want) {
		t.Errorf("check: exit %d, stderr:\n%s\nwant %q", res.code, res.stderr, want)
	}
	if res := runWasmsrv(t, time.Minute, nil, "serve", "-c", only, "--cache-dir", e2eCache); res.code == 0 || !strings.Contains(res.stderr, want) {
		t.Errorf("serve: exit %d, stderr:\n%s\nwant %q", res.code, res.stderr, want)
	}
}

// Every WASMSRV_* variable is read one way, and a bad value's error names the
// variable, the form it wants and what it got — for run, serve and check alike.
func TestE2EEnvErrorsNameTheVariable(t *testing.T) {
	site := writeSite(t, "[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[[routes]]\nstatic = \"www\"\n")
	for _, tt := range []struct {
		env  string
		args []string
		want string
	}{
		{"WASMSRV_ACCESS_LOG=yes", []string{"run", sample("c-cgi/main.wasm")}, `WASMSRV_ACCESS_LOG: want true or false, got "yes"`},
		{"WASMSRV_ACCESS_LOG=yes", []string{"serve", "-c", site}, `WASMSRV_ACCESS_LOG: want true or false, got "yes"`},
		{"WASMSRV_WORKERS=many", []string{"run", sample("c-cgi/main.wasm")}, `WASMSRV_WORKERS: want a whole number, got "many"`},
		{"WASMSRV_MEMORY_LIMIT=lots", []string{"run", sample("c-cgi/main.wasm")}, `WASMSRV_MEMORY_LIMIT: bad size "lots"`},
		{"WASMSRV_MODE=turbo", []string{"run", sample("c-cgi/main.wasm")}, `WASMSRV_MODE: unknown mode "turbo"`},
		{"WASMSRV_MODE=turbo", []string{"build", sample("hello")}, `WASMSRV_MODE: unknown mode "turbo"`},
		{"WASMSRV_APP_ENV=NOEQUALS", []string{"run", sample("c-cgi/main.wasm")}, `WASMSRV_APP_ENV: want KEY=VALUE pairs separated by ;, got "NOEQUALS"`},
		{"WASMSRV_APP_DIRS=/tmp", []string{"run", sample("c-cgi/main.wasm")}, `WASMSRV_APP_DIRS: "/tmp", want HOST:GUEST or HOST:GUEST:ro`},
		{"WASMSRV_SHUTDOWN_TIMEOUT=soon", []string{"check", "-c", site}, `WASMSRV_SHUTDOWN_TIMEOUT: bad duration "soon"`},
		{"WASMSRV_LOG_FORMAT=xml", []string{"check", "-c", site}, `log-format: "xml", want text or json`},
	} {
		res := runWasmsrv(t, time.Minute, []string{tt.env}, tt.args...)
		if res.code == 0 || !strings.Contains(res.stderr, tt.want) {
			t.Errorf("%s wasmsrv %s: exit %d, stderr:\n%s\nwant %q", tt.env, strings.Join(tt.args, " "), res.code, res.stderr, tt.want)
		}
	}
}
