package runtime

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Mode is how an app's instances take requests: abi.Mode, the one mode type from
// the config through the build to the pools.
type Mode = abi.Mode

// Modes (abi.Mode's).
const (
	ModeAuto  = abi.ModeAuto
	ModeSync  = abi.ModeSync
	ModeAsync = abi.ModeAsync
	ModeCGI   = abi.ModeCGI
	// ModeHTTPWasm is an http-wasm handler; its host module comes from the
	// caller (AppConfig.HostModules): package internal/httpwasm has it.
	ModeHTTPWasm = abi.ModeHTTPWasm
)

// ParseMode reads a mode's name; "" is ModeAuto.
func ParseMode(s string) (Mode, error) { return abi.ParseMode(s) }

// ErrNotGuest reports a module that is not a wasmsrv guest. The message says what is
// missing; errors.Is(err, ErrNotGuest) lets callers try another mode (CGI).
var ErrNotGuest = errors.New("not a wasmsrv guest")

// ErrCommandModule is wrapped with ErrNotGuest when the module is a plain WASI
// command (exports _start, no markers): such modules can be served CGI-style.
var ErrCommandModule = errors.New("module is a WASI command (exports _start)")

// ErrHTTPWasmModule is wrapped with ErrNotGuest when the module is an http-wasm
// handler (exports handle_request, no wasmsrv marker) and the app was loaded
// without the http_handler host module: load it again with that module in
// AppConfig.HostModules.
var ErrHTTPWasmModule = errors.New("module is an http-wasm handler (exports " + HTTPWasmHandleRequest + ")")

