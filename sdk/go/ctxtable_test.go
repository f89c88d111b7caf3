package wasmsrv

import (
	"math/rand/v2"
	"testing"
)

// TestCtxTable checks the table against a map under random puts, gets and
// deletes, with handles that collide (sequential ids as the host hands them
// out, and arbitrary ones).
func TestCtxTable(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  func(r *rand.Rand, i uint32) uint32
	}{
		{"sequential", func(_ *rand.Rand, i uint32) uint32 { return i + 1 }},
		{"random", func(r *rand.Rand, _ uint32) uint32 { return r.Uint32() }},
		{"strided", func(_ *rand.Rand, i uint32) uint32 { return i << 16 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var m ctxTable[int]
			want := map[uint32]*int{}
			var live []uint32
			for i := range uint32(20000) {
				switch op := r.IntN(10); {
				case op < 5 || len(live) == 0:
					k := tc.key(r, i)
					if _, dup := want[k]; dup {
						continue
					}
					x := new(int)
					m.put(k, x)
					want[k] = x
					live = append(live, k)
				case op < 8:
					j := r.IntN(len(live))
					k := live[j]
					live[j] = live[len(live)-1]
					live = live[:len(live)-1]
					m.del(k)
					delete(want, k)
				default:
					k := tc.key(r, i)
					if got := m.get(k); got != want[k] {
						t.Fatalf("get(%d) = %v, want %v", k, got, want[k])
					}
				}
				if m.n != len(want) {
					t.Fatalf("n = %d, want %d", m.n, len(want))
				}
			}
			for k, x := range want {
				if got := m.get(k); got != x {
					t.Fatalf("get(%d) = %v, want %v", k, got, x)
				}
			}
			m.del(12345678) // absent: no effect
			if m.n != len(want) {
				t.Fatalf("deleting an absent key changed n")
			}
		})
	}
}
