package config

import (
	"encoding/json"
	"fmt"
	"os"
)

// Middleware is an http-wasm handler module run in front of a route's target
// ([[routes.middleware]], docs/http-wasm.md): a Traefik or Dapr plugin
// unchanged. A route's middleware runs in the order listed.
type Middleware struct {
	// Module is the .wasm file (relative to the config file).
	Module string `toml:"module" yaml:"module"`
	// Config is what the guest's get_config returns: a string as it is, a
	// table as JSON (a Traefik plugin's config).
	Config any `toml:"config" yaml:"config"`
	// PoolSize is the number of instances (default 2×CPU+1); each request
	// holds one from handle_request until its handle_response.
	PoolSize int `toml:"pool_size" yaml:"pool_size"`
	// MemoryLimit caps each instance (default 128MiB).
	MemoryLimit Size `toml:"memory_limit" yaml:"memory_limit"`
	// RequestTimeout bounds each call into the guest (default 30s).
	RequestTimeout Duration `toml:"request_timeout" yaml:"request_timeout"`
	// BufferLimit bounds each body held for the guest: a body it writes, a
	// request body it keeps (buffer_request), the target's response it
	// inspects (buffer_response). Default 16MiB.
	BufferLimit Size `toml:"buffer_limit" yaml:"buffer_limit"`
}

// ConfigBytes is the middleware's get_config: a string as given, anything
// else encoded as JSON, nothing when absent.
func (m Middleware) ConfigBytes() ([]byte, error) {
	switch v := m.Config.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(v), nil
	default:
		return json.Marshal(normalizeJSON(v))
	}
}

// normalizeJSON turns YAML's map[any]any (and nested ones) into maps JSON can
// encode.
func normalizeJSON(v any) any {
	switch t := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[fmt.Sprint(k)] = normalizeJSON(x)
		}
		return m
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, x := range t {
			m[k] = normalizeJSON(x)
		}
		return m
	case []any:
		s := make([]any, len(t))
		for i, x := range t {
			s[i] = normalizeJSON(x)
		}
		return s
	}
	return v
}

// resolveMiddleware makes the routes' middleware modules relative to the
// config file.
func (c *Config) resolveMiddleware() {
	for i := range c.Routes {
		for j := range c.Routes[i].Middleware {
			c.Routes[i].Middleware[j].Module = c.Resolve(c.Routes[i].Middleware[j].Module)
		}
	}
}

// validateMiddleware checks one route's middleware list; k is the route's key.
func validateMiddleware(k string, ms []Middleware, add func(*Error)) {
	for j, m := range ms {
		mk := fmt.Sprintf("%s.middleware[%d]", k, j)
		if m.Module == "" {
			add(errf(mk+".module", "required: the http-wasm module (.wasm)"))
		} else if st, err := os.Stat(m.Module); err != nil {
			add(errf(mk+".module", "%v", err))
		} else if st.IsDir() {
			add(errf(mk+".module", "%q is a directory; want an http-wasm .wasm file", m.Module))
		}
		if _, err := m.ConfigBytes(); err != nil {
			add(errf(mk+".config", "cannot be encoded as JSON: %v", err))
		}
		if m.PoolSize < 0 {
			add(errf(mk+".pool_size", "must be >= 0"))
		}
		if m.MemoryLimit != 0 && (m.MemoryLimit < 64<<10 || m.MemoryLimit > 4<<30) {
			add(errf(mk+".memory_limit", "%d bytes is outside 64KiB..4GiB", m.MemoryLimit))
		}
		if m.BufferLimit < 0 {
			add(errf(mk+".buffer_limit", "must be >= 0"))
		}
	}
}
