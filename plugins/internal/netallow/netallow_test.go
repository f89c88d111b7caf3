package netallow

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestPublic(t *testing.T) {
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"93.184.215.14", true},
		{"8.8.8.8", true},
		{"203.0.113.9", true}, // documentation range: unroutable, not the host's network
		{"2606:4700::1111", true},
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8 (DNS64 on IPv6-only networks)
		{"2002:808:808::1", true},  // 6to4 of 8.8.8.8

		// Loopback, private, link-local and the metadata services.
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"::1", false},
		{"10.1.2.3", false},
		{"172.16.0.1", false},
		{"192.168.1.1", false},
		{"169.254.169.254", false}, // AWS, GCP, Azure metadata
		{"fd00:ec2::254", false},   // AWS metadata over IPv6
		{"100.100.100.200", false}, // Alibaba metadata (shared space)
		{"192.0.0.192", false},     // Oracle metadata (IETF assignments)
		{"100.64.0.1", false},
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fc00::1", false},
		{"fec0::1", false},
		// Unspecified, "this network", multicast, broadcast, reserved, benchmarking.
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"::", false},
		{"224.0.0.1", false},
		{"ff02::1", false},
		{"255.255.255.255", false},
		{"240.0.0.1", false},
		{"198.18.0.1", false},
		{"100::1", false},
		// IPv6 forms that carry a non-public IPv4 address.
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::127.0.0.1", false}, // IPv4-compatible
		{"64:ff9b::7f00:1", false},
		{"64:ff9b::a9fe:a9fe", false},
		{"64:ff9b:1::1", false},
		{"2002:7f00:1::1", false},
		{"2002:a9fe:a9fe::1", false},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false}, // Teredo
	} {
		if got := Public(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Public(%s) = %v, want %v", c.ip, got, c.want)
		}
	}
}

