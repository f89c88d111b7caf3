package abi_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// The SDKs declare the ABI a second time, in their own languages; these tests hold
// those declarations (read with testkit.GoWasmDecls and testkit.CWasmImports) to
// the table in table.go.

// decl is one import or export an SDK declares, in the table's terms.
type decl struct {
	module, name string // module is "" for an export
	sig          abi.Signature
	where        string
}

func valTypes(ts []api.ValueType) []abi.ValType {
	var out []abi.ValType
	for _, v := range ts {
		out = append(out, abi.ValType(v))
	}
	return out
}

func decls(ds []testkit.WasmDecl, where string) []decl {
	var out []decl
	for _, d := range ds {
		out = append(out, decl{module: d.Module, name: d.Name, sig: abi.Signature{Params: valTypes(d.Params), Results: valTypes(d.Results)}, where: where + d.Where})
	}
	return out
}

func goDecls(t *testing.T, dir string, tags ...string) (imports, exports []decl) {
	t.Helper()
	imps, exps, err := testkit.GoWasmDecls(dir, tags...)
	if err != nil {
		t.Fatal(err)
	}
	return decls(imps, ""), decls(exps, "")
}

func cDecls(t *testing.T, src, where string) (imports []decl, cNames []string) {
	t.Helper()
	imps, names, err := testkit.CWasmImports(src, abi.ImportModule)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	return decls(imps, where+": "), names
}

// checkImports checks an SDK's core imports against the table: each is a function of
// the table, importable in shape, with the table's signature. It returns the names
// seen.
func checkImports(t *testing.T, shape abi.Shape, imports []decl) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for _, d := range imports {
		if d.module != abi.ImportModule {
			continue
		}
		seen[d.name] = true
		imp, ok := abi.LookupImport(d.module, d.name)
		switch {
		case !ok:
			t.Errorf("%s: imports %s.%s, which the ABI table does not have", d.where, d.module, d.name)
		case !imp.Sig.Equal(d.sig):
			t.Errorf("%s: imports %s.%s as %s, the table says %s", d.where, d.module, d.name, d.sig, imp.Sig)
		case !slices.Contains(imp.Shapes, shape):
			t.Errorf("%s: imports %s.%s in the %s shape, which the table does not allow", d.where, d.module, d.name, shape)
		}
	}
	return seen
}

// checkExports checks an SDK's exports for shape against the table: every function
// export the shape requires is there, each export the table knows has its signature
// and is not forbidden in the shape, and no other export takes the ABI's prefix.
// Exports the toolchain provides (memory, _initialize) are not the SDK's to declare.
func checkExports(t *testing.T, shape abi.Shape, exports []decl, what string) {
	t.Helper()
	have := map[string]bool{}
	for _, d := range exports {
		have[d.name] = true
		e, ok := abi.LookupExport(d.name)
		switch {
		case !ok:
			if strings.HasPrefix(d.name, "wasmsrv_") {
				t.Errorf("%s: exports %s, which the ABI table does not have", d.where, d.name)
			}
		case e.In[shape] == abi.Forbidden:
			t.Errorf("%s: exports %s in the %s shape, where the table forbids it", d.where, d.name, shape)
		case e.Kind == abi.KindFunction && !e.Sig.Equal(d.sig):
			t.Errorf("%s: exports %s as %s, the table says %s", d.where, d.name, d.sig, e.Sig)
		}
	}
	for _, e := range abi.Exports() {
		if e.In[shape] == abi.Required && e.Kind == abi.KindFunction && !strings.HasPrefix(e.Name, "_") && !have[e.Name] {
			t.Errorf("%s (%s shape): does not export %s, which the table requires", what, shape, e.Name)
		}
	}
}

// TestGoSDKMatchesTable: the Go SDK (sdk/go) as built for each shape (sync: plain
// wasip1; async: the wasmsrv_async tag) declares its core imports and its exports
// as the table says, and between the two shapes it imports every core function.
func TestGoSDKMatchesTable(t *testing.T) {
	dir := filepath.Join("..", "sdk", "go")
	all := map[string]bool{}
	for _, tc := range []struct {
		shape abi.Shape
		tags  []string
	}{{abi.ShapeSync, nil}, {abi.ShapeAsync, []string{"wasmsrv_async"}}} {
		imports, exports := goDecls(t, dir, tc.tags...)
		if len(imports) == 0 || len(exports) == 0 {
			t.Fatalf("%s shape: found %d imports and %d exports in %s: the parser missed the directives", tc.shape, len(imports), len(exports), dir)
		}
		for name := range checkImports(t, tc.shape, imports) {
			all[name] = true
		}
		checkExports(t, tc.shape, exports, "sdk/go")
	}
	// host_features is for guests that adapt to the host; the Go SDK knows what
	// its host offers by the ABI version.
	for _, imp := range abi.Imports() {
		if !all[imp.Name] && imp.Name != abi.FnHostFeatures {
			t.Errorf("sdk/go never imports %s.%s", imp.Module, imp.Name)
		}
	}
}

