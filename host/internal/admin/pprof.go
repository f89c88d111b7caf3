package admin

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"time"
)

// Go's runtime profiles under /debug/pprof/, in the formats `go tool pprof`
// and `go tool trace` read, as Caddy's admin API serves them. They are not
// net/http/pprof's handlers: importing that package registers them on
// http.DefaultServeMux as a side effect.

// maxProfile bounds ?seconds= for the CPU profile and the trace.
const maxProfile = 5 * time.Minute

func profiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/{$}", profileIndex)
	mux.HandleFunc("GET /debug/pprof/profile", cpuProfile)
	mux.HandleFunc("GET /debug/pprof/trace", execTrace)
	mux.HandleFunc("GET /debug/pprof/{name}", namedProfile)
}

func profileIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "profile?seconds=N  CPU profile (go tool pprof)")
	fmt.Fprintln(w, "trace?seconds=N    execution trace (go tool trace)")
	for _, p := range pprof.Profiles() {
		fmt.Fprintf(w, "%-18s %d (add ?debug=1 for text)\n", p.Name(), p.Count())
	}
}

// seconds reads ?seconds= (default def), within (0, maxProfile].
func seconds(r *http.Request, def time.Duration) (time.Duration, error) {
	s := r.URL.Query().Get("seconds")
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseFloat(s, 64)
	d := time.Duration(n * float64(time.Second))
	if err != nil || d <= 0 || d > maxProfile {
		return 0, fmt.Errorf("seconds: want a number of seconds in (0, %g], got %q", maxProfile.Seconds(), s)
	}
	return d, nil
}

// record runs start, waits d (or until the client leaves), then stop.
func record(w http.ResponseWriter, r *http.Request, def time.Duration, start func() error, stop func()) {
	d, err := seconds(r, def)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	if err := start(); err != nil {
		// Only one CPU profile or trace can run at a time.
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error()})
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
	stop()
}

func cpuProfile(w http.ResponseWriter, r *http.Request) {
	record(w, r, 30*time.Second, func() error { return pprof.StartCPUProfile(w) }, pprof.StopCPUProfile)
}

func execTrace(w http.ResponseWriter, r *http.Request) {
	record(w, r, time.Second, func() error { return trace.Start(w) }, trace.Stop)
}

func namedProfile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p := pprof.Lookup(name)
	if p == nil {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no profile " + strconv.Quote(name)})
		return
	}
	debug, _ := strconv.Atoi(r.URL.Query().Get("debug"))
	if name == "heap" && r.URL.Query().Get("gc") == "1" {
		runtime.GC()
	}
	w.Header().Set("Cache-Control", "no-store")
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
	}
	_ = p.WriteTo(w, debug)
}
