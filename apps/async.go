package apps

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// asyncTag is the build tag that selects the SDK's async exports.
const asyncTag = "wasmsrv_async"

// buildTags returns the go build tags for spec: its own plus the async tag.
func buildTags(spec Spec) []string {
	tags := slices.Clone(spec.BuildTags)
	if spec.Mode == "async" && !slices.Contains(tags, asyncTag) {
		tags = append(tags, asyncTag)
	}
	return tags
}

// checkMode refuses a module whose marker contradicts an explicit Mode.
func checkMode(spec Spec, app *runtime.App) error {
	switch spec.Mode {
	case "", "auto":
		return nil
	case "sync", "async":
		if got := app.Info().Mode.String(); got != spec.Mode {
			return fmt.Errorf("app %s: mode %s was asked for, but the module is a %s-mode guest", spec.Name, spec.Mode, got)
		}
		return nil
	default:
		return fmt.Errorf("app %s: unknown mode %q (want sync or async)", spec.Name, spec.Mode)
	}
}

// openAsync starts an async pool and the async gateway in front of it.
func openAsync(ctx context.Context, app *runtime.App, spec Spec, wasmPath string, log *slog.Logger) (*App, error) {
	pool, err := runtime.NewAsyncPool(ctx, app, spec.Pool, spec.Async)
	if err != nil {
		_ = app.Close(ctx)
		return nil, err
	}
	gw := host.NewAsyncGateway(pool, host.AsyncGatewayConfig{
		GatewayConfig:  host.GatewayConfig{App: spec.Name, BodyLimit: spec.BodyLimit, WebSocket: spec.WebSocket},
		RequestTimeout: spec.Pool.RequestTimeout,
	}, log)
	return &App{Name: spec.Name, Mode: "async", Wasm: wasmPath, Handler: gw, close: func(ctx context.Context) error {
		gw.Close() // WebSockets get 1001; their guests see them closed and finish
		err := pool.Close(ctx)
		_ = app.Close(ctx)
		return err
	}, stats: func() runtime.Stats { return pool.Stats().Stats }}, nil
}
