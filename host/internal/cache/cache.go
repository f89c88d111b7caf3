package cache

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/wasmsrv/wasmsrv/host/internal/reqtmpl"
)

// Policy is one route's caching rules.
type Policy struct {
	// Key is a template (package reqtmpl): {method} {scheme} {host} {path}
	// {query} {uri} {client_ip} {header:NAME} {cookie:NAME}. Empty means
	// "{scheme}://{host}{uri}".
	Key string
	// TTL by status code; a status without an entry is not stored unless
	// the response's own max-age/s-maxage says so. Default applies to 200,
	// 203, 204, 206, 300, 301, 404, 405, 410, 414, 501 when set (RFC 9111
	// heuristically cacheable codes).
	TTL                  map[int]time.Duration
	Default              time.Duration
	StaleWhileRevalidate time.Duration
	StaleIfError         time.Duration
	// MaxEntry caps one response's body; bigger ones pass uncached.
	MaxEntry int64
}

// Handler caches next's responses in a Store.
type Handler struct {
	store  *Store
	policy Policy
	key    *reqtmpl.Template
	next   http.Handler
	log    *slog.Logger

	mu       sync.Mutex
	inflight map[string]*flight
}

type flight struct{ done chan struct{} }

// New wraps next. The key template must have been checked (config does).
func New(store *Store, p Policy, next http.Handler, log *slog.Logger) (*Handler, error) {
	if p.Key == "" {
		p.Key = "{scheme}://{host}{uri}"
	}
	parts, err := reqtmpl.Compile(p.Key)
	if err != nil {
		return nil, fmt.Errorf("cache key: %w", err)
	}
	if p.MaxEntry <= 0 {
		p.MaxEntry = 8 << 20
	}
	return &Handler{store: store, policy: p, key: parts, next: next, log: log, inflight: map[string]*flight{}}, nil
}

// Key renders the key template for r.
func (h *Handler) Key(r *http.Request) string {
	return h.key.String(r, reqtmpl.Vars{HeadAsGet: true})
}

func fullKey(primary string, names []string, r *http.Request) string {
	if len(names) == 0 {
		return primary
	}
	var b strings.Builder
	b.WriteString(primary)
	for _, n := range names {
		b.WriteByte(0)
		b.WriteString(strings.Join(r.Header.Values(n), ","))
	}
	return b.String()
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || r.Header.Get("Authorization") != "" ||
		r.Header.Get("Upgrade") != "" {
		w.Header().Set("X-Cache", "BYPASS")
		h.store.stats.bypass.Add(1)
		h.next.ServeHTTP(w, r)
		return
	}
	primary := h.Key(r)
	for {
		key := fullKey(primary, h.store.varyOf(primary), r)
		now := time.Now()
		if e := h.store.get(key); e != nil {
			switch {
			case now.Before(e.freshUntil):
				h.serve(w, r, e, "HIT", now)
				return
			case now.Before(e.swrUntil):
				h.serve(w, r, e, "STALE", now)
				h.refresh(primary, key, r)
				return
			case now.Before(e.sieUntil):
				h.fetchOrStale(w, r, primary, e, now)
				return
			}
		}
		// Miss: one request goes to the backend, the others wait for it.
		h.mu.Lock()
		f, waiting := h.inflight[key]
		if !waiting {
			f = &flight{done: make(chan struct{})}
			h.inflight[key] = f
		}
		h.mu.Unlock()
		if waiting {
			select {
			case <-f.done:
			case <-r.Context().Done():
				return
			}
			if h.store.get(key) != nil {
				continue // filled by the leader
			}
			// Not cacheable after all: go to the backend ourselves.
			w.Header().Set("X-Cache", "MISS")
			h.store.stats.miss.Add(1)
			h.next.ServeHTTP(w, r)
			return
		}
		h.miss(w, r, primary, key)
		h.mu.Lock()
		delete(h.inflight, key)
		h.mu.Unlock()
		close(f.done)
		return
	}
}

