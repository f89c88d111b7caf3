package apps

import (
	"context"
	"log/slog"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// openCommand serves a plain WASI command module (exports _start, no wasmsrv
// markers) CGI-style, as WAGI does: a fresh instance per request, request metadata
// in environment variables, the body on stdin, the response from stdout. The pool
// settings still apply: Workers caps concurrent runs, with the same queue, deadline
// and memory limit as a sync app.
func openCommand(ctx context.Context, eng *runtime.Engine, spec Spec, bin []byte, wasmPath string, log *slog.Logger) (*Running, error) {
	cmd, err := eng.LoadCommand(ctx, runtime.AppConfig{
		Name: spec.Name, Wasm: bin, MemoryLimit: spec.MemoryLimit,
		Env: spec.Env, Mounts: spec.Mounts, HostModules: spec.HostModules, Logger: log, Output: spec.output,
	}, spec.Pool)
	if err != nil {
		return nil, err
	}
	log.Info("module is a WASI command (exports _start, no wasmsrv markers): serving it in CGI mode, one fresh instance per request",
		"app", spec.Name, "max_concurrent", cmd.PoolConfig().Workers)
	h := host.NewCGIHandler(cmd, host.CGIConfig{App: spec.Name, BodyLimit: spec.BodyLimit, Buffer: spec.BodyBuffer, Argv: spec.CGIArgv, Traced: spec.Traced}, log)
	return &Running{Name: spec.Name, Mode: runtime.ModeCGI, Wasm: wasmPath, Handler: h, close: cmd.Close}, nil
}
