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
	mode     runtime.Mode // ModeAuto: any
	by       string       // "mode async was asked for", "x/main.go:3 declares //wasmsrv:mode async"
	declared bool         // by the package's directive, not by the app's settings
}

// ModeError is an app whose module has another shape than its settings ask for
// (mode = "sync" for a WASI command, say). Its message names the mode setting.
type ModeError struct {
	App       string
	Want, Got runtime.Mode
	// Declared: the wish came from the package's //wasmsrv:mode directive, not
	// from the app's mode setting.
	Declared bool
	msg      string
}

func (e *ModeError) Error() string { return e.msg }

// check refuses a module whose shape (got: sync, async or cgi) is not the one wanted.
func (w wantMode) check(app string, got runtime.Mode) error {
	if w.mode == runtime.ModeAuto || w.mode == got {
		return nil
	}
	e := &ModeError{App: app, Want: w.mode, Got: got, Declared: w.declared}
	switch got {
	case runtime.ModeCGI:
		e.msg = fmt.Sprintf("app %s: %s, but the module is a WASI command (CGI mode: it does not use the wasmsrv SDK)", app, w.by)
	case runtime.ModeHTTPWasm:
		e.msg = fmt.Sprintf("app %s: %s, but the module is an http-wasm handler (imports http_handler, exports handle_request)", app, w.by)
	default:
		e.msg = fmt.Sprintf("app %s: %s, but the module is a %s-mode guest", app, w.by, got)
	}
	return e
}

// openAsync starts an async pool and the async gateway in front of it.
func openAsync(ctx context.Context, app *runtime.App, spec Spec, wasmPath string, log *slog.Logger) (*Running, error) {
	pool, err := runtime.NewAsyncPool(ctx, app, spec.Pool, spec.Async)
	if err != nil {
		_ = app.Close(ctx)
		return nil, err
	}
	gw := host.NewAsyncGateway(pool, host.AsyncGatewayConfig{
		GatewayConfig:  host.GatewayConfig{App: spec.Name, BodyLimit: spec.BodyLimit, WebSocket: spec.WebSocket, Traced: spec.Traced},
		RequestTimeout: spec.Pool.RequestTimeout,
	}, log)
	return &Running{Name: spec.Name, Mode: runtime.ModeAsync, Wasm: wasmPath, Handler: gw, close: func(ctx context.Context) error {
		gw.Close() // WebSockets get 1001; their guests see them closed and finish
		err := pool.Close(ctx)
		_ = app.Close(ctx)
		return err
	}, stats: func() runtime.SyncStats {
		s := pool.Stats()
		for _, n := range s.Conns {
			if n == 0 {
				s.Idle++
			}
		}
		return s.SyncStats
	}}, nil
}
