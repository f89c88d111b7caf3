// Package registry is the set of plugins compiled into a wasmsrv binary and the
// grants that open them for an app: the host side of package plugins.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins"

	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/guestlog"
	"github.com/wasmsrv/wasmsrv/internal/tracing"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// DefaultGrant is granted to every app: structured logging carries no authority.
const DefaultGrant = "log"

// Registry is the set of plugins compiled into a binary. It is immutable after
// New and safe for concurrent use.
type Registry struct {
	byName map[string]plugins.Plugin
	names  []string
	traced bool
}

// Traced returns a registry of the same plugins whose host functions each run
// in a span named after the import ("wasmsrv_kv.get"), a child of the request's
// (package tracing; Instance.RequestContext). Without it a host call costs
// nothing for traces.
func (r *Registry) Traced() *Registry {
	c := *r
	c.traced = true
	return &c
}

// New builds a registry, rejecting bad or duplicate names.
func New(ps ...plugins.Plugin) (*Registry, error) {
	r := &Registry{byName: map[string]plugins.Plugin{}}
	for _, p := range ps {
		name := p.Name()
		if !validName(name) {
			return nil, fmt.Errorf("plugin name %q: want lower-case letters, digits and _", name)
		}
		if _, dup := r.byName[name]; dup {
			return nil, fmt.Errorf("plugin %q registered twice", name)
		}
		r.byName[name] = p
		r.names = append(r.names, name)
	}
	slices.Sort(r.names)
	return r, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Names lists the registered plugins, sorted.
func (r *Registry) Names() []string { return slices.Clone(r.names) }

// Lookup returns the plugin called name.
func (r *Registry) Lookup(name string) (plugins.Plugin, bool) {
	p, ok := r.byName[name]
	return p, ok
}

// Grants are an app's grants: plugin name → its config section (nil for none).
type Grants map[string]plugins.Section

// ParseGrants turns CLI grant lists ("kv,http", repeated flags) into Grants.
func ParseGrants(lists ...string) Grants {
	g := Grants{}
	for _, l := range lists {
		for _, name := range strings.Split(l, ",") {
			if name = strings.TrimSpace(name); name != "" {
				if _, ok := g[name]; !ok {
					g[name] = nil // granted without a config section
				}
			}
		}
	}
	return g
}

// Opened is the set of plugins opened for one app.
type Opened struct {
	app      string
	modules  []runtime.HostModule
	closers  []func(context.Context) error
	versions map[string]string
	stored   map[string]func(context.Context) (int64, error) // by plugin, those that report it
}

// Open opens the granted plugins (plus DefaultGrant) for app, with log as the
// app's logger and a guest output budget of the app's own with the defaults
// (OpenWithOutput shares one). An unknown grant is an error naming the plugin and
// the app. On error nothing stays open.
func (r *Registry) Open(ctx context.Context, app string, grants Grants, log *slog.Logger) (*Opened, error) {
	return r.OpenWithOutput(ctx, app, grants, log, nil)
}

// OpenWithOutput is Open with out as the app's guest output budget (App.Output),
// the one its instances' stdout and stderr go through; nil means one of its own
// around log.
func (r *Registry) OpenWithOutput(ctx context.Context, app string, grants Grants, log *slog.Logger, out *guestlog.Sink) (*Opened, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if out == nil {
		out = guestlog.New(log.Handler(), guestlog.Config{})
	}
	// Plugins build namespaces from the name; only names of the documented set
	// map to them one to one.
	if err := appname.Check(app); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(grants)+1)
	for name := range grants {
		names = append(names, name)
	}
	if _, ok := r.byName[DefaultGrant]; ok && !slices.Contains(names, DefaultGrant) {
		names = append(names, DefaultGrant)
	}
	slices.Sort(names)
	o := &Opened{app: app, versions: map[string]string{}}
	for _, name := range names {
		p, ok := r.byName[name]
		if !ok {
			_ = o.Close(ctx)
			return nil, fmt.Errorf("app %s: grant %q: no such plugin in this build (have: %s)", app, name, strings.Join(r.names, ", "))
		}
		b, err := p.Open(ctx, plugins.AppInfo{Name: app, Config: grants[name], Logger: log, Output: out})
		if err != nil {
			_ = o.Close(ctx)
			return nil, fmt.Errorf("app %s: plugin %s: %w", app, name, err)
		}
		funcs := b.Funcs
		if r.traced {
			funcs = tracedFuncs(plugins.Module(p), funcs)
		}
		o.modules = append(o.modules, runtime.HostModule{Name: plugins.Module(p), Funcs: funcs})
		if b.Close != nil {
			o.closers = append(o.closers, b.Close)
		}
		o.versions[name] = p.Version()
		if b.StoredBytes != nil {
			if o.stored == nil {
				o.stored = map[string]func(context.Context) (int64, error){}
			}
			o.stored[name] = b.StoredBytes
		}
	}
	return o, nil
}

// StoredBytes reports, by plugin, the bytes the app's plugins hold for it (those
// that say: kv); a plugin whose backend fails to answer is left out.
func (o *Opened) StoredBytes(ctx context.Context) map[string]int64 {
	out := make(map[string]int64, len(o.stored))
	for name, f := range o.stored {
		if n, err := f(ctx); err == nil {
			out[name] = n
		}
	}
	return out
}

// HostModules are the import modules to give the app's runtime.
func (o *Opened) HostModules() []runtime.HostModule { return o.modules }

// Versions maps each opened plugin to its ABI version (for status pages and logs).
func (o *Opened) Versions() map[string]string { return o.versions }

// Close releases every plugin's per-app state, in reverse order of opening. Call it
// after the app's instances are closed.
func (o *Opened) Close(ctx context.Context) error {
	var errs []error
	for i := len(o.closers) - 1; i >= 0; i-- {
		if err := o.closers[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	o.closers = nil
	if len(errs) > 0 {
		return fmt.Errorf("app %s: closing plugins: %w", o.app, errors.Join(errs...))
	}
	return nil
}

// Close closes the plugins that hold process-wide resources (io.Closer).
func (r *Registry) Close() error {
	var errs []error
	for _, name := range r.names {
		if c, ok := r.byName[name].(io.Closer); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("plugin %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// tracedFuncs wraps each host function of module in a span.
func tracedFuncs(module string, fs []plugins.HostFunc) []plugins.HostFunc {
	out := make([]plugins.HostFunc, len(fs))
	for i, f := range fs {
		name, fn := module+"."+f.Name, f.Fn
		f.Fn = func(ctx context.Context, mod api.Module, stack []uint64) {
			in := runtime.InstanceFrom(ctx)
			if in == nil {
				fn(ctx, mod, stack)
				return
			}
			_, span := tracing.Start(in.RequestContext(), name)
			defer span.End() // a trap panics through it: the span still ends
			fn(ctx, mod, stack)
		}
		out[i] = f
	}
	return out
}
