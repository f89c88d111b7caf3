// Package wsorigin decides which web pages may open WebSockets to a server.
//
// A browser sends its cookies with a WebSocket handshake whatever page opens
// it, and the same-origin policy does not apply to WebSockets: without a check,
// any web site the user visits can open a socket to an app in the user's name
// (cross-site WebSocket hijacking). Browsers always send the page's Origin with
// the handshake, so the server checks it.
//
// The default is same-origin: the Origin's scheme, host and port must be the
// request's own (the Host header; https when the request came over TLS). A
// plain-HTTP request whose Host carries no port also accepts the https origin
// of the same host: that is a TLS-terminating proxy in front (browsers do not
// let an https page open an unencrypted WebSocket, so such a request came
// through one). A handshake without Origin is not from a browser and passes:
// non-browser clients can send any Origin anyway, so the check only ever
// protects browsers' users.
//
// An allow-list adds origins: exact ones ("https://app.example.com",
// "http://localhost:3000"), wildcard subdomains ("https://*.example.com": any
// name ending in .example.com, not example.com itself), entries without a
// scheme that match http and https ("*.example.com", "example.com:8443"), or
// "*" alone, which turns the check off. An entry without a port matches only
// its scheme's default port. The origin "null" (sandboxed frames, file: pages)
// passes only with "*".
package wsorigin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
)

// Policy is a parsed allow-list. The zero Policy allows same-origin pages (and
// clients without Origin) only.
type Policy struct {
	any     bool
	entries []entry
}

type entry struct {
	scheme string // "" matches http and https
	host   string // lower case; for a wildcard the suffix with its dot (".example.com")
	wild   bool
	port   string // "" = the default port of the origin's scheme
}

// Parse builds a Policy from allow-list entries (nil or empty: same-origin only).
func Parse(list []string) (Policy, error) {
	var p Policy
	for i, s := range list {
		if s == "*" {
			if len(list) > 1 {
				return Policy{}, fmt.Errorf("[%d] \"*\" allows every origin: list nothing else with it", i)
			}
			p.any = true
			continue
		}
		e, err := parseEntry(s)
		if err != nil {
			return Policy{}, fmt.Errorf("[%d] %w", i, err)
		}
		p.entries = append(p.entries, e)
	}
	return p, nil
}

// CheckEntry validates one allow-list entry ("*" included), for config errors
// that name the entry's own key.
func CheckEntry(s string) error {
	if s == "*" {
		return nil
	}
	_, err := parseEntry(s)
	return err
}

// Any reports whether the policy lets every origin through.
func (p Policy) Any() bool { return p.any }

func parseEntry(s string) (entry, error) {
	var e entry
	rest := s
	if scheme, after, ok := strings.Cut(s, "://"); ok {
		if scheme == "" || !isScheme(scheme) {
			return e, fmt.Errorf("%q: bad scheme", s)
		}
		e.scheme, rest = strings.ToLower(scheme), after
	}
	if rest == "" || strings.ContainsAny(rest, "/?#@ \t") {
		return e, fmt.Errorf("%q: want scheme://host[:port], *.domain or host[:port] (an origin has no path, query or user)", s)
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return e, fmt.Errorf("%q: %w", s, err)
	}
	if suffix, ok := strings.CutPrefix(host, "*."); ok {
		e.wild, host = true, suffix
	}
	if err := checkHostName(host); err != nil {
		return e, fmt.Errorf("%q: %w", s, err)
	}
	e.host = strings.ToLower(host)
	if e.wild {
		e.host = "." + e.host
	}
	if port != "" && port == defaultPort(e.scheme) {
		port = ""
	}
	e.port = port
	return e, nil
}

func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i] | 0x20
		if !(c >= 'a' && c <= 'z') && (i == 0 || !(s[i] >= '0' && s[i] <= '9' || s[i] == '+' || s[i] == '-' || s[i] == '.')) {
			return false
		}
	}
	return true
}

// checkHostName accepts DNS names and IP literals in ASCII; "*" only as the
// leading label, which parseEntry removed.
func checkHostName(h string) error {
	if h == "" {
		return errors.New("no host")
	}
	if h[0] == '[' {
		if h[len(h)-1] != ']' || strings.Trim(h[1:len(h)-1], "0123456789abcdefABCDEF:.") != "" {
			return errors.New("bad IPv6 literal")
		}
		return nil
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		case c == '*':
			return errors.New("a wildcard stands only for whole leading labels: *.example.com")
		case c >= 0x80:
			return errors.New("write the host in its ASCII (punycode) form, as browsers send it")
		default:
			return fmt.Errorf("bad character %q in host", c)
		}
	}
	if h[0] == '.' || h[len(h)-1] == '.' || strings.Contains(h, "..") {
		return errors.New("empty label in host")
	}
	return nil
}

