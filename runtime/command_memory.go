package runtime

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// maxPooledMemory bounds the linear memories kept for reuse between CGI runs; a
// run that grew past it gets a fresh one next time instead of pinning the space.
const maxPooledMemory = 1 << 20

// memoryPool recycles the linear memories of CGI runs. A command instance lives for
// one request, so without it every request allocates (and the GC later reclaims)
// a fresh memory of at least 64 KiB per page: most of a small command's cost.
// Memories rest in the pool with their buffers zeroed, as a new wasm memory must be.
type memoryPool struct{ p sync.Pool }

var _ experimental.MemoryAllocator = (*memoryPool)(nil)

// Allocate implements experimental.MemoryAllocator.
func (mp *memoryPool) Allocate(_, max uint64) experimental.LinearMemory {
	m, ok := mp.p.Get().(*pooledMemory)
	if !ok {
		m = &pooledMemory{pool: mp}
	}
	m.max, m.used = max, 0
	return m
}

// pooledMemory is one instance's linear memory. wazero calls Free once, when the
// instance closes, and does not touch it afterwards, so Free may pool it.
type pooledMemory struct {
	pool *memoryPool
	buf  []byte // empty or zeroed up to cap when handed out
	max  uint64
	used int // the longest the guest has seen the buffer: all it can have dirtied
}

// Reallocate implements experimental.LinearMemory.
func (m *pooledMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size > uint64(cap(m.buf)) {
		nb := make([]byte, size)
		copy(nb, m.buf)
		m.buf, m.used = nb, len(m.buf) // the old buffer is dropped, nb is clean past the copy
	}
	m.buf = m.buf[:size]
	m.used = max(m.used, int(size))
	return m.buf
}

// Free implements experimental.LinearMemory: the buffer is cleared and pooled.
func (m *pooledMemory) Free() {
	b := m.buf
	if cap(b) > maxPooledMemory {
		m.buf = nil // a fresh one next time instead of pinning the space
	} else {
		clear(b[:m.used])
		m.buf = b[:0]
	}
	m.pool.p.Put(m)
}
