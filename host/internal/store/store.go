// Package store keeps a hosting site's state: tenants, their apps (settings,
// versions, what is active and how traffic is split), the host names they claim,
// the audit log, and the modules by content hash. Metadata changes are
// transactions (Update): a crash leaves the last committed state, never half of
// one. Modules are written to a temporary file, synced and renamed into place
// before any record names them.
//
// The embedded backend (Open) is one bbolt file and a directory of modules;
// OpenRedis shares the state between several nodes through Redis.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
)

// Errors of the typed transaction.
var (
	ErrNotFound  = errors.New("not found")
	ErrHostTaken = errors.New("host name claimed by another tenant")
	ErrExists    = errors.New("already exists")
)

// Version is one uploaded module of an app.
type Version struct {
	// ID is the module's SHA-256, lower-case hex.
	ID       string    `json:"id"`
	Size     int64     `json:"size"`
	Uploaded time.Time `json:"uploaded"`
	By       string    `json:"by"`
}

// App is a tenant's deployed app.
type App struct {
	Tenant string `json:"tenant"`
	Name   string `json:"name"`
	// Hosts are the host names whose requests go to the app.
	Hosts []string `json:"hosts"`
	// Settings are the app's keys of a file's [apps.NAME] table (config.App),
	// without module: the tenant's, validated by config.AppSettings.
	Settings map[string]any `json:"settings,omitempty"`
	// Secrets reach the guest through the config plugin; the API never
	// returns their values.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Versions, oldest first.
	Versions []Version `json:"versions,omitempty"`
	// Active serves the requests Canary does not; Canary (if set) serves
	// Percent of them, per client when Sticky.
	Active  string `json:"active,omitempty"`
	Canary  string `json:"canary,omitempty"`
	Percent int    `json:"percent,omitempty"`
	Sticky  bool   `json:"sticky,omitempty"`
	// History are the versions made active, oldest first (rollback's default
	// target is the one before the current).
	History []string `json:"history,omitempty"`
	// Revision counts the app's changes.
	Revision uint64    `json:"revision"`
	Updated  time.Time `json:"updated"`
}

// Version returns the version id names.
func (a *App) Version(id string) (Version, bool) {
	for _, v := range a.Versions {
		if v.ID == id {
			return v, true
		}
	}
	return Version{}, false
}

// Audit is one change: who did what, when.
type Audit struct {
	Seq    uint64    `json:"seq"`
	Time   time.Time `json:"time"`
	Who    string    `json:"who"` // "operator" or "tenant:NAME"
	Tenant string    `json:"tenant,omitempty"`
	App    string    `json:"app,omitempty"`
	Action string    `json:"action"`
	Detail string    `json:"detail,omitempty"`
}

// Store is a hosting site's state.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(*Tx) error) error
	// Update runs fn in a read-write transaction, committed when fn returns
	// nil. Updates are serialised (across nodes for a shared backend).
	Update(ctx context.Context, fn func(*Tx) error) error
	// PutModule stores a module and returns its id (SHA-256 hex).
	PutModule(ctx context.Context, wasm []byte) (string, error)
	// ModulePath is a local file holding the module id (fetched first from a
	// shared backend).
	ModulePath(ctx context.Context, id string) (string, error)
	// Changes delivers a value when another node changed the state (nil for
	// a store of one node).
	Changes() <-chan struct{}
	Close() error
}

// KV is what a backend gives a transaction: byte values by string key.
type KV interface {
	Get(key string) ([]byte, error) // nil, nil when absent
	Put(key string, val []byte) error
	Delete(key string) error
	// Scan calls fn for each key with prefix, in key order.
	Scan(prefix string, fn func(key string, val []byte) error) error
	// NextSeq is a number larger than every one it returned before.
	NextSeq() (uint64, error)
}

// Tx is a typed transaction over a backend's KV.
type Tx struct{ kv KV }

// NewTx types kv (for backends).
func NewTx(kv KV) *Tx { return &Tx{kv} }

