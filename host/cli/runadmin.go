package cli

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/admin"
	"github.com/wasmsrv/wasmsrv/host/internal/metrics"
	"github.com/wasmsrv/wasmsrv/host/internal/statuspage"
	"github.com/wasmsrv/wasmsrv/internal/apps"
)

// runController is the admin API of `wasmsrv run`: health, the app's pool in
// /status, profiles (and /metrics); there is no file to reload and no cache to
// purge.
type runController struct{ app *apps.Running }

var errNoReload = errors.New("wasmsrv run has no config file to reload: restart it with new flags")

func (c runController) Reload(context.Context) error { return errNoReload }
func (c runController) Purge(string) int             { return 0 }
func (c runController) Status() any {
	return map[string]any{"apps": []string{c.app.Name}, "pools": map[string]apps.Status{c.app.Name: c.app.Status()}}
}

// runAdminServer is run's admin listener (--admin), or nil when it is off.
func runAdminServer(addr, token string, app *apps.Running, m *metrics.Registry, ready *admin.Readiness, crashes *statuspage.Crashes, log *slog.Logger) *host.Server {
	if addr == "" {
		return nil
	}
	h := admin.Handler(runController{app}, admin.Config{Addr: addr, Token: token, Metrics: m.Handler(), Readiness: ready, Crashes: crashes}, log)
	return host.NewServer(host.ServerConfig{Addr: addr, ShutdownGrace: 5 * time.Second}, h, log)
}
