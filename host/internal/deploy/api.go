package deploy

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/store"
	"github.com/wasmsrv/wasmsrv/host/internal/tenant"
	"github.com/wasmsrv/wasmsrv/internal/appname"
)

// API is the deploy API (docs/hosting.md, docs/hosting-openapi.yaml), served
// under /v1/ on the admin listener behind its request guard. The operator's
// token may do everything; a tenant's token only what concerns its tenant.
func (m *Manager) API() http.Handler {
	mux := http.NewServeMux()
	for _, r := range m.routes() {
		mux.HandleFunc(r.pattern, r.h)
	}
	return mux
}

type apiRoute struct {
	pattern string // METHOD PATH, as docs/hosting-openapi.yaml lists it
	h       http.HandlerFunc
}

func (m *Manager) routes() []apiRoute {
	return []apiRoute{
		{"GET /v1/whoami", m.whoami},
		{"GET /v1/tenants", m.operator(m.listTenants)},
		{"POST /v1/tenants", m.operator(m.createTenant)},
		{"GET /v1/tenants/{tenant}", m.tenant(m.getTenant)},
		{"DELETE /v1/tenants/{tenant}", m.operator(m.deleteTenant)},
		{"POST /v1/tenants/{tenant}/tokens", m.operator(m.newToken)},
		{"GET /v1/tenants/{tenant}/apps", m.tenant(m.listApps)},
		{"GET /v1/tenants/{tenant}/apps/{app}", m.tenant(m.getApp)},
		{"PUT /v1/tenants/{tenant}/apps/{app}", m.tenant(m.putApp)},
		{"DELETE /v1/tenants/{tenant}/apps/{app}", m.tenant(m.deleteApp)},
		{"GET /v1/tenants/{tenant}/apps/{app}/versions", m.tenant(m.listVersions)},
		{"POST /v1/tenants/{tenant}/apps/{app}/versions", m.tenant(m.upload)},
		{"POST /v1/tenants/{tenant}/apps/{app}/deploy", m.tenant(m.deploy)},
		{"POST /v1/tenants/{tenant}/apps/{app}/rollback", m.tenant(m.rollback)},
		{"GET /v1/audit", m.audit},
	}
}

type ctxPrincipal struct{}

// Authenticate returns who the request's bearer token names, or ok false.
func (m *Manager) Authenticate(r *http.Request) (tenant.Principal, bool) {
	tok, ok := strings.CutPrefix(strings.TrimSpace(r.Header.Get("Authorization")), "Bearer ")
	if !ok || tok == "" {
		return tenant.Principal{}, false
	}
	if op := *m.operatorToken.Load(); op != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(op)) == 1 {
		return tenant.Principal{Operator: true}, true
	}
	name, ok := tenant.Named(tok)
	if !ok {
		return tenant.Principal{}, false
	}
	var t config.Tenant
	err := m.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		t, err = tx.Tenant(name)
		return err
	})
	if err != nil || !tenant.Verify(t, tok) {
		return tenant.Principal{}, false
	}
	return tenant.Principal{Tenant: name}, true
}

// WithPrincipal is the API behind authentication: 401 without a valid token.
func (m *Manager) WithPrincipal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := m.Authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wasmsrv deploy"`)
			writeErr(w, http.StatusUnauthorized, "a valid operator or tenant token is required")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxPrincipal{}, p)))
	})
}

func principal(r *http.Request) tenant.Principal {
	p, _ := r.Context().Value(ctxPrincipal{}).(tenant.Principal)
	return p
}

func (m *Manager) operator(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !principal(r).Operator {
			writeErr(w, http.StatusForbidden, "only the operator may do this")
			return
		}
		h(w, r)
	}
}

// tenant refuses a token of another tenant before anything is looked up (a
// tenant learns nothing of another's apps, not even whether they exist), and a
// name that is not a tenant's or app's.
func (m *Manager) tenant(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := r.PathValue("tenant")
		if !principal(r).May(t) {
			writeErr(w, http.StatusForbidden, "this token may not act for tenant "+strconv.Quote(clip(t)))
			return
		}
		if err := appname.CheckTenant(t); err != nil {
			writeErr(w, http.StatusBadRequest, err.Error())
			return
		}
		if a := r.PathValue("app"); a != "" {
			if _, err := appname.Namespace(t, a); err != nil {
				writeErr(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		h(w, r)
	}
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"error": msg})
}

