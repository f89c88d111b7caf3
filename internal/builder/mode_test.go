package builder_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/builder"
)

// A package that uses the SDK builds as a reactor, for the shape it declares; a
// plain main builds as a WASI command, which wasmsrv serves in CGI mode. C sources
// that include wasmsrv.h build as a reactor, others as a command.
func TestBuildMode(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	ctx := context.Background()
	cache := t.TempDir()
	for _, c := range []struct {
		dir, mode         string
		start, initialize bool
		marker            string
	}{
		{"../../samples/hello", "", false, true, "wasmsrv_mode_sync"},
		{"../../samples/hello", "async", false, true, "wasmsrv_mode_async"},
		{"../../samples/ws", "", false, true, "wasmsrv_mode_async"}, // //wasmsrv:mode async
		{"../../samples/cgi", "", true, false, ""},
		{"../../samples/c-hello", "", false, true, "wasmsrv_mode_sync"},
		{"../../samples/c-async-hello", "", false, true, "wasmsrv_mode_async"},
		{"../../samples/c-cgi", "", true, false, ""},
	} {
		t.Run(strings.TrimPrefix(c.dir, "../")+"/"+c.mode, func(t *testing.T) {
			if strings.Contains(c.dir, "/c-") {
				if _, err := exec.LookPath("clang"); err != nil {
					t.Skip("needs clang for wasm32-wasi")
				}
			}
			mode, err := abi.ParseMode(c.mode)
			if err != nil {
				t.Fatal(err)
			}
			r, err := builder.BuildDir(ctx, c.dir, builder.Options{CacheDir: cache, Mode: mode})
			if err != nil {
				t.Fatal(err)
			}
			bin, err := os.ReadFile(r.Path)
			if err != nil {
				t.Fatal(err)
			}
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			cm, err := rt.CompileModule(ctx, bin)
			if err != nil {
				t.Fatal(err)
			}
			exports := cm.ExportedFunctions()
			_, start := exports["_start"]
			_, init := exports["_initialize"]
			if start != c.start || init != c.initialize {
				t.Fatalf("_start exported: %v (want %v), _initialize exported: %v (want %v)", start, c.start, init, c.initialize)
			}
			if _, ok := exports[c.marker]; c.marker != "" && !ok {
				t.Errorf("no %s export", c.marker)
			}
			// The second build is the cached one.
			again, err := builder.BuildDir(ctx, c.dir, builder.Options{CacheDir: cache, Mode: mode})
			if err != nil || !again.Cached || again.Path != r.Path {
				t.Errorf("second build: %+v, %v; want the cached %s", again, err, r.Path)
			}
		})
	}
	// A mode the package's directive contradicts is refused before anything is built.
	_, err := builder.BuildDir(ctx, "../../samples/ws", builder.Options{CacheDir: cache, Mode: abi.ModeSync})
	if err == nil || !strings.Contains(err.Error(), "samples/ws/main.go") || !strings.Contains(err.Error(), "//wasmsrv:mode async") {
		t.Errorf("sync build of an async package: %v", err)
	}
}

// A build that is not cached reports its steps: the start, each package the
// compiler takes, the link.
func TestBuildSteps(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	dir := t.TempDir()
	// New content every run, so the main package is compiled, never taken from Go's cache.
	write(t, filepath.Join(dir, "go.mod"), "module stepcheck\n\ngo 1.24\n")
	write(t, filepath.Join(dir, "main.go"), "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\""+t.Name()+time.Now().String()+"\") }\n")
	var steps []string
	opt := builder.Options{CacheDir: t.TempDir(), OnStep: func(s string) { steps = append(steps, s) }}
	if _, err := builder.BuildDir(context.Background(), dir, opt); err != nil {
		t.Fatal(err)
	}
	if len(steps) < 3 || steps[0] != "go build" || !slices.Contains(steps, "compiling stepcheck") || steps[len(steps)-1] != "linking" {
		t.Errorf("steps %q: want go build, …, compiling stepcheck, linking", steps)
	}
	steps = nil
	if r, err := builder.BuildDir(context.Background(), dir, opt); err != nil || !r.Cached || len(steps) != 0 {
		t.Errorf("cached build: %v, steps %q", err, steps)
	}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
