package testkit

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

// The SDKs declare the host's functions a second time, in their own languages. These
// helpers read those declarations so tests can hold them to what the host registers
// (abi.Imports for the core ABI, each plugin's HostFuncs for the plugin ABIs).

// WasmDecl is one import or export an SDK declares.
type WasmDecl struct {
	Module, Name    string // Module is "" for an export
	Params, Results []api.ValueType
	Where           string // file:line, or the C function's name
}

// goValueType maps a parameter or result type of a //go:wasmimport or
// //go:wasmexport function to its Wasm value type (the Go wasip1 port's rules for
// the types the SDK uses).
func goValueType(e ast.Expr) (api.ValueType, error) {
	switch e := e.(type) {
	case *ast.Ident:
		switch e.Name {
		case "int32", "uint32", "bool":
			return api.ValueTypeI32, nil
		case "int64", "uint64":
			return api.ValueTypeI64, nil
		}
	case *ast.StarExpr:
		return api.ValueTypeI32, nil
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "unsafe" && e.Sel.Name == "Pointer" {
			return api.ValueTypeI32, nil
		}
	}
	return 0, fmt.Errorf("type %T %v has no ABI value type", e, e)
}

func goFieldTypes(fl *ast.FieldList) ([]api.ValueType, error) {
	if fl == nil {
		return nil, nil
	}
	var out []api.ValueType
	for _, f := range fl.List {
		vt, err := goValueType(f.Type)
		if err != nil {
			return nil, err
		}
		for range max(1, len(f.Names)) {
			out = append(out, vt)
		}
	}
	return out, nil
}

// GoWasmDecls parses the Go package in dir as the go tool builds it for GOOS=wasip1
// GOARCH=wasm with tags, and returns its //go:wasmimport and //go:wasmexport
// functions.
func GoWasmDecls(dir string, tags ...string) (imports, exports []WasmDecl, err error) {
	bc := build.Default
	bc.GOOS, bc.GOARCH, bc.BuildTags, bc.CgoEnabled = "wasip1", "wasm", tags, false
	pkg, err := bc.ImportDir(dir, 0)
	if err != nil {
		return nil, nil, err
	}
	fset := token.NewFileSet()
	for _, name := range pkg.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments)
		if err != nil {
			return nil, nil, err
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Doc == nil {
				continue
			}
			for _, c := range fn.Doc.List {
				directive, args, ok := strings.Cut(c.Text, " ")
				if !ok || directive != "//go:wasmimport" && directive != "//go:wasmexport" {
					continue
				}
				where := fset.Position(c.Pos()).String()
				params, err := goFieldTypes(fn.Type.Params)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %s: %w", where, fn.Name.Name, err)
				}
				results, err := goFieldTypes(fn.Type.Results)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: %s: %w", where, fn.Name.Name, err)
				}
				fields := strings.Fields(args)
				dc := WasmDecl{Params: params, Results: results, Where: where}
				switch {
				case directive == "//go:wasmimport" && len(fields) == 2:
					dc.Module, dc.Name = fields[0], fields[1]
					imports = append(imports, dc)
				case directive == "//go:wasmexport" && len(fields) == 1:
					dc.Name = fields[0]
					exports = append(exports, dc)
				default:
					return nil, nil, fmt.Errorf("%s: malformed directive %q", where, c.Text)
				}
			}
		}
	}
	return imports, exports, nil
}

// cImportRe matches one import declaration of the C SDK: after the preprocessor
// (the attribute), or in the headers' own text (WASMSRV__IMPORT("name") for the core
// module, WASMSRV__PLUGIN("module", "name") for a plugin's).
var cImportRe = regexp.MustCompile(`(?s)(?:__attribute__\(\(import_module\("(\w+)"\),\s*import_name\("(\w+)"\)\)\)|WASMSRV__IMPORT\("(\w+)"\)|WASMSRV__PLUGIN\("(\w+)",\s*"(\w+)"\))\s*([\w\s\*]+?)\b(\w+)\s*\(([^)]*)\)\s*;`)

// cValueType maps a C type of the SDK's declarations (wasm32: pointers, size_t and
// 32-bit integers are i32) to its Wasm value types (none for void).
func cValueType(s string) ([]api.ValueType, error) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "const ", ""))
	switch {
	case s == "void":
		return nil, nil
	case strings.Contains(s, "*"):
		return []api.ValueType{api.ValueTypeI32}, nil
	case s == "int32_t" || s == "uint32_t" || s == "int" || s == "unsigned" || s == "size_t":
		return []api.ValueType{api.ValueTypeI32}, nil
	case s == "int64_t" || s == "uint64_t":
		return []api.ValueType{api.ValueTypeI64}, nil
	}
	return nil, fmt.Errorf("no ABI value type for the C type %q", s)
}

// CWasmImports finds the import declarations in C source text. cNames are their C
// function names, in order.
func CWasmImports(src, coreModule string) (imports []WasmDecl, cNames []string, err error) {
	for _, m := range cImportRe.FindAllStringSubmatch(src, -1) {
		module, name := m[1], m[2]
		switch {
		case m[3] != "":
			module, name = coreModule, m[3]
		case m[4] != "":
			module, name = m[4], m[5]
		}
		results, err := cValueType(m[6])
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", m[7], err)
		}
		var params []api.ValueType
		for _, p := range strings.Split(m[8], ",") {
			p = strings.TrimSpace(p)
			if p == "void" || p == "" {
				continue
			}
			// Drop the parameter's name: the type is what precedes it.
			typ := strings.TrimSpace(p[:strings.LastIndexFunc(p, func(r rune) bool { return r == ' ' || r == '*' })+1])
			vt, err := cValueType(typ)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", m[7], err)
			}
			params = append(params, vt...)
		}
		imports = append(imports, WasmDecl{Module: module, Name: name, Params: params, Results: results, Where: m[7]})
		cNames = append(cNames, m[7])
	}
	return imports, cNames, nil
}