// fail answers err with its status: 404 not found, 409 a host or name taken,
// 403 a tenant limit (tenant.Forbidden), 422 what the request asked for cannot
// be, 500 the rest.
func fail(w http.ResponseWriter, err error) {
	var fb *tenant.Forbidden
	var ue *unprocessable
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrHostTaken), errors.Is(err, store.ErrExists):
		writeErr(w, http.StatusConflict, err.Error())
	case errors.As(err, &fb):
		writeErr(w, http.StatusForbidden, fb.Msg)
	case errors.As(err, &ue):
		writeErr(w, http.StatusUnprocessableEntity, ue.err.Error())
	default:
		writeErr(w, http.StatusInternalServerError, err.Error())
	}
}

type unprocessable struct{ err error }

func (e *unprocessable) Error() string { return e.err.Error() }
func (e *unprocessable) Unwrap() error { return e.err }

func unproc(format string, a ...any) error { return &unprocessable{fmt.Errorf(format, a...)} }

// readJSON decodes a small JSON body (64 KiB at most), unknown fields refused.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeErr(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	return true
}

func (m *Manager) whoami(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	writeJSON(w, http.StatusOK, map[string]any{"operator": p.Operator, "tenant": p.Tenant})
}

func (m *Manager) listTenants(w http.ResponseWriter, r *http.Request) {
	var ts []config.Tenant
	err := m.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) { ts, err = tx.Tenants(); return })
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": nonNil(ts)})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// createTenant makes a tenant and its first token, shown once.
func (m *Manager) createTenant(w http.ResponseWriter, r *http.Request) {
	var t config.Tenant
	if !readJSON(w, r, &t) {
		return
	}
	if err := appname.CheckTenant(t.Name); err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	m.mu.Lock()
	fileApps := m.opt.FileApps
	m.mu.Unlock()
	for _, a := range fileApps {
		if strings.HasPrefix(a, t.Name+appname.TenantSep) {
			writeErr(w, http.StatusConflict, fmt.Sprintf("the site file's app %q is in the namespace of a tenant named %q", a, t.Name))
			return
		}
	}
	var errs []string
	t.Quotas.Check(func(k string) string { return "quotas." + k }, func(e *config.Error) { errs = append(errs, e.Key+": "+e.Msg) })
	if len(errs) > 0 {
		writeErr(w, http.StatusUnprocessableEntity, strings.Join(errs, "; "))
		return
	}
	tok, hash := tenant.NewToken(t.Name)
	t.Tokens, t.FromFile = []string{hash}, false
	err := m.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if _, err := tx.Tenant(t.Name); err == nil {
			return fmt.Errorf("tenant %q: %w", t.Name, store.ErrExists)
		}
		if err := tx.PutTenant(t); err != nil {
			return err
		}
		return tx.Log(store.Audit{Who: principal(r).String(), Tenant: t.Name, Action: "tenant.create"})
	})
	if err != nil {
		fail(w, err)
		return
	}
	m.setGate(t)
	writeJSON(w, http.StatusCreated, map[string]any{"tenant": t, "token": tok})
}

func (m *Manager) getTenant(w http.ResponseWriter, r *http.Request) {
	var t config.Tenant
	err := m.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) { t, err = tx.Tenant(r.PathValue("tenant")); return })
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, t)
}

func (m *Manager) deleteTenant(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("tenant")
	err := m.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		t, err := tx.Tenant(name)
		if err != nil {
			return err
		}
		if t.FromFile {
			return &tenant.Forbidden{Msg: "tenant " + strconv.Quote(name) + " is declared in the site file: remove it there"}
		}
		if err := tx.DeleteTenant(name); err != nil {
			return err
		}
		return tx.Log(store.Audit{Who: principal(r).String(), Tenant: name, Action: "tenant.delete"})
	})
	if err != nil {
		fail(w, err)
		return
	}
	if err := m.Sync(r.Context()); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// newToken adds a token to a tenant (shown once).
