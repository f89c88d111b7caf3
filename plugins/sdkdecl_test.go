package plugins_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// TestSDKsMatchPluginRegistrations holds the plugin ABIs to one source, as the core
// ABI is held to abi.Imports: the host functions each standard plugin registers.
// Every //go:wasmimport of the Go SDK's plugin packages (both shapes) and every
// WASMSRV__PLUGIN declaration of sdk/c/wasmsrv_plugins.h names a registered
// function with its signature, and every registered function is declared by both
// SDKs.
func TestSDKsMatchPluginRegistrations(t *testing.T) {
	reg := testRegistry(t, "", "")
	grants := registry.Grants{}
	for _, name := range reg.Names() {
		grants[name] = nil
	}
	opened, err := reg.Open(context.Background(), "sdkcheck", grants, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer opened.Close(context.Background())
	sig := func(params, results []api.ValueType) string {
		conv := func(ts []api.ValueType) []abi.ValType {
			var out []abi.ValType
			for _, v := range ts {
				out = append(out, abi.ValType(v))
			}
			return out
		}
		return abi.Signature{Params: conv(params), Results: conv(results)}.String()
	}
	registered := map[string]string{} // module.name -> signature
	for _, m := range opened.HostModules() {
		for _, f := range m.Funcs {
			registered[m.Name+"."+f.Name] = sig(f.Params, f.Results)
		}
	}
	if len(registered) < 20 {
		t.Fatalf("only %d plugin functions registered: %v", len(registered), registered)
	}
	check := func(sdk string, ds []testkit.WasmDecl, seen map[string]bool) {
		for _, d := range ds {
			if d.Module == abi.ImportModule {
				continue // the core ABI: abi/sdk_test.go
			}
			key := d.Module + "." + d.Name
			want, ok := registered[key]
			switch got := sig(d.Params, d.Results); {
			case !ok:
				t.Errorf("%s: %s imports %s, which no plugin registers", d.Where, sdk, key)
			case got != want:
				t.Errorf("%s: %s imports %s as %s, the plugin registers %s", d.Where, sdk, key, got, want)
			}
			seen[key] = true
		}
	}

	goSeen := map[string]bool{}
	dirs, err := filepath.Glob(filepath.Join("..", "sdk", "go", "*", "imports_wasip1.go"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no plugin packages in sdk/go: %v", err)
	}
	for _, f := range dirs {
		for _, tags := range [][]string{nil, {"wasmsrv_async"}} {
			imports, _, err := testkit.GoWasmDecls(filepath.Dir(f), tags...)
			if err != nil {
				t.Fatal(err)
			}
			check("sdk/go", imports, goSeen)
		}
	}
	src, err := os.ReadFile(filepath.Join("..", "sdk", "c", "wasmsrv_plugins.h"))
	if err != nil {
		t.Fatal(err)
	}
	cImports, _, err := testkit.CWasmImports(string(src), abi.ImportModule)
	if err != nil {
		t.Fatal(err)
	}
	cSeen := map[string]bool{}
	check("wasmsrv_plugins.h", cImports, cSeen)

	var missing []string
	for key := range registered {
		if !goSeen[key] {
			missing = append(missing, "sdk/go lacks "+key)
		}
		if !cSeen[key] {
			missing = append(missing, "wasmsrv_plugins.h lacks "+key)
		}
	}
	slices.Sort(missing)
	for _, m := range missing {
		t.Error(m)
	}
	t.Logf("%d plugin functions, %d Go and %d C declarations checked", len(registered), len(goSeen), len(cImports))
}
