package apps

import (
	"context"
	"errors"
	"log/slog"
	"slices"

	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// openWithPlugins opens the app's granted plugins, gives their host modules to the
// app and closes them after the app (its instances may still call them while the
// pool drains).
func openWithPlugins(ctx context.Context, eng *runtime.Engine, spec Spec, log *slog.Logger) (*Running, error) {
	opened, err := spec.Plugins.OpenWithOutput(ctx, spec.Name, spec.Grants, log.With("app", spec.Name), spec.output)
	if err != nil {
		return nil, err
	}
	mods := opened.HostModules()
	if spec.PluginCalls != nil {
		mods = registry.Counted(mods, spec.PluginCalls)
	}
	spec.HostModules = append(slices.Clip(spec.HostModules), mods...)
	app, err := open(ctx, eng, spec, log)
	if err != nil {
		_ = opened.Close(ctx)
		return nil, err
	}
	appClose := app.close
	app.close = func(ctx context.Context) error {
		return errors.Join(appClose(ctx), opened.Close(ctx))
	}
	app.stored = opened.StoredBytes
	return app, nil
}
