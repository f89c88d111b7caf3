package deploy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
)

// TestTenantGate: a tenant's concurrency quota answers 503 beyond it across all
// its apps, its rate quota 429; another tenant is not affected.
func TestTenantGate(t *testing.T) {
	m := New(Options{Logger: slog.New(slog.DiscardHandler)})
	m.setGate(config.Tenant{Name: "a", Quotas: config.Quotas{Concurrency: 1}})
	m.setGate(config.Tenant{Name: "r", Quotas: config.Quotas{Rate: 1, Burst: 1}})
	release := make(chan struct{})
	entered := make(chan struct{})
	blocking := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	ga, gr := (*m.gates.Load())["a"], (*m.gates.Load())["r"]
	done := make(chan int)
	go func() {
		rec := httptest.NewRecorder()
		ga.wrap(blocking).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		done <- rec.Code
	}()
	<-entered
	// Another app of the same tenant: over the quota.
	rec := httptest.NewRecorder()
	ga.wrap(ok).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("second request of tenant a: %d %v, want 503 with Retry-After", rec.Code, rec.Header())
	}
	close(release)
	if code := <-done; code != 200 {
		t.Errorf("first request: %d", code)
	}
	rec = httptest.NewRecorder()
	ga.wrap(ok).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 200 {
		t.Errorf("after the first ended: %d", rec.Code)
	}
	codes := map[int]int{}
	for range 3 {
		rec := httptest.NewRecorder()
		gr.wrap(ok).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		codes[rec.Code]++
	}
	if codes[http.StatusTooManyRequests] == 0 {
		t.Errorf("3 quick requests at 1/s burst 1: %v, want a 429", codes)
	}
	if _, none := (*m.gates.Load())["b"]; none {
		t.Error("a tenant without rate or concurrency quota got a gate")
	}
}