// serve writes a stored response, answering conditional requests with 304.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, e *entry, status string, now time.Time) {
	hdr := w.Header()
	for k, v := range e.header {
		hdr[k] = v
	}
	hdr.Set("X-Cache", status)
	if status == "HIT" {
		h.store.stats.hit.Add(1)
	} else {
		h.store.stats.stale.Add(1)
	}
	hdr.Set("Age", strconv.Itoa(int(now.Sub(e.stored)/time.Second)))
	if et := e.header.Get("ETag"); et != "" && e.status == http.StatusOK && r.Header.Get("If-None-Match") == et {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		w.Write(e.body)
	}
}

// miss forwards to the backend, streaming to the client while keeping a
// copy to store.
func (h *Handler) miss(w http.ResponseWriter, r *http.Request, primary, key string) {
	w.Header().Set("X-Cache", "MISS")
	h.store.stats.miss.Add(1)
	rec := &recorder{w: w, max: h.policy.MaxEntry, r: r}
	h.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	h.maybeStore(primary, r, rec.status, rec.header(), rec.buf.Bytes(), rec.overflow)
}

func (h *Handler) maybeStore(primary string, r *http.Request, status int, hdr http.Header, body []byte, overflow bool) {
	if overflow || r.Method == http.MethodHead || r.Context().Err() != nil {
		return
	}
	now := time.Now()
	e, names, ok := h.entryFor(status, hdr, body, now)
	if !ok {
		return
	}
	e.key = fullKey(primary, names, r)
	h.store.put(primary, names, e)
}

// entryFor decides whether and for how long a response may be stored.
func (h *Handler) entryFor(status int, hdr http.Header, body []byte, now time.Time) (*entry, []string, bool) {
	if hdr.Get("Set-Cookie") != "" || strings.HasPrefix(hdr.Get("Content-Type"), "text/event-stream") {
		return nil, nil, false
	}
	cc := parseCC(hdr.Values("Cache-Control"))
	if cc.noStore || cc.private || cc.noCache {
		return nil, nil, false
	}
	var names []string
	for _, v := range hdr.Values("Vary") {
		for n := range strings.SplitSeq(v, ",") {
			n = http.CanonicalHeaderKey(strings.TrimSpace(n))
			if n == "*" {
				return nil, nil, false
			}
			if n != "" {
				names = append(names, n)
			}
		}
	}
	ttl, ok := h.policy.TTL[status]
	if !ok && h.policy.Default > 0 && heuristic(status) {
		ttl, ok = h.policy.Default, true
	}
	switch {
	case cc.sMaxAge >= 0:
		ttl, ok = time.Duration(cc.sMaxAge)*time.Second, true
	case cc.maxAge >= 0:
		ttl, ok = time.Duration(cc.maxAge)*time.Second, true
	}
	if !ok || ttl <= 0 {
		return nil, nil, false
	}
	swr, sie := h.policy.StaleWhileRevalidate, h.policy.StaleIfError
	if cc.swr >= 0 {
		swr = time.Duration(cc.swr) * time.Second
	}
	if cc.sie >= 0 {
		sie = time.Duration(cc.sie) * time.Second
	}
	stored := hdr.Clone()
	for k, v := range stored {
		stored[k] = v[:len(v):len(v)] // appends by later handlers must copy
	}
	stored.Del("X-Cache")
	stored.Del("Age")
	fresh := now.Add(ttl)
	return &entry{
		status: status, header: stored, body: bytes.Clone(body), stored: now,
		freshUntil: fresh, swrUntil: fresh.Add(swr), sieUntil: fresh.Add(max(swr, sie)),
	}, names, true
}

