package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostileGuestThroughServer drives the misbehaving guest through the real
// server: each failure costs its request (the right status) and its instance, never
// the server, and the next request is served by a fresh instance.
func TestHostileGuestThroughServer(t *testing.T) {
	hostile := filepath.Join(samplesDir, "..", "runtime", "testdata", "hostile")
	srv := startServer(t, hostile, "--timeout", "2s", "--workers", "2", "--memory-limit", "16MiB", "--access-log=false")
	c := httpClient(t)
	tests := []struct {
		path    string
		status  int    // 0: the response must be cut
		logHas  string // in the server log afterwards
		maxTime time.Duration
	}{
		{"/loop", http.StatusGatewayTimeout, "deadline exceeded", 5 * time.Second},
		{"/sleep", http.StatusGatewayTimeout, "deadline exceeded", 5 * time.Second},
		{"/bomb", http.StatusInternalServerError, "out of memory", 10 * time.Second},
		{"/gopanic", http.StatusInternalServerError, "goroutine panic on purpose", 5 * time.Second},
		{"/deadlock", http.StatusInternalServerError, "all goroutines are asleep", 5 * time.Second},
		{"/exit", http.StatusInternalServerError, "exit", 5 * time.Second},
		{"/panic", http.StatusInternalServerError, "handler panic on purpose", 5 * time.Second},
		{"/badptr?resp_write", http.StatusInternalServerError, "resp_write: region outside guest memory", 5 * time.Second},
		{"/badptr?req_head", http.StatusInternalServerError, "req_head: region outside guest memory", 5 * time.Second},
		{"/badhandle", http.StatusInternalServerError, "unknown request handle", 5 * time.Second},
		{"/stream-then-loop", 0, "deadline exceeded", 5 * time.Second},
		{"/stream-then-panic", 0, "panic after the head was sent", 5 * time.Second},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			start := time.Now()
			resp, err := c.Get(srv.URL + tc.path)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if took := time.Since(start); took > tc.maxTime {
				t.Errorf("took %s, want under %s", took, tc.maxTime)
			}
			if tc.status == 0 {
				// Head sent, then the guest failed: the client must see an
				// incomplete response, not a clean short one.
				if err == nil {
					t.Fatalf("response completed cleanly (%d %q); want it cut", resp.StatusCode, body)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != tc.status {
					t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, tc.status)
				}
			}
			deadline := time.Now().Add(3 * time.Second)
			for !strings.Contains(srv.logs(), tc.logHas) {
				if time.Now().After(deadline) {
					t.Fatalf("log lacks %q:\n%s", tc.logHas, tail(srv.logs(), 3000))
				}
				time.Sleep(20 * time.Millisecond)
			}
			// The server and the pool are fine: the next request succeeds well
			// within one deadline.
			start = time.Now()
			resp, got := get(t, c, srv.URL+"/ok")
			if resp.StatusCode != http.StatusOK || got != "ok\n" {
				t.Fatalf("next request: %d %q", resp.StatusCode, got)
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("next request took %s", took)
			}
		})
	}
}

// TestNotAGuest: a module without the wasmsrv markers is refused at load with an
// error that names what is missing.
func TestNotAGuest(t *testing.T) {
	// A valid module exporting one empty function "foo": no markers, no memory.
	mod := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type: () -> ()
		"\x03\x02\x01\x00" + // one function of type 0
		"\x07\x07\x01\x03foo\x00\x00" + // export "foo" func 0
		"\x0a\x04\x01\x02\x00\x0b") // body: no locals, end
	path := filepath.Join(t.TempDir(), "plain.wasm")
	if err := os.WriteFile(path, mod, 0o644); err != nil {
		t.Fatal(err)
	}
	res := runWasmsrv(t, time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, path)
	if res.code == 0 {
		t.Fatal("served a module that is not a guest")
	}
	if !strings.Contains(res.stderr, "not a wasmsrv guest: missing export wasmsrv_abi_v1") {
		t.Fatalf("stderr does not name the missing marker:\n%s", res.stderr)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestEnvImportIsNamed: a C guest with an undefined function (an import from "env")
// is refused at load with a message that says "env" is not provided by the host,
// and not that it is a plugin to grant.
func TestEnvImportIsNamed(t *testing.T) {
	guest := filepath.Join(samplesDir, "..", "runtime", "testdata", "envimport", "main.wasm")
	res := runWasmsrv(t, time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, guest)
	if res.code == 0 {
		t.Fatal("served a guest whose import nothing provides")
	}
	for _, want := range []string{`imports env.lookup_user from module "env", which this host does not provide`, "left undefined"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	if strings.Contains(res.stderr, "not granted") || strings.Contains(res.stderr, "--grant") {
		t.Errorf("the error sends the operator to grant a plugin:\n%s", res.stderr)
	}
}
