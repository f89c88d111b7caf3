package plugins_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/builder"
)

// TestServeConfigGrants runs `wasmsrv serve` with a site file that grants plugins to
// an app and configures them per app: grants, plugin sections and the process-wide
// [plugins] table all come from the config file.
func TestServeConfigGrants(t *testing.T) {
	bin := wasmsrvBinary(t)
	wasm, _, err := builder.Build(context.Background(), guest, builder.Options{CacheDir: buildCache()})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := freePort(t)
	site := fmt.Sprintf(`
[plugins]
kv_path = %q

[admin]
addr = "" # no admin listener: the default 127.0.0.1:9901 is shared by every test binary

[[listeners]]
addr = "127.0.0.1:%d"

[apps.shop]
module = %q
grants = ["kv", "config", "pubsub", "http"]

[apps.shop.plugins.config]
vars = { greeting = "hello from the site file" }

[apps.shop.plugins.kv]
max_value = 10

[[routes]]
path = "/"
app = "shop"
`, filepath.Join(dir, "kv.db"), port, wasm)
	path := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(path, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "-c", path, "--cache-dir", "-")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || !strings.Contains(sc.Text(), "serving") {
		t.Fatalf("wasmsrv serve did not start: %q", sc.Text())
	}
	go func() {
		for sc.Scan() {
		}
	}()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	want(t, base+"/config?k=greeting", "hello from the site file")
	want(t, base+"/kv/set?k=a&v=short", "ok")
	want(t, base+"/kv/set?k=a&v=much-too-long", "ERR_TOO_LARGE")
	want(t, base+"/kv/get?k=a", "short")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
