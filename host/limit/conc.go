package limit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/wasmsrv/wasmsrv/host/forwarded"
)

// counter counts in-flight holders per IP.
type counter struct {
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

func (c *counter) acquire(ip netip.Addr) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip] >= c.max {
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
// connections do not count).
func Concurrency(max int, trusted []netip.Prefix, next http.Handler) http.Handler {
	c := &counter{max: max, n: map[netip.Addr]int{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := forwarded.ClientIP(r, trusted)
		if !c.acquire(ip) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "503 too many concurrent requests from your address", http.StatusServiceUnavailable)
			return
		}
		defer c.release(ip)
		next.ServeHTTP(w, r)
	})
}

// Listener closes new TCP connections from an IP that already holds max
// open ones.
func Listener(ln net.Listener, max int) net.Listener {
	return &listener{Listener: ln, c: &counter{max: max, n: map[netip.Addr]int{}}}
}

type listener struct {
	net.Listener
	c *counter
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := forwarded.Peer(conn.RemoteAddr().String())
		if !l.c.acquire(ip) {
			conn.Close()
			continue
		}
		return &trackedConn{Conn: conn, ip: ip, c: l.c}, nil
	}
}

type trackedConn struct {
	net.Conn
	ip   netip.Addr
	c    *counter
	once sync.Once
}

func (t *trackedConn) Close() error {
	t.once.Do(func() { t.c.release(t.ip) })
	return t.Conn.Close()
}
