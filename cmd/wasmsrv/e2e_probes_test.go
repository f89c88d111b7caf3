package main

// Liveness and readiness through the real binary (issue 14): /readyz is 503
// while the apps warm up and from the first moment of a stop, while in-flight
// requests still finish; /livez answers throughout.

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probe GETs url and returns the status and body ("" and 0 when it cannot connect).
func probe(c *http.Client, url string) (int, string) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// awaitProbe polls url until it answers code (bounded) and returns the body.
func awaitProbe(t *testing.T, c *http.Client, url string, code int, logs func() string) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		got, body := probe(c, url)
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last %d %q)\nlogs:\n%s", url, code, got, body, logs())
		}
	}
}

var adminURLInServing = regexp.MustCompile(`\(admin (http://[^)\s]+)\)`)

// A stop flips /readyz to 503 at once; the site listeners serve on for
// drain_delay (new requests too), the in-flight stream finishes with all its
// events, and the admin listener answers 503 until they are done.
func TestE2EReadyzDuringDrain(t *testing.T) {
	cfg := writeSite(t, `
[server]
drain_delay = "5s"

[admin]
addr = "127.0.0.1:0"

[[listeners]]
addr = "127.0.0.1:0"

[apps.sse]
package = "`+sample("sse")+`"
pool_size = 2

[[routes]]
path = "/"
app = "sse"
`)
	srv := startServe(t, cfg)
	m := adminURLInServing.FindStringSubmatch(srv.stdout.String())
	if m == nil {
		t.Fatalf("no admin URL in the serving line %q", srv.stdout.String())
	}
	admin := m[1]
	c := httpClient(t)
	if code, body := probe(c, admin+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz while serving: %d %q", code, body)
	}
	_, done := openStream(t, c, srv.URL+"/events?n=16&interval=500ms")

	srv.signal(syscall.SIGTERM)
	// The admin listener stays up until the site has drained, so 503 is seen
	// while the stream is still running.
	if body := awaitProbe(t, c, admin+"/readyz", http.StatusServiceUnavailable, srv.logs); body != "draining\n" {
		t.Errorf("/readyz during the drain says %q", body)
	}
	if code, _ := probe(c, admin+"/livez"); code != 200 {
		t.Errorf("/livez during the drain: %d", code)
	}
	// Within drain_delay the site still takes new requests (a load balancer
	// that has not noticed yet loses nothing).
	if resp, _ := get(t, httpClient(t), srv.URL+"/events?n=1"); resp.StatusCode != 200 {
		t.Errorf("a new request during drain_delay: %d", resp.StatusCode)
	}
	select {
	case out := <-done:
		if out.err != io.EOF || len(out.evs) != 16 {
			t.Errorf("in-flight stream across the stop: %d events, ended with %v; want all 16", len(out.evs), out.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the in-flight stream did not finish")
	}
	if code, exited := srv.wait(30 * time.Second); !exited || code != 0 {
		t.Errorf("exit %d (exited %v)\n%s", code, exited, srv.logs())
	}
}

// gateWAT is a sync guest whose _initialize waits (20 ms sleeps, no CPU) until
// the file "go" exists in its mount: an app that is slow to warm up, for as
// long as the test wants.
const gateWAT = `(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "go")
  (func (export "wasmsrv_abi_v1"))
  (func (export "wasmsrv_mode_sync"))
  (func (export "_initialize")
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24) (i64.const 20000000))
    (block $done
      (loop $wait
        (br_if $done (i32.eqz (call $open (i32.const 3) (i32.const 0) (i32.const 256) (i32.const 2)
          (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 512))))
        (drop (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)))
        (br $wait))))
  (func (export "wasmsrv_handle") (param i32) (result i32) (i32.const 204)))
`

// serve binds the admin listener before the apps start: /readyz is 503
// "starting" until every pool is warm, then 200; /livez is 200 throughout.
func TestE2EReadyzBeforeWarm(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Skip("wat2wasm not installed (.ci/run installs wabt)")
	}
	dir := t.TempDir()
	gate := filepath.Join(dir, "gate")
	if err := os.MkdirAll(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "gate.wat"), gateWAT)
	if out, err := exec.Command(wat2wasm, "-o", filepath.Join(dir, "gate.wasm"), filepath.Join(dir, "gate.wat")).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "site.toml")
	writeFile(t, cfg, `
[admin]
addr = "127.0.0.1:0"

[[listeners]]
addr = "127.0.0.1:0"

[apps.gate]
module = "gate.wasm"
pool_size = 1
mounts = [{ host = "gate", guest = "/gate", read_only = true }]

[[routes]]
path = "/"
app = "gate"
`)
	cmd := exec.Command(wasmsrvBin, "serve", "-c", cfg, "--cache-dir", e2eCache, "--log-format", "json")
	cmd.Env = cleanEnv()
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	started := regexp.MustCompile(`"msg":"admin listener started[^"]*","addr":"(http://[^"]+)"`)
	var admin string
	for deadline := time.Now().Add(60 * time.Second); admin == ""; time.Sleep(10 * time.Millisecond) {
		if m := started.FindStringSubmatch(stderr.String()); m != nil {
			admin = m[1]
		}
		select {
		case <-exited:
			t.Fatalf("serve exited:\n%s", stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no admin listener record:\n%s", stderr.String())
		}
	}
	c := httpClient(t)
	// The guest cannot finish starting before the gate opens: deterministic.
	if code, body := probe(c, admin+"/readyz"); code != 503 || body != "starting\n" {
		t.Errorf("/readyz while the app warms up: %d %q, want 503 starting", code, body)
	}
	if code, _ := probe(c, admin+"/livez"); code != 200 {
		t.Errorf("/livez while the app warms up: %d", code)
	}
	if code, body := probe(c, admin+"/status"); code != 200 || !strings.Contains(body, `"starting": true`) {
		t.Errorf("/status while starting: %d %q", code, body)
	}
	if strings.Contains(stdout.String(), "serving") {
		t.Errorf("serving before the app is warm: %q", stdout.String())
	}

	writeFile(t, filepath.Join(gate, "go"), "")
	awaitProbe(t, c, admin+"/readyz", 200, stderr.String)
	var line string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(line, `"msg":"serving"`); time.Sleep(10 * time.Millisecond) {
		if line = stdout.String(); time.Now().After(deadline) {
			t.Fatalf("ready but no serving line: %q", line)
		}
	}
	m := regexp.MustCompile(`"url":"(http://[^"]+)".*"admin":"(http://[^"]+)"`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("serving line %q", line)
	}
	if code, _ := probe(c, m[1]+"/"); code != 204 {
		t.Errorf("the app once ready: %d", code)
	}
	if m[2] != admin {
		t.Errorf("the site did not keep the admin socket it started with: %s, early %s", m[2], admin)
	}
}

