package runtime

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/wasmsrv/wasmsrv/abi"
)

// snapshot is what an app's instances start from instead of running their start
// (docs/rationale.md, "Instances start from a snapshot"): an instance's linear
// memory and mutable globals taken once it had run the module's start function,
// _initialize and the start hook. A new instance maps the memory copy-on-write,
// sets the globals and gets fresh random state where the Go runtime keeps it.
type snapshot struct {
	mem      *memImage
	pages    uint32
	globals  []string // export names (interrupt.Module.Globals)
	values   []uint64 // their values, in the same order
	reseed   []span   // filled with fresh random bytes in every instance
	reseeded int      // bytes in reseed
	allocCtx context.Context
}

// span is a range of linear memory.
type span struct{ off, len uint32 }

// chacha8StateSize is the size of Go's internal/chacha8rand.State (Go 1.22 and
// later): buf [32]uint64, seed [4]uint64, i, n, c uint32, padded to 8 bytes.
const (
	chacha8KeyBytes   = 36 * 8 // buf and seed: any value is a valid state
	chacha8StateSize  = 304
	chacha8CounterOff = 288 // i, n, c
)

// findRandState returns where two instances of the same module, started alike
// but from different random bytes, keep random state the snapshot must not
// share: every Go chacha8rand.State (the runtime's global generator, the per-M
// generator behind runtime.rand, maps, math/rand and math/rand/v2's global
// functions; and any math/rand/v2.ChaCha8 made at init) is a run of 36 words
// that differ in the two, followed by three plausible counters. Their keys
// (buf and seed) are what the spans cover; the word after a state is covered
// too when it also differs (the m's cheaprand follows its chacha8 state, a
// ChaCha8's read buffer follows its state). diff is the number of differing
// bytes outside the spans.
func findRandState(a, b []byte) (spans []span, diff int) {
	words := len(a) / 8
	differs := func(w int) bool {
		return w < words && binary.LittleEndian.Uint64(a[w*8:]) != binary.LittleEndian.Uint64(b[w*8:])
	}
	for w := 0; w < words; w++ {
		if !differs(w) {
			continue
		}
		run := 0
		for run < 36 && differs(w+run) {
			run++
		}
		if run == 36 && (w+38)*8 <= len(a) && plausibleCounters(a[w*8+chacha8CounterOff:]) && plausibleCounters(b[w*8+chacha8CounterOff:]) {
			spans = append(spans, span{off: uint32(w * 8), len: chacha8KeyBytes})
			next := w + chacha8StateSize/8
			if differs(next) {
				spans = append(spans, span{off: uint32(next * 8), len: 8})
			}
			w = next
			continue
		}
	}
	for i := range a {
		if a[i] != b[i] {
			diff++
		}
	}
	for _, s := range spans {
		for i := s.off; i < s.off+s.len; i++ {
			if a[i] != b[i] {
				diff--
			}
		}
	}
	return spans, diff
}

// plausibleCounters checks chacha8rand.State's i, n and c: n is 32 or 28 (the
// block before a reseed), i ≤ n, and c counts blocks by 4 up to 16.
func plausibleCounters(b []byte) bool {
	i, n, c := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
	return (n == 32 || n == 28) && i <= n && c%4 == 0 && c < 16
}

// countingReader is the random source of the instances a snapshot is made
// from: it counts what the guest reads during its start.
type countingReader struct {
	mu           sync.Mutex
	calls, bytes int
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	r.calls++
	r.bytes += len(p)
	r.mu.Unlock()
	return rand.Read(p)
}

// hostCallLog records calls into host modules while a snapshot is being made
// (wrapHostModules): state a host function keeps for an instance is not in the
// snapshot.
type hostCallLog struct {
	mu    sync.Mutex
	first string
}

func (l *hostCallLog) note(name string) {
	l.mu.Lock()
	if l.first == "" {
		l.first = name
	}
	l.mu.Unlock()
}

// keepsNothing reports whether a host function keeps nothing for the instance
// that calls it, so a start may call it and still be copied.
func keepsNothing(module, name string) bool {
	return module == abi.ImportModule && name == abi.FnHostFeatures
}

// wrapHostModules returns hms with every function noting its calls in log.
func wrapHostModules(hms []HostModule, log *hostCallLog) []HostModule {
	out := make([]HostModule, len(hms))
	for i, hm := range hms {
		out[i] = HostModule{Name: hm.Name, Funcs: make([]HostFunc, len(hm.Funcs))}
		for j, f := range hm.Funcs {
			name, fn := hm.Name+"."+f.Name, f.Fn
			if !keepsNothing(hm.Name, f.Name) {
				f.Fn = func(ctx context.Context, mod api.Module, stack []uint64) {
					log.note(name)
					fn(ctx, mod, stack)
				}
			}
			out[i].Funcs[j] = f
		}
	}
	return out
}

