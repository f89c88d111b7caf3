// Package route picks the handler for a request by host name (exact or
// "*.suffix" wildcard), path prefix and method, and mounts the handler under
// its prefix: the prefix is stripped from the path and kept as the root path
// (ASGI root_path / SCRIPT_NAME) in the request context.
package route

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"strings"
)

// Route is one entry of the table. Handler is required.
type Route struct {
	// Hosts are exact names or "*.example.com" wildcards (matching any depth
	// of sub-domain, as nginx does). Empty matches any host.
	Hosts []string
	// Prefix is a path prefix matched on segment boundaries: "/api" matches
	// "/api" and "/api/x" but not "/apix". "/" matches everything.
	Prefix string
	// Methods restricts the route; empty allows all.
	Methods []string
	// Strip removes Prefix from the path before Handler sees it.
	Strip   bool
	Handler http.Handler
	// Name is used in logs.
	Name string
}

type entry struct {
	Route
	exact    []string
	suffixes []string // ".example.com"
	anyHost  bool
}

// Router is immutable once built; safe for concurrent use.
type Router struct {
	entries []entry
}

// New builds a router. More specific routes win regardless of order:
// exact host over wildcard over any host, then the longest prefix.
func New(routes []Route) *Router {
	es := make([]entry, 0, len(routes))
	for _, r := range routes {
		e := entry{Route: r, anyHost: len(r.Hosts) == 0}
		if e.Prefix == "" {
			e.Prefix = "/"
		}
		if len(e.Prefix) > 1 {
			e.Prefix = strings.TrimSuffix(e.Prefix, "/")
		}
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			if s, ok := strings.CutPrefix(h, "*"); ok {
				e.suffixes = append(e.suffixes, s)
			} else {
				e.exact = append(e.exact, h)
			}
		}
		es = append(es, e)
	}
	sort.SliceStable(es, func(i, j int) bool {
		hi, hj := hostRank(es[i]), hostRank(es[j])
		if hi != hj {
			return hi > hj
		}
		return len(es[i].Prefix) > len(es[j].Prefix)
	})
	return &Router{entries: es}
}

func hostRank(e entry) int {
	switch {
	case len(e.exact) > 0:
		return 2
	case len(e.suffixes) > 0:
		return 1
	}
	return 0
}