func TestListHostsAndAddresses(t *testing.T) {
	l, err := Parse([]string{"db.example.com:5432", "*.cache.example.com", "Api.Example.com.", "127.0.0.1:6379", "10.0.0.0/8", "[::1]:5432"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host string
		port int
		want bool
	}{
		{"db.example.com", 5432, true},
		{"DB.example.com.", 5432, true},
		{"db.example.com", 5433, false},
		{"a.cache.example.com", 6379, true},
		{"a.b.cache.example.com", 1, true},
		{"cache.example.com", 6379, false}, // the apex is not a subdomain
		{"evilcache.example.com", 6379, false},
		{"api.example.com", 443, true},
		{"example.com", 443, false},
		{"127.0.0.1", 6379, true},
		{"127.0.0.1", 6380, false},
		{"::ffff:127.0.0.1", 6379, true}, // the mapped form is the same address
		{"10.9.8.7", 1, true},
		{"::1", 5432, true},
		{"::1", 6379, false},
		{"8.8.8.8", 53, false}, // a public IP named by the guest must be listed too
		{"169.254.169.254", 80, false},
		{"localhost", 6379, false},
	} {
		if got := l.AllowsHost(c.host, c.port); got != c.want {
			t.Errorf("AllowsHost(%s, %d) = %v, want %v", c.host, c.port, got, c.want)
		}
	}
	// Addresses a listed name resolves to: public ones pass, the host's own networks
	// only where an entry lists them.
	for _, c := range []struct {
		ip   string
		port int
		want bool
	}{
		{"93.184.215.14", 5432, true},
		{"127.0.0.1", 5432, false},
		{"127.0.0.1", 6379, true},
		{"10.1.1.1", 5432, true},
		{"192.168.1.1", 5432, false},
		{"169.254.169.254", 80, false},
		{"fd00:ec2::254", 80, false},
		{"::1", 5432, true},
		{"fe80::1%eth0", 5432, false},
	} {
		if got := l.AllowsIP(netip.MustParseAddr(c.ip), c.port, false); got != c.want {
			t.Errorf("AllowsIP(%s, %d) = %v, want %v", c.ip, c.port, got, c.want)
		}
	}
}

func TestEmptyListAllowsNothing(t *testing.T) {
	for _, l := range []*List{{}, mustParse(t)} {
		if !l.Empty() || l.AllowsHost("example.com", 443) || l.AllowsHost("8.8.8.8", 53) {
			t.Fatal("an empty list allowed something")
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, e := range []string{"db:0", "db:99999", "db:x", "*", "*.", "a b", "fe80::1%eth0", "[fe80::1%eth0]:80", "a/b"} {
		if _, err := Parse([]string{e}); err == nil {
			t.Errorf("Parse(%q) accepted it", e)
		}
	}
}

func mustParse(t *testing.T, e ...string) *List {
	t.Helper()
	l, err := Parse(e)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// hostCase is one destination a guest names.
type hostCase struct {
	host string
	port int
	want bool
}

func checkHosts(t *testing.T, l *List, cases []hostCase) {
	t.Helper()
	for _, c := range cases {
		if got := l.AllowsHost(c.host, c.port); got != c.want {
			t.Errorf("AllowsHost(%q, %d) = %v, want %v", c.host, c.port, got, c.want)
		}
	}
}

// TestWildcards: "*.domain" is any subdomain of domain, at any depth, and nothing
// else: not the apex, not a name that merely ends with the same letters, not a
// string that is no DNS name (an empty label, a space, a slash, a percent escape, a
// port or a NUL smuggled into the name).
func TestWildcards(t *testing.T) {
	l := mustParse(t, "*.example.com", "*.svc.internal.test:8443")
	checkHosts(t, l, []hostCase{
		{"a.example.com", 443, true},
		{"A.B.EXAMPLE.COM.", 80, true},
		{"_srv._tcp.example.com", 1, true},
		{"example.com", 443, false},
		{"xexample.com", 443, false},
		{"a.example.com.evil.net", 443, false},
		{"a.example.co", 443, false},
		{".example.com", 443, false},
		{"a..example.com", 443, false},
		{"a.example.com..", 443, false},
		{"a b.example.com", 443, false},
		{"a/b.example.com", 443, false},
		{"a%2e.example.com", 443, false},
		{"a.example.com:443", 443, false},
		{"a.example.com\x00", 443, false},
		{"*.example.com", 443, false},
		{strings.Repeat("a", 64) + ".example.com", 443, false},  // label over 63 bytes
		{strings.Repeat("a.", 124) + "example.com", 443, false}, // name over 253 bytes
		{"db.svc.internal.test", 8443, true},
		{"db.svc.internal.test", 443, false}, // the wildcard's port only
		{"svc.internal.test", 8443, false},
	})
}

// TestCIDRs: ranges, IPv4 and IPv6, written masked or not, and in the IPv4-mapped
// IPv6 form, cover the addresses in them and nothing else, whichever form the
// guest or the resolver uses.
func TestCIDRs(t *testing.T) {
	l := mustParse(t, "10.0.0.0/8", "192.168.1.77/24", "fd00:ab::/32", "2001:db8:1::/48", "::ffff:172.16.0.0/108")
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"10.0.0.0", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		{"9.255.255.255", false},
		{"192.168.1.1", true}, // the entry is masked to 192.168.1.0/24
		{"192.168.2.1", false},
		{"::ffff:10.1.2.3", true},
		{"fd00:ab::1", true},
		{"fd00:ab:ffff:ffff::1", true},
		{"fd00:ac::1", false},
		{"fd00:ab::1%eth0", true}, // a zone does not change the address
		{"2001:db8:1:ffff::1", true},
		{"2001:db8:2::1", false},
		{"172.16.9.9", true}, // the mapped range is the IPv4 range
		{"::ffff:172.16.9.9", true},
		{"172.32.0.1", false},
		{"::a00:1", false}, // IPv4-compatible 10.0.0.1 is another address
	} {
		if got := l.AllowsIP(netip.MustParseAddr(c.ip), 1234, true); got != c.want {
			t.Errorf("AllowsIP(%s, listed) = %v, want %v", c.ip, got, c.want)
		}
		host := c.ip
		if got := l.AllowsHost(host, 1234); got != c.want {
			t.Errorf("AllowsHost(%s) = %v, want %v", host, got, c.want)
		}
	}
}

// TestPorts: an entry with a port allows that port only; one without allows any;
// several entries for one name add up.
func TestPorts(t *testing.T) {
	l := mustParse(t, "db.example.com:5432", "db.example.com:6432", "203.0.113.7:443", "[2001:db8::1]:443", "any.example.com")
	checkHosts(t, l, []hostCase{
		{"db.example.com", 5432, true},
		{"db.example.com", 6432, true},
		{"db.example.com", 5433, false},
		{"db.example.com", 0, false},
		{"203.0.113.7", 443, true},
		{"203.0.113.7", 80, false},
		{"2001:db8::1", 443, true},
		{"2001:DB8:0::1", 443, true},
		{"2001:db8::1", 80, false},
		{"[2001:db8::1]", 443, false}, // brackets belong to a host:port, not to the host
		{"any.example.com", 1, true},
		{"any.example.com", 65535, true},
	})
}

// TestNamesAreNotAddresses: numeric forms that some resolvers read as IPv4
// addresses are names here, allowed only by a name entry; an address entry never
// allows them, and what they resolve to is checked as an address (AllowsIP).
func TestNamesAreNotAddresses(t *testing.T) {
	l := mustParse(t, "127.0.0.1", "10.0.0.0/8", "*.example.com")
	checkHosts(t, l, []hostCase{
		{"127.1", 80, false},
		{"2130706433", 80, false},
		{"0x7f000001", 80, false},
		{"0177.0.0.1", 80, false},
		{"10.1", 80, false},
		{"127.0.0.1", 80, true},
		{"localhost", 80, false},
		{"127.0.0.1.example.com", 80, true}, // a name; its addresses are checked on their own
	})
	if l.AllowsIP(netip.MustParseAddr("127.0.0.2"), 80, false) {
		t.Error("a name resolving to 127.0.0.2 passed: only 127.0.0.1 is listed")
	}
}

// TestDNSRebinding: a name the list allows may resolve to anything: its addresses
// pass only when public, or when an IP or CIDR entry lists them (with its port).
// The plugins check the address they dial (plugins/http control, plugins/sockets
// dial), so an answer that changes between the check and the dial changes nothing.
func TestDNSRebinding(t *testing.T) {
	l := mustParse(t, "api.example.com", "*.example.com", "cache.internal.test:6379", "10.0.0.5:6379", "fd00::/8")
	checkHosts(t, l, []hostCase{{"api.example.com", 443, true}, {"cache.internal.test", 6379, true}})
	for _, c := range []struct {
		ip   string
		port int
		want bool
	}{
		{"93.184.215.14", 443, true},
		{"2606:4700::1111", 443, true},
		{"127.0.0.1", 443, false},
		{"::1", 443, false},
		{"::ffff:127.0.0.1", 443, false},
		{"0.0.0.0", 443, false},
		{"::", 443, false},
		{"169.254.169.254", 80, false},
		{"fd00:ec2::254", 80, true}, // listed by the operator's fd00::/8
		{"fe80::a9fe:a9fe%eth0", 80, false},
		{"64:ff9b::a9fe:a9fe", 80, false},
		{"2002:a9fe:a9fe::1", 80, false},
		{"192.168.0.1", 443, false},
		{"100.64.0.1", 443, false},
		{"10.0.0.5", 6379, true}, // listed with this port
		{"10.0.0.5", 6380, false},
		{"10.0.0.6", 6379, false},
	} {
		if got := l.AllowsIP(netip.MustParseAddr(c.ip), c.port, false); got != c.want {
			t.Errorf("resolved %s:%d allowed = %v, want %v", c.ip, c.port, got, c.want)
		}
	}
}

// TestParseRefusesWhatItCannotMean: entries that are no host, address or range are
// errors naming the entry, never rules that match something else.
func TestParseRefusesWhatItCannotMean(t *testing.T) {
	for _, e := range []string{"a..example.com", ".example.com", "*.*.example.com", "a.*.example.com", "*example.com",
		"10.0.0.0/8:443", "example.com:", "[::1]", "[2001:db8::]/32", "exa mple.com", "exa%6dple.com", "10.0.0.0/33"} {
		if _, err := Parse([]string{e}); err == nil {
			t.Errorf("Parse(%q) accepted it", e)
		} else if !strings.Contains(err.Error(), e) {
			t.Errorf("Parse(%q): %v does not name the entry", e, err)
		}
	}
	if _, err := Parse([]string{" api.example.com ", "", "_srv._tcp.example.com", "localhost:6379"}); err != nil {
		t.Errorf("valid entries refused: %v", err)
	}
}

// TestConcurrentUse: a List is read by every instance of an app at once.
func TestConcurrentUse(t *testing.T) {
	l := mustParse(t, "*.example.com:443", "10.0.0.0/8")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if !l.AllowsHost("a.example.com", 443) || l.AllowsHost("a.example.com", 80) ||
					!l.AllowsIP(netip.AddrFrom4([4]byte{10, byte(g), byte(i), 1}), 1, true) {
					t.Error("concurrent use changed an answer")
					return
				}
			}
		}()
	}
	wg.Wait()
}
