package apps

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/wasmsrv/wasmsrv/internal/httpwasm"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// HTTPWasmSpec configures an http-wasm handler module.
type HTTPWasmSpec struct {
	// Config is what the guest's get_config returns (Traefik plugins: JSON).
	Config []byte
	// DefaultStatus answers a request the guest passes on (next=1) when it is
	// the whole app (default 404).
	DefaultStatus int
	// BufferLimit bounds each body held for the guest (0: 16 MiB).
	BufferLimit int64
}

// openHTTPWasm loads an http-wasm handler module (http-wasm.io) with the
// http_handler host module and serves it from a sync pool.
func openHTTPWasm(ctx context.Context, eng *runtime.Engine, spec Spec, bin []byte, wasmPath string, plugins []string, log *slog.Logger) (*Running, error) {
	mod := httpwasm.Module(httpwasm.ModuleOptions{Config: spec.HTTPWasm.Config, Log: spec.output.Logger().With("app", spec.Name)})
	gate, err := spec.tenant()
	if err != nil {
		return nil, err
	}
	app, err := eng.Load(ctx, runtime.AppConfig{
		Name: spec.Name, Wasm: bin, MemoryLimit: spec.MemoryLimit, StartTimeout: spec.StartTimeout, NoSnapshot: spec.NoSnapshot,
		Env: spec.Env, Mounts: spec.Mounts, HostModules: append([]runtime.HostModule{mod}, spec.HostModules...),
		Plugins: plugins, Logger: log, Output: spec.output, CPU: gate,
	})
	if err != nil {
		return nil, err
	}
	pool, err := runtime.NewSyncPool(ctx, app, spec.Pool)
	if err != nil {
		_ = app.Close(ctx)
		return nil, err
	}
	h := httpwasm.New(pool, httpwasm.Config{
		App: spec.Name, DefaultStatus: spec.HTTPWasm.DefaultStatus, BufferLimit: spec.HTTPWasm.BufferLimit,
		BodyLimit: spec.BodyLimit, BodyBuffer: spec.BodyBuffer,
	}, log)
	return &Running{Name: spec.Name, Mode: runtime.ModeHTTPWasm, Wasm: wasmPath, Handler: h,
		Middleware: func(next http.Handler) http.Handler { return h.Wrap(next) },
		close: func(ctx context.Context) error {
			err := pool.Close(ctx)
			_ = app.Close(ctx)
			return err
		}, stats: pool.Stats}, nil
}
