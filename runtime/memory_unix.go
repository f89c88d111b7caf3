//go:build linux

package runtime

import (
	"sync"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// mmapAllocator backs each instance's linear memory with its own anonymous mapping:
// the whole maximum is reserved as address space up front and pages are made
// accessible as the guest grows. Compared with wazero's default (a Go []byte):
// growing never copies, the bytes are outside the Go heap (no GC scanning, no
// heap-target doubling of guest memory in RSS), and a closed instance gives its
// pages back to the OS at once.
//
// Freed reservations are kept (up to maxFreeReservations) with their pages
// released by MADV_DONTNEED, which also makes them read as zero, as a fresh wasm
// memory must: the next instance skips mmap and mprotect, which dominate the
// instantiation of a small (C) guest.
type mmapAllocator struct {
	mu   sync.Mutex
	free []*mmapMemory
}

const maxFreeReservations = 64

func newMemoryAllocator() experimental.MemoryAllocator { return &mmapAllocator{} }

// Allocate implements experimental.MemoryAllocator.
func (a *mmapAllocator) Allocate(_, max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return &heapMemory{max: max}
	}
	a.mu.Lock()
	for i := len(a.free) - 1; i >= 0; i-- {
		if m := a.free[i]; uint64(len(m.buf)) == max {
			a.free = append(a.free[:i], a.free[i+1:]...)
			a.mu.Unlock()
			return m
		}
	}
	a.mu.Unlock()
	buf, err := unix.Mmap(-1, 0, int(max), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		// Out of address space (many huge limits): wazero must get a memory, so
		// fall back to the Go heap rather than fail the instance.
		return &heapMemory{max: max}
	}
	return &mmapMemory{buf: buf, alloc: a}
}

type mmapMemory struct {
	buf       []byte // the whole reservation
	committed uint64 // bytes made readable and writable
	alloc     *mmapAllocator
	// image: buf starts with a private (copy-on-write) mapping of a snapshot's
	// memory image (memImage.mapInto), which Free must replace, not just advise.
	image bool
}

// Reallocate implements experimental.LinearMemory. Wasm memories only grow, and
// fresh (or released) anonymous pages read as zero, as memory.grow requires.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if size > m.committed {
		end := min((size+pageMask)&^pageMask, uint64(len(m.buf)))
		if err := unix.Mprotect(m.buf[m.committed:end], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = end
	}
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory: the pages go back to the OS and the
// reservation to the free list (or is unmapped when the list is full).
func (m *mmapMemory) Free() {
	if m.buf == nil {
		return
	}
	if m.image {
		// MADV_DONTNEED would bring the image's pages back, not zeros: map
		// fresh anonymous address space over everything the instance had, as
		// a new reservation has it.
		m.image = false
		if m.committed > 0 && remapReserved(m.buf[:m.committed]) != nil {
			_ = unix.Munmap(m.buf)
			m.buf = nil
			return
		}
		m.committed = 0
	} else if m.committed > 0 && unix.Madvise(m.buf[:m.committed], unix.MADV_DONTNEED) != nil {
		_ = unix.Munmap(m.buf)
		m.buf = nil
		return
	}
	a := m.alloc
	a.mu.Lock()
	if len(a.free) < maxFreeReservations {
		a.free = append(a.free, m)
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	_ = unix.Munmap(m.buf)
	m.buf = nil
}

// remapReserved replaces b's pages by inaccessible, unbacked anonymous ones.
func remapReserved(b []byte) error {
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)), unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE|unix.MAP_FIXED)
	return err
}

// pageMask rounds commits to 64 KiB, the wasm page size (a multiple of the OS page).
const pageMask = 1<<16 - 1

// heapMemory is the Go-heap fallback when a reservation cannot be made.
type heapMemory struct {
	buf []byte
	max uint64
}

func (h *heapMemory) Reallocate(size uint64) []byte {
	if size > h.max {
		return nil
	}
	if size > uint64(cap(h.buf)) {
		// Doubling amortizes the copies, but never past the maximum: the
		// capacity is host memory the guest's limit must cover.
		nb := make([]byte, size, max(size, min(2*uint64(cap(h.buf)), h.max)))
		copy(nb, h.buf)
		h.buf = nb
	}
	h.buf = h.buf[:size]
	return h.buf
}

func (h *heapMemory) Free() { h.buf = nil }