// splitHostPort splits host[:port] with an optional bracketed IPv6 literal.
func splitHostPort(s string) (host, port string, err error) {
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return "", "", errors.New("bad IPv6 literal")
		}
		host, s = s[:i+1], s[i+1:]
		if s == "" {
			return host, "", nil
		}
		if s[0] != ':' {
			return "", "", errors.New("junk after the IPv6 literal")
		}
		port = s[1:]
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		if strings.IndexByte(host, ':') >= 0 {
			return "", "", errors.New("bracket an IPv6 literal: [::1]:8080")
		}
	} else {
		return s, "", nil
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '0' || port[0] == '+' {
		return "", "", fmt.Errorf("bad port %q", port)
	}
	return host, port, nil
}

func defaultPort(scheme string) string {
	switch scheme {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// origin is a parsed Origin header value or request authority.
type origin struct {
	scheme, host, port string // port "" = the scheme's default
}

// parseOrigin reads a serialized origin (RFC 6454 §6.2): scheme "://" host
// [":" port], nothing else.
func parseOrigin(s string) (origin, bool) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok || scheme == "" || !isScheme(scheme) || rest == "" || strings.ContainsAny(rest, "/?#@ \t") {
		return origin{}, false
	}
	host, port, err := splitHostPort(rest)
	if err != nil || checkHostName(host) != nil {
		return origin{}, false
	}
	o := origin{scheme: strings.ToLower(scheme), host: strings.ToLower(host), port: port}
	if o.port == defaultPort(o.scheme) {
		o.port = ""
	}
	return o, true
}

// Allowed reports whether the WebSocket handshake r may proceed: its Origin is
// absent, same-origin or allowed by p. origin is the header's value.
func (p Policy) Allowed(r *http.Request) (ok bool, origin string) {
	vals := r.Header.Values("Origin")
	switch {
	case len(vals) == 0:
		return true, ""
	case p.any:
		return true, vals[0]
	case len(vals) > 1:
		return false, strings.Join(vals, ", ") // a browser sends one
	}
	o, valid := parseOrigin(vals[0])
	if !valid {
		return false, vals[0] // "null" included
	}
	if sameOrigin(o, r) {
		return true, vals[0]
	}
	for _, e := range p.entries {
		if e.match(o) {
			return true, vals[0]
		}
	}
	return false, vals[0]
}

// sameOrigin compares o with the request's own origin.
func sameOrigin(o origin, r *http.Request) bool {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host, port, err := splitHostPort(r.Host)
	if err != nil || !strings.EqualFold(host, o.host) {
		return false
	}
	explicit := port != ""
	if port == defaultPort(scheme) {
		port = ""
	}
	if o.scheme == scheme {
		return o.port == port
	}
	// Plain HTTP behind a TLS-terminating proxy (see the package doc).
	return scheme == "http" && !explicit && o.scheme == "https" && o.port == ""
}

func (e entry) match(o origin) bool {
	switch e.scheme {
	case "":
		if o.scheme != "http" && o.scheme != "https" {
			return false
		}
	case o.scheme:
	default:
		return false
	}
	if e.port != o.port {
		return false
	}
	if e.wild {
		return len(o.host) > len(e.host) && strings.HasSuffix(o.host, e.host)
	}
	return o.host == e.host
}

// IsUpgrade reports whether r asks to become a WebSocket (an Upgrade header
// naming websocket), whatever else it looks like.
func IsUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "websocket") {
				return true
			}
		}
	}
	return false
}

// Check lets r through if p allows its origin; otherwise it answers 403 and
// logs the refusal (the app or route is in log's attributes), and returns
// false. Call it only for WebSocket handshakes.
func Check(w http.ResponseWriter, r *http.Request, p Policy, log *slog.Logger) bool {
	ok, o := p.Allowed(r)
	if ok {
		return true
	}
	log.Warn("websocket upgrade refused: origin not allowed", "origin", o, "host", r.Host,
		"path", r.URL.Path, "remote", r.RemoteAddr)
	http.Error(w, "403 forbidden: cross-origin WebSocket not allowed", http.StatusForbidden)
	return false
}

// Guard checks the origin of WebSocket handshakes before next sees them (a
// proxied WebSocket route); other requests pass untouched.
func Guard(p Policy, log *slog.Logger, next http.Handler) http.Handler {
	if p.any {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsUpgrade(r) && !Check(w, r, p, log) {
			return
		}
		next.ServeHTTP(w, r)
	})
}