// EpochKey names the store's identity, a random value made when a store is
// first opened or written. It goes when the backend loses everything (a Redis
// restarted without persistence): a node that finds it gone or changed knows
// the store's state is not a list of deletions (Manager.Sync).
const EpochKey = "epoch"

// NewEpoch is a fresh store identity.
func NewEpoch() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Epoch is the store's identity, "" when it has none (it lost its state).
func (tx *Tx) Epoch() (string, error) {
	b, err := tx.kv.Get(EpochKey)
	return string(b), err
}

// Keys: t/TENANT, a/TENANT/APP, h/HOST, l/SEQ (16 hex digits).
func tenantKey(name string) string     { return "t/" + name }
func appKey(tenant, app string) string { return "a/" + tenant + "/" + app }
func hostKey(host string) string       { return "h/" + host }

func (tx *Tx) get(key string, v any) (bool, error) {
	b, err := tx.kv.Get(key)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("store: record %s: %w", key, err)
	}
	return true, nil
}

func (tx *Tx) put(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.kv.Put(key, b)
}

// tenantRecord stores a tenant with its token hashes (config.Tenant hides them
// from JSON: the API must never show them).
type tenantRecord struct {
	config.Tenant
	TokenHashes []string `json:"tokens"`
}

// Tenant returns the tenant name.
func (tx *Tx) Tenant(name string) (config.Tenant, error) {
	var r tenantRecord
	ok, err := tx.get(tenantKey(name), &r)
	if err != nil {
		return config.Tenant{}, err
	}
	if !ok {
		return config.Tenant{}, fmt.Errorf("tenant %q: %w", name, ErrNotFound)
	}
	r.Tenant.Tokens = r.TokenHashes
	return r.Tenant, nil
}

// Tenants returns every tenant, by name.
func (tx *Tx) Tenants() ([]config.Tenant, error) {
	var out []config.Tenant
	err := tx.kv.Scan("t/", func(key string, val []byte) error {
		var r tenantRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("store: record %s: %w", key, err)
		}
		r.Tenant.Tokens = r.TokenHashes
		out = append(out, r.Tenant)
		return nil
	})
	return out, err
}

// PutTenant creates or replaces a tenant.
func (tx *Tx) PutTenant(t config.Tenant) error {
	return tx.put(tenantKey(t.Name), tenantRecord{Tenant: t, TokenHashes: t.Tokens})
}

// DeleteTenant removes a tenant, its apps and their host claims.
func (tx *Tx) DeleteTenant(name string) error {
	apps, err := tx.Apps(name)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if err := tx.DeleteApp(name, a.Name); err != nil {
			return err
		}
	}
	return tx.kv.Delete(tenantKey(name))
}

// App returns a tenant's app.
func (tx *Tx) App(tenant, name string) (App, error) {
	var a App
	ok, err := tx.get(appKey(tenant, name), &a)
	if err != nil {
		return App{}, err
	}
	if !ok {
		return App{}, fmt.Errorf("app %q of tenant %q: %w", name, tenant, ErrNotFound)
	}
	return a, nil
}

// Apps returns a tenant's apps by name; every app when tenant is "".
func (tx *Tx) Apps(tenant string) ([]App, error) {
	prefix := "a/"
	if tenant != "" {
		prefix = appKey(tenant, "")
	}
	var out []App
	err := tx.kv.Scan(prefix, func(key string, val []byte) error {
		var a App
		if err := json.Unmarshal(val, &a); err != nil {
			return fmt.Errorf("store: record %s: %w", key, err)
		}
		out = append(out, a)
		return nil
	})
	return out, err
}

// HostOwner is the tenant and app a host name belongs to.
type HostOwner struct {
	Tenant string `json:"tenant"`
	App    string `json:"app"`
}

// Host returns who claims host (ok false: nobody).
func (tx *Tx) Host(host string) (HostOwner, bool, error) {
	var o HostOwner
	ok, err := tx.get(hostKey(host), &o)
	return o, ok, err
}

