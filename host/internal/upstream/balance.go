package upstream

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// balancer picks one server among those f accepts, or nil.
type balancer interface {
	pick(key string, hasKey bool, f *filter) *Server
}

// filter says which servers an attempt may use. A struct rather than a
// closure: picking runs on every request and must not allocate.
type filter struct {
	now          time.Time
	tried        [8]*Server
	nTried       int
	allowEjected bool    // nginx: when all are ejected, try them anyway
	minLoad      float64 // leastConn: only servers at this load
	loadCap      bool
}

func (f *filter) ok(s *Server) bool {
	if s.down.Load() || (!f.allowEjected && s.ejected(f.now)) {
		return false
	}
	for _, t := range f.tried[:f.nTried] {
		if t == s {
			return false
		}
	}
	return !f.loadCap || load(s) == f.minLoad
}

// roundRobin is nginx's smooth weighted round-robin: over a cycle each server
// is picked weight times, interleaved rather than in bursts.
type roundRobin struct {
	mu      sync.Mutex
	servers []*Server
	current []int
}

func newRoundRobin(s []*Server) *roundRobin {
	return &roundRobin{servers: s, current: make([]int, len(s))}
}

func (b *roundRobin) pick(_ string, _ bool, f *filter) *Server {
	b.mu.Lock()
	defer b.mu.Unlock()
	total, best := 0, -1
	for i, s := range b.servers {
		if !f.ok(s) {
			continue
		}
		b.current[i] += s.Weight
		total += s.Weight
		if best < 0 || b.current[i] > b.current[best] {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	b.current[best] -= total
	return b.servers[best]
}

// leastConn picks the server with the fewest in-flight requests per unit of
// weight; ties go round-robin so idle groups still spread load.
type leastConn struct {
	servers []*Server
	rr      roundRobin
}

func newLeastConn(s []*Server) *leastConn {
	return &leastConn{servers: s, rr: roundRobin{servers: s, current: make([]int, len(s))}}
}

func load(s *Server) float64 { return float64(s.active.Load()) / float64(s.Weight) }

func (b *leastConn) pick(key string, hasKey bool, f *filter) *Server {
	min := math.Inf(1)
	for _, s := range b.servers {
		if f.ok(s) {
			min = math.Min(min, load(s))
		}
	}
	if math.IsInf(min, 1) {
		return nil
	}
	f.minLoad, f.loadCap = min, true
	defer func() { f.loadCap = false }()
	if s := b.rr.pick(key, hasKey, f); s != nil {
		return s
	}
	// Loads moved between the scan and the pick: take any.
	f.loadCap = false
	return b.rr.pick(key, hasKey, f)
}

// p2c is power-of-two-choices: two random candidates, the less loaded wins.
// Near least-conn quality without scanning or a shared lock.
type p2c struct{ servers []*Server }

func (b *p2c) pick(_ string, _ bool, f *filter) *Server {
	n := len(b.servers)
	var a, c *Server
	// A few random draws find candidates cheaply; fall back to a scan when
	// most servers are excluded.
	for range 2 * n {
		s := b.servers[rand.IntN(n)]
		if !f.ok(s) || s == a {
			continue
		}
		if a == nil {
			a = s
			continue
		}
		c = s
		break
	}
	if a == nil {
		for _, s := range b.servers {
			if f.ok(s) {
				a = s
				break
			}
		}
	}
	if c == nil {
		return a
	}
	if load(c) < load(a) {
		return c
	}
	return a
}

// rendezvous is weighted highest-random-weight hashing: a key goes to the
// server with the best score for (key, server). When a server leaves, only
// the keys it owned move; everything else stays put.
type rendezvous struct {
	servers  []*Server
	fallback balancer
}

func newRendezvous(s []*Server) *rendezvous {
	return &rendezvous{servers: s, fallback: newRoundRobin(s)}
}

func (b *rendezvous) pick(key string, hasKey bool, f *filter) *Server {
	if !hasKey {
		return b.fallback.pick(key, hasKey, f)
	}
	var best *Server
	bestScore := math.Inf(-1)
	for _, s := range b.servers {
		if !f.ok(s) {
			continue
		}
		h := hashPair(key, s.id)
		// Map the hash to (0,1) and score -w/ln(u): weighted HRW.
		u := (float64(h>>11) + 0.5) / (1 << 53)
		score := -float64(s.Weight) / math.Log(u)
		if score > bestScore {
			best, bestScore = s, score
		}
	}
	return best
}

// hashPair is an unseeded (so stable across reloads and processes) 64-bit FNV-1a of key and server id, mixed.
func hashPair(key, id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	h ^= 0xff
	h *= 1099511628211
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	// splitmix64 finaliser: FNV alone has weak high bits.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
