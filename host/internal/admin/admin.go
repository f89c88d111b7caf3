// Package admin is the control API served on its own listener: the probes
// (/livez, /readyz), health, config reload, cache purge, upstream status,
// recent crashes, the status page (GET /ui, package statuspage), Prometheus
// metrics and Go's runtime profiles. The probes answer anyone (a
// kubelet or a load balancer sends no token and may send any Host; they tell
// nothing but "ok", "starting" or "draining"). For the rest, a token, when set, must
// be sent as "Authorization: Bearer TOKEN" (config requires one whenever
// the listener is not loopback). With or without one, the API answers only
// requests whose Host is one of the listener's names, refuses requests a web page
// of another origin made, and takes changes only with the ChangeHeader header, so
// a page the operator visits can neither read nor change anything through the
// operator's browser (CSRF, DNS rebinding).
package admin

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/statuspage"
)

// Controller is what the admin API drives.
type Controller interface {
	// Reload re-reads the config; on error the running config stays.
	Reload(ctx context.Context) error
	// Purge drops cache entries matching pattern (exact key, or prefix*).
	Purge(pattern string) int
	// Status is a JSON-encodable snapshot (generation, upstream health).
	Status() any
}

// Config secures the admin API.
type Config struct {
	// Addr is the listener's address (host:port): its host, if a name or an
	// IP, is one of the names a request's Host may carry, besides localhost and
	// loopback addresses (any IP address when it is 0.0.0.0 or ::).
	Addr string
	// Hosts are further names (or addresses) the listener is reached by.
	Hosts []string
	// Token, if set, must be sent as "Authorization: Bearer TOKEN" (or, from
	// the status page, as the session cookie its log-in sets).
	Token string
	// Metrics, if set, serves GET /metrics (the Prometheus exposition), behind
	// the token and the guard like the rest.
	Metrics http.Handler
	// Readiness is what /readyz reports (nil: always ready).
	Readiness *Readiness
	// Crashes is the ring of recent instance failures GET /crashes and the
	// status page show; nil: none kept.
	Crashes *statuspage.Crashes
	// API, if set, serves /v1/ (the deploy API of a hosting site): it checks
	// its own tokens (the operator's Token and tenants' own), behind the same
	// request guard.
	API http.Handler
}

// Handler serves the admin API.
func Handler(c Controller, cfg Config, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
		defer cancel()
		if err := c.Reload(ctx); err != nil {
			log.Warn("reload rejected; keeping the running config", "err", err, "via", "admin")
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"reloaded": false, "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"reloaded": true})
	})
	mux.HandleFunc("POST /purge", func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Query().Get("key")
		if key == "" {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": "give ?key=KEY or ?key=PREFIX*"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"purged": c.Purge(key)})
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	profiles(mux)
	if cfg.API != nil {
		mux.Handle("/v1/", cfg.API)
	}
	mux.HandleFunc("GET /crashes", func(w http.ResponseWriter, r *http.Request) {
		var snap statuspage.Snapshot
		if cfg.Crashes != nil {
			snap = cfg.Crashes.Snapshot()
		} else {
			snap = statuspage.Snapshot{Recent: []statuspage.Crash{}, Total: map[string]int64{}}
		}
		writeJSON(w, http.StatusOK, snap)
	})
	a := newAuth(cfg.Token)
	// The status page: its scripts and the log-in need no token (they hold no
	// data); the page itself is the log-in form until the request carries one.
	open := http.NewServeMux()
	open.HandleFunc("GET /ui/assets/{name}", statuspage.Assets)
	open.HandleFunc("POST /ui/login", a.login)
	open.HandleFunc("POST /ui/logout", logout)
	return Probes("/", cfg.Readiness, newGuard(cfg.Addr, cfg.Hosts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := open.Handler(r); pattern != "" {
			open.ServeHTTP(w, r) // (ServeHTTP sets the path values, Handler does not)
			return
		}
		if cfg.API != nil && strings.HasPrefix(r.URL.Path, "/v1/") {
			mux.ServeHTTP(w, r) // the API authenticates operator and tenants itself
			return
		}
		authorized := a.ok(r)
		if r.URL.Path == "/ui" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if authorized {
				statuspage.Page(w)
			} else {
				statuspage.Login(w)
			}
			return
		}
		if !authorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wasmsrv admin"`)
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "admin token required"})
			return
		}
		mux.ServeHTTP(w, r)
	})))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
