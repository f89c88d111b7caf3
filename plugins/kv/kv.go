// Package kv is the `kv` plugin (import module wasmsrv_kv, ABI.md): a key-value store
// namespaced per app, with get, set with an optional TTL, delete, compare-and-swap
// and list by prefix. The embedded backend persists to one bbolt file (data survives
// a restart); the Redis backend lets several wasmsrv nodes share state. Keys, values
// and each app's total bytes are limited.
package kv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Version is the plugin ABI version (ABI.md).
const Version = "1.0"

// MaxKeyLimit is the largest key length an operator may allow. The ABI promises
// that a list buffer of 4 + MaxKeyLimit bytes always makes progress.
const MaxKeyLimit = 4096

// Limits bound one app's use of the store.
type Limits struct {
	// MaxKey is the longest key in bytes (default 512, at most MaxKeyLimit).
	MaxKey int `json:"max_key"`
	// MaxValue is the largest value in bytes (default 1 MiB).
	MaxValue int `json:"max_value"`
	// MaxBytes is the app's total of key and value bytes (default 64 MiB; 0 in a
	// section means the default). Expired entries count until they are swept.
	MaxBytes int64 `json:"max_bytes"`
	// Group and GroupMaxBytes bound several apps together: the apps whose
	// names start with Group (a hosting tenant's namespace, "acme_") share
	// GroupMaxBytes of keys and values. The app's own name must start with
	// Group. Zero GroupMaxBytes: no group bound.
	Group         string `json:"group"`
	GroupMaxBytes int64  `json:"group_max_bytes"`
}

// Quota is what a write is checked against: the app's bytes and, with a
// Group, the bytes of every app of the group together.
type Quota struct {
	MaxBytes      int64
	Group         string
	GroupMaxBytes int64
}

func (l Limits) quota() Quota {
	return Quota{MaxBytes: l.MaxBytes, Group: l.Group, GroupMaxBytes: l.GroupMaxBytes}
}

// DefaultLimits are the limits of an app without its own.
func DefaultLimits() Limits { return Limits{MaxKey: 512, MaxValue: 1 << 20, MaxBytes: 64 << 20} }

func (l Limits) orDefault(d Limits) Limits {
	if l.MaxKey <= 0 {
		l.MaxKey = d.MaxKey
	}
	if l.MaxValue <= 0 {
		l.MaxValue = d.MaxValue
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	return l
}

// ErrQuota is returned by a Store when a write would take an app over MaxBytes
// or its group over GroupMaxBytes.
var ErrQuota = errors.New("kv: app storage limit reached")

// Store is a backend. Every method is namespaced by app: one app can never name
// another's keys. Implementations are safe for concurrent use.
type Store interface {
	Get(ctx context.Context, app, key string) (val []byte, ok bool, err error)
	// Set stores val; ttl 0 means no expiry.
	Set(ctx context.Context, app, key string, val []byte, ttl time.Duration, q Quota) error
	// Delete removes key and reports whether it existed.
	Delete(ctx context.Context, app, key string) (bool, error)
	// CAS replaces key's value with new (or deletes it when del) only if the current
	// value equals old (or the key is absent when oldAbsent).
	CAS(ctx context.Context, app, key string, old []byte, oldAbsent bool, new []byte, del bool, ttl time.Duration, q Quota) (bool, error)
	// List returns up to max keys starting with prefix and greater than after, in
	// byte order, and whether more follow.
	List(ctx context.Context, app, prefix, after string, max int) (keys []string, more bool, err error)
	Close() error
}

// UsageStore is a Store that reports an app's byte usage (keys and values, the
// count MaxBytes is checked against). Both built-in backends are; a Store of an
// embedder's own may be, for the app's stored-bytes metric.
type UsageStore interface {
	Usage(ctx context.Context, app string) (int64, error)
}

// Options configure the plugin for the whole process.
type Options struct {
	// Path is the bbolt file of the embedded backend (default
	// $XDG_STATE_HOME/wasmsrv/kv.db or ~/.local/state/wasmsrv/kv.db). It is
	// opened when the first app with the kv grant loads.
	Path string
	// RedisURL selects the Redis backend ("redis://host:6379/0") instead.
	RedisURL string
	// Limits are the defaults for apps without their own (zero fields: DefaultLimits).
	Limits Limits
	// Store, if set, is used instead of opening one (tests, embedders).
	Store Store
}

// Plugin is the kv plugin.
type Plugin struct {
	opts Options

	mu    sync.Mutex
	store Store
}

// New returns the kv plugin. Nothing is opened until an app is granted kv.
func New(opts Options) *Plugin { return &Plugin{opts: opts, store: opts.Store} }

// Name implements plugins.Plugin.
func (*Plugin) Name() string { return "kv" }

// Version implements plugins.Plugin.
func (*Plugin) Version() string { return Version }

// Close closes the backend (after every app is closed).
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.store == nil {
		return nil
	}
	err := p.store.Close()
	p.store = nil
	return err
}

