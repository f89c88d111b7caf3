package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// jsonRecords parses every line of out as one JSON object: a line that is not
// fails the test.
func jsonRecords(t *testing.T, stream, out string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" && out == "" {
			break
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s line %d is not JSON (%v): %.300q", stream, i+1, err, line)
			continue
		}
		recs = append(recs, m)
	}
	return recs
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// TestE2ECrashRecords: each way a Go guest crashes — a handler panic the SDK
// recovers, a panic in another goroutine, a deadlock, running out of memory —
// is one record, its first line in the message (or in err, with the failure),
// the goroutine stacks in "stack" and the trap's frames in "wasm_stack"; no
// record holds a single line of a stack. Run in JSON mode with --name: every line
// on stdout and stderr parses as JSON and every record names the app.
func TestE2ECrashRecords(t *testing.T) {
	hostile := filepath.Join(samplesDir, "..", "runtime", "testdata", "hostile")
	srv := startServer(t, hostile, "--timeout", "5s", "--workers", "1", "--memory-limit", "16MiB",
		"--log-format", "json", "--name", "crashy")
	c := httpClient(t)
	crashes := []struct {
		path, head string
		trap       bool // the instance is discarded (else the SDK recovered)
	}{
		{"/panic", "wasmsrv: panic serving GET /panic: handler panic on purpose", false},
		{"/gopanic", "panic: goroutine panic on purpose", true},
		{"/deadlock", "fatal error: all goroutines are asleep - deadlock!", true},
		{"/bomb", "runtime: out of memory", true},
	}
	for _, cr := range crashes {
		resp, _ := get(t, c, srv.URL+cr.path)
		if resp.StatusCode != http.StatusInternalServerError {
			t.Errorf("%s: status %d", cr.path, resp.StatusCode)
		}
	}
	if resp, body := get(t, c, srv.URL+"/ok"); resp.StatusCode != 200 || body != "ok\n" {
		t.Errorf("/ok after the crashes: %d %q", resp.StatusCode, body)
	}
	if code := srv.stop(); code != 0 {
		t.Errorf("exit code %d", code)
	}

	out := jsonRecords(t, "stdout", srv.stdout.String())
	if len(out) != 1 || str(out[0], "msg") != "serving" || !strings.HasPrefix(str(out[0], "url"), "http://") || str(out[0], "app") != "crashy" {
		t.Errorf("stdout: %v, want one serving record with its url", out)
	}
	recs := jsonRecords(t, "stderr", srv.logs())
	for _, r := range recs {
		if str(r, "app") != "crashy" {
			t.Errorf("a record without app=crashy: %v", r)
		}
		msg := str(r, "msg")
		if strings.HasPrefix(msg, "goroutine ") || strings.HasPrefix(msg, "\t") || strings.HasPrefix(msg, "main.") ||
			strings.HasPrefix(msg, "created by") || strings.HasPrefix(msg, "runtime.") {
			t.Errorf("a record of one stack line: %v", r)
		}
	}
	for _, cr := range crashes {
		var found []map[string]any
		for _, r := range recs {
			if strings.HasPrefix(str(r, "msg"), cr.head) || strings.Contains(str(r, "err"), "("+cr.head) {
				found = append(found, r)
			}
		}
		if len(found) != 1 {
			t.Errorf("%s: %d records with %q, want one:\n%v", cr.path, len(found), cr.head, found)
			continue
		}
		r := found[0]
		if str(r, "level") != "ERROR" || !strings.Contains(str(r, "stack"), "goroutine 1 ") && !strings.Contains(str(r, "stack"), "goroutine 7 ") {
			t.Errorf("%s: %v, want an error with the goroutine stacks in stack", cr.path, r)
		}
		if cr.trap {
			if str(r, "msg") != "instance discarded" || !strings.Contains(str(r, "wasm_stack"), ".runtime.abort(") {
				t.Errorf("%s: %v, want the instance's discard with the wasm stack", cr.path, r)
			}
			if strings.Contains(str(r, "err"), "wasm stack trace") {
				t.Errorf("%s: the wasm stack is in err too: %q", cr.path, str(r, "err"))
			}
		}
	}
}