func (m *Manager) newToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("tenant")
	tok, hash := tenant.NewToken(name)
	err := m.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		t, err := tx.Tenant(name)
		if err != nil {
			return err
		}
		t.Tokens = append(t.Tokens, hash)
		if err := tx.PutTenant(t); err != nil {
			return err
		}
		return tx.Log(store.Audit{Who: principal(r).String(), Tenant: name, Action: "tenant.token"})
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": tok})
}

// appView is an app as the API shows it: secrets by name only.
type appView struct {
	store.App
	Secrets []string `json:"secrets,omitempty"`
}

func view(a store.App) appView {
	v := appView{App: a}
	for k := range a.Secrets {
		v.Secrets = append(v.Secrets, k)
	}
	slices.Sort(v.Secrets)
	v.App.Secrets = nil
	return v
}

func (m *Manager) listApps(w http.ResponseWriter, r *http.Request) {
	var as []store.App
	err := m.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) { as, err = tx.Apps(r.PathValue("tenant")); return })
	if err != nil {
		fail(w, err)
		return
	}
	out := make([]appView, 0, len(as))
	for _, a := range as {
		out = append(out, view(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"apps": out})
}

// pathApp reads the app the request's path names ({tenant}/{app}).
func (m *Manager) pathApp(r *http.Request) (a store.App, err error) {
	err = m.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		a, err = tx.App(r.PathValue("tenant"), r.PathValue("app"))
		return
	})
	return a, err
}

func (m *Manager) getApp(w http.ResponseWriter, r *http.Request) {
	a, err := m.pathApp(r)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(a))
}

// appChange is the body of PUT .../apps/APP: what is given replaces what was.
type appChange struct {
	Hosts    *[]string          `json:"hosts"`
	Settings *map[string]any    `json:"settings"`
	Secrets  *map[string]string `json:"secrets"`
}

