//go:build linux || darwin || freebsd

package runtime

import (
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// mmapAllocator backs each instance's linear memory with its own anonymous mapping:
// the whole maximum is reserved as address space up front and pages are made
// accessible as the guest grows. Compared with wazero's default (a Go []byte):
// growing never copies, the bytes are outside the Go heap (no GC scanning, no
// heap-target doubling of guest memory in RSS), and a closed instance gives its
// pages back to the OS at once.
type mmapAllocator struct{}

func (mmapAllocator) Allocate(capacity, max uint64) experimental.LinearMemory {
	if max == 0 || max > 1<<32 {
		return nil
	}
	buf, err := unix.Mmap(-1, 0, int(max), unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
	if err != nil {
		return nil
	}
	return &mmapMemory{buf: buf}
}

type mmapMemory struct {
	buf       []byte // the whole reservation
	committed uint64 // bytes made readable and writable
}

// Reallocate implements experimental.LinearMemory. Wasm memories only grow, and
// fresh anonymous pages read as zero, as memory.grow requires.
func (m *mmapMemory) Reallocate(size uint64) []byte {
	if size > uint64(len(m.buf)) {
		return nil
	}
	if size > m.committed {
		end := (size + pageMask) &^ pageMask
		if end > uint64(len(m.buf)) {
			end = uint64(len(m.buf))
		}
		if err := unix.Mprotect(m.buf[m.committed:end], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return nil
		}
		m.committed = end
	}
	return m.buf[:size:size]
}

// Free implements experimental.LinearMemory.
func (m *mmapMemory) Free() {
	if m.buf != nil {
		_ = unix.Munmap(m.buf)
		m.buf = nil
	}
}

// pageMask rounds commits to 64 KiB, the wasm page size (a multiple of the OS page).
const pageMask = 1<<16 - 1

func memoryAllocator() experimental.MemoryAllocator { return mmapAllocator{} }
