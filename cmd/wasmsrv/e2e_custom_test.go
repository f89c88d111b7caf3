package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The plugin API proved from outside: a plugin in a Go module of its own, outside
// this repository, compiled into a wasmsrv binary of its own with host/cli.Main
// (docs/custom-binary.md), granted to a guest that imports it, over HTTP.

const customGoMod = `module example.com/greet

go 1.26

require github.com/wasmsrv/wasmsrv v0.0.0

replace github.com/wasmsrv/wasmsrv => %s
`

// greet.go: a third-party plugin written against package plugins only.
const customPlugin = `// Package greet is a wasmsrv plugin: import module wasmsrv_greet, one function
// hello(name, name_len, buf, limit) -> len writing "hello NAME from APP (call N)",
// N counting calls per instance.
package greet

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins"
)

type Plugin struct{}

func (Plugin) Name() string    { return "greet" }
func (Plugin) Version() string { return "1.0" }

type calls struct{}

func (Plugin) Open(_ context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var cfg struct {
		Greeting string ` + "`json:\"greeting\"`" + `
	}
	if err := app.Config.Decode(&cfg); err != nil {
		return nil, err
	}
	if cfg.Greeting == "" {
		cfg.Greeting = "hello"
	}
	name := app.Name
	return &plugins.Binding{Funcs: []plugins.HostFunc{{
		Name:    "hello",
		Params:  plugins.Sig(plugins.I32, plugins.I32, plugins.I32, plugins.I32),
		Results: plugins.Sig(plugins.I64),
		Fn: func(ctx context.Context, mod api.Module, stack []uint64) {
			who := plugins.Region("hello", mod, stack[0], stack[1])
			if len(who) > 64 {
				plugins.Trap("hello", "name longer than 64 bytes")
			}
			in := plugins.InstanceFrom(ctx)
			n, _ := in.Value(calls{}).(int)
			in.SetValue(calls{}, n+1)
			msg := fmt.Sprintf("%s %s from %s (call %d)", cfg.Greeting, who, name, n+1)
			stack[0] = plugins.Out("hello", mod, stack[2], stack[3], []byte(msg))
		},
	}}}, nil
}
`

const customMain = `// Command mywasmsrv is wasmsrv with the greet plugin compiled in.
package main

import (
	"os"

	"github.com/wasmsrv/wasmsrv/host/cli"
	"github.com/wasmsrv/wasmsrv/plugins"

	"example.com/greet"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Options{Plugins: []plugins.Plugin{greet.Plugin{}}}))
}
`

// guest/main.go: a Go guest that imports the plugin.
const customGuest = `package main

import (
	"net/url"
	"unsafe"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

//go:wasmimport wasmsrv_greet hello
func hello(name unsafe.Pointer, nameLen uint32, buf unsafe.Pointer, limit uint32) int64

func init() {
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		q, _ := url.ParseQuery(r.RawQuery)
		name := []byte(q.Get("name"))
		if len(name) == 0 {
			name = []byte("world")
		}
		buf := make([]byte, 256)
		n := hello(unsafe.Pointer(unsafe.SliceData(name)), uint32(len(name)), unsafe.Pointer(&buf[0]), uint32(len(buf)))
		if n < 0 || n > int64(len(buf)) {
			w.WriteHeader(500)
			return
		}
		w.WriteString(string(buf[:n]))
	})
}

func main() {}
`

func TestE2ECustomBinaryWithOwnPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasmsrv binary")
	}
	repo := filepath.Dir(samplesDir)
	dir := outsideRepo(t)
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", strings.Replace(customGoMod, "%s", repo, 1))
	write("greet.go", customPlugin)
	write("cmd/mywasmsrv/main.go", customMain)
	write("guest/main.go", customGuest)

	// The module's go.sum comes from the module proxy (or the cache), as for any
	// user's module; then an ordinary go build.
	goCmd := func(args ...string) {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = cleanEnv("GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	goCmd("mod", "tidy")
	bin := filepath.Join(dir, "mywasmsrv")
	build := []string{"build", "-o", bin}
	if raceBuild {
		build = append(build, "-race")
	}
	goCmd(append(build, "./cmd/mywasmsrv")...)

	env := []string{"GOWORK=off", "GOFLAGS=-mod=mod"}
	unlock := warmLock(filepath.Join(dir, "guest"))
	s := launchBinary(t, bin, dir, env, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache,
		"--grant", "greet", "--name", "shop", "./guest")
	unlock()
	c := httpClient(t)
	// The call count is per instance (Instance.Value): which instance serves a
	// request is the pool's business, so only its form is checked.
	for _, name := range []string{"you", "me"} {
		want := regexp.MustCompile(`^hello ` + name + ` from shop \(call [1-9][0-9]*\)$`)
		resp, body := get(t, c, s.URL+"/?name="+name)
		if resp.StatusCode != 200 || !want.MatchString(body) {
			t.Fatalf("GET ?name=%s: %d %q, want 200 %s\n%s", name, resp.StatusCode, body, want, s.logs())
		}
	}
	// A hostile guest argument traps its own instance, and only that.
	resp, _ := get(t, c, s.URL+"/?name="+strings.Repeat("x", 65))
	if resp.StatusCode != 500 {
		t.Errorf("a 65-byte name: %d, want 500 (the plugin traps the instance)", resp.StatusCode)
	}
	if resp, body := get(t, c, s.URL+"/?name=again"); resp.StatusCode != 200 || !strings.HasPrefix(body, "hello again from shop") {
		t.Errorf("after the trap: %d %q", resp.StatusCode, body)
	}
	s.stop()

	// Without the grant the app does not load, naming the plugin; the built-in
	// plugins are still there beside it.
	res := runBinaryIn(t, bin, dir, startTimeout, env, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, "--name", "shop", "./guest")
	if res.code == 0 || !strings.Contains(res.stderr, "wasmsrv_greet") || !strings.Contains(res.stderr, "--grant greet") {
		t.Errorf("without --grant greet: exit %d, want an error naming wasmsrv_greet and --grant greet:\n%s", res.code, res.stderr)
	}
}
