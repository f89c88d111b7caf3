package runtime

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/wasmsrv/wasmsrv/abi"
)

// The http-wasm handler ABI's names (http-wasm.io, "HTTP Handler ABI"): the
// module the guest imports its host functions from and the two exports the host
// calls. The host functions themselves live in package internal/httpwasm, which
// gives them to Load as a HostModule; the runtime only knows the shape.
const (
	HTTPWasmModule         = "http_handler"
	HTTPWasmHandleRequest  = "handle_request"
	HTTPWasmHandleResponse = "handle_response"
)

// validateHTTPWasm checks an http-wasm guest: handle_request () -> i64, an
// optional handle_response (i32, i32) -> (), an exported memory, imports only from
// http_handler, WASI and granted plugins.
func validateHTTPWasm(cm wazero.CompiledModule, rt wazero.Runtime, plugins []string) (*ModuleInfo, error) {
	if rt.Module(HTTPWasmModule) == nil {
		return nil, fmt.Errorf("%w: %w", ErrNotGuest, ErrHTTPWasmModule)
	}
	exports := cm.ExportedFunctions()
	info := &ModuleInfo{Mode: ModeHTTPWasm}
	if err := checkExport(exports, HTTPWasmHandleRequest, nil, []api.ValueType{i64}); err != nil {
		return nil, err
	}
	if _, ok := exports[HTTPWasmHandleResponse]; ok {
		if err := checkExport(exports, HTTPWasmHandleResponse, []api.ValueType{i32, i32}, nil); err != nil {
			return nil, err
		}
		info.HasHandleResponse = true
	}
	if _, ok := cm.ExportedMemories()[abi.ExportMemory]; !ok {
		return nil, fmt.Errorf("%w: an http-wasm guest must export its memory as %q", ErrNotGuest, abi.ExportMemory)
	}
	if _, ok := exports[abi.ExportInitialize]; ok {
		if err := checkExport(exports, abi.ExportInitialize, nil, nil); err != nil {
			return nil, err
		}
		info.HasInit = true
	} else if _, ok := exports[abi.ExportStart]; ok {
		if err := checkExport(exports, abi.ExportStart, nil, nil); err != nil {
			return nil, err
		}
		info.RunsMain = true
	}
	fns := cm.ImportedFunctions()
	for _, imp := range fns {
		if mod, _, _ := imp.Import(); mod == abi.ImportModule {
			return nil, fmt.Errorf("%w: an http-wasm guest (exports %s) imports from the wasmsrv module too: one ABI per guest", ErrNotGuest, HTTPWasmHandleRequest)
		}
	}
	if err := checkImports(fns, cm.ImportedMemories(), hostModules(rt), plugins, false); err != nil {
		return nil, err
	}
	for _, imp := range fns {
		mod, _, _ := imp.Import()
		if mod != HTTPWasmModule && mod != wasi_snapshot_preview1.ModuleName && !slices.Contains(info.Imports, mod) {
			info.Imports = append(info.Imports, mod)
		}
	}
	slices.Sort(info.Imports)
	return info, nil
}

// HandleRequest calls an http-wasm guest's handle_request under timeout and
// returns its ctx_next result. A non-nil error means the instance must be
// discarded (Release it with the error).
func (in *Instance) HandleRequest(timeout time.Duration) (uint64, error) {
	in.served++
	if err := in.gatedCall(in.handle, timeout); err != nil {
		return 0, err
	}
	return in.stack[0], nil
}

// HandleResponse calls an http-wasm guest's handle_response(reqCtx, isError)
// under timeout; a guest without that export is not called.
func (in *Instance) HandleResponse(reqCtx uint32, isError bool, timeout time.Duration) error {
	if in.handleResponse == nil {
		return nil
	}
	in.stack[0] = uint64(reqCtx)
	in.stack[1] = 0
	if isError {
		in.stack[1] = 1
	}
	return in.gatedCall(in.handleResponse, timeout)
}

// Acquire takes an instance for a request made of several calls into the guest
// (an http-wasm handler: handle_request, the next handler on the host,
// handle_response on the same instance). The caller must Release it. It fails
// like Serve does before running anything (ErrQueueFull, ErrQueueTimeout,
// ErrUnavailable, ErrPoolClosed, ctx's error).
func (p *SyncPool) Acquire(ctx context.Context) (*Instance, error) { return p.acquire(ctx) }

// Release gives back an instance taken with Acquire; err is the error of its
// last call, if any (a broken instance is discarded and replaced either way).
func (p *SyncPool) Release(in *Instance, err error) {
	p.stats.served.Add(1)
	p.release(in, err)
}

// RequestTimeout is the pool's per-call deadline (PoolConfig.RequestTimeout).
func (p *SyncPool) RequestTimeout() time.Duration { return p.cfg.RequestTimeout }

// checkExport checks that exports has name with exactly this signature. The
// http-wasm ABI is not wasmsrv's, so its exports are not in abi's table.
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
