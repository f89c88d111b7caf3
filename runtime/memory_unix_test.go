//go:build linux

package runtime

import "testing"

func TestMmapMemoryGrowsFreesAndReusesZeroed(t *testing.T) {
	a := newMemoryAllocator()
	const max = 4 << 20
	m := a.Allocate(0, max)
	b := m.Reallocate(64 << 10)
	if len(b) != 64<<10 {
		t.Fatalf("len %d", len(b))
	}
	b[0], b[len(b)-1] = 1, 2
	b = m.Reallocate(1 << 20) // grows in place: the old bytes are still there
	if b[0] != 1 || b[64<<10-1] != 2 || b[1<<20-1] != 0 {
		t.Fatal("grow lost or dirtied bytes")
	}
	if m.Reallocate(max+1) != nil {
		t.Fatal("grew past the maximum")
	}
	for i := range b {
		b[i] = 0xff
	}
	m.Free()
	// The reservation is reused, and a new memory must read as zero.
	m2 := a.Allocate(0, max)
	if m2 != m {
		t.Fatal("freed reservation not reused")
	}
	b2 := m2.Reallocate(1 << 20)
	for i, c := range b2 {
		if c != 0 {
			t.Fatalf("reused memory not zeroed at %d", i)
		}
	}
	m2.Free()
}

// The Go-heap fallback (when a reservation cannot be mapped) grows by doubling,
// but its capacity, host memory, never passes the instance's maximum.
func TestHeapMemoryStaysWithinMax(t *testing.T) {
	const max = 3<<20 + 64<<10
	h := &heapMemory{max: max}
	for size := uint64(64 << 10); size <= max; size += 64 << 10 {
		b := h.Reallocate(size)
		if uint64(len(b)) != size || uint64(cap(b)) > max {
			t.Fatalf("Reallocate(%d): len %d cap %d, max %d", size, len(b), cap(b), max)
		}
	}
	if h.Reallocate(max+1) != nil {
		t.Fatal("grew past the maximum")
	}
}