// run: --health-path serves the probes on the app's listener (off by default:
// /readyz is the app's), and --drain-delay keeps it serving with /readyz 503
// after SIGTERM.
func TestE2ERunHealthPath(t *testing.T) {
	plain := startServer(t, sample("hello"), "--workers", "1")
	c := httpClient(t)
	if code, body := probe(c, plain.URL+"/readyz"); code != 200 || body == "ok\n" {
		t.Errorf("/readyz without --health-path: %d %q, want the app's answer", code, body)
	}
	plain.stop()

	srv := startServer(t, sample("hello"), "--workers", "1", "--health-path", "/_wasmsrv/", "--drain-delay", "5s")
	for _, p := range []string{"/_wasmsrv/readyz", "/_wasmsrv/livez"} {
		if code, body := probe(c, srv.URL+p); code != 200 || body != "ok\n" {
			t.Errorf("%s: %d %q", p, code, body)
		}
	}
	if code, body := probe(c, srv.URL+"/readyz"); code != 200 || body == "ok\n" {
		t.Errorf("/readyz outside the health path: %d %q, want the app's", code, body)
	}
	srv.signal(syscall.SIGTERM)
	if body := awaitProbe(t, c, srv.URL+"/_wasmsrv/readyz", http.StatusServiceUnavailable, srv.logs); body != "draining\n" {
		t.Errorf("/readyz after SIGTERM: %q", body)
	}
	if code, _ := probe(httpClient(t), srv.URL+"/still-served"); code != 200 {
		t.Errorf("a request during --drain-delay: %d", code)
	}
	if code, exited := srv.wait(40 * time.Second); !exited || code != 0 {
		t.Errorf("exit %d (exited %v)\n%s", code, exited, srv.logs())
	}
	if !strings.Contains(srv.logs(), "drain_delay=5s") {
		t.Errorf("the drain delay is not in the log:\n%s", srv.logs())
	}
}

// run --admin: the admin listener's /readyz is 200 while serving and 503
// "draining" from SIGTERM until the in-flight stream has finished.
func TestE2ERunAdminReadyz(t *testing.T) {
	srv := startServer(t, sample("sse"), "--workers", "2", "--admin", "127.0.0.1:0")
	admin := adminURL(t, srv)
	c := httpClient(t)
	if code, body := probe(c, admin+"/readyz"); code != 200 || body != "ok\n" {
		t.Fatalf("/readyz while serving: %d %q", code, body)
	}
	_, done := openStream(t, c, srv.URL+"/events?n=12&interval=500ms")
	srv.signal(syscall.SIGTERM)
	if body := awaitProbe(t, c, admin+"/readyz", http.StatusServiceUnavailable, srv.logs); body != "draining\n" {
		t.Errorf("/readyz during the drain: %q", body)
	}
	select {
	case out := <-done:
		if out.err != io.EOF || len(out.evs) != 12 {
			t.Errorf("in-flight stream: %d events, %v", len(out.evs), out.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the in-flight stream did not finish")
	}
	if code, exited := srv.wait(30 * time.Second); !exited || code != 0 {
		t.Errorf("exit %d (exited %v)\n%s", code, exited, srv.logs())
	}
}
