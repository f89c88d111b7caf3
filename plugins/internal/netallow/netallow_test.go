package netallow

import (
	"net/netip"
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
