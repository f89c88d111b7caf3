// Package netallow is the allow list of outbound destinations shared by the plugins
// that reach the network for a guest (http, sockets): deny by default, names and
// addresses the operator listed, and a guard that keeps resolved names away from
// the host's own networks.
//
// Entries: "api.example.com" (that name, any port), "api.example.com:443" (that port
// only), "*.example.com" (any subdomain, not the apex; a port may follow),
// "203.0.113.7[:port]", "[2001:db8::1]:443", "10.0.0.0/8" (any address in the range;
// "::ffff:10.0.0.0/104" is the same range). A name, in an entry or from a guest, is a
// DNS name: labels of letters, digits, '-' and '_'; anything else is refused.
//
// Names are checked before anything is resolved; the addresses a name resolves to
// are checked again, on the address that is then dialled: addresses that are not
// public (Public) are refused unless an IP or CIDR entry lists them, so a public name
// cannot be pointed at loopback, a private network or a cloud metadata service (DNS
// rebinding). An IP the guest names itself must be listed.
package netallow

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// List decides which destinations an app may reach. The zero List allows nothing.
// It is immutable after Parse and safe for concurrent use.
type List struct {
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
	port int // 0 = any
}

// Parse reads allow-list entries (see the package doc for their forms). An entry it
// cannot read is an error naming it.
func Parse(entries []string) (*List, error) {
	l := &List{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				// ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are compared
				// unmapped (AllowsIP), so the range must be too.
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			l.prefixes = append(l.prefixes, prefixRule{p: p.Masked()})
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
			if ip.Zone() != "" {
				return nil, fmt.Errorf("allow %q: an address with a zone cannot be listed", e)
			}
			ip = ip.Unmap()
			l.prefixes = append(l.prefixes, prefixRule{p: netip.PrefixFrom(ip, ip.BitLen()), port: port})
			continue
		}
		host = strings.ToLower(strings.TrimSuffix(host, "."))
		r := nameRule{name: host, port: port}
		if strings.HasPrefix(host, "*.") {
			r.wildcard, r.name = true, host[1:]
		}
		if !validName(strings.TrimPrefix(host, "*.")) {
			return nil, fmt.Errorf("allow %q: want a host name, *.domain, an IP or a CIDR, each with an optional :port", e)
		}
		l.names = append(l.names, r)
	}
	return l, nil
}

// Empty reports whether the list allows nothing.
func (l *List) Empty() bool { return len(l.names) == 0 && len(l.prefixes) == 0 }

// AllowsHost reports whether a destination named by the guest — a host name or an
// IP literal, and a port — may be tried. For a name this is only the first check:
// every address it resolves to must pass AllowsIP(ip, port, false) too.
func (l *List) AllowsHost(host string, port int) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if ip, err := netip.ParseAddr(host); err == nil {
		return l.AllowsIP(ip, port, true)
	}
	if !validName(host) {
		// Not a DNS name (an empty label, a space, a slash, a percent sign):
		// "*.example.com" means a subdomain, not any string that ends so.
		return false
	}
	for _, r := range l.names {
		if r.port != 0 && r.port != port {
			continue
		}
		if r.wildcard && strings.HasSuffix(host, r.name) || !r.wildcard && host == r.name {
			return true
		}
	}
	return false
}

// validName reports whether s is a DNS host name: dot-separated labels of 1-63
// letters, digits, '-' and '_' (service names), 253 bytes at most in all.
func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// AllowsIP reports whether an address may be dialled. listed says whether the guest
// named the address itself (then an IP or CIDR entry must cover it); for the address
// of a name that passed AllowsHost only the public-address rule applies, unless an
// entry lists the address.
func (l *List) AllowsIP(ip netip.Addr, port int, listed bool) bool {
	ip = ip.Unmap().WithZone("")
	for _, r := range l.prefixes {
		if (r.port == 0 || r.port == port) && r.p.Contains(ip) {
			return true
		}
	}
	if listed {
		return false
	}
	return Public(ip)
}

// Public reports whether ip is a globally routable unicast address: not loopback,
// private (RFC 1918, IPv6 unique-local), link-local (which holds the cloud metadata
// services 169.254.169.254 and fd00:ec2::254 is unique-local), shared (100.64/10,
// CGNAT and some providers' metadata), unspecified or "this network" (0/8), multicast,
// broadcast, reserved (240/4), IETF protocol assignments (192.0.0/24), benchmarking
// (198.18/15), IPv6 site-local, discard-only (100::/64), and not an IPv6 address that
// carries a non-public IPv4 address: IPv4-mapped and IPv4-compatible forms,
// NAT64 (64:ff9b::/96, checked on the embedded address; the local-use 64:ff9b:1::/48
// is refused), 6to4 (2002::/16, checked on the embedded address) and Teredo
// (2001::/32, refused: its embedded addresses are obfuscated).
func Public(ip netip.Addr) bool {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() ||
		ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() {
		return false
	}
	if ip.Is4() {
		for _, p := range denied4 {
			if p.Contains(ip) {
				return false
			}
		}
		return true
	}
	for _, p := range denied6 {
		if p.Contains(ip) {
			return false
		}
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip):
		return Public(netip.AddrFrom4([4]byte(b[12:16])))
	case sixToFour.Contains(ip):
		return Public(netip.AddrFrom4([4]byte(b[2:6])))
	}
	return true
}

// Special-purpose ranges Go's predicates leave to us (IANA special-purpose address
// registries, RFC 6890 and successors). Values, never mutated.
var (
	denied4 = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),      // "this network": 0.x reaches the host itself on Linux
		netip.MustParsePrefix("100.64.0.0/10"),  // shared address space (CGNAT; Alibaba's metadata 100.100.100.200)
		netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments (Oracle's metadata 192.0.0.192)
		netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking, used inside some networks
		netip.MustParsePrefix("240.0.0.0/4"),    // reserved, broadcast
		netip.MustParsePrefix("169.254.0.0/16"), // link-local (also caught by IsLinkLocalUnicast)
		netip.MustParsePrefix("127.0.0.0/8"),    // loopback (also caught by IsLoopback)
		netip.MustParsePrefix("255.255.255.255/32"),
	}
	denied6 = []netip.Prefix{
		netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated) and the unspecified/loopback block
		netip.MustParsePrefix("100::/64"),       // discard-only
		netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
		netip.MustParsePrefix("2001::/32"),      // Teredo
		netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
		netip.MustParsePrefix("fc00::/7"),       // unique-local (also caught by IsPrivate); fd00:ec2::254
	}
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)
