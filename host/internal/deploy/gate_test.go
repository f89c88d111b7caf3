package deploy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
)

// TestTenantGate: a tenant's concurrency quota answers 503 beyond it across all
// its apps, its rate quota 503 too (both with Retry-After); another tenant is not affected.
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
		if rec.Code != 200 && (rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "") {
			t.Errorf("over the rate quota: %d %v, want 503 with Retry-After", rec.Code, rec.Header())
		}
	}
	if codes[http.StatusServiceUnavailable] == 0 || codes[http.StatusTooManyRequests] != 0 {
		t.Errorf("3 quick requests at 1/s burst 1: %v, want 503s and no 429", codes)
	}
	if _, none := (*m.gates.Load())["b"]; none {
		t.Error("a tenant without rate or concurrency quota got a gate")
	}
}

// TestSplit: a sticky split keeps each client address on one version; a
// plain one sends about percent of the requests to the canary.
func TestSplit(t *testing.T) {
	a, b := &pool{version: "a"}, &pool{version: "b"}
	sticky := &routing{primary: a, canary: b, percent: 30, sticky: true}
	toCanary := 0
	for i := range 200 {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = fmt.Sprintf("10.0.%d.%d:%d", i/250, i%250, 1000+i)
		first := sticky.pick(r)
		for port := range 5 {
			r.RemoteAddr = fmt.Sprintf("10.0.%d.%d:%d", i/250, i%250, 2000+port)
			if sticky.pick(r) != first {
				t.Fatalf("client %d moved between versions", i)
			}
		}
		if first == b {
			toCanary++
		}
	}
	if toCanary < 20 || toCanary > 100 {
		t.Errorf("sticky 30%%: %d of 200 clients on the canary", toCanary)
	}
	plain := &routing{primary: a, canary: b, percent: 10}
	n := 0
	for range 10000 {
		if plain.pick(httptest.NewRequest("GET", "/", nil)) == b {
			n++
		}
	}
	if n < 500 || n > 1500 {
		t.Errorf("10%% split: %d of 10000 on the canary", n)
	}
	if (&routing{primary: a, canary: b, percent: 0}).pick(httptest.NewRequest("GET", "/", nil)) != a {
		t.Error("0% went to the canary")
	}
}