func (p *Plugin) backend(ctx context.Context) (Store, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.store != nil {
		return p.store, nil
	}
	var (
		s   Store
		err error
	)
	if p.opts.RedisURL != "" {
		s, err = OpenRedis(ctx, p.opts.RedisURL)
	} else {
		path := p.opts.Path
		if path == "" {
			path, err = defaultPath()
			if err != nil {
				return nil, err
			}
		}
		s, err = OpenBolt(path)
	}
	if err != nil {
		return nil, err
	}
	p.store = s
	return s, nil
}

func defaultPath() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no kv path given and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "wasmsrv", "kv.db"), nil
}

// Open implements plugins.Plugin.
func (p *Plugin) Open(ctx context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var lim Limits
	if err := app.Config.Decode(&lim); err != nil {
		return nil, err
	}
	lim = lim.orDefault(p.opts.Limits.orDefault(DefaultLimits()))
	if lim.MaxKey > MaxKeyLimit {
		return nil, fmt.Errorf("max_key %d is over %d", lim.MaxKey, MaxKeyLimit)
	}
	if err := plugins.CheckGroup(app.Name, lim.Group, "group_max_bytes", lim.GroupMaxBytes); err != nil {
		return nil, err
	}
	s, err := p.backend(ctx)
	if err != nil {
		return nil, err
	}
	a := &appKV{app: app.Name, store: s, lim: lim, log: app.Logger.With("plugin", "kv")}
	b := &plugins.Binding{Funcs: a.funcs()}
	if u, ok := s.(UsageStore); ok {
		b.StoredBytes = func(ctx context.Context) (int64, error) { return u.Usage(ctx, app.Name) }
	}
	return b, nil
}

// appKV is one app's view of the store: the namespace is fixed here, on the host,
// so nothing a guest passes can reach another app's keys.
type appKV struct {
	app   string
	store Store
	lim   Limits
	log   *slog.Logger
}

const (
	i32 = plugins.I32
	i64 = plugins.I64
)

func (a *appKV) funcs() []plugins.HostFunc {
	s := plugins.Sig
	return []plugins.HostFunc{
		{Name: "get", Params: s(i32, i32, i32, i32), Results: s(i64), Fn: a.get},
		{Name: "set", Params: s(i32, i32, i32, i32, i64), Results: s(i32), Fn: a.set},
		{Name: "delete", Params: s(i32, i32), Results: s(i32), Fn: a.del},
		{Name: "cas", Params: s(i32, i32, i32, i32, i32, i32, i32, i64), Results: s(i32), Fn: a.cas},
		{Name: "list", Params: s(i32, i32, i32, i32, i32, i32), Results: s(i64), Fn: a.list},
	}
}

// CAS flags (ABI.md).
const (
	CASOldAbsent = 1 << 0
	CASDelete    = 1 << 1
)

// fail maps a backend error to a status, logging what the guest cannot see.
func (a *appKV) fail(op string, err error) int32 {
	switch {
	case errors.Is(err, ErrQuota):
		return pluginabi.ErrQuota
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return pluginabi.ErrTimeout
	}
	a.log.Warn("kv backend failed", "op", op, "err", err)
	return pluginabi.ErrUnavailable
}

func (a *appKV) keyOK(k []byte) bool { return len(k) > 0 && len(k) <= a.lim.MaxKey }

func ttlOf(ms uint64) (time.Duration, bool) {
	v := int64(ms)
	if v < 0 || v > math.MaxInt64/int64(time.Millisecond) {
		return 0, false
	}
	return time.Duration(v) * time.Millisecond, true
}