// TestCHeaderMatchesTable: every import wasmsrv.h declares has the table's
// signature, and the header declares the whole table.
func TestCHeaderMatchesTable(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "sdk", "c", "wasmsrv.h"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(src), "WASMSRV__IMPORT(\""); n != len(abi.Imports()) {
		t.Errorf("wasmsrv.h has %d import declarations, the table %d functions", n, len(abi.Imports()))
	}
	imports, _ := cDecls(t, string(src), "sdk/c/wasmsrv.h")
	seen := map[string]bool{}
	for _, shape := range []abi.Shape{abi.ShapeSync, abi.ShapeAsync} {
		for name := range checkImports(t, shape, imports) {
			seen[name] = true
		}
	}
	for _, imp := range abi.Imports() {
		if !seen[imp.Name] {
			t.Errorf("wasmsrv.h does not declare %s.%s", imp.Module, imp.Name)
		}
	}
}

// TestCHeaderCompiledMatchesTable compiles a guest of each shape with the header
// (clang, wasm32-wasi) that refers to every import the preprocessed header declares
// for the shape, and reads the module clang made: its imports are the table's with
// the table's signatures, and its exports (from WASMSRV_HANDLER, WASMSRV_ON_START,
// WASMSRV_ON_STOP, WASMSRV_ASYNC_APP) are what the table asks of the shape. This
// checks what clang makes of the C types, not only what the text says.
func TestCHeaderCompiledMatchesTable(t *testing.T) {
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("clang not installed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
	}
	header, err := filepath.Abs(filepath.Join("..", "sdk", "c", "wasmsrv.h"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	all := map[string]bool{}
	for _, tc := range []struct {
		shape abi.Shape
		pre   string
		app   string
	}{
		{abi.ShapeSync, "", `
static int handler(wasmsrv_request *req, wasmsrv_response *resp) { (void)req; (void)resp; return 0; }
WASMSRV_HANDLER(handler)`},
		{abi.ShapeAsync, "#define WASMSRV_ASYNC\n", `
static const wasmsrv_callbacks app = {0};
WASMSRV_ASYNC_APP(app)`},
	} {
		t.Run(tc.shape.String(), func(t *testing.T) {
			dir := t.TempDir()
			probe := filepath.Join(dir, "probe.c")
			if err := os.WriteFile(probe, []byte(tc.pre+"#include \""+header+"\"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("clang", "--target=wasm32-wasi", "-E", "-P", probe).CombinedOutput()
			if err != nil {
				t.Fatalf("clang -E: %v\n%s", err, out)
			}
			declared, names := cDecls(t, string(out), "wasmsrv.h ("+tc.shape.String()+")")
			if len(names) == 0 {
				t.Fatal("no import declarations found in the preprocessed header")
			}
			var refs strings.Builder
			for _, n := range names {
				refs.WriteString("\t(void *)" + n + ",\n")
			}
			src := tc.pre + "#include \"" + header + "\"\n" + tc.app + `
static int hook(void) { return 0; }
WASMSRV_ON_START(hook)
WASMSRV_ON_STOP(hook)
/* Refers to every import so that the linker keeps them. */
void *const wasmsrv_probe_refs[] = {
` + refs.String() + `};
__attribute__((export_name("probe_refs"))) void *const *probe_refs(void) { return wasmsrv_probe_refs; }
`
			main := filepath.Join(dir, "main.c")
			if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			bin, err := os.ReadFile(testkit.BuildC(t, main))
			if err != nil {
				t.Fatal(err)
			}
			cm, err := rt.CompileModule(ctx, bin)
			if err != nil {
				t.Fatal(err)
			}
			var imports, exports []decl
			for _, f := range cm.ImportedFunctions() {
				mod, name, _ := f.Import()
				imports = append(imports, decl{module: mod, name: name, sig: sigOf(f), where: "compiled " + tc.shape.String() + " guest"})
			}
			for name, f := range cm.ExportedFunctions() {
				exports = append(exports, decl{name: name, sig: sigOf(f), where: "compiled " + tc.shape.String() + " guest"})
			}
			got := checkImports(t, tc.shape, imports)
			for _, d := range declared {
				if !got[d.name] {
					t.Errorf("%s: declared but not imported by the compiled guest", d.where)
				}
				all[d.name] = true
			}
			checkExports(t, tc.shape, exports, "compiled "+tc.shape.String()+" guest")
			if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
				t.Errorf("compiled %s guest exports no memory", tc.shape)
			}
		})
	}
	for _, imp := range abi.Imports() {
		if !all[imp.Name] {
			t.Errorf("neither shape of wasmsrv.h declares %s.%s", imp.Module, imp.Name)
		}
	}
}

func sigOf(f api.FunctionDefinition) abi.Signature {
	return abi.Signature{Params: valTypes(f.ParamTypes()), Results: valTypes(f.ResultTypes())}
}

// TestSignatureString: the table's signatures print as the host's errors do.
func TestSignatureString(t *testing.T) {
	e, ok := abi.LookupExport(abi.ExportOnEvent)
	if !ok {
		t.Fatal("no wasmsrv_on_event in the table")
	}
	if got, want := e.Sig.String(), "(i32, i32, i64, i64) -> (i32)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := (abi.Signature{}).String(); got != "() -> ()" {
		t.Fatalf("empty signature: %q", got)
	}
	if got := abi.CurrentRevision.String(); got != "1.1" {
		t.Fatalf("revision %q", got)
	}
}
