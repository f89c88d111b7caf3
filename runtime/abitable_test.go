package runtime

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// TestCoreModuleMatchesTable: the `wasmsrv` module the runtime registers in wazero
// has exactly the functions of abi.Imports, each with the table's signature, and
// every implementation in coreHostFuncs is registered (no implementation without a
// table entry, no table entry without an implementation).
func TestCoreModuleMatchesTable(t *testing.T) {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	if err := instantiateHostModule(ctx, rt, coreModule()); err != nil {
		t.Fatal(err)
	}
	registered := rt.Module(abi.ImportModule).ExportedFunctionDefinitions()
	table := map[string]abi.Import{}
	for _, imp := range abi.Imports() {
		if imp.Module != abi.ImportModule {
			t.Errorf("core table entry %s.%s is not in module %s", imp.Module, imp.Name, abi.ImportModule)
			continue
		}
		if _, dup := table[imp.Name]; dup {
			t.Errorf("core table lists %s twice", imp.Name)
		}
		table[imp.Name] = imp
	}
	for name, def := range registered {
		imp, ok := table[name]
		if !ok {
			t.Errorf("runtime registers %s.%s, which the ABI table does not have", abi.ImportModule, name)
			continue
		}
		if got, want := sigString(def.ParamTypes(), def.ResultTypes()), imp.Sig.String(); got != want {
			t.Errorf("runtime registers %s as %s, the table says %s", name, got, want)
		}
	}
	for name := range table {
		if _, ok := registered[name]; !ok {
			t.Errorf("ABI table has %s.%s, which the runtime does not register", abi.ImportModule, name)
		}
	}
	if impls, names := slices.Sorted(maps.Keys(coreHostFuncs())), slices.Sorted(maps.Keys(table)); !slices.Equal(impls, names) {
		t.Errorf("implemented host functions %v, table %v", impls, names)
	}
}

// export is one export of a generated module: a function of signature sig, or the
// memory.
type export struct {
	name   string
	memory bool
	sig    abi.Signature
}

// moduleWith assembles a module with the given exports, each function returning
// zeros of its result types.
func moduleWith(exps []export) []byte {
	var types, funcs, bodies, entries [][]byte
	hasMemory := false
	for _, e := range exps {
		if e.memory {
			hasMemory = true
			entries = append(entries, testkit.Export(e.name, 2, 0))
			continue
		}
		var code []byte
		for _, r := range e.sig.Results {
			if r == abi.I64 {
				code = append(code, 0x42, 0) // i64.const 0
			} else {
				code = append(code, 0x41, 0) // i32.const 0
			}
		}
		types = append(types, testkit.FuncType(valueTypes(e.sig.Params), valueTypes(e.sig.Results)))
		funcs = append(funcs, testkit.LEB(uint64(len(funcs))))
		bodies = append(bodies, testkit.Body(append(code, 0x0b)...))
		entries = append(entries, testkit.Export(e.name, 0, uint64(len(funcs)-1)))
	}
	bin := []byte(testkit.WasmHeader)
	bin = append(bin, testkit.Section(1, testkit.Vec(types...))...)
	bin = append(bin, testkit.Section(3, testkit.Vec(funcs...))...)
	if hasMemory {
		bin = append(bin, testkit.Section(5, testkit.Vec([]byte{0, 1}))...)
	}
	bin = append(bin, testkit.Section(7, testkit.Vec(entries...))...)
	return append(bin, testkit.Section(10, testkit.Vec(bodies...))...)
}

// shapeExports is every export a shape requires or may have, as the table says.
func shapeExports(shape abi.Shape, optional bool) []export {
	var out []export
	for _, e := range abi.Exports() {
		if need := e.In[shape]; need == abi.Required || optional && need == abi.Optional {
			out = append(out, export{name: e.Name, memory: e.Kind == abi.KindMemory, sig: e.Sig})
		}
	}
	return out
}

