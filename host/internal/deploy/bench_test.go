package deploy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/apps"
)

// benchApp is a deployed app whose version answers with nothing: what the
// hosting layer adds to a request (host lookup, routing load, pool reference,
// the version header), against the same handler called directly.
func benchApp(split bool) (*Manager, http.Handler) {
	m := New(Options{Logger: slog.New(slog.DiscardHandler)})
	noop := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	mk := func(v string) *pool {
		id := strings.Repeat(v, 64)
		p := &pool{version: id, run: &apps.Running{Handler: noop}, handler: noop, routed: 1, versionHeader: []string{id[:12]}}
		p.refs.Store(1)
		p.onZero = func() {}
		return p
	}
	l := &live{ns: "t_app", tenant: "t", name: "app", hosts: []string{"app.test"}}
	rt := &routing{primary: mk("a")}
	if split {
		rt.canary, rt.percent = mk("b"), 10
	}
	l.cur.Store(rt)
	m.apps[l.ns] = l
	m.rebuildHosts()
	return m, noop
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

func benchServe(b *testing.B, h func(r *http.Request) http.Handler) {
	r := httptest.NewRequest("GET", "http://app.test/", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h(r).ServeHTTP(w, r)
	}
}

func BenchmarkDirect(b *testing.B) {
	_, noop := benchApp(false)
	benchServe(b, func(*http.Request) http.Handler { return noop })
}

func BenchmarkHosted(b *testing.B) {
	m, _ := benchApp(false)
	benchServe(b, func(r *http.Request) http.Handler { return m.Lookup(r.Host) })
}

func BenchmarkHostedSplit(b *testing.B) {
	m, _ := benchApp(true)
	benchServe(b, func(r *http.Request) http.Handler { return m.Lookup(r.Host) })
}
