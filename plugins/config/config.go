// Package config is the `config` plugin (import module wasmsrv_config, ABI.md): an
// app's variables and secrets, read-only. Values come from the app's config section
// (the config file or CLI flags); secrets may name a host environment variable or a
// file instead of holding the value, so it stays out of the config file.
package config

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Version is the plugin ABI version (ABI.md).
const Version = "1.0"

// Config is the per-app section.
type Config struct {
	// Vars are plain variables.
	Vars map[string]string `json:"vars"`
	// Secrets are variables whose value is "env:NAME" (the host's environment
	// variable NAME), "file:PATH" (the file's content, one trailing newline removed)
	// or the literal value. Resolved once when the app opens.
	Secrets map[string]string `json:"secrets"`
}

// Plugin is the config plugin. The zero value is ready.
type Plugin struct {
	// LookupEnv resolves "env:" secrets (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// New returns the config plugin.
func New() *Plugin { return &Plugin{} }

// Name implements plugins.Plugin.
func (*Plugin) Name() string { return "config" }

// Version implements plugins.Plugin.
func (*Plugin) Version() string { return Version }

// Open implements plugins.Plugin.
func (p *Plugin) Open(_ context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var cfg Config
	if err := app.Config.Decode(&cfg); err != nil {
		return nil, err
	}
	lookup := p.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	vals := map[string][]byte{}
	for k, v := range cfg.Vars {
		vals[k] = []byte(v)
	}
	for k, v := range cfg.Secrets {
		if _, dup := vals[k]; dup {
			return nil, fmt.Errorf("%q is both a var and a secret", k)
		}
		s, err := resolveSecret(v, lookup)
		if err != nil {
			// The error names the key and the source, never the value.
			return nil, fmt.Errorf("secret %q: %w", k, err)
		}
		vals[k] = []byte(s)
	}
	names := make([]string, 0, len(vals))
	for k := range vals {
		names = append(names, k)
	}
	slices.Sort(names)
	var list []byte
	for _, k := range names {
		list = pluginabi.AppendItem(list, k)
	}
	s := &store{vals: vals, list: list}
	return &plugins.Binding{Funcs: []plugins.HostFunc{
		{Name: "get", Params: plugins.Sig(plugins.I32, plugins.I32, plugins.I32, plugins.I32), Results: plugins.Sig(plugins.I64), Fn: s.get},
		{Name: "keys", Params: plugins.Sig(plugins.I32, plugins.I32), Results: plugins.Sig(plugins.I64), Fn: s.keys},
	}}, nil
}

func resolveSecret(v string, lookup func(string) (string, bool)) (string, error) {
	switch {
	case strings.HasPrefix(v, "env:"):
		name := strings.TrimPrefix(v, "env:")
		s, ok := lookup(name)
		if !ok {
			return "", fmt.Errorf("host environment variable %s is not set", name)
		}
		return s, nil
	case strings.HasPrefix(v, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(v, "file:"))
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		return strings.TrimSuffix(string(b), "\n"), nil
	}
	return v, nil
}

// store is immutable after Open: host calls read it without locking.
type store struct {
	vals map[string][]byte
	list []byte
}

// get(key i32, key_len i32, buf i32, limit i32) -> i64
func (s *store) get(_ context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_config.get"
	key := plugins.Region(fn, mod, stack[0], stack[1])
	v, ok := s.vals[string(key)] // no allocation: the compiler special-cases map[string(b)]
	if !ok {
		plugins.Region(fn, mod, stack[2], stack[3])
		stack[0] = plugins.Status(pluginabi.ErrNotFound)
		return
	}
	stack[0] = plugins.Out(fn, mod, stack[2], stack[3], v)
}

// keys(buf i32, limit i32) -> i64
func (s *store) keys(_ context.Context, mod api.Module, stack []uint64) {
	stack[0] = plugins.Out("wasmsrv_config.keys", mod, stack[0], stack[1], s.list)
}