func (e *entry) hostMatch(host string) bool {
	if e.anyHost {
		return true
	}
	for _, h := range e.exact {
		if h == host {
			return true
		}
	}
	for _, s := range e.suffixes {
		if len(host) > len(s) && strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func prefixMatch(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || path[len(prefix)] == '/'
}

func methodMatch(methods []string, m string) bool {
	if len(methods) == 0 {
		return true
	}
	for _, x := range methods {
		// GET allows HEAD, as in net/http's ServeMux patterns and nginx's limit_except.
		if x == m || x == http.MethodGet && m == http.MethodHead {
			return true
		}
	}
	return false
}

// HostOf returns the request's host name, lower-cased, without port (and
// without the brackets of an IPv6 literal with a port), as net.SplitHostPort
// would, but without allocating an error for the common Host with no port.
func HostOf(r *http.Request) string {
	h := r.Host
	if i := strings.LastIndexByte(h, ':'); i > 0 && strings.IndexByte(h[i:], ']') < 0 {
		host := h[:i]
		switch {
		case strings.IndexByte(host, ':') < 0:
			h = host // name:port or v4:port
		case host[0] == '[' && host[len(host)-1] == ']':
			h = host[1 : len(host)-1] // [v6]:port
		}
		// otherwise a bare IPv6 address: no port to strip
	}
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// Match returns the matching route, or nil. The most specific routes for the
// request's host and path decide (see New): when none of them allows the method,
// methodMismatch is true (answer 405) — a less specific route, such as a
// catch-all "/", does not take the request instead.
func (rt *Router) Match(r *http.Request) (rte *Route, methodMismatch bool) {
	host, path := HostOf(r), r.URL.Path
	var first *entry // the most specific route for host and path
	for i := range rt.entries {
		e := &rt.entries[i]
		if first != nil && !sameRank(e, first) {
			break
		}
		if !e.hostMatch(host) || !prefixMatch(e.Prefix, path) {
			continue
		}
		if first == nil {
			first = e
		}
		if methodMatch(e.Methods, r.Method) {
			return &e.Route, false
		}
	}
	return nil, first != nil
}

// first returns the index of the most specific route for the request's host and
// path, whatever its methods.
func (rt *Router) first(host, path string) (int, bool) {
	for i := range rt.entries {
		e := &rt.entries[i]
		if e.hostMatch(host) && prefixMatch(e.Prefix, path) {
			return i, true
		}
	}
	return 0, false
}

// sameRank reports whether a and b are equally specific: the same kind of host
// match and a prefix of the same length (so, for one path, the same prefix).
func sameRank(a, b *entry) bool {
	return hostRank(*a) == hostRank(*b) && len(a.Prefix) == len(b.Prefix)
}

// Allow lists the methods the most specific routes for r's host and path accept,
// for the Allow header of a 405 ("" if any method would do).
func (rt *Router) Allow(r *http.Request) string {
	host := HostOf(r)
	i, ok := rt.first(host, r.URL.Path)
	if !ok {
		return ""
	}
	first := &rt.entries[i]
	var methods []string
	for ; i < len(rt.entries); i++ {
		e := &rt.entries[i]
		if !sameRank(e, first) {
			break
		}
		if !e.hostMatch(host) || !prefixMatch(e.Prefix, r.URL.Path) {
			continue
		}
		if len(e.Methods) == 0 {
			return ""
		}
		for _, m := range e.Methods {
			if !slices.Contains(methods, m) {
				methods = append(methods, m)
			}
			if m == http.MethodGet && !slices.Contains(e.Methods, http.MethodHead) && !slices.Contains(methods, http.MethodHead) {
				methods = append(methods, http.MethodHead)
			}
		}
	}
	return strings.Join(methods, ", ")
}

// ServeHTTP dispatches to the matching route's handler: 404 when nothing
// matches, 405 (with Allow) when only the method is wrong.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rte, mm := rt.Match(r)
	if rte == nil {
		if mm {
			if allow := rt.Allow(r); allow != "" {
				w.Header().Set("Allow", allow)
			}
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
			return
		}
		http.Error(w, "404 no route for this host and path", http.StatusNotFound)
		return
	}
	if rte.Strip && rte.Prefix != "/" {
		r = Mount(r, rte.Prefix)
	}
	rte.Handler.ServeHTTP(w, r)
}

type rootPathKey struct{}

// Mount returns a shallow copy of r with prefix removed from the path and
// appended to the root path kept in the context.
func Mount(r *http.Request, prefix string) *http.Request {
	root := RootPath(r.Context()) + prefix
	r2 := r.WithContext(context.WithValue(r.Context(), rootPathKey{}, root))
	u := *r.URL
	u.Path = strings.TrimPrefix(u.Path, prefix)
	if u.Path == "" {
		u.Path = "/"
	}
	if u.RawPath != "" {
		u.RawPath = strings.TrimPrefix(u.RawPath, prefix)
		if u.RawPath == "" {
			u.RawPath = "/"
		}
	}
	r2.URL = &u
	return r2
}

// RootPath is the prefix the current handler is mounted under ("" at the
// root): what ASGI calls root_path and CGI SCRIPT_NAME.
func RootPath(ctx context.Context) string {
	s, _ := ctx.Value(rootPathKey{}).(string)
	return s
}

// MatchHost reports whether host (lower case, no port) matches pattern as a
// route's Hosts entry does: an exact name, or "*.example.com" for any name below
// example.com at any depth.
func MatchHost(pattern, host string) bool {
	pattern = strings.ToLower(pattern)
	if s, ok := strings.CutPrefix(pattern, "*"); ok {
		return len(host) > len(s) && strings.HasSuffix(host, s)
	}
	return pattern == host
}
