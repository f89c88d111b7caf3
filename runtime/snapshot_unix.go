//go:build linux

package runtime

import (
	"fmt"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

// memImage is a snapshot's linear memory in a sealed memfd: instances map it
// privately (copy-on-write), so the pages no instance writes stay one copy in
// the page cache, shared by all, and no instance can change what the others
// map (F_SEAL_WRITE: the file has no writable shared mapping and never will).
type memImage struct {
	fd   int
	size uint64
	view []byte // read-only shared mapping, for the copying fallback
}

const snapshotsSupported = true

func newMemImage(mem []byte) (*memImage, error) {
	fd, err := unix.MemfdCreate("wasmsrv-snapshot", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	im := &memImage{fd: fd, size: uint64(len(mem))}
	fail := func(what string, err error) (*memImage, error) {
		im.close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	for b := mem; len(b) > 0; {
		n, err := unix.Write(fd, b)
		if err != nil {
			return fail("write memfd", err)
		}
		b = b[n:]
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL); err != nil {
		return fail("seal memfd", err)
	}
	if im.size > 0 {
		if im.view, err = unix.Mmap(fd, 0, len(mem), unix.PROT_READ, unix.MAP_SHARED); err != nil {
			return fail("map memfd", err)
		}
	}
	return im, nil
}

// close releases the file; mappings made from it stay valid.
func (im *memImage) close() {
	if im.view != nil {
		_ = unix.Munmap(im.view)
		im.view = nil
	}
	_ = unix.Close(im.fd)
}

// imageAllocator gives an instance a linear memory that holds the image: a
// reservation of the engine's allocator with the image mapped privately over
// its start.
type imageAllocator struct {
	base *mmapAllocator
	img  *memImage
}

func (im *memImage) allocator(base experimental.MemoryAllocator) experimental.MemoryAllocator {
	mm, ok := base.(*mmapAllocator)
	if !ok {
		return nil
	}
	return &imageAllocator{base: mm, img: im}
}

// Allocate implements experimental.MemoryAllocator.
func (a *imageAllocator) Allocate(capacity, limit uint64) experimental.LinearMemory {
	lm := a.base.Allocate(capacity, limit)
	size := a.img.size
	if m, ok := lm.(*mmapMemory); ok && size <= uint64(len(m.buf)) {
		if size == 0 {
			return m
		}
		_, err := unix.MmapPtr(a.img.fd, 0, unsafe.Pointer(unsafe.SliceData(m.buf)), uintptr(size),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
		if err == nil {
			m.image = true
			m.committed = max(m.committed, size)
			return m
		}
	}
	// No reservation (or it could not take the mapping): copy the image.
	if b := lm.Reallocate(size); b != nil {
		copy(b, a.img.view)
	}
	return lm
}
