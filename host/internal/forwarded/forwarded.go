// Package forwarded decides who the client is behind proxies: the direct
// peer, or — only when that peer is in the trusted list — the address it
// reports in X-Forwarded-For. It also writes the X-Forwarded-* headers a
// proxy sends on.
package forwarded

import (
	"net/http"
	"net/netip"
	"strings"
)

// Peer parses a RemoteAddr ("ip:port" or a bare IP).
func Peer(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		a, _ := netip.ParseAddr(remote)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

// Trusted reports whether a is in one of the prefixes.
func Trusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP is the peer address, or the right-most untrusted address of
// X-Forwarded-For when the peer is a trusted proxy. Left-most entries are
// whatever the client wrote and are never believed.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := Peer(r.RemoteAddr)
	if len(trusted) == 0 || !Trusted(peer, trusted) {
		return peer
	}
	vals := r.Header.Values("X-Forwarded-For")
	for i := len(vals) - 1; i >= 0; i-- {
		parts := strings.Split(vals[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return peer
			}
			a = a.Unmap()
			if !Trusted(a, trusted) {
				return a
			}
			peer = a
		}
	}
	return peer
}

// Set writes X-Forwarded-For/-Proto/-Host on out for the inbound request
// in. Inbound values are kept only when the direct peer is trusted;
// otherwise a client could claim any address or scheme.
func Set(out, in *http.Request, trusted []netip.Prefix) {
	peer := Peer(in.RemoteAddr)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	host := in.Host
	xff := peer.String()
	if Trusted(peer, trusted) {
		if prior := in.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			xff = strings.Join(prior, ", ") + ", " + xff
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			proto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
	}
	out.Header["X-Forwarded-For"] = []string{xff}
	out.Header["X-Forwarded-Proto"] = []string{proto}
	out.Header["X-Forwarded-Host"] = []string{host}
}