// normalHost checks and lower-cases a host name an app claims.
func normalHost(h string) (string, error) {
	h = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
	if h == "" || len(h) > 253 || strings.Trim(h, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "" || strings.Contains(h, "..") || h[0] == '.' || h[0] == '-' {
		return "", fmt.Errorf("bad host name %q: want a DNS name (letters, digits, - and .)", clip(h))
	}
	return h, nil
}

// change runs fn on the app in one store transaction with the tenant, checks
// the tenant's quotas on the result, stores it with an audit record and applies
// it. Two changes of one app are serialised (the store's transaction).
func (m *Manager) change(ctx context.Context, p tenant.Principal, tname, app, action string, create bool,
	fn func(t config.Tenant, a *store.App) (detail string, err error)) (store.App, error) {
	var (
		out store.App
		t   config.Tenant
	)
	err := m.opt.Store.Update(ctx, func(tx *store.Tx) error {
		var err error
		if t, err = tx.Tenant(tname); err != nil {
			return err
		}
		a, err := tx.App(tname, app)
		if errors.Is(err, store.ErrNotFound) && create {
			a, err = store.App{Tenant: tname, Name: app, Hosts: []string{}}, nil
		}
		if err != nil {
			return err
		}
		detail, err := fn(t, &a)
		if err != nil {
			return err
		}
		if err := m.checkQuotas(ctx, tx, t, a); err != nil {
			return err
		}
		if err := tx.PutApp(a); err != nil {
			return err
		}
		if err := tx.Log(store.Audit{Who: p.String(), Tenant: tname, App: app, Action: action, Detail: detail}); err != nil {
			return err
		}
		out, err = tx.App(tname, app)
		return err
	})
	if err != nil {
		return store.App{}, err
	}
	m.setGate(t)
	if err := m.apply(ctx, t, out); err != nil {
		// Stored but not running: the change is refused by the runtime (a
		// module that loaded at upload fails to start). The running routing
		// stays; say so.
		return out, unproc("stored, but the new routing did not start (the running one stays): %v", err)
	}
	return out, nil
}

// checkQuotas counts what a tenant's apps take with a in place of its stored
// state: apps, and per open pool (active, and canary while split) instances
// and memory.
func (m *Manager) checkQuotas(ctx context.Context, tx *store.Tx, t config.Tenant, a store.App) error {
	all, err := tx.Apps(t.Name)
	if err != nil {
		return err
	}
	var u tenant.Usage
	found := false
	for i := range all {
		if all[i].Name == a.Name {
			all[i], found = a, true
		}
	}
	if !found {
		all = append(all, a)
	}
	u.Apps = len(all)
	for _, x := range all {
		for _, v := range []string{x.Active, canaryOf(x)} {
			if v == "" {
				continue
			}
			ac, err := config.AppSettings(x.Settings, os.DevNull)
			if err != nil {
				continue
			}
			_ = tenant.Apply(t, &ac, x.Settings, x.Secrets) // its memory default
			u.Add(&ac)
		}
	}
	return u.Check(t)
}

func canaryOf(a store.App) string {
	if a.Percent > 0 && a.Canary != a.Active {
		return a.Canary
	}
	return ""
}

func (m *Manager) putApp(w http.ResponseWriter, r *http.Request) {
	var c appChange
	if !readJSON(w, r, &c) {
		return
	}
	a, err := m.change(r.Context(), principal(r), r.PathValue("tenant"), r.PathValue("app"), "app.put", true,
		func(t config.Tenant, a *store.App) (string, error) {
			var what []string
			if c.Hosts != nil {
				hosts := []string{}
				for _, h := range *c.Hosts {
					n, err := normalHost(h)
					if err != nil {
						return "", unproc("hosts: %v", err)
					}
					if err := m.claimable(t, n); err != nil {
						return "", err
					}
					if !slices.Contains(hosts, n) {
						hosts = append(hosts, n)
					}
				}
				a.Hosts = hosts
				what = append(what, "hosts="+strings.Join(hosts, ","))
			}
			if c.Settings != nil {
				a.Settings = *c.Settings
				what = append(what, "settings")
			}
			if c.Secrets != nil {
				a.Secrets = *c.Secrets
				names := make([]string, 0, len(a.Secrets))
				for k := range a.Secrets {
					names = append(names, k)
				}
				slices.Sort(names)
				what = append(what, "secrets="+strings.Join(names, ","))
			}
			if err := tenant.CheckSettings(a.Settings, a.Secrets); err != nil {
				return "", err
			}
			ac, err := config.AppSettings(a.Settings, os.DevNull)
			if err != nil && !isModuleErr(err) {
				return "", unproc("settings: %v", err)
			}
			if err := tenant.Apply(t, &ac, a.Settings, a.Secrets); err != nil {
				return "", err
			}
			return strings.Join(what, " "), nil
		})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(a))
}

// isModuleErr: the stand-in module of a settings check is not a real one.
func isModuleErr(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "module:") }

