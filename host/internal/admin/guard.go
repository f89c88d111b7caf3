package admin

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// ChangeHeader must be sent (with any non-empty value) on every request that
// changes something (POST /reload, POST /purge). A web page can make a browser
// send a form POST anywhere, but a request with a header of its own choosing only
// after a CORS preflight, which this API never grants: so no page the operator
// visits can reload or purge.
const ChangeHeader = "Wasmsrv-Admin"

// guard refuses what a browser could be tricked into sending to the admin
// listener: a Host that is not one of the listener's own names (DNS rebinding: a
// page whose name resolves to 127.0.0.1 is still on its own name), a request a
// page of another origin made (Origin, Sec-Fetch-Site), and a change without
// ChangeHeader. Tools (curl, go tool pprof, scripts) send none of the browser
// headers and pass.
type guard struct {
	names []string   // host names of the listener, lower case, no trailing dot
	ip    netip.Addr // the address it is bound to, if an IP
	anyIP bool       // bound to every address (0.0.0.0, ::, or no host)
	next  http.Handler
}

func newGuard(addr string, hosts []string, next http.Handler) *guard {
	g := &guard{names: []string{"localhost"}, next: next}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		g.ip = ip.Unmap()
		g.anyIP = ip.IsUnspecified()
	} else if host == "" {
		g.anyIP = true
	} else {
		g.names = append(g.names, normalName(host))
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			h = ip.Unmap().String()
		}
		g.names = append(g.names, normalName(h))
	}
	return g
}

func normalName(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// hostOK reports whether the Host header names this listener.
func (g *guard) hostOK(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" {
		return false
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		return ip.IsLoopback() || g.anyIP || ip == g.ip || slices.Contains(g.names, ip.String())
	}
	return slices.Contains(g.names, normalName(host))
}

// crossSite reports whether a browser says another origin made the request.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none": // none: typed in the address bar, a bookmark
	default: // cross-site, same-site (another port or subdomain is another origin)
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) // "null" too
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case !g.hostOK(r.Host):
		writeJSON(w, http.StatusMisdirectedRequest, map[string]any{
			"error": "Host " + strconv.Quote(clip(r.Host)) + " is not a name of this admin listener (names other than localhost and its address go in admin.hosts)"})
	case crossSite(r):
		writeJSON(w, http.StatusForbidden, map[string]any{"error": "cross-origin requests to the admin API are refused"})
	case r.Method != http.MethodGet && r.Method != http.MethodHead && r.Header.Get(ChangeHeader) == "":
		writeJSON(w, http.StatusForbidden, map[string]any{"error": "changes need the header " + ChangeHeader + ": 1 (a web page cannot send it)"})
	default:
		g.next.ServeHTTP(w, r)
	}
}

func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}
