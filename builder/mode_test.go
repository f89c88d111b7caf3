package builder_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/wasmsrv/wasmsrv/builder"
)

// A package that uses the SDK builds as a reactor; a plain main builds as a WASI
// command, which wasmsrv serves in CGI mode.
func TestBuildMode(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	ctx := context.Background()
	cache := t.TempDir()
	for _, c := range []struct {
		dir               string
		start, initialize bool
	}{
		{"../samples/hello", false, true},
		{"../samples/cgi", true, false},
	} {
		t.Run(c.dir, func(t *testing.T) {
			path, _, err := builder.Build(ctx, c.dir, builder.Options{CacheDir: cache})
			if err != nil {
				t.Fatal(err)
			}
			bin, err := os.ReadFile(path)
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
		})
	}
}