func (m *Manager) deleteApp(w http.ResponseWriter, r *http.Request) {
	tname, app := r.PathValue("tenant"), r.PathValue("app")
	err := m.opt.Store.Update(r.Context(), func(tx *store.Tx) error {
		if err := tx.DeleteApp(tname, app); err != nil {
			return err
		}
		return tx.Log(store.Audit{Who: principal(r).String(), Tenant: tname, App: app, Action: "app.delete"})
	})
	if err != nil {
		fail(w, err)
		return
	}
	ns, _ := appname.Namespace(tname, app)
	m.mu.Lock()
	l := m.apps[ns]
	m.mu.Unlock()
	if l != nil {
		m.remove(l)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (m *Manager) listVersions(w http.ResponseWriter, r *http.Request) {
	a, err := m.pathApp(r)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": nonNil(a.Versions), "active": a.Active, "canary": a.Canary, "percent": a.Percent})
}

// upload takes a module (the raw body, at most hosting.max_module bytes),
// validates it as the app's next version under the app's settings (load, ABI,
// shape, grants), and only then stores it. A bad module changes nothing (422).
func (m *Manager) upload(w http.ResponseWriter, r *http.Request) {
	tname, app := r.PathValue("tenant"), r.PathValue("app")
	max := int64(m.opt.Hosting.MaxModule)
	if r.ContentLength > max {
		writeErr(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the module is over hosting.max_module (%s)", config.FormatSize(max)))
		return
	}
	// One upload per tenant at a time (429 for a second), so a tenant cannot
	// hold every validation slot; then uploads wait for one of few slots: each
	// holds its module in memory and compiles it.
	m.mu.Lock()
	busy := m.uploading[tname]
	if !busy {
		m.uploading[tname] = true
	}
	m.mu.Unlock()
	if busy {
		w.Header().Set("Retry-After", "1")
		writeErr(w, http.StatusTooManyRequests, "tenant "+strconv.Quote(tname)+" has an upload in progress: one at a time")
		return
	}
	defer func() {
		m.mu.Lock()
		delete(m.uploading, tname)
		m.mu.Unlock()
	}()
	// The tenant's uploads per minute (its quota), counted once it has its
	// turn: each is read and compiled, so a tenant cannot keep the server
	// compiling.
	if ok, wait := m.takeUpload(tname); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(wait))
		writeErr(w, http.StatusTooManyRequests, fmt.Sprintf("tenant %q is over its quota of %d uploads per minute", tname, m.uploadQuota(tname)))
		return
	}
	select {
	case m.validating <- struct{}{}:
		defer func() { <-m.validating }()
	case <-r.Context().Done():
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeErr(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the module is over hosting.max_module (%s)", config.FormatSize(max)))
			return
		}
		writeErr(w, http.StatusBadRequest, "reading the module: "+err.Error())
		return
	}
	if len(body) < 8 || string(body[:4]) != "\x00asm" {
		writeErr(w, http.StatusUnprocessableEntity, "not a WebAssembly module (no \\0asm header)")
		return
	}
	var (
		t config.Tenant
		a store.App
	)
	err = m.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) {
		if t, err = tx.Tenant(tname); err != nil {
			return err
		}
		a, err = tx.App(tname, app)
		if errors.Is(err, store.ErrNotFound) {
			a, err = store.App{Tenant: tname, Name: app}, nil
		}
		return err
	})
	if err != nil {
		fail(w, err)
		return
	}
	tmp, err := os.CreateTemp("", "wasmsrv-upload-*.wasm")
	if err != nil {
		fail(w, err)
		return
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fail(w, err)
		return
	}
	if err := m.Check(r.Context(), t, a, tmp.Name()); err != nil {
		var fb *tenant.Forbidden
		if errors.As(err, &fb) {
			fail(w, err)
			return
		}
		writeErr(w, http.StatusUnprocessableEntity, "the module was refused and nothing changed: "+err.Error())
		return
	}
	id, err := m.opt.Store.PutModule(r.Context(), body)
	if err != nil {
		fail(w, err)
		return
	}
	p := principal(r)
	out, err := m.change(r.Context(), p, tname, app, "version.upload", true, func(t config.Tenant, a *store.App) (string, error) {
		if _, ok := a.Version(id); !ok {
			a.Versions = append(a.Versions, store.Version{ID: id, Size: int64(len(body)), Uploaded: nowUTC(), By: p.String()})
		}
		m.trimVersions(a)
		return id, nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	v, _ := out.Version(id)
	writeJSON(w, http.StatusCreated, v)
}

// trimVersions forgets the oldest versions beyond hosting.keep_versions that
// are neither active nor the canary.
func (m *Manager) trimVersions(a *store.App) {
	keep := m.opt.Hosting.KeepVersions
	for len(a.Versions) > keep {
		i := slices.IndexFunc(a.Versions, func(v store.Version) bool { return v.ID != a.Active && v.ID != a.Canary })
		if i < 0 {
			return
		}
		a.Versions = slices.Delete(a.Versions, i, i+1)
	}
}

// deployReq is the body of POST .../deploy: make version take percent of the
// requests (100, the default: make it the active version).
type deployReq struct {
	Version string `json:"version"`
	Percent *int   `json:"percent"`
	Sticky  bool   `json:"sticky"`
}

func (m *Manager) deploy(w http.ResponseWriter, r *http.Request) {
	var d deployReq
	if !readJSON(w, r, &d) {
		return
	}
	pct := 100
	if d.Percent != nil {
		pct = *d.Percent
	}
	if pct < 0 || pct > 100 {
		writeErr(w, http.StatusBadRequest, "percent: want 0..100")
		return
	}
	a, err := m.change(r.Context(), principal(r), r.PathValue("tenant"), r.PathValue("app"), "deploy", false,
		func(_ config.Tenant, a *store.App) (string, error) {
			id, err := resolve(a, d.Version)
			if err != nil {
				return "", err
			}
			switch {
			case pct == 100 || a.Active == "":
				activate(a, id)
				a.Canary, a.Percent, a.Sticky = "", 0, false
			case pct == 0 || id == a.Active:
				a.Canary, a.Percent, a.Sticky = "", 0, false
			default:
				a.Canary, a.Percent, a.Sticky = id, pct, d.Sticky
			}
			return fmt.Sprintf("version=%s percent=%d", short(id), pct), nil
		})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(a))
}

