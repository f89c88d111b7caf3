package limit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/wasmsrv/wasmsrv/host/internal/forwarded"
)

// counter counts in-flight holders per IP.
type counter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

func (c *counter) acquire(ip netip.Addr) bool { return c.acquireMax(ip, c.max) }

func (c *counter) acquireMax(ip netip.Addr, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip] >= max {
		return false
	}
	c.n[ip]++
	return true
}

func (c *counter) release(ip netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip] <= 1 {
		delete(c.n, ip)
	} else {
		c.n[ip]--
	}
}

// Concurrency allows at most max requests in progress per client IP and
// answers 503 beyond that (nginx limit_conn semantics: idle keep-alive
// connections do not count), counted in counts.ConnPerIP (counts may be nil).
func Concurrency(max int, trusted []netip.Prefix, counts *Counts, next http.Handler) http.Handler {
	c := &counter{max: max, n: map[netip.Addr]int{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := forwarded.ClientIP(r, trusted)
		if !c.acquire(ip) {
			if counts != nil {
				counts.ConnPerIP.Add(1)
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, "503 too many concurrent requests from your address", http.StatusServiceUnavailable)
			return
		}
		defer c.release(ip)
		next.ServeHTTP(w, r)
	})
}

// Conns caps the open TCP connections per client IP, idle keep-alive
// connections and WebSockets included (the resource a slow or abusive client
// holds longest). Peers in the exempt prefixes, such as a trusted proxy that
// carries many clients' connections, are not counted. The cap and the
// exemptions can change while connections are open: a connection is checked
// when it is accepted and released when it closes.
type Conns struct {
	cfg atomic.Pointer[connsConfig]
	c   counter
}

type connsConfig struct {
	max    int
	exempt []netip.Prefix
}

// NewConns returns a cap of max connections per IP (0: no cap).
func NewConns(max int, exempt []netip.Prefix) *Conns {
	c := &Conns{c: counter{n: map[netip.Addr]int{}}}
	c.Set(max, exempt)
	return c
}

// Set changes the cap; connections already open stay open.
func (c *Conns) Set(max int, exempt []netip.Prefix) {
	c.cfg.Store(&connsConfig{max: max, exempt: exempt})
}

// Acquire takes a slot for a connection from remote. counted says whether a
// slot was taken (the peer may be exempt, or the cap off) and must be given
// back with Release(ip) when the connection closes; ok is false when the
// peer already holds the maximum.
func (c *Conns) Acquire(remote net.Addr) (ip netip.Addr, counted, ok bool) {
	cfg := c.cfg.Load()
	if cfg.max <= 0 {
		return ip, false, true
	}
	ip = forwarded.Peer(remote.String())
	for _, p := range cfg.exempt {
		if p.Contains(ip) {
			return ip, false, true
		}
	}
	if !c.c.acquireMax(ip, cfg.max) {
		return ip, false, false
	}
	return ip, true, true
}

// Release gives back a slot Acquire counted.
func (c *Conns) Release(ip netip.Addr) { c.c.release(ip) }

// Open reports the connections counted for ip.
func (c *Conns) Open(ip netip.Addr) int {
	c.c.mu.Lock()
	defer c.c.mu.Unlock()
	return c.c.n[ip]
}
