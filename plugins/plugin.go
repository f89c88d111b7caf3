// Package plugins is the plugin author's API: a plugin is a Go package that offers
// host functions to guests under its own import module (`wasmsrv_<name>`), and an app
// can import only the plugins it was granted. Deny by default; `log` is the only
// default grant.
//
// A plugin implements Plugin. The host opens the granted plugins for every app: each
// returns host functions bound to that app's own state (its KV namespace, its allow
// list), so a host call reaches its state through a closure, not a lookup. This
// package is all a plugin imports of wasmsrv; README.md says how to write one, and
// docs/custom-binary.md how to build a wasmsrv that includes it (host/cli.Main).
package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Plugin is one host capability.
//
// Implementations hold process-wide resources (a database file, a Redis client) and
// must be safe for concurrent use: apps open and close at any time. If a plugin also
// implements io.Closer, Registry.Close closes it after every app is gone.
type Plugin interface {
	// Name is the grant name and the suffix of the import module: "kv" is
	// imported as "wasmsrv_kv". Lower-case letters, digits and '_'.
	Name() string
	// Version is the version of the plugin's own ABI ("1.0"), documented next to the
	// plugin and independent of the core ABI: major bumps break guests.
	Version() string
	// Open sets the plugin up for one app: it decodes the app's config section,
	// creates the app's state and returns host functions bound to it. It runs when
	// the app loads, before any instance exists.
	Open(ctx context.Context, app AppInfo) (*Binding, error)
}

// AppInfo is what a plugin is told about the app it is opened for.
type AppInfo struct {
	// Name is the app's name: the tenant. State must be namespaced by it. It is
	// 1-64 characters from A-Z a-z 0-9 _ -, starting with a letter or digit
	// (Registry.Open refuses others), so it can stand in a key, a bucket name or
	// a channel as it is; a namespace built from it must still keep its end
	// unambiguous (a delimiter outside that set, or a nested bucket).
	Name string
	// Config is the app's section for this plugin (empty when none was given).
	Config Section
	// Logger is the app's logger (it already carries the app name); plugins tag
	// their own records with "plugin".
	Logger *slog.Logger
	// Output is the app's guest output budget, shared with the guest's stdout
	// and stderr: records written on the guest's behalf (what it asks to log) go
	// through Output.Logger(), and records a plugin refuses by a limit of its own
	// are counted with Output.Drop. Never nil.
	Output Output
}

// Binding is a plugin opened for one app.
type Binding struct {
	// Funcs are the host functions of the plugin's import module.
	Funcs []HostFunc
	// Close releases the app's state. It runs after the app's instances are closed;
	// nil means nothing to release.
	Close func(ctx context.Context) error
	// StoredBytes, if set, reports the bytes the plugin holds for the app (kv:
	// its keys and values), read when metrics are scraped; it must be quick.
	StoredBytes func(ctx context.Context) (int64, error)
}

// Section is one plugin's per-app configuration as read from the config file (a
// table of keys) or assembled from CLI flags. Plugins decode it into their own
// struct with Decode.
type Section map[string]any

// Decode fills dst (a pointer to a struct with json tags) from the section. Unknown
// keys are errors, so a typo in the config file does not silently grant nothing.
func (s Section) Decode(dst any) error {
	if len(s) == 0 {
		return nil
	}
	b, err := json.Marshal(map[string]any(s))
	if err != nil {
		return fmt.Errorf("config section: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("config section: %w", err)
	}
	return nil
}

// Duration is a time.Duration that decodes from "1.5s" in config sections.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("duration %q: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalText prints the duration in Go form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// D returns the time.Duration, or def when unset.
func (d Duration) D(def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// Module returns the import module of plugin p.
func Module(p Plugin) string { return pluginabi.Module(p.Name()) }