// loadShape loads bin as a guest of shape (Validate for the reactor shapes,
// ValidateCommand for a command) and returns the error.
func loadShape(t *testing.T, shape abi.Shape, bin []byte) error {
	t.Helper()
	ctx := context.Background()
	if shape == abi.ShapeCommand {
		rt := wazero.NewRuntime(ctx)
		defer rt.Close(ctx)
		cm, err := rt.CompileModule(ctx, bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := instantiateCommandWASI(ctx, rt); err != nil {
			t.Fatal(err)
		}
		return ValidateCommand(cm, rt)
	}
	app, err := engine(t).Load(ctx, AppConfig{Name: "t", Wasm: bin})
	if err == nil {
		app.Close(ctx)
	}
	return err
}

// TestValidateFollowsTable builds modules from the ABI table and breaks them one
// export at a time: the host accepts each shape's module with every required (and
// every optional) export, and refuses, naming the export, one that lacks a required
// export, has a used export with any other signature, or has an export that makes
// it another shape.
func TestValidateFollowsTable(t *testing.T) {
	others := []abi.Signature{{}, {Params: []abi.ValType{abi.I32}}, {Results: []abi.ValType{abi.I64}},
		{Params: []abi.ValType{abi.I32}, Results: []abi.ValType{abi.I32}}, {Params: []abi.ValType{abi.I64, abi.I64}, Results: []abi.ValType{abi.I32}}}
	for _, shape := range abi.Shapes() {
		t.Run(shape.String(), func(t *testing.T) {
			for _, optional := range []bool{false, true} {
				if err := loadShape(t, shape, moduleWith(shapeExports(shape, optional))); err != nil {
					t.Fatalf("module with the table's exports (optional ones too: %v) refused: %v", optional, err)
				}
			}
			full := shapeExports(shape, true)
			for i, e := range full {
				if abi.Exports()[slices.IndexFunc(abi.Exports(), func(x abi.Export) bool { return x.Name == e.name })].In[shape] == abi.Required {
					err := loadShape(t, shape, moduleWith(slices.Delete(slices.Clone(full), i, i+1)))
					if err == nil || !errors.Is(err, ErrNotGuest) || !strings.Contains(err.Error(), e.name) {
						t.Errorf("without %s: err = %v, want one naming it", e.name, err)
					}
				}
				if e.memory {
					continue
				}
				for _, other := range others {
					if other.Equal(e.sig) {
						continue
					}
					bad := slices.Clone(full)
					bad[i].sig = other
					err := loadShape(t, shape, moduleWith(bad))
					want := "export " + e.name + " has signature " + other.String() + ", want " + e.sig.String()
					if err == nil || !strings.Contains(err.Error(), want) {
						t.Errorf("%s as %s: err = %v, want %q", e.name, other, err, want)
					}
				}
			}
			for _, e := range abi.Exports() {
				if e.In[shape] != abi.Forbidden {
					continue
				}
				bin := moduleWith(append(slices.Clone(full), export{name: e.Name, sig: e.Sig}))
				if err := loadShape(t, shape, bin); err == nil || !strings.Contains(err.Error(), e.Name) {
					t.Errorf("with %s: err = %v, want a refusal naming it", e.Name, err)
				}
			}
		})
	}
}

// TestValidateImportsFollowTable: a guest importing every core function with the
// table's signature loads; one importing any of them with another signature is
// refused with the table's signature as the one wanted.
func TestValidateImportsFollowTable(t *testing.T) {
	var all []imp
	for _, f := range abi.Imports() {
		all = append(all, imp{module: f.Module, name: f.Name, params: valueTypes(f.Sig.Params), results: valueTypes(f.Sig.Results)})
	}
	ctx := context.Background()
	app, err := engine(t).Load(ctx, AppConfig{Name: "t", Wasm: importing(false, all...)})
	if err != nil {
		t.Fatalf("guest importing the whole table refused: %v", err)
	}
	app.Close(ctx)
	for i, f := range abi.Imports() {
		bad := slices.Clone(all)
		bad[i].results = append(slices.Clone(bad[i].results), api.ValueTypeI32)
		_, err := engine(t).Load(ctx, AppConfig{Name: "t", Wasm: importing(false, bad...)})
		var ie *ImportError
		if !errors.As(err, &ie) || ie.Problem != ImportBadSignature || ie.Name != f.Name || ie.Want != f.Sig.String() {
			t.Errorf("%s with an extra result: err = %v, want a bad signature wanting %s", f.Name, err, f.Sig)
		}
	}
}
