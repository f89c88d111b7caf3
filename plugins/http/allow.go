package http

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// allowList decides which hosts an app may reach. Deny by default.
//
// Entries: "api.example.com" (that name, any port), "api.example.com:443" (that port
// only), "*.example.com" (any subdomain, not the apex), "203.0.113.7[:port]",
// "[2001:db8::1]:443", "10.0.0.0/8" (any address in the range). Names are checked
// before the request; the addresses a name resolves to are checked again when
// dialling, where private, loopback, link-local and unspecified addresses are refused
// unless an IP or CIDR entry lists them — so a public name cannot be pointed at the
// host's own network (DNS rebinding).
type allowList struct {
	names    []nameRule
	prefixes []prefixRule
}

type nameRule struct {
	name     string // lower case; for wildcards, the suffix with its leading dot
	wildcard bool
	port     int // 0 = any
}

type prefixRule struct {
	p    netip.Prefix
	port int
}

func parseAllow(entries []string) (*allowList, error) {
	al := &allowList{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			al.prefixes = append(al.prefixes, prefixRule{p: p.Masked()})
			continue
		}
		host, port := e, 0
		if h, ps, err := net.SplitHostPort(e); err == nil {
			n, err := strconv.Atoi(ps)
			if err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("allow %q: bad port", e)
			}
			host, port = h, n
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			al.prefixes = append(al.prefixes, prefixRule{p: netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()), port: port})
			continue
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		r := nameRule{name: host, port: port}
		if strings.HasPrefix(host, "*.") {
			r.wildcard, r.name = true, host[1:]
		}
		if r.name == "" || strings.ContainsAny(r.name, "*/ ") {
			return nil, fmt.Errorf("allow %q: want a host name, *.domain, an IP or a CIDR", e)
		}
		al.names = append(al.names, r)
	}
	return al, nil
}

// allowsHost reports whether a request URL's host and port may be tried.
func (al *allowList) allowsHost(host string, port int) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		return al.allowsIP(ip, port, true)
	}
	for _, r := range al.names {
		if r.port != 0 && r.port != port {
			continue
		}
		if r.wildcard && strings.HasSuffix(host, r.name) || !r.wildcard && host == r.name {
			return true
		}
	}
	return false
}

// allowsIP reports whether an address may be dialled. listed says whether the
// request named the address itself (then it must be on the list); for a resolved name
// only the private-range rule applies.
func (al *allowList) allowsIP(ip netip.Addr, port int, listed bool) bool {
	ip = ip.Unmap()
	for _, r := range al.prefixes {
		if (r.port == 0 || r.port == port) && r.p.Contains(ip) {
			return true
		}
	}
	if listed {
		return false
	}
	return public(ip)
}

// public reports whether ip is a globally routable unicast address.
func public(ip netip.Addr) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() &&
		!cgnat.Contains(ip) && !ip.IsUnspecified()
}

// cgnat is 100.64.0.0/10 (shared address space), which Go's IsPrivate omits.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")