// cCrashGuest writes a C app (the SDK header by its absolute path) that logs a
// line per level word on /levels, fails an assert on /assert and traps after a
// line on /trap.
func cCrashGuest(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "c-crash")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	header := filepath.Join(samplesDir, "..", "sdk", "c", "wasmsrv.h")
	src := fmt.Sprintf(`#include <assert.h>
#include <stdio.h>
#include %q

static int h(wasmsrv_request *req, wasmsrv_response *resp) {
    if (wasmsrv_str_eq(req->path, "/levels")) {
        fprintf(stderr, "ERROR db down\n");
        fprintf(stderr, "WARNING:root:disk low\n");
        fprintf(stderr, "[INFO] cache warmed\n");
        fprintf(stderr, "2026/12/07 10:00:00 DEBUG cache key=42\n");
        fprintf(stderr, "time=2026-12-07T10:00:00Z level=info msg=\"logfmt line\"\n");
        fprintf(stderr, "{\"level\":\"error\",\"msg\":\"json line\"}\n");
        fprintf(stderr, "a plain line\n");
        printf("INFO: on stdout\n");
        fflush(stdout);
    }
    if (wasmsrv_str_eq(req->path, "/assert")) {
        assert(req->path.len == 0 && "the path must be empty");
    }
    if (wasmsrv_str_eq(req->path, "/trap")) {
        fprintf(stderr, "about to trap\n");
        __builtin_trap();
    }
    return wasmsrv_resp_end(resp, "ok\n", 3);
}

WASMSRV_HANDLER(h)
`, header)
	if err := os.WriteFile(filepath.Join(dir, "main.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestE2EGuestLevelsAndCTraps: a guest's stderr (and stdout) lines that name a
// level are logged at it, without the level word or a timestamp before it;
// other stderr lines are warnings. A C assert is one record (its line in err,
// the wasm stack beside it), a bare trap one record with the wasm stack and the
// stderr tail. The app is named after its directory.
func TestE2EGuestLevelsAndCTraps(t *testing.T) {
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang not installed")
	}
	app := cCrashGuest(t)
	srv := startServer(t, app, "--workers", "1", "--log-level", "debug", "--access-log=false")
	c := httpClient(t)
	for _, p := range []string{"/levels", "/assert", "/trap", "/levels"} {
		resp, _ := get(t, c, srv.URL+p)
		want := 200
		if p != "/levels" {
			want = 500
		}
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", p, resp.StatusCode, want)
		}
	}
	srv.stop()
	logs := srv.logs()
	for _, want := range []string{
		`level=ERROR msg="db down" app=c-crash instance=1 stream=stderr`,
		`level=WARN msg="root:disk low" app=c-crash instance=1 stream=stderr`,
		`level=INFO msg="cache warmed" app=c-crash instance=1 stream=stderr`,
		`level=DEBUG msg="cache key=42" app=c-crash instance=1 stream=stderr`,
		`level=INFO msg="time=2026-12-07T10:00:00Z level=info msg=\"logfmt line\"" app=c-crash`,
		`level=ERROR msg="{\"level\":\"error\",\"msg\":\"json line\"}" app=c-crash`,
		`level=WARN msg="a plain line" app=c-crash instance=1 stream=stderr`,
		`level=INFO msg="on stdout" app=c-crash instance=1 stream=stdout`,
		`level=WARN msg="about to trap" app=c-crash`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	var asserts, traps int
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "Assertion failed") {
			asserts++
			if !strings.Contains(line, `msg="instance discarded"`) || !strings.Contains(line, "wasm_stack=") || !strings.Contains(line, "the path must be empty") {
				t.Errorf("the assert's record: %s", line)
			}
		}
		if strings.Contains(line, "wasm error: unreachable") && !strings.Contains(line, "Assertion failed") {
			traps++
			if !strings.Contains(line, "wasm_stack=") || !strings.Contains(line, `stderr="about to trap"`) {
				t.Errorf("the trap's record: %s", line)
			}
		}
	}
	if asserts != 1 || traps != 1 {
		t.Errorf("%d assert records and %d trap records, want one each:\n%s", asserts, traps, logs)
	}
}