// PutApp creates or replaces an app, claiming its host names and releasing the
// ones it no longer has. A name another tenant claims is ErrHostTaken; another
// app of the same tenant gives it up.
func (tx *Tx) PutApp(a App) error {
	old, err := tx.App(a.Tenant, a.Name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	for _, h := range a.Hosts {
		o, ok, err := tx.Host(h)
		if err != nil {
			return err
		}
		if ok && o.Tenant != a.Tenant {
			return fmt.Errorf("%q: %w", h, ErrHostTaken)
		}
		if ok && o.App != a.Name {
			other, err := tx.App(o.Tenant, o.App)
			if err == nil {
				other.Hosts = without(other.Hosts, h)
				if err := tx.put(appKey(other.Tenant, other.Name), other); err != nil {
					return err
				}
			}
		}
		if err := tx.put(hostKey(h), HostOwner{Tenant: a.Tenant, App: a.Name}); err != nil {
			return err
		}
	}
	for _, h := range old.Hosts {
		if !contains(a.Hosts, h) {
			if err := tx.kv.Delete(hostKey(h)); err != nil {
				return err
			}
		}
	}
	a.Revision = old.Revision + 1
	a.Updated = time.Now().UTC()
	return tx.put(appKey(a.Tenant, a.Name), a)
}

// DeleteApp removes an app and its host claims.
func (tx *Tx) DeleteApp(tenant, name string) error {
	a, err := tx.App(tenant, name)
	if err != nil {
		return err
	}
	for _, h := range a.Hosts {
		if err := tx.kv.Delete(hostKey(h)); err != nil {
			return err
		}
	}
	return tx.kv.Delete(appKey(tenant, name))
}

// Log appends an audit record (Seq and Time are set here).
func (tx *Tx) Log(e Audit) error {
	seq, err := tx.kv.NextSeq()
	if err != nil {
		return err
	}
	e.Seq, e.Time = seq, time.Now().UTC()
	return tx.put(fmt.Sprintf("l/%016x", seq), e)
}

// AuditLog returns the last n records (of tenant, or all when ""), oldest first.
func (tx *Tx) AuditLog(tenant string, n int) ([]Audit, error) {
	var out []Audit
	err := tx.kv.Scan("l/", func(key string, val []byte) error {
		var e Audit
		if err := json.Unmarshal(val, &e); err != nil {
			return fmt.Errorf("store: record %s: %w", key, err)
		}
		if tenant == "" || e.Tenant == tenant {
			out = append(out, e)
		}
		return nil
	})
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out, err
}

func without(s []string, x string) []string {
	out := s[:0:0]
	for _, e := range s {
		if e != x {
			out = append(out, e)
		}
	}
	return out
}

func contains(s []string, x string) bool {
	for _, e := range s {
		if e == x {
			return true
		}
	}
	return false
}

// CheckID reports whether id is a module id: 64 lower-case hex digits. Nothing
// else ever becomes a file name.
func CheckID(id string) error {
	if len(id) != 64 || strings.Trim(id, "0123456789abcdef") != "" {
		return fmt.Errorf("bad version id %q: want 64 lower-case hex digits (the module's SHA-256)", clip(id))
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// ModuleID is the id of a module: its SHA-256 in lower-case hex.
func ModuleID(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return hex.EncodeToString(sum[:])
}

// modules is a directory of modules by id, written atomically.
type modules struct{ dir string }

func (m modules) path(id string) (string, error) {
	if err := CheckID(id); err != nil {
		return "", err
	}
	return filepath.Join(m.dir, id+".wasm"), nil
}

// put writes wasm under its id unless it is there already: a temporary file,
// synced, renamed into place, then the directory synced.
func (m modules) put(wasm []byte) (string, error) {
	id := ModuleID(wasm)
	p, _ := m.path(id)
	if st, err := os.Stat(p); err == nil && st.Size() == int64(len(wasm)) {
		return id, nil
	}
	f, err := os.CreateTemp(m.dir, ".upload-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(wasm); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return "", err
	}
	return id, syncDir(m.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// cleanTemp removes uploads a crash left half-written.
func (m modules) cleanTemp() {
	ents, _ := os.ReadDir(m.dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".upload-") {
			os.Remove(filepath.Join(m.dir, e.Name()))
		}
	}
}