func activate(a *store.App, id string) {
	if a.Active != id {
		a.Active = id
		a.History = append(a.History, id)
		if len(a.History) > 100 {
			a.History = a.History[len(a.History)-100:]
		}
	}
}

// resolve finds the app's version an id or a unique prefix (at least 8 hex
// digits) names. Only the app's own versions are searched.
func resolve(a *store.App, v string) (string, error) {
	if len(v) < 8 || len(v) > 64 || strings.Trim(v, "0123456789abcdef") != "" {
		return "", unproc("version %q: want its id or the first 8 or more of its hex digits", clip(v))
	}
	var found string
	for _, x := range a.Versions {
		if strings.HasPrefix(x.ID, v) {
			if found != "" {
				return "", unproc("version %q is ambiguous: give more digits", v)
			}
			found = x.ID
		}
	}
	if found == "" {
		return "", fmt.Errorf("version %q of app %q: %w", v, a.Name, store.ErrNotFound)
	}
	return found, nil
}

type rollbackReq struct {
	Version string `json:"version"`
}

// rollback makes an earlier version active at once (the one active before the
// current, or the one given) and ends any split.
func (m *Manager) rollback(w http.ResponseWriter, r *http.Request) {
	var rb rollbackReq
	if r.ContentLength != 0 && !readJSON(w, r, &rb) {
		return
	}
	a, err := m.change(r.Context(), principal(r), r.PathValue("tenant"), r.PathValue("app"), "rollback", false,
		func(_ config.Tenant, a *store.App) (string, error) {
			id := ""
			if rb.Version == "" && a.Canary != "" && a.Percent > 0 {
				// A gradual deployment in progress: rolling back ends it.
				from := a.Canary
				a.Canary, a.Percent, a.Sticky = "", 0, false
				return fmt.Sprintf("split ended: canary=%s active=%s", short(from), short(a.Active)), nil
			}
			if rb.Version != "" {
				var err error
				if id, err = resolve(a, rb.Version); err != nil {
					return "", err
				}
			} else {
				for i := len(a.History) - 1; i >= 0; i-- {
					if h := a.History[i]; h != a.Active {
						if _, ok := a.Version(h); ok {
							id = h
							break
						}
					}
				}
				if id == "" {
					return "", unproc("no earlier version to roll back to")
				}
			}
			from := a.Active
			activate(a, id)
			a.Canary, a.Percent, a.Sticky = "", 0, false
			return fmt.Sprintf("from=%s to=%s", short(from), short(id)), nil
		})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(a))
}

func (m *Manager) audit(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	n := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 10000 {
			writeErr(w, http.StatusBadRequest, "limit: want 1..10000")
			return
		}
		n = v
	}
	only := p.Tenant
	if p.Operator {
		only = r.URL.Query().Get("tenant")
	}
	var log []store.Audit
	err := m.opt.Store.View(r.Context(), func(tx *store.Tx) (err error) { log, err = tx.AuditLog(only, n); return })
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": nonNil(log)})
}

func nowUTC() time.Time { return time.Now().UTC() }
