package runtime

import (
	"context"
	"strings"
	"testing"
	"time"
)

// drawRandom serves one request on in and returns the guest's lines.
func drawRandom(t *testing.T, in *Instance) []string {
	t.Helper()
	ex := newFakeExchange("GET", "/", "", nil)
	if _, err := in.serveSync(ex, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(ex.out.String()), "\n")
}

// TestSnapshotFreshRandomness starts many instances of a Go guest from one
// snapshot and checks that no two draw the same number from any source of
// randomness a Go guest has: the runtime's generators, math/rand,
// math/rand/v2, crypto/rand, hash/maphash seeds, the iteration order of maps
// made before and after the snapshot, and a ChaCha8 seeded at init.
func TestSnapshotFreshRandomness(t *testing.T) {
	ctx := context.Background()
	log := &testLog{}
	app, err := engine(t).Load(ctx, AppConfig{Name: "rand", Wasm: buildGuest(t, "testdata/randguest"), Logger: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if app.snap == nil {
		t.Fatalf("no snapshot; log:\n%s", log.String())
	}
	const n = 200
	seen := map[string]int{}
	for i := range n {
		in, err := app.newInstance(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if in.snap == nil {
			t.Fatal("instance did not start from the snapshot")
		}
		lines := drawRandom(t, in)
		if len(lines) != 9 {
			t.Fatalf("guest said %q", lines)
		}
		for _, l := range lines {
			if j, dup := seen[l]; dup {
				t.Fatalf("instances %d and %d both drew %q", j, i, l)
			}
			seen[l] = i
		}
		in.close(ctx)
	}
}
