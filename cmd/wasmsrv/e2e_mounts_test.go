package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// escapeGuest is the hostile C command of runtime/testdata/escape.
func escapeGuest() string { return filepath.Join(samplesDir, "..", testkit.EscapeGuest) }

func getBody(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// raceGet is a GET for the escape guest's race mode, from a goroutine of SwapRace:
// failures are in the report it returns.
func raceGet(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return "GET: " + err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "GET: " + err.Error()
	}
	return string(b)
}

// TestMountEscapesThroughRun: `wasmsrv run --dir` with the hostile guest, over HTTP.
// It reads nothing and writes nothing outside its two mounts, and the read-only one
// stays as it was.
func TestMountEscapesThroughRun(t *testing.T) {
	tree := testkit.NewMountTree(t)
	srv := startServer(t, escapeGuest(), "--dir", tree.Data+":/data", "--dir", tree.RO+":/ro:ro",
		"--env", "OUTSIDE="+tree.Outside, "--workers", "2", "--access-log=false")
	c := httpClient(t)
	tree.CheckEscapeReport(t, getBody(t, c, srv.URL+"/"))
	tree.SwapRace(t, func() string { return raceGet(c, srv.URL+"/?race=1500") })
}

// TestMountEscapesThroughServe: the same guest mounted by a site file (mode cgi,
// apps.NAME.mounts, host paths relative to the file).
func TestMountEscapesThroughServe(t *testing.T) {
	tree := testkit.NewMountTree(t)
	guest := filepath.Join(tree.Base, "escape.wasm")
	bin, err := os.ReadFile(escapeGuest())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(guest, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	site := filepath.Join(tree.Base, "site.toml")
	conf := fmt.Sprintf(`[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[apps.escape]
module = "escape.wasm"
mode = "cgi"
pool_size = 2
env = { OUTSIDE = %q }
mounts = [
  { host = "data", guest = "/data" },
  { host = "ro", guest = "/ro", read_only = true },
]
[[routes]]
path = "/"
app = "escape"
`, tree.Outside)
	if err := os.WriteFile(site, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startWasmsrv(t, nil, guest, "serve", "-c", site, "--cache-dir", e2eCache)
	c := httpClient(t)
	tree.CheckEscapeReport(t, getBody(t, c, srv.URL+"/"))
	tree.SwapRace(t, func() string { return raceGet(c, srv.URL+"/?race=1500") })
}

// TestMountMissingDirectory: a --dir that is not there stops `wasmsrv run` at start,
// naming the flag and the directory (the check serve's mounts key has), before any
// request.
func TestMountMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	res := runWasmsrv(t, time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache,
		"--dir", missing+":/data", escapeGuest())
	if res.code == 0 {
		t.Fatal("served with a missing mount directory")
	}
	if want := "dir[0].host: \"" + missing + "\" is not a directory"; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
}
