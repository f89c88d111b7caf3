package plugins_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/builder"
)

// startNodeCmd is startNode that also returns the process, to stop it the way an
// operator does (SIGINT) before the test ends.
func startNodeCmd(t *testing.T, bin, wasm string, args ...string) (string, *exec.Cmd) {
	t.Helper()
	var cmd *exec.Cmd
	url := startNodeWith(t, func(c *exec.Cmd) { cmd = c }, bin, wasm, args...)
	return url, cmd
}

// TestSamplesThroughTheCLI runs the counter and fetch samples the way their doc
// comments say: `wasmsrv run` with grant flags; the counter survives a process
// restart on its bbolt file.
func TestSamplesThroughTheCLI(t *testing.T) {
	bin := wasmsrvBinary(t)
	build := func(dir string) string {
		p, _, err := builder.Build(context.Background(), dir, builder.Options{CacheDir: buildCache()})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	counter := build("../samples/counter")
	db := filepath.Join(t.TempDir(), "counter.db")
	for round, wantN := range []string{"1\n", "2\n"} {
		u, cmd := startNodeCmd(t, bin, counter, "--grant", "kv", "--kv-path", db)
		want(t, u+"/", wantN)
		if round == 0 {
			_ = cmd.Process.Signal(os.Interrupt)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("wasmsrv did not stop on SIGINT")
			}
		}
	}

	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("from upstream"))
	}))
	defer up.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer other.Close()
	f := startNode(t, bin, build("../samples/fetch"), "--grant", "http,config",
		"--var", "UPSTREAM="+up.URL+"/", "--http-allow", strings.TrimPrefix(up.URL, "http://"))
	want(t, f+"/", "from upstream")
	code, body := get(t, f+"/?url="+url.QueryEscape(other.URL+"/"))
	if code != 502 || !strings.Contains(body, "ERR_DENIED") {
		t.Fatalf("unlisted host: %d %q", code, body)
	}
}
