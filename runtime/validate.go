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

// Mode is how an app's instances take requests.
type Mode int

// Modes.
const (
	// ModeSync runs one request per instance at a time (gunicorn's sync worker).
	ModeSync Mode = iota + 1
	// ModeAsync multiplexes many requests on one instance through events.
	ModeAsync
	// ModeHTTPWasm is an http-wasm handler (http-wasm.io): imports module
	// http_handler, exports handle_request and handle_response, one request per
	// instance at a time, like sync. Its host module comes from the caller
	// (AppConfig.HostModules); package internal/httpwasm has it.
	ModeHTTPWasm
)

func (m Mode) String() string {
	switch m {
	case ModeSync:
		return "sync"
	case ModeAsync:
		return "async"
	case ModeHTTPWasm:
		return "http-wasm"
	}
	return "unknown"
}

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

type fnSig struct {
	params, results []api.ValueType
}

const (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// hostSigs are the signatures of the core host functions (SPEC §4).
func hostSigs() map[string]fnSig {
	m := map[string]fnSig{
		abi.FnReqHead:      {[]api.ValueType{i32, i32, i32}, []api.ValueType{i32}},
		abi.FnBodyRead:     {[]api.ValueType{i32, i32, i32}, []api.ValueType{i64}},
		abi.FnRespStart:    {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
		abi.FnRespWrite:    {[]api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}},
		abi.FnDisconnected: {[]api.ValueType{i32}, []api.ValueType{i32}},
		abi.FnHostFeatures: {nil, []api.ValueType{i64}},
	}
	for name, sig := range asyncSigs() {
		m[name] = sig
	}
	return m
}

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
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		return nil, fmt.Errorf("%w: missing exported memory %q", ErrNotGuest, abi.ExportMemory)
	}
	_, isSync := exports[abi.MarkerModeSync]
	_, isAsync := exports[abi.MarkerModeAsync]
	switch {
	case isSync && isAsync:
		return nil, fmt.Errorf("%w: exports both %s and %s", ErrNotGuest, abi.MarkerModeSync, abi.MarkerModeAsync)
	case isSync:
		info.Mode = ModeSync
		if err := checkExport(exports, abi.ExportHandle, []api.ValueType{i32}, []api.ValueType{i32}); err != nil {
			return nil, err
		}
	case isAsync:
		info.Mode = ModeAsync
		if err := checkExport(exports, abi.ExportOnEvent, []api.ValueType{i32, i32, i64, i64}, []api.ValueType{i32}); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: missing mode marker (export %s or %s)", ErrNotGuest, abi.MarkerModeSync, abi.MarkerModeAsync)
	}
	for _, hook := range []struct {
		name string
		has  *bool
	}{{abi.ExportOnStart, &info.HasStart}, {abi.ExportOnStop, &info.HasStop}} {
		if _, ok := exports[hook.name]; ok {
			if err := checkExport(exports, hook.name, nil, []api.ValueType{i32}); err != nil {
				return nil, err
			}
			*hook.has = true
		}
	}
	if _, ok := exports[abi.ExportInitialize]; ok {
		if err := checkExport(exports, abi.ExportInitialize, nil, nil); err != nil {
			return nil, err
		}
		info.HasInit = true
	}
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

func checkExport(exports map[string]api.FunctionDefinition, name string, params, results []api.ValueType) error {
	fn, ok := exports[name]
	if !ok {
		return fmt.Errorf("%w: missing export %s%s", ErrNotGuest, name, sigString(params, results))
	}
	if !slices.Equal(fn.ParamTypes(), params) || !slices.Equal(fn.ResultTypes(), results) {
		return fmt.Errorf("%w: export %s has signature %s, want %s", ErrNotGuest, name,
			sigString(fn.ParamTypes(), fn.ResultTypes()), sigString(params, results))
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
