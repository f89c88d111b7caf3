package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// TestMountEscapesThroughRun: `wasmsrv run --dir` with the hostile guest, over HTTP.
// It reads nothing and writes nothing outside its two mounts, and the read-only one
// stays as it was.
func TestMountEscapesThroughRun(t *testing.T) {
	tree := testkit.NewMountTree(t)
	srv := startServer(t, escapeGuest(), "--dir", tree.Data+":/data", "--dir", tree.RO+":/ro:ro",
		"--env", "OUTSIDE="+tree.Outside, "--workers", "2", "--access-log=false")
	c := httpClient(t)
	tree.CheckEscapeReport(t, getBody(t, c, srv.URL+"/"))
	swapRace(t, tree, func() string { return getBody(t, c, srv.URL+"/?race=1500") })
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
	swapRace(t, tree, func() string { return getBody(t, c, srv.URL+"/?race=1500") })
}

// swapRace has the host swap /data/swap between a directory link and links out
// while two requests read through it: no read may reach the canary.
func swapRace(t *testing.T, tree *testkit.MountTree, get func() string) {
	t.Helper()
	real := filepath.Join(tree.Data, "swap.real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "canary.txt"), []byte("INSIDE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	swap := filepath.Join(tree.Data, "swap")
	if err := os.Symlink("swap.real", swap); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var swapper sync.WaitGroup
	swapper.Add(1)
	go func() {
		defer swapper.Done()
		tmp := filepath.Join(tree.Data, "swap.tmp")
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			target := []string{"../outside", tree.Outside, "swap.real"}[i%3]
			_ = os.Symlink(target, tmp)
			_ = os.Rename(tmp, swap)
		}
	}()
	reports := make([]string, 2)
	var wg sync.WaitGroup
	for i := range reports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i] = get()
		}()
	}
	wg.Wait()
	close(stop)
	swapper.Wait()
	for _, r := range reports {
		var inside, canary, errs int
		i := strings.Index(r, "race ")
		if i < 0 {
			t.Fatalf("no counts in %q", r)
		}
		if _, err := fmt.Sscanf(r[i:], "race inside=%d canary=%d errors=%d", &inside, &canary, &errs); err != nil {
			t.Fatalf("%q: %v", r, err)
		}
		if canary != 0 || strings.Contains(r, tree.Canary) {
			t.Errorf("read the canary %d times through a swapped link", canary)
		}
		if inside == 0 {
			t.Errorf("no read reached the file inside: %s", r)
		}
	}
	tree.CheckUntouched(t)
}

// TestMountMissingDirectory: a --dir that is not there stops `wasmsrv run` at load,
// naming the directory, before any request.
func TestMountMissingDirectory(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	res := runWasmsrv(t, time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache,
		"--dir", missing+":/data", escapeGuest())
	if res.code == 0 {
		t.Fatal("served with a missing mount directory")
	}
	if want := "mount " + missing + " at /data"; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
}