// makeSnapshot starts two instances the ordinary way and takes the snapshot
// from the first, or says why the app's instances must start afresh. The two
// differ only by their random bytes (and the time): comparing them finds the
// random state to refresh in every copy. Both are instance 0 in the log, so
// that the app's serving instances are numbered from 1 as without a snapshot.
func (a *App) makeSnapshot(ctx context.Context, calls *hostCallLog) (*snapshot, string, error) {
	var rs [2]countingReader
	var ins [2]*Instance
	defer func() {
		for _, in := range ins {
			if in != nil {
				a.stop(ctx, in, a.cfg.StartTimeout)
			}
		}
	}()
	for i := range ins {
		in, err := a.startFresh(ctx, 0, 0, &rs[i])
		if err != nil {
			return nil, "", err
		}
		ins[i] = in
	}
	calls.mu.Lock()
	called := calls.first
	calls.mu.Unlock()
	if called != "" {
		return nil, fmt.Sprintf("the start calls the host (%s): what the host keeps for an instance is not in a snapshot", called), nil
	}
	ma, mb := ins[0].mod.Memory(), ins[1].mod.Memory()
	if ma.Size() != mb.Size() {
		return nil, fmt.Sprintf("two starts left memories of different sizes (%d and %d bytes)", ma.Size(), mb.Size()), nil
	}
	memA, _ := ma.Read(0, ma.Size())
	memB, _ := mb.Read(0, mb.Size())
	spans, diff := findRandState(memA, memB)
	for i := range rs {
		// Go's runtime seeds its generator with one read of 32 bytes, which
		// the snapshot refreshes; any other read is randomness the guest keeps
		// somewhere of its own.
		if rs[i].calls > 1 || rs[i].bytes > 32 || (rs[i].calls == 1 && len(spans) == 0) {
			return nil, fmt.Sprintf("the start read %d random bytes in %d calls besides the Go runtime's seed: each instance must draw its own", rs[i].bytes, rs[i].calls), nil
		}
	}
	if len(spans) == 0 && diff > 0 {
		return nil, fmt.Sprintf("two starts left %d bytes of memory different (the start read the clock?): an instance must not inherit them", diff), nil
	}
	s := &snapshot{pages: ma.Size() / 65536, reseed: spans, globals: a.globals}
	for _, sp := range spans {
		s.reseeded += int(sp.len)
	}
	for _, name := range a.globals {
		g := ins[0].mod.ExportedGlobal(name)
		if g == nil {
			return nil, "global " + name + " is not exported", nil
		}
		s.values = append(s.values, g.Get())
	}
	img, err := newMemImage(memA)
	if err != nil {
		return nil, err.Error(), nil
	}
	alloc := img.allocator(a.engine.alloc)
	if alloc == nil {
		img.close()
		return nil, "the engine has no memory allocator of its own", nil
	}
	s.mem = img
	s.allocCtx = experimental.WithMemoryAllocator(context.Background(), alloc)
	return s, "", nil
}

// restore makes a just-instantiated instance (its memory from s.mem, through
// s.allocCtx) the snapshot's instance: memory grown to the image's size, the
// globals set, fresh random state.
func (s *snapshot) restore(in *Instance) error {
	mem := in.mod.Memory()
	if cur := mem.Size() / 65536; cur < s.pages {
		if _, ok := mem.Grow(s.pages - cur); !ok {
			return fmt.Errorf("snapshot: memory cannot grow to %d pages", s.pages)
		}
	}
	for i, name := range s.globals {
		g, ok := in.mod.ExportedGlobal(name).(api.MutableGlobal)
		if !ok {
			return fmt.Errorf("snapshot: global %s is not exported", name)
		}
		g.Set(s.values[i])
	}
	if s.reseeded > 0 {
		var stack [1024]byte
		buf := stack[:0]
		if s.reseeded > len(stack) {
			buf = make([]byte, 0, s.reseeded)
		}
		buf = buf[:s.reseeded]
		if _, err := io.ReadFull(rand.Reader, buf); err != nil {
			return fmt.Errorf("snapshot: random bytes: %w", err)
		}
		for _, sp := range s.reseed {
			if !mem.Write(sp.off, buf[:sp.len]) {
				return fmt.Errorf("snapshot: random state at %d out of memory", sp.off)
			}
			buf = buf[sp.len:]
		}
	}
	return nil
}
