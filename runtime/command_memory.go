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
// Buffers rest in the pool zeroed, as a new wasm memory must be.
type memoryPool struct{ p sync.Pool }

var _ experimental.MemoryAllocator = (*memoryPool)(nil)

// Allocate implements experimental.MemoryAllocator.
func (mp *memoryPool) Allocate(_, max uint64) experimental.LinearMemory {
	m := &pooledMemory{pool: mp, max: max}
	if h, ok := mp.p.Get().(*[]byte); ok {
		m.buf, m.holder = (*h)[:0], h
	}
	return m
}

// pooledMemory is one instance's linear memory.
type pooledMemory struct {
	pool   *memoryPool
	buf    []byte
	holder *[]byte // reused on Put, so returning a buffer does not allocate
	max    uint64
	used   int // the longest the guest has seen the buffer: all it can have dirtied
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
	m.buf = nil
	if cap(b) == 0 || cap(b) > maxPooledMemory {
		return
	}
	clear(b[:m.used])
	if m.holder == nil {
		m.holder = new([]byte)
	}
	*m.holder = b[:0]
	m.pool.p.Put(m.holder)
}
