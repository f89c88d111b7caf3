// Package cache is an in-memory HTTP response cache: a byte-bounded LRU
// shared by routes, each route with its own Policy (key template, TTL by
// status, stale-while-revalidate, stale-if-error). It honours the
// response's Cache-Control (no-store, private, no-cache, max-age,
// s-maxage) and Vary, collapses concurrent misses for one key into a single
// backend request, and says what happened in X-Cache: HIT, MISS, STALE or
// BYPASS.
package cache

import (
	"container/list"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// entry is one stored response.
type entry struct {
	key        string
	status     int
	header     http.Header
	body       []byte
	stored     time.Time
	freshUntil time.Time
	swrUntil   time.Time // serve stale and refresh in the background until
	sieUntil   time.Time // serve stale when the backend fails until
	size       int64
	elem       *list.Element
}

// Store is a byte-bounded LRU of responses, safe for concurrent use.
type Store struct {
	maxBytes int64

	mu    sync.Mutex
	used  int64
	lru   *list.List // front = most recent
	items map[string]*entry
	vary  map[string][]string // primary key → header names the response varies on

	stats struct{ hit, miss, stale, bypass atomic.Int64 }
}

// Stats counts what the store's handlers answered, by X-Cache, since the store
// was made; Bytes and Entries are what it holds now.
type Stats struct {
	Hits, Misses, Stale, Bypass int64
	Bytes                       int64
	Entries                     int
}

// Stats reports the store's counters (metrics read them at scrape time).
func (s *Store) Stats() Stats {
	st := Stats{Hits: s.stats.hit.Load(), Misses: s.stats.miss.Load(), Stale: s.stats.stale.Load(), Bypass: s.stats.bypass.Load()}
	s.mu.Lock()
	st.Bytes, st.Entries = s.used, len(s.items)
	s.mu.Unlock()
	return st
}

// NewStore makes a store holding at most maxBytes of responses.
func NewStore(maxBytes int64) *Store {
	return &Store{maxBytes: maxBytes, lru: list.New(), items: map[string]*entry{}, vary: map[string][]string{}}
}

// Used reports the bytes held.
func (s *Store) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// Len reports the number of entries.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

func (s *Store) varyOf(primary string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vary[primary]
}

func (s *Store) get(key string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.items[key]
	if e != nil {
		s.lru.MoveToFront(e.elem)
	}
	return e
}

func (s *Store) put(primary string, varyNames []string, e *entry) {
	e.size = int64(len(e.body) + len(e.key) + 256)
	for k, vs := range e.header {
		e.size += int64(len(k))
		for _, v := range vs {
			e.size += int64(len(v))
		}
	}
	if e.size > s.maxBytes/8 {
		return // one response may not evict most of the cache
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.items[e.key]; old != nil {
		s.removeLocked(old)
	}
	if len(varyNames) > 0 {
		s.vary[primary] = varyNames
	} else {
		delete(s.vary, primary)
	}
	e.elem = s.lru.PushFront(e)
	s.items[e.key] = e
	s.used += e.size
	for s.used > s.maxBytes {
		s.removeLocked(s.lru.Back().Value.(*entry))
	}
}

func (s *Store) removeLocked(e *entry) {
	s.lru.Remove(e.elem)
	delete(s.items, e.key)
	s.used -= e.size
}

// Purge removes the entry whose key is pattern, or, when pattern ends in
// "*", every entry whose key starts with the rest. It reports how many
// entries went.
func (s *Store) Purge(pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	prefix, wild := strings.CutSuffix(pattern, "*")
	for k, e := range s.items {
		// Vary variants share the primary key as prefix plus a NUL.
		base, _, _ := strings.Cut(k, "\x00")
		if (wild && strings.HasPrefix(base, prefix)) || (!wild && base == pattern) {
			s.removeLocked(e)
			n++
		}
	}
	return n
}
