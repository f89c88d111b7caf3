package runtime

import (
	"github.com/tetratelabs/wazero/experimental"
)

// maxPooledMemory bounds the linear memory kept for reuse between CGI runs; a
// run that grew past it leaves a fresh one to the next run instead of pinning the
// space.
const maxPooledMemory = 1 << 20

// slotMemory is the linear memory of a CGI run slot. A command instance lives for
// one request, so without reuse every request allocates (and the GC later
// reclaims) a fresh memory of at least 64 KiB per page: most of a small command's
// cost. A slot runs one instance at a time and closes it before the next run, so
// the buffer passes from run to run without a pool, cleared as far as the last run
// could have dirtied it (a new wasm memory must read as zero).
//
// A memory that grows past maxPooledMemory (a Go command starts with megabytes)
// moves to the engine's allocator, outside the Go heap: as a Go-heap buffer it
// would be megabytes of garbage per request.
type slotMemory struct {
	large experimental.MemoryAllocator // the engine's; nil: large memories stay on the Go heap
	buf   []byte                       // empty, and zero up to cap, while no instance holds it
	max   uint64
	used  int                       // the longest the guest has seen buf: all it can have dirtied
	live  bool                      // an instance holds it
	big   experimental.LinearMemory // the run's memory once it outgrew buf
}

var _ experimental.MemoryAllocator = (*slotMemory)(nil)

// Allocate implements experimental.MemoryAllocator.
func (m *slotMemory) Allocate(_, max uint64) experimental.LinearMemory {
	if m.live {
		m.Free() // a failed instantiation that never closed its module
	}
	m.max, m.live = max, true
	return m
}

// Reallocate implements experimental.LinearMemory.
func (m *slotMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if m.big != nil {
		return m.big.Reallocate(size)
	}
	if size > maxPooledMemory && m.large != nil {
		big := m.large.Allocate(size, m.max)
		b := big.Reallocate(size)
		if b == nil {
			big.Free()
			return nil
		}
		copy(b, m.buf) // what the guest has so far; buf is cleared at Free
		m.big = big
		return b
	}
	if size > uint64(cap(m.buf)) {
		nb := make([]byte, size)
		copy(nb, m.buf)
		m.buf = nb // the old buffer is dropped; nb is clean past the copy
	}
	m.buf = m.buf[:size]
	m.used = max(m.used, int(size))
	return m.buf
}

// Free implements experimental.LinearMemory (wazero calls it once, when the
// instance closes): the buffer is cleared for the next run.
func (m *slotMemory) Free() {
	if !m.live {
		return
	}
	m.live = false
	if m.big != nil {
		m.big.Free()
		m.big = nil
	}
	if cap(m.buf) > maxPooledMemory {
		m.buf = nil
	} else {
		clear(m.buf[:m.used])
		m.buf = m.buf[:0]
	}
	m.used = 0
}