func heuristic(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// refresh updates an entry in the background, once per key at a time.
func (h *Handler) refresh(primary, key string, r *http.Request) {
	h.mu.Lock()
	if _, busy := h.inflight[key]; busy {
		h.mu.Unlock()
		return
	}
	f := &flight{done: make(chan struct{})}
	h.inflight[key] = f
	h.mu.Unlock()
	// The client's request ends now; the refresh must not be cancelled
	// with it.
	r2 := r.Clone(context.WithoutCancel(r.Context()))
	r2.Method = http.MethodGet
	go func() {
		defer func() {
			h.mu.Lock()
			delete(h.inflight, key)
			h.mu.Unlock()
			close(f.done)
		}()
		rec := &recorder{max: h.policy.MaxEntry, r: r2}
		h.next.ServeHTTP(rec, r2)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if rec.status >= 500 {
			h.log.Warn("cache refresh failed; keeping stale entry", "key", key, "status", rec.status)
			return
		}
		h.maybeStore(primary, r2, rec.status, rec.header(), rec.buf.Bytes(), rec.overflow)
	}()
}

// fetchOrStale asks the backend and falls back to the stale entry if it
// answers 5xx (stale-if-error).
func (h *Handler) fetchOrStale(w http.ResponseWriter, r *http.Request, primary string, e *entry, now time.Time) {
	rec := &recorder{max: h.policy.MaxEntry, r: r, bufferAll: true}
	h.next.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 500 {
		h.serve(w, r, e, "STALE", now)
		return
	}
	hdr := w.Header()
	for k, v := range rec.header() {
		hdr[k] = v
	}
	hdr.Set("X-Cache", "MISS")
	h.store.stats.miss.Add(1)
	w.WriteHeader(rec.status)
	w.Write(rec.buf.Bytes())
	h.maybeStore(primary, r, rec.status, rec.header(), rec.buf.Bytes(), rec.overflow)
}

// recorder tees a response: to the client (unless w is nil or bufferAll)
// and into buf, up to max bytes. It keeps its own header map so that what
// outer middleware adds to the client's headers later (compression) is
// never stored.
type recorder struct {
	w         http.ResponseWriter
	r         *http.Request
	hdr       http.Header
	status    int
	buf       bytes.Buffer
	max       int64
	overflow  bool
	bufferAll bool
}

func (c *recorder) passthrough() bool { return c.w != nil && !c.bufferAll }

func (c *recorder) Header() http.Header {
	if c.hdr == nil {
		c.hdr = http.Header{}
	}
	return c.hdr
}

func (c *recorder) header() http.Header { return c.Header() }

func (c *recorder) WriteHeader(code int) {
	if c.status != 0 {
		return
	}
	if code < 200 {
		if c.passthrough() && code != http.StatusSwitchingProtocols {
			c.w.WriteHeader(code) // 103 Early Hints and friends
		}
		if code != http.StatusSwitchingProtocols {
			return
		}
	}
	c.status = code
	if c.passthrough() {
		dst := c.w.Header()
		for k, v := range c.Header() {
			dst[k] = v
		}
		c.w.WriteHeader(code)
	}
}

func (c *recorder) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	switch {
	case c.bufferAll:
		c.overflow = c.overflow || int64(c.buf.Len()+len(p)) > c.max
		c.buf.Write(p)
	case c.overflow:
	case int64(c.buf.Len()+len(p)) > c.max:
		c.overflow = true
		c.buf = bytes.Buffer{}
	default:
		c.buf.Write(p)
	}
	if c.passthrough() {
		return c.w.Write(p)
	}
	return len(p), nil
}

// Flush lets streaming responses through; SSE is never stored.
func (c *recorder) Flush() {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	if f, ok := c.w.(http.Flusher); ok && c.passthrough() {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (c *recorder) Unwrap() http.ResponseWriter { return c.w }

type cacheControl struct {
	noStore, private, noCache bool
	maxAge, sMaxAge, swr, sie int
}

func parseCC(vals []string) cacheControl {
	cc := cacheControl{maxAge: -1, sMaxAge: -1, swr: -1, sie: -1}
	for _, v := range vals {
		for d := range strings.SplitSeq(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(d), "=")
			arg = strings.Trim(arg, `"`)
			n, err := strconv.Atoi(arg)
			if err != nil {
				n = -1
			}
			switch strings.ToLower(name) {
			case "no-store":
				cc.noStore = true
			case "private":
				cc.private = true
			case "no-cache":
				cc.noCache = true
			case "max-age":
				cc.maxAge = n
			case "s-maxage":
				cc.sMaxAge = n
			case "stale-while-revalidate":
				cc.swr = n
			case "stale-if-error":
				cc.sie = n
			}
		}
	}
	return cc
}
