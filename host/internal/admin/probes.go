package admin

import (
	"net/http"
	"strings"
	"sync/atomic"
)

// The probes' paths on the admin listener (under health_path on an app's).
const (
	LivezPath  = "/livez"
	ReadyzPath = "/readyz"
)

// Readiness is what the probes report: live as long as the process serves;
// ready once the config is loaded and every app's pool is warm (the caller says
// so with SetReady), and no longer from the first moment of a stop (Drain), while
// the listeners still serve what is in flight, so that a load balancer stops
// sending before they close. The zero value is starting.
type Readiness struct{ state atomic.Int32 }

const (
	stateStarting int32 = iota
	stateReady
	stateDraining
)

// SetReady marks the server ready, unless it is draining already.
func (r *Readiness) SetReady() { r.state.CompareAndSwap(stateStarting, stateReady) }

// Drain marks the server not ready for good: a stop has begun.
func (r *Readiness) Drain() { r.state.Store(stateDraining) }

// Ready reports whether the server takes traffic, and if not, why ("starting"
// or "draining").
func (r *Readiness) Ready() (bool, string) {
	switch r.state.Load() {
	case stateReady:
		return true, "ready"
	case stateDraining:
		return false, "draining"
	}
	return false, "starting"
}

// probe answers /livez or /readyz: plain text, as Kubernetes' own components
// answer, never cached. HEAD gets the status alone.
func probe(w http.ResponseWriter, r *http.Request, rd *Readiness, ready bool) {
	code, body := http.StatusOK, "ok\n"
	if ready && rd != nil {
		if ok, why := rd.Ready(); !ok {
			code, body = http.StatusServiceUnavailable, why+"\n"
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}

// Probes serves GET and HEAD of prefix+"livez" and prefix+"readyz" from rd, and
// passes every other request to next (an app's listener with health_path set;
// prefix ends with "/").
func Probes(prefix string, rd *Readiness, next http.Handler) http.Handler {
	live, ready := prefix+LivezPath[1:], prefix+ReadyzPath[1:]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.HasPrefix(r.URL.Path, prefix) {
			switch r.URL.Path {
			case live:
				probe(w, r, rd, false)
				return
			case ready:
				probe(w, r, rd, true)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
