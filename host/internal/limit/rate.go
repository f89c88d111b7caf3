// Package limit guards handlers and listeners: token-bucket request rates
// per client IP or per route (429 + Retry-After), on this node or shared by
// the nodes through Redis (GCRA, with this node's bucket as the fallback), concurrent requests per
// IP (503, like nginx limit_conn), TCP connections per IP at the listener,
// and request body (413) and header (431) sizes.
package limit

import (
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/wasmsrv/wasmsrv/host/internal/forwarded"
)

// RateConfig is a token bucket: Rate tokens per second, Burst deep.
type RateConfig struct {
	Rate  float64
	Burst int
	// PerIP gives every client IP its own bucket; otherwise the route
	// shares one.
	PerIP   bool
	Trusted []netip.Prefix // proxies whose X-Forwarded-For names the client
	// Counts, if set, counts the requests refused (Counts.Rate).
	Counts *Counts
	// Shared, when set, keeps the buckets there so the limit holds across the
	// nodes sharing it; Key names this limit's buckets in it (the same on every
	// node). When Shared cannot answer, this node's own buckets decide (the
	// per-node limit), so a lost Redis never fails a request.
	Shared Buckets
	Key    string
	// Status is the refusal's status (0: 429 Too Many Requests). A tenant's
	// request quota answers 503, as the hosting docs promise for requests.
	Status int
}

// Rate limits requests with token buckets.
type Rate struct {
	cfg    RateConfig
	shared *rate.Limiter
	next   http.Handler

	mu        sync.Mutex
	perIP     map[netip.Addr]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// idleAfter is when a client's bucket is forgotten: long enough that it
// would have refilled completely.
func (l *Rate) idleAfter() time.Duration {
	return time.Duration(float64(max(l.cfg.Burst, 1))/l.cfg.Rate*float64(time.Second)) + time.Minute
}

// NewRate wraps next.
func NewRate(cfg RateConfig, next http.Handler) *Rate {
	l := &Rate{cfg: cfg, next: next, perIP: map[netip.Addr]*bucket{}, lastSweep: time.Now()}
	if !cfg.PerIP {
		l.shared = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.Burst, 1))
	}
	return l
}

func (l *Rate) limiter(ip netip.Addr, now time.Time) *rate.Limiter {
	if l.shared != nil {
		return l.shared
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		// Lazy sweep keeps the map bounded by recently seen clients without
		// a background goroutine.
		idle := l.idleAfter()
		for k, b := range l.perIP {
			if now.Sub(b.seen) > idle {
				delete(l.perIP, k)
			}
		}
		l.lastSweep = now
	}
	b := l.perIP[ip]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), max(l.cfg.Burst, 1))}
		l.perIP[ip] = b
	}
	b.seen = now
	return b.lim
}

func (l *Rate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ip := forwarded.ClientIP(r, l.cfg.Trusted)
	if l.cfg.Shared != nil {
		key := l.cfg.Key
		if l.cfg.PerIP {
			key += "|" + ip.String()
		}
		ok, wait, err := l.cfg.Shared.Take(r.Context(), key, l.cfg.Rate, l.cfg.Burst)
		if err == nil {
			if !ok {
				l.refuse(w, wait.Seconds())
				return
			}
			l.next.ServeHTTP(w, r)
			return
		}
		// The store is unreachable: this node's bucket decides.
	}
	lim := l.limiter(ip, now)
	if !lim.AllowN(now, 1) {
		// Time until one token is back.
		l.refuse(w, (1-lim.TokensAt(now))/l.cfg.Rate)
		return
	}
	l.next.ServeHTTP(w, r)
}

// refuse answers 429 (or cfg.Status) with Retry-After: wait seconds rounded
// up, at least 1. Every refusal, shared bucket or this node's, goes through here.
func (l *Rate) refuse(w http.ResponseWriter, wait float64) {
	if c := l.cfg.Counts; c != nil {
		c.Rate.Add(1)
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(wait)))))
	if l.cfg.Status != 0 {
		http.Error(w, strconv.Itoa(l.cfg.Status)+" over the request rate quota", l.cfg.Status)
		return
	}
	http.Error(w, "429 too many requests", http.StatusTooManyRequests)
}
