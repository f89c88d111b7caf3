package deploy

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/host/internal/limit"
)

// gate applies a tenant's request rate (429) and concurrency (503) quotas to
// all its apps together.
type gate struct {
	quotas config.Quotas
	rate   *limit.Rate
	sem    chan struct{}
	next   atomic.Pointer[http.Handler]
}

type ctxApp struct{}

// setGate makes or updates the gate of t.
func (m *Manager) setGate(t config.Tenant) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if g := m.tenants[t.Name]; g != nil && g.quotas == t.Quotas {
		return
	}
	defer m.publishGates()
	if t.Quotas.Rate == 0 && t.Quotas.Concurrency == 0 {
		delete(m.tenants, t.Name)
		return
	}
	g := &gate{quotas: t.Quotas}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Context().Value(ctxApp{}).(http.Handler).ServeHTTP(w, r)
	})
	if n := t.Quotas.Concurrency; n > 0 {
		g.sem = make(chan struct{}, n)
		inner := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case g.sem <- struct{}{}:
				defer func() { <-g.sem }()
				inner.ServeHTTP(w, r)
			default:
				w.Header().Set("Retry-After", "1")
				http.Error(w, "503 the tenant's concurrent requests are at their quota", http.StatusServiceUnavailable)
			}
		})
	}
	if q := t.Quotas.Rate; q > 0 {
		burst := t.Quotas.Burst
		if burst == 0 {
			burst = q
		}
		g.rate = limit.NewRate(limit.RateConfig{Rate: float64(q), Burst: burst}, h)
		h = g.rate
	}
	g.next.Store(&h)
	m.tenants[t.Name] = g
}

// publishGates makes the gate table the request path reads. m.mu held.
func (m *Manager) publishGates() {
	t := make(map[string]*gate, len(m.tenants))
	for k, g := range m.tenants {
		t[k] = g
	}
	m.gates.Store(&t)
}

func (g *gate) wrap(app http.Handler) http.Handler {
	h := *g.next.Load()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxApp{}, app)))
	})
}