// ModuleInfo is what validation learned about a guest.
type ModuleInfo struct {
	Mode     Mode
	HasStart bool // exports wasmsrv_on_start
	HasStop  bool // exports wasmsrv_on_stop
	HasInit  bool // exports _initialize
	// RunsMain: an http-wasm guest built as a WASI command (TinyGo's wasi
	// target): its _start (main, which registers the handlers) runs once when
	// an instance starts, under the start timeout.
	RunsMain bool
	// HasHandleResponse: an http-wasm guest exports handle_response.
	HasHandleResponse bool
	// Imports lists the import modules the guest uses other than the core ones
	// (plugin modules), sorted.
	Imports []string
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// Validate checks that cm is a wasmsrv guest this host can run, naming the first
// problem it finds. rt must hold the host modules the app may import (WASI, the
// wasmsrv module and the plugins granted to it): every import is checked against
// them (an *ImportError otherwise). plugins lists the plugins of this build, granted
// or not, so that an import of one it lacks is not called "not granted"; nil if
// unknown.
func Validate(cm wazero.CompiledModule, rt wazero.Runtime, plugins []string) (*ModuleInfo, error) {
	exports := cm.ExportedFunctions()
	info := &ModuleInfo{}
	_, hasStart := exports[abi.ExportStart]
	if _, ok := exports[abi.MarkerVersion]; !ok {
		if _, ok := exports[HTTPWasmHandleRequest]; ok {
			return validateHTTPWasm(cm, rt, plugins)
		}
		for name := range exports {
			if strings.HasPrefix(name, abi.MarkerPrefix) {
				return nil, fmt.Errorf("%w: module was built for ABI %q, this host speaks %s: rebuild it with this wasmsrv's SDK (`wasmsrv new --update-sdk DIR` for an app made by wasmsrv new) or serve it with a wasmsrv that speaks %s", ErrNotGuest,
					strings.TrimPrefix(name, "wasmsrv_abi_"), "v1", strings.TrimPrefix(name, "wasmsrv_abi_"))
			}
		}
		if hasStart {
			return nil, fmt.Errorf("%w: %w and has no %s marker", ErrNotGuest, ErrCommandModule, abi.MarkerVersion)
		}
		return nil, fmt.Errorf("%w: missing export %s (build Go guests with the wasmsrv SDK and -buildmode=c-shared; C guests with wasmsrv.h)", ErrNotGuest, abi.MarkerVersion)
	}
	if _, hasInit := exports[abi.ExportInitialize]; hasStart && !hasInit {
		// A Go guest built without -buildmode=c-shared: its exports would run
		// before the Go runtime is initialized, and the first request would trap
		// with "wasmexport function called before runtime initialization".
		return nil, fmt.Errorf("%w: module exports %s and %s but no %s: it was built as a WASI command, not a reactor (SPEC §1); build Go guests with -buildmode=c-shared, C guests with -mexec-model=reactor (wasmsrv run DIR does both)",
			ErrNotGuest, abi.MarkerVersion, abi.ExportStart, abi.ExportInitialize)
	}
	_, isSync := exports[abi.MarkerModeSync]
	_, isAsync := exports[abi.MarkerModeAsync]
	var shape abi.Shape
	switch {
	case isSync && isAsync:
		return nil, fmt.Errorf("%w: exports both %s and %s", ErrNotGuest, abi.MarkerModeSync, abi.MarkerModeAsync)
	case isSync:
		info.Mode, shape = ModeSync, abi.ShapeSync
	case isAsync:
		info.Mode, shape = ModeAsync, abi.ShapeAsync
	default:
		return nil, fmt.Errorf("%w: missing mode marker (export %s or %s)", ErrNotGuest, abi.MarkerModeSync, abi.MarkerModeAsync)
	}
	if err := checkExports(exports, cm.ExportedMemories(), shape); err != nil {
		return nil, err
	}
	_, info.HasStart = exports[abi.ExportOnStart]
	_, info.HasStop = exports[abi.ExportOnStop]
	_, info.HasInit = exports[abi.ExportInitialize]
	if err := checkImports(cm.ImportedFunctions(), cm.ImportedMemories(), hostModules(rt), plugins, false); err != nil {
		return nil, err
	}
	for _, imp := range cm.ImportedFunctions() {
		mod, _, _ := imp.Import()
		if mod != abi.ImportModule && mod != wasi_snapshot_preview1.ModuleName && !slices.Contains(info.Imports, mod) {
			info.Imports = append(info.Imports, mod)
		}
	}
	slices.Sort(info.Imports)
	return info, nil
}

// checkExports checks a module's exports against what shape asks of them in the
// ABI's table (abi.Exports): every required export is there, every export the shape
// uses has its signature, and none that makes the module another shape is.
func checkExports(exports map[string]api.FunctionDefinition, memories map[string]api.MemoryDefinition, shape abi.Shape) error {
	for _, e := range abi.Exports() {
		need := e.In[shape]
		if need == abi.Ignored {
			continue
		}
		if e.Kind == abi.KindMemory {
			_, ok := memories[e.Name]
			switch {
			case need == abi.Required && !ok:
				return fmt.Errorf("%w: missing exported memory %q", ErrNotGuest, e.Name)
			case need == abi.Forbidden && ok:
				return fmt.Errorf("%w: a %s module does not export memory %q", ErrNotGuest, shape, e.Name)
			}
			continue
		}
		fn, ok := exports[e.Name]
		switch {
		case !ok && need == abi.Required:
			return fmt.Errorf("%w: missing export %s%s", ErrNotGuest, e.Name, e.Sig)
		case !ok:
		case need == abi.Forbidden && shape == abi.ShapeCommand:
			return fmt.Errorf("%w: module exports %s and %s but no %s: a WASI command has no markers, a guest has all of them (SPEC §1)",
				ErrNotGuest, abi.ExportStart, e.Name, abi.MarkerVersion)
		case need == abi.Forbidden:
			return fmt.Errorf("%w: exports %s, which a %s guest must not (SPEC %s)", ErrNotGuest, e.Name, shape, e.Section)
		case !slices.Equal(fn.ParamTypes(), valueTypes(e.Sig.Params)) || !slices.Equal(fn.ResultTypes(), valueTypes(e.Sig.Results)):
			return fmt.Errorf("%w: export %s has signature %s, want %s", ErrNotGuest, e.Name,
				sigString(fn.ParamTypes(), fn.ResultTypes()), e.Sig)
		}
	}
	return nil
}

func sigString(params, results []api.ValueType) string {
	var b strings.Builder
	b.WriteByte('(')
	for i, p := range params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(api.ValueTypeName(p))
	}
	b.WriteString(") -> (")
	for i, r := range results {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(api.ValueTypeName(r))
	}
	b.WriteByte(')')
	return b.String()
}
