package apps

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// wantMode is the shape an app must turn out to have, and who asked for it.
type wantMode struct {
	mode string // "", "auto", "sync", "async", "cgi" or "http-wasm"
	by   string // "mode async was asked for", "x/main.go:3 declares //wasmsrv:mode async"
}

func (w wantMode) auto() bool { return w.mode == "" || w.mode == "auto" }

// check refuses a module whose shape (got: sync, async or cgi) is not the one wanted.
func (w wantMode) check(app, got string) error {
	switch {
	case w.auto() || w.mode == got:
		return nil
	case w.mode != "sync" && w.mode != "async" && w.mode != "cgi" && w.mode != "http-wasm":
		return fmt.Errorf("app %s: unknown mode %q (want sync, async, cgi or http-wasm)", app, w.mode)
	case got == "cgi":
		return fmt.Errorf("app %s: %s, but the module is a WASI command (CGI mode: it does not use the wasmsrv SDK)", app, w.by)
	case got == "http-wasm":
		return fmt.Errorf("app %s: %s, but the module is an http-wasm handler (imports http_handler, exports handle_request)", app, w.by)
	}
	return fmt.Errorf("app %s: %s, but the module is a %s-mode guest", app, w.by, got)
}

// openAsync starts an async pool and the async gateway in front of it.
func openAsync(ctx context.Context, app *runtime.App, spec Spec, wasmPath string, log *slog.Logger) (*Running, error) {
	pool, err := runtime.NewAsyncPool(ctx, app, spec.Pool, spec.Async)
	if err != nil {
		_ = app.Close(ctx)
		return nil, err
	}
	gw := host.NewAsyncGateway(pool, host.AsyncGatewayConfig{
		GatewayConfig:  host.GatewayConfig{App: spec.Name, BodyLimit: spec.BodyLimit, WebSocket: spec.WebSocket},
		RequestTimeout: spec.Pool.RequestTimeout,
	}, log)
	return &Running{Name: spec.Name, Mode: "async", Wasm: wasmPath, Handler: gw, close: func(ctx context.Context) error {
		gw.Close() // WebSockets get 1001; their guests see them closed and finish
		err := pool.Close(ctx)
		_ = app.Close(ctx)
		return err
	}, stats: func() runtime.Stats { return pool.Stats().Stats }}, nil
}