// TestE2EJSONEverywhere: with --log-format json every line either stream
// carries is a JSON object: for serve (its serving line a record with url, urls
// and admin), and for a run that fails to start because Redis is down (go-redis's
// own dial warnings, then the error itself).
func TestE2EJSONEverywhere(t *testing.T) {
	t.Run("serve", func(t *testing.T) {
		cfg := sseSite(t, "5s")
		srv := startWasmsrv(t, nil, cfg, "serve", "-c", cfg, "--cache-dir", e2eCache, "--log-format", "json", "--access-log")
		if resp, _ := get(t, httpClient(t), srv.URL+"/events?n=1"); resp.StatusCode != 200 {
			t.Errorf("status %d", resp.StatusCode)
		}
		srv.signal(syscall.SIGTERM)
		if code, ok := srv.wait(20 * time.Second); !ok || code != 0 {
			t.Errorf("exit %d %v", code, ok)
		}
		out := jsonRecords(t, "stdout", srv.stdout.String())
		if len(out) != 1 || str(out[0], "msg") != "serving" || str(out[0], "url") != srv.URL || !strings.HasPrefix(str(out[0], "admin"), "http://") {
			t.Errorf("stdout records %v", out)
		}
		recs := jsonRecords(t, "stderr", srv.logs())
		if last := recs[len(recs)-1]; str(last, "msg") != "stopped" {
			t.Errorf("last record %v", last)
		}
	})
	t.Run("redis-down", func(t *testing.T) {
		port := testkit.FreePort(t)
		r := runWasmsrv(t, 2*time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, "--log-format", "json",
			"--grant", "kv", "--redis-url", fmt.Sprintf("redis://127.0.0.1:%d", port), sample("counter"))
		if r.code != 1 {
			t.Errorf("exit code %d, want 1", r.code)
		}
		if r.stdout != "" {
			t.Errorf("stdout %q", r.stdout)
		}
		recs := jsonRecords(t, "stderr", r.stderr)
		var redisWarn bool
		for _, rec := range recs {
			redisWarn = redisWarn || (str(rec, "lib") == "go-redis" && str(rec, "level") == "WARN" && strings.Contains(str(rec, "msg"), "dial"))
		}
		if !redisWarn {
			t.Errorf("no go-redis warning among the records:\n%s", r.stderr)
		}
		if len(recs) == 0 || str(recs[len(recs)-1], "level") != "ERROR" || !strings.Contains(str(recs[len(recs)-1], "msg"), "redis") {
			t.Errorf("the last record is not the error:\n%s", r.stderr)
		}
	})
}

// TestE2EAppNames: run names an app after its directory, and a C module built
// as main.wasm after the directory holding it; --name overrides both. Every
// record carries the name.
func TestE2EAppNames(t *testing.T) {
	for _, tc := range []struct {
		src  string
		args []string
		want string
	}{
		{sample("c-hello"), nil, "c-hello"},
		{filepath.Join(sample("c-hello"), "main.wasm"), nil, "c-hello"},
		{filepath.Join(sample("c-hello"), "main.wasm"), []string{"--name", "greeter"}, "greeter"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			srv := startServer(t, tc.src, append([]string{"--workers", "1"}, tc.args...)...)
			if resp, _ := get(t, httpClient(t), srv.URL+"/"); resp.StatusCode != 200 {
				t.Errorf("status %d", resp.StatusCode)
			}
			srv.stop()
			if !strings.Contains(srv.stdout.String(), "serving "+tc.want+" ") {
				t.Errorf("stdout %q", srv.stdout.String())
			}
			for _, line := range strings.Split(strings.TrimSpace(srv.logs()), "\n") {
				if !strings.Contains(line, " app="+tc.want+" ") && !strings.HasSuffix(line, " app="+tc.want) {
					t.Errorf("a record without app=%s: %s", tc.want, line)
				}
			}
		})
	}
}