// get(key, key_len, buf, limit) -> i64
func (a *appKV) get(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_kv.get"
	key := plugins.Region(fn, mod, stack[0], stack[1])
	plugins.Region(fn, mod, stack[2], stack[3])
	if !a.keyOK(key) {
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
		return
	}
	v, ok, err := a.store.Get(ctx, a.app, string(key))
	switch {
	case err != nil:
		stack[0] = plugins.Status(a.fail("get", err))
	case !ok:
		stack[0] = plugins.Status(pluginabi.ErrNotFound)
	default:
		stack[0] = plugins.Out(fn, mod, stack[2], stack[3], v)
	}
}

// set(key, key_len, val, val_len, ttl_ms i64) -> i32
func (a *appKV) set(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_kv.set"
	key := plugins.Region(fn, mod, stack[0], stack[1])
	val := plugins.Region(fn, mod, stack[2], stack[3])
	ttl, ok := ttlOf(stack[4])
	switch {
	case !ok || !a.keyOK(key):
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
	case len(val) > a.lim.MaxValue:
		stack[0] = plugins.Status(pluginabi.ErrTooLarge)
	default:
		// The value is a view of guest memory: backends copy it before returning.
		if err := a.store.Set(ctx, a.app, string(key), val, ttl, a.lim.quota()); err != nil {
			stack[0] = plugins.Status(a.fail("set", err))
			return
		}
		stack[0] = 0
	}
}

// delete(key, key_len) -> i32
func (a *appKV) del(ctx context.Context, mod api.Module, stack []uint64) {
	key := plugins.Region("wasmsrv_kv.delete", mod, stack[0], stack[1])
	if !a.keyOK(key) {
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
		return
	}
	existed, err := a.store.Delete(ctx, a.app, string(key))
	switch {
	case err != nil:
		stack[0] = plugins.Status(a.fail("delete", err))
	case !existed:
		stack[0] = plugins.Status(pluginabi.ErrNotFound)
	default:
		stack[0] = 0
	}
}

// cas(key, key_len, old, old_len, new, new_len, flags i32, ttl_ms i64) -> i32
func (a *appKV) cas(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_kv.cas"
	key := plugins.Region(fn, mod, stack[0], stack[1])
	old := plugins.Region(fn, mod, stack[2], stack[3])
	nv := plugins.Region(fn, mod, stack[4], stack[5])
	flags := uint32(stack[6])
	ttl, ok := ttlOf(stack[7])
	switch {
	case !ok || !a.keyOK(key) || flags&^(CASOldAbsent|CASDelete) != 0:
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
		return
	case len(nv) > a.lim.MaxValue:
		stack[0] = plugins.Status(pluginabi.ErrTooLarge)
		return
	}
	swapped, err := a.store.CAS(ctx, a.app, string(key), old, flags&CASOldAbsent != 0, nv, flags&CASDelete != 0, ttl, a.lim.quota())
	switch {
	case err != nil:
		stack[0] = plugins.Status(a.fail("cas", err))
	case !swapped:
		stack[0] = plugins.Status(pluginabi.ErrConflict)
	default:
		stack[0] = 0
	}
}

// list(prefix, prefix_len, after, after_len, buf, limit) -> i64
func (a *appKV) list(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_kv.list"
	prefix := plugins.Region(fn, mod, stack[0], stack[1])
	after := plugins.Region(fn, mod, stack[2], stack[3])
	buf := plugins.Region(fn, mod, stack[4], stack[5])
	if len(prefix) > a.lim.MaxKey || len(after) > a.lim.MaxKey {
		stack[0] = plugins.Status(pluginabi.ErrBadArgument)
		return
	}
	// At most as many keys as could fit (each takes ≥ 5 bytes), capped so one call
	// does bounded work on the backend.
	max := min(len(buf)/5, 1000)
	if max == 0 {
		max = 1
	}
	keys, more, err := a.store.List(ctx, a.app, string(prefix), string(after), max)
	if err != nil {
		stack[0] = plugins.Status(a.fail("list", err))
		return
	}
	n := 0
	for i, k := range keys {
		if n+4+len(k) > len(buf) {
			if i == 0 {
				stack[0] = plugins.Status(pluginabi.ErrTooLarge)
				return
			}
			more = true
			break
		}
		copy(buf[n+4:], k)
		buf[n], buf[n+1], buf[n+2], buf[n+3] = byte(len(k)), byte(len(k)>>8), byte(len(k)>>16), byte(len(k)>>24)
		n += 4 + len(k)
	}
	var m uint32
	if more {
		m = 1
	}
	stack[0] = pluginabi.Pack2(m, uint32(n))
}

var _ io.Closer = (*Plugin)(nil)
