// Package appspec turns an app's settings (config.App: run's flags and variables,
// a serve file's [apps.NAME]) into the apps.Spec that apps.Open starts, and places
// what goes wrong in the file. It is the one mapping from settings to a running
// app: host/cli's run and check and host/internal/site's serve all go through it.
package appspec

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/wsorigin"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/bodybuf"
	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// Host is what an app is opened with besides its own settings: the process's
// build cache, plugins and progress display.
type Host struct {
	// BuildCacheDir is where built guests are cached ("" = default).
	BuildCacheDir string
	// Plugins are the plugins compiled into this build (nil: none).
	Plugins *registry.Registry
	// Progress shows a build as a live line on a terminal; nil logs it.
	Progress *progress.Meter
	// CPU is the server's fair-share gate, shared by every app (nil: none).
	CPU *cpushare.Scheduler
}

// Of turns an app's settings into the Spec that Open starts. It is the one
// mapping from settings to a running app: `wasmsrv run` (flags and variables) and
// `wasmsrv serve` (a file's [apps.NAME]) both go through it. The settings are
// expected to be validated (config.LoadRun, config.Load); what still cannot be
// used is an error naming the setting by its file key.
func Of(name string, a *config.App, h Host) (apps.Spec, error) {
	origins, err := wsorigin.Parse(a.WSOrigins)
	if err != nil {
		return apps.Spec{}, &config.Error{Key: "ws_origins", Msg: err.Error()}
	}
	env := make([]string, 0, len(a.Env))
	for k, v := range a.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	mounts := make([]runtime.Mount, 0, len(a.Mounts))
	for _, m := range a.Mounts {
		mounts = append(mounts, runtime.Mount{HostDir: m.Host, GuestDir: m.Guest, ReadOnly: m.ReadOnly})
	}
	hwConfig := []byte(a.HTTPWasmConfig)
	if f, ok := strings.CutPrefix(a.HTTPWasmConfig, "@"); ok {
		if hwConfig, err = os.ReadFile(f); err != nil {
			return apps.Spec{}, &config.Error{Key: "http_wasm_config", Msg: err.Error()}
		}
	}
	grants := registry.ParseGrants(a.Grants...)
	for plugin, sec := range a.Sections() {
		if _, ok := grants[plugin]; !ok && plugin != registry.DefaultGrant {
			return apps.Spec{}, &config.Error{Key: "plugins." + plugin, Msg: fmt.Sprintf("plugin %q is configured but not in grants: it would configure nothing", plugin)}
		}
		grants[plugin] = plugins.Section(sec)
	}
	return apps.Spec{
		Name:          name,
		Tenant:        a.Tenant,
		CPU:           h.CPU,
		CPUShare:      cpushare.TenantConfig{Weight: a.CPUWeight, Budget: a.CPUBudget.D()},
		Source:        a.Source(),
		BuildCacheDir: h.BuildCacheDir,
		Mode:          a.Mode,
		Pool: runtime.PoolConfig{
			Workers: a.PoolSize, QueueSize: a.QueueSize, QueueWait: a.QueueWait.D(),
			RequestTimeout: a.RequestTimeout.D(), MaxRequests: a.MaxRequests, MaxRequestsJitter: a.MaxRequestsJitter,
			IdleTimeout: a.PoolIdleTimeout.D(), MinWorkers: a.PoolMin,
		},
		Async: runtime.AsyncConfig{
			MaxConns: a.LimitConcurrency, MaxConnsPerInstance: a.MaxConnsPerInstance, EventTimeout: a.EventTimeout.D(),
		},
		WebSocket: host.WSConfig{
			MaxMessage: int64(a.WSMaxMessage), PingInterval: a.WSPingInterval.D(), PingTimeout: a.WSPingTimeout.D(),
			Compression: a.WSCompression, SendBuffer: int(a.WSSendBuffer), Origins: origins,
		},
		MemoryLimit:    int64(a.MemoryLimit),
		StartTimeout:   a.StartTimeout.D(),
		NoSnapshot:     !a.Snapshot,
		BodyLimit:      int64(a.BodyLimit),
		BodyBuffer:     bodybuf.Config{Memory: int64(a.BufferBody), Timeout: a.BodyTimeout.D()},
		ResponseBuffer: int(a.BufferResponse),
		Env:            env,
		Mounts:         mounts,
		Plugins:        h.Plugins,
		Grants:         grants,
		LogRate:        int64(a.LogRate),
		Progress:       h.Progress,
		HTTPWasm:       apps.HTTPWasmSpec{Config: hwConfig, DefaultStatus: a.DefaultStatus},
		CGIArgv:        a.Argv,
	}, nil
}

// Error places an error of Of, Open or Check for the app name of cfg in
// the file: FILE:LINE: apps.NAME.KEY: message, KEY the setting it is about (mode
// for a shape the module does not have, the key a SpecOf error names, else the
// app's module or package).
func Error(cfg *config.Config, name string, err error) *config.Error {
	a := cfg.Apps[name]
	key := "module"
	var me *apps.ModeError
	var ce *config.Error
	switch {
	case errors.As(err, &me) && !me.Declared, errors.Is(err, builder.ErrWrongMode):
		key = "mode"
	case errors.As(err, &ce) && ce.Key != "":
		key, err = ce.Key, errors.New(ce.Msg)
	case a.Package != "":
		key = "package"
	}
	e := cfg.ErrorAt("apps."+name+"."+key, err)
	e.Msg = strings.TrimPrefix(e.Msg, "app "+name+": ")
	return e
}
