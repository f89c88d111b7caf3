//go:build linux

package runtime

import (
	"bytes"
	"context"
	"testing"
)

// TestImageMemoryIsPrivate plays a guest that, started from a snapshot, writes
// all its memory, grows it to the limit and tries to grow past it: the image
// (and so the next instance) is unchanged, the grown pages read zero, the limit
// holds, and a reservation freed by it reads as zero when reused by an instance
// that does not start from the image.
func TestImageMemoryIsPrivate(t *testing.T) {
	base := newMemoryAllocator()
	const size, limit = 256 << 10, 1 << 20
	want := bytes.Repeat([]byte("image!"), size/6+1)[:size]
	img, err := newMemImage(want)
	if err != nil {
		t.Fatal(err)
	}
	defer img.close()
	alloc := img.allocator(base)

	m := alloc.Allocate(64<<10, limit)
	b := m.Reallocate(64 << 10) // wazero's first call: the module's minimum
	if !bytes.Equal(b, want[:64<<10]) {
		t.Fatal("the memory does not start with the image")
	}
	b = m.Reallocate(size) // restore grows it to the image's size
	if !bytes.Equal(b, want) {
		t.Fatal("the memory does not hold the image")
	}
	for i := range b {
		b[i] = 0xAA
	}
	b = m.Reallocate(limit)
	if len(b) != limit || b[size-1] != 0xAA || b[size] != 0 || b[limit-1] != 0 {
		t.Fatal("growing past the image lost bytes or did not give zeros")
	}
	if m.Reallocate(limit+64<<10) != nil {
		t.Fatal("grew past the limit")
	}
	for i := range b {
		b[i] = 0xBB
	}

	// A second instance from the image sees the image, not the first's writes.
	m2 := alloc.Allocate(64<<10, limit)
	if b2 := m2.Reallocate(size); !bytes.Equal(b2, want) {
		t.Fatal("one instance's writes reached the image")
	}
	if !bytes.Equal(img.view, want) {
		t.Fatal("the memfd changed")
	}
	m2.Free()

	// The freed reservation comes back zeroed, past the image's pages too.
	m.Free()
	m3 := base.Allocate(64<<10, limit)
	if m3 != m && m3 != m2 {
		t.Fatal("freed reservation not reused")
	}
	b3 := m3.Reallocate(limit)
	if i := bytes.IndexFunc(b3, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("a reused reservation shows an earlier instance's bytes at %d", i)
	}
	m3.Free()
}

// TestSnapshotInstancesDoNotShareMemory writes every byte of one Go instance
// started from a snapshot and checks that the next instance holds the image.
func TestSnapshotInstancesDoNotShareMemory(t *testing.T) {
	ctx := context.Background()
	app, err := engine(t).Load(ctx, AppConfig{Name: "hello", Wasm: buildGuest(t, "../samples/hello")})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if snap, err := app.snapshot(ctx); err != nil || snap == nil {
		t.Fatalf("no snapshot (%v)", err)
	}
	image := bytes.Clone(app.snap.mem.view)
	a, err := app.newInstance(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := a.mod.Memory().Read(0, a.mod.Memory().Size())
	for i := range mem {
		mem[i] = 0xCC
	}
	b, err := app.newInstance(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := b.mod.Memory().Read(0, b.mod.Memory().Size())
	got = bytes.Clone(got)
	for _, sp := range app.snap.reseed { // fresh random bytes there
		copy(got[sp.off:sp.off+sp.len], image[sp.off:sp.off+sp.len])
	}
	if !bytes.Equal(got, image) {
		t.Fatal("an instance's writes reached the next instance")
	}
	if !bytes.Equal(app.snap.mem.view, image) {
		t.Fatal("the image changed")
	}
	a.close(ctx)
	// b still serves.
	ex := newFakeExchange("GET", "/", "", nil)
	if _, err := b.serveSync(ex, 10e9); err != nil || ex.out.String() != "Hello from wasmsrv!\n" {
		t.Fatalf("serve: %v %q", err, ex.out.String())
	}
	b.close(ctx)
}
