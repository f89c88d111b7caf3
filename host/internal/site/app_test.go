package site

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// A real Go guest (samples/echo, built by the builder) mounted under /api
// sees the stripped path and root_path; changing its pool on reload starts
// a new pool while requests keep succeeding.
func TestWasmAppMountAndReload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go guest")
	}
	ctx := context.Background()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: filepath.Join(t.TempDir(), "wazero")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	echoDir, _ := filepath.Abs("../../../samples/echo")
	cfgFor := func(pool int) string {
		return head + fmt.Sprintf(`
[apps.echo]
package = %q
pool_size = %d
env = { GREETING = "hi" }

[[routes]]
path = "/api"
app = "echo"

[[routes]]
path = "/"
static = "www"
fallback = "echo"
`, echoDir, pool)
	}
	f := start(t, cfgFor(2), eng)

	var rep struct {
		Method, Path, Query string
		RootPath            string `json:"root_path"`
	}
	code, _, body := get(t, f.url+"/api/items?x=1")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if rep.Path != "/items" || rep.RootPath != "/api" || rep.Query != "x=1" {
		t.Errorf("guest saw %+v", rep)
	}
	// SPA fallback: a path with no file goes to the app.
	if code, _, body := get(t, f.url+"/dashboard/7"); code != 200 || !strings.Contains(body, `"path":"/dashboard/7"`) {
		t.Errorf("fallback: %d %s", code, body)
	}
	if _, _, body := get(t, f.url+"/hello.txt"); body != "hello file" {
		t.Errorf("static: %q", body)
	}

	var total, failed atomic.Int64
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for lctx.Err() == nil {
				resp, err := http.Get(f.url + "/api/load")
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		})
	}
	time.Sleep(100 * time.Millisecond)
	if code, body := f.reload(t, cfgFor(3)); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	wg.Wait()
	if failed.Load() != 0 || total.Load() < 20 {
		t.Errorf("%d of %d requests failed across an app reload", failed.Load(), total.Load())
	}
	waitApps := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			f.site.mu.Lock()
			n := len(f.site.apps)
			f.site.mu.Unlock()
			if n == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d app pools alive, want %d", n, want)
			}
		}
	}
	waitApps(1) // the old pool drained and closed

	// An edited source restarts the app on reload even with the config
	// unchanged; an untouched one keeps its pool.
	appKey := func() string {
		f.site.mu.Lock()
		defer f.site.mu.Unlock()
		for k := range f.site.apps {
			return k
		}
		return ""
	}
	before := appKey()
	if code, body := f.reload(t, cfgFor(3)); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if appKey() != before {
		t.Error("unchanged app restarted by a reload")
	}
	touched := filepath.Join(echoDir, "main.go")
	st, _ := os.Stat(touched)
	later := st.ModTime().Add(time.Second)
	os.Chtimes(touched, later, later)
	defer os.Chtimes(touched, st.ModTime(), st.ModTime())
	if code, body := f.reload(t, cfgFor(3)); code != 200 {
		t.Fatalf("reload after edit: %d %s", code, body)
	}
	if appKey() == before {
		t.Error("edited app kept its old pool")
	}
	waitApps(1)
}
