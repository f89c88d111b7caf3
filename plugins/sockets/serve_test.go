package sockets_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// TestServeSiteSection grants sockets in a `wasmsrv serve` site file and
// configures it per app: the allow list and the limits of the app's section apply,
// and a section the plugin cannot read stops the server with the key named.
func TestServeSiteSection(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "wasmsrv")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/wasmsrv").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	wasm, _, err := builder.Build(context.Background(), guest, builder.Options{CacheDir: testkit.BuildCache()})
	if err != nil {
		t.Fatal(err)
	}
	ls := startLineServer(t, nil, nil)
	site := func(section string) (string, int) {
		port := testkit.FreePort(t)
		cfg := fmt.Sprintf(`
[admin]
addr = "" # no admin listener: the default 127.0.0.1:9901 is shared by every test binary

[[listeners]]
addr = "127.0.0.1:%d"

[apps.db]
module = %q
pool_size = 1
grants = ["sockets"]

[apps.db.plugins.sockets]
%s

[[routes]]
path = "/"
app = "db"
`, port, wasm, section)
		path := filepath.Join(t.TempDir(), "site.toml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
		return path, port
	}

	path, port := site(fmt.Sprintf("allow = [%q]\nmax_instance_conns = 1", ls.addr))
	cmd := exec.Command(bin, "serve", "-c", path, "--cache-dir", "-")
	stdout, _ := cmd.StdoutPipe()
	var stderr testkit.LogBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), "serving") {
		t.Fatalf("wasmsrv serve did not start: %q\n%s", sc.Text(), stderr.String())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	want(t, base+"/ping?addr="+ls.addr, 200, "pong")
	want(t, base+"/ping?addr=127.0.0.1:1", 502, "ERR_DENIED")
	want(t, base+"/leak?addr="+ls.addr, 200, "1")
	want(t, base+"/leak?addr="+ls.addr, 502, "ERR_QUOTA") // max_instance_conns = 1

	bad, _ := site(`allow = ["db.internal:0"]`)
	c := exec.Command(bin, "serve", "-c", bad, "--cache-dir", "-")
	done := make(chan []byte, 1)
	go func() { out, _ := c.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		if !strings.Contains(string(out), "sockets") || !strings.Contains(string(out), `allow "db.internal:0": bad port`) {
			t.Fatalf("a bad sockets section: %s", out)
		}
	case <-time.After(2 * time.Minute):
		_ = c.Process.Kill()
		t.Fatal("wasmsrv serve with a bad sockets section did not stop")
	}
}
