package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// These tests drive the plugin's host functions as a guest would: arguments are
// offsets into a real wazero instance's memory, any bit pattern a guest can pass.
// Every test runs against both backends (bbolt; Redis when redis-server is
// installed).

// Guest memory layout of the tests.
const (
	offKey  = 0
	offOld  = 8 << 10
	offVal  = 16 << 10
	offBuf  = 32 << 10
	memSize = 2 * 65536
)

// small limits keep the edge cases small.
func smallLimits() plugins.Section {
	return plugins.Section{"max_key": 64, "max_value": 1000, "max_bytes": 4096}
}

type guest struct {
	t   *testing.T
	mod api.Module
	fns map[string]api.GoModuleFunc
}

// memoryModule is a module with one exported memory of memSize bytes.
func memoryModule() []byte {
	bin := []byte(testkit.WasmHeader)
	bin = append(bin, testkit.Section(5, testkit.Vec([]byte{0, byte(memSize / 65536)}))...)
	return append(bin, testkit.Section(7, testkit.Vec(testkit.Export("memory", 2, 0)))...)
}

// newGuest opens the plugin for app on store and gives it a fresh instance's memory.
func newGuest(t *testing.T, store Store, app string, cfg plugins.Section) *guest {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	t.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.InstantiateWithConfig(ctx, memoryModule(), wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{Store: store}).Open(ctx, plugins.AppInfo{Name: app, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	g := &guest{t: t, mod: mod, fns: map[string]api.GoModuleFunc{}}
	for _, f := range b.Funcs {
		g.fns[f.Name] = f.Fn
	}
	return g
}

func (g *guest) write(off uint32, b []byte) (ptr, n uint64) {
	if !g.mod.Memory().Write(off, b) {
		g.t.Fatalf("write at %d", off)
	}
	return uint64(off), uint64(len(b))
}

func (g *guest) read(off, n uint32) []byte {
	b, ok := g.mod.Memory().Read(off, n)
	if !ok {
		g.t.Fatalf("read at %d", off)
	}
	return append([]byte(nil), b...)
}

// call runs host function name; i32 results are sign-extended.
func (g *guest) call(name string, args ...uint64) int64 {
	stack := make([]uint64, max(len(args), 1))
	copy(stack, args)
	g.fns[name](context.Background(), g.mod, stack)
	if name == "get" || name == "list" {
		return int64(stack[0])
	}
	return int64(int32(stack[0]))
}

func (g *guest) set(key, val string, ttlMs int64) int64 {
	k, kn := g.write(offKey, []byte(key))
	v, vn := g.write(offVal, []byte(val))
	return g.call("set", k, kn, v, vn, uint64(ttlMs))
}

// get returns the value, or the status as a string ("ERR_NOT_FOUND").
func (g *guest) get(key string) string {
	k, kn := g.write(offKey, []byte(key))
	r := g.call("get", k, kn, offBuf, 16<<10)
	if r < 0 {
		return pluginabi.StatusText(int32(r))
	}
	return string(g.read(offBuf, uint32(r)))
}

func (g *guest) del(key string) int64 {
	k, kn := g.write(offKey, []byte(key))
	return g.call("delete", k, kn)
}

func (g *guest) cas(key, old, nv string, flags uint32) int64 {
	k, kn := g.write(offKey, []byte(key))
	o, on := g.write(offOld, []byte(old))
	v, vn := g.write(offVal, []byte(nv))
	return g.call("cas", k, kn, o, on, v, vn, uint64(flags), 0)
}

// list returns every key under prefix, paging with a buffer of limit bytes.
func (g *guest) list(prefix string, limit uint64) []string {
	var keys []string
	after := ""
	for range 10000 {
		p, pn := g.write(offKey, []byte(prefix))
		a, an := g.write(offOld, []byte(after))
		r := g.call("list", p, pn, a, an, offBuf, limit)
		if r < 0 {
			g.t.Fatalf("list(%q after %q) = %s", prefix, after, pluginabi.StatusText(int32(r)))
		}
		more, n := pluginabi.Unpack2(r)
		rest := g.read(offBuf, n)
		for len(rest) > 0 {
			item, tail, ok := pluginabi.NextItem(rest)
			if !ok {
				g.t.Fatalf("list wrote a malformed item block %q", rest)
			}
			keys = append(keys, string(item))
			after, rest = string(item), tail
		}
		if more == 0 {
			return keys
		}
	}
	g.t.Fatal("list did not end")
	return nil
}

func status(code int32) int64 { return int64(code) }

// backends runs fn against a fresh bbolt file and, with redis-server installed, a
// fresh Redis.
func backends(t *testing.T, fn func(t *testing.T, store Store)) {
	t.Run("bolt", func(t *testing.T) {
		b, err := OpenBolt(filepath.Join(t.TempDir(), "kv.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		fn(t, b)
	})
	t.Run("redis", func(t *testing.T) {
		rs := testkit.StartRedis(t)
		r, err := OpenRedis(context.Background(), rs.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		fn(t, r)
	})
}

// TestNamespacesPerApp: apps whose names share prefixes, differ in case or end in
// the characters a namespace uses, each see only their own keys, whatever keys they
// pick (separators, braces, NULs included).
func TestNamespacesPerApp(t *testing.T) {
	backends(t, func(t *testing.T, store Store) {
		names := []string{"a", "ab", "a-b", "a_b", "A", "b", "a0"}
		keys := []string{"k", "}:d:k", "{a}:d:k", "a:k", "\x00", "../k", strings.Repeat("z", 64)}
		guests := map[string]*guest{}
		for _, app := range names {
			g := newGuest(t, store, app, smallLimits())
			guests[app] = g
			for _, k := range keys {
				if rc := g.set(k, app+"/"+k, 0); rc != 0 {
					t.Fatalf("%s: set %q = %s", app, k, pluginabi.StatusText(int32(rc)))
				}
			}
		}
		for _, app := range names {
			g := guests[app]
			for _, k := range keys {
				if got := g.get(k); got != app+"/"+k {
					t.Errorf("%s: get %q = %q", app, k, got)
				}
			}
			if got := g.list("", 1<<12); len(got) != len(keys) {
				t.Errorf("%s lists %d keys, want its own %d: %q", app, len(got), len(keys), got)
			}
		}
		// A delete and a swap in one namespace leave the others alone.
		if rc := guests["a"].del("k"); rc != 0 {
			t.Fatalf("delete: %d", rc)
		}
		if rc := guests["ab"].cas("a:k", "ab/a:k", "swapped", 0); rc != 0 {
			t.Fatalf("cas: %s", pluginabi.StatusText(int32(rc)))
		}
		for _, app := range names[1:] {
			if got := guests[app].get("k"); got != app+"/k" {
				t.Errorf("%s: after a's delete, get k = %q", app, got)
			}
		}
		if got := guests["a"].get("a:k"); got != "a/a:k" {
			t.Errorf("a: after ab's swap, get a:k = %q", got)
		}
		if got := guests["a"].get("k"); got != "ERR_NOT_FOUND" {
			t.Errorf("a: deleted key reads %q", got)
		}
	})
}

// TestLimitsAndHostileArguments: keys and values at their limits pass, one byte
// more is refused with the ABI's status, and so is every argument a guest can get
// wrong; nothing refused is stored.
func TestLimitsAndHostileArguments(t *testing.T) {
	backends(t, func(t *testing.T, store Store) {
		g := newGuest(t, store, "lim", smallLimits())
		key64, key65 := strings.Repeat("k", 64), strings.Repeat("k", 65)
		val1000, val1001 := strings.Repeat("v", 1000), strings.Repeat("v", 1001)
		for _, c := range []struct {
			name string
			got  int64
			want int32
		}{
			{"set key at max_key", g.set(key64, "x", 0), pluginabi.OK},
			{"set key over max_key", g.set(key65, "x", 0), pluginabi.ErrBadArgument},
			{"set empty key", g.set("", "x", 0), pluginabi.ErrBadArgument},
			{"set value at max_value", g.set("big", val1000, 0), pluginabi.OK},
			{"set value over max_value", g.set("big2", val1001, 0), pluginabi.ErrTooLarge},
			{"set negative ttl", g.set("neg", "x", -1), pluginabi.ErrBadArgument},
			{"set ttl beyond a Duration", g.set("huge", "x", math.MaxInt64), pluginabi.ErrBadArgument},
			{"delete key over max_key", g.del(key65), pluginabi.ErrBadArgument},
			{"delete missing key", g.del("missing"), pluginabi.ErrNotFound},
			{"cas key over max_key", g.cas(key65, "", "x", CASOldAbsent), pluginabi.ErrBadArgument},
			{"cas unknown flag", g.cas("c", "", "x", 1<<2), pluginabi.ErrBadArgument},
			{"cas new value over max_value", g.cas("c", "", val1001, CASOldAbsent), pluginabi.ErrTooLarge},
			{"cas on a different value", g.cas("big", "not it", "x", 0), pluginabi.ErrConflict},
			{"cas absent on a present key", g.cas("big", "", "x", CASOldAbsent), pluginabi.ErrConflict},
		} {
			if c.got != status(c.want) {
				t.Errorf("%s: %s, want %s", c.name, pluginabi.StatusText(int32(c.got)), pluginabi.StatusText(c.want))
			}
		}
		for _, k := range []string{key65, "", "big2", "neg", "huge", "c"} {
			if k == "" || k == key65 {
				continue
			}
			if got := g.get(k); got != "ERR_NOT_FOUND" {
				t.Errorf("refused write of %q was stored: %q", k, got)
			}
		}
		if got := g.get(key65); got != "ERR_BAD_ARGUMENT" {
			t.Errorf("get of a key over max_key: %s", got)
		}

		// get with a buffer too small: the length, and nothing written.
		k, kn := g.write(offKey, []byte("big"))
		g.write(offBuf, []byte("untouched"))
		if r := g.call("get", k, kn, offBuf, 999); r != 1000 {
			t.Errorf("get with a 999-byte buffer = %d, want the length 1000", r)
		}
		if got := string(g.read(offBuf, 9)); got != "untouched" {
			t.Errorf("get wrote %q into a buffer too small", got)
		}

		// list: a prefix over max_key is refused; a buffer that holds no key is
		// ERR_TOO_LARGE; one that holds one key at a time still pages through all.
		p, pn := g.write(offKey, []byte(key65))
		if r := g.call("list", p, pn, 0, 0, offBuf, 4096); r != status(pluginabi.ErrBadArgument) {
			t.Errorf("list with a prefix over max_key = %d", r)
		}
		if r := g.call("list", 0, 0, 0, 0, offBuf, 3); r != status(pluginabi.ErrTooLarge) {
			t.Errorf("list into 3 bytes = %d", r)
		}
		if got := g.list("", 4+64); len(got) != 2 || got[0] != "big" || got[1] != key64 {
			t.Errorf("paging one key at a time: %q", got)
		}

		// The quota: the app's key and value bytes. A write over it is refused and
		// frees nothing; a delete makes room again.
		q := newGuest(t, store, "quota", smallLimits())
		n := 0
		for ; n < 100; n++ {
			rc := q.set(fmt.Sprintf("q%02d", n), val1000[:500], 0)
			if rc == status(pluginabi.ErrQuota) {
				break
			}
			if rc != 0 {
				t.Fatalf("set q%02d: %s", n, pluginabi.StatusText(int32(rc)))
			}
		}
		if n == 0 || n == 100 || n*503 > 4096 {
			t.Fatalf("%d writes of 503 bytes fit a 4096-byte quota", n)
		}
		if rc := q.cas("q00", val1000[:500], val1000, 0); rc != status(pluginabi.ErrQuota) {
			t.Errorf("cas growing past the quota: %s", pluginabi.StatusText(int32(rc)))
		}
		if rc := q.del("q00"); rc != 0 {
			t.Fatal(rc)
		}
		if rc := q.set("again", val1000[:400], 0); rc != 0 {
			t.Errorf("after a delete the quota has no room: %s", pluginabi.StatusText(int32(rc)))
		}
	})
}

// TestRegionsOutsideMemoryTrap: a pointer or length that leaves guest memory, in any
// argument of any function, traps (costing only the instance) instead of reading
// or writing host memory, and stores nothing.
func TestRegionsOutsideMemoryTrap(t *testing.T) {
	backends(t, func(t *testing.T, store Store) {
		g := newGuest(t, store, "trap", smallLimits())
		k, kn := g.write(offKey, []byte("key"))
		v, vn := g.write(offVal, []byte("value"))
		const end = memSize
		bad := [][2]uint64{{end, 1}, {end - 1, 2}, {math.MaxUint32, 2}, {0, memSize + 1}}
		calls := map[string]func(p, n uint64) []uint64{
			"get key":     func(p, n uint64) []uint64 { return []uint64{p, n, offBuf, 16} },
			"get buf":     func(p, n uint64) []uint64 { return []uint64{k, kn, p, n} },
			"set key":     func(p, n uint64) []uint64 { return []uint64{p, n, v, vn, 0} },
			"set value":   func(p, n uint64) []uint64 { return []uint64{k, kn, p, n, 0} },
			"delete key":  func(p, n uint64) []uint64 { return []uint64{p, n} },
			"cas key":     func(p, n uint64) []uint64 { return []uint64{p, n, 0, 0, v, vn, CASOldAbsent, 0} },
			"cas old":     func(p, n uint64) []uint64 { return []uint64{k, kn, p, n, v, vn, 0, 0} },
			"cas new":     func(p, n uint64) []uint64 { return []uint64{k, kn, 0, 0, p, n, CASOldAbsent, 0} },
			"list prefix": func(p, n uint64) []uint64 { return []uint64{p, n, 0, 0, offBuf, 64} },
			"list after":  func(p, n uint64) []uint64 { return []uint64{0, 0, p, n, offBuf, 64} },
			"list buffer": func(p, n uint64) []uint64 { return []uint64{0, 0, 0, 0, p, n} },
		}
		for what, args := range calls {
			fn, _, _ := strings.Cut(what, " ")
			for _, r := range bad {
				func() {
					defer func() {
						p := recover()
						var abiErr *plugins.ABIError
						if err, ok := p.(error); !ok || !errors.As(err, &abiErr) {
							t.Errorf("%s (%d, %d): %v, want a trap", what, r[0], r[1], p)
						}
					}()
					g.call(fn, args(r[0], r[1])...)
				}()
			}
		}
		if got := g.get("key"); got != "ERR_NOT_FOUND" {
			t.Errorf("a trapped call stored something: %q", got)
		}
	})
}

// TestConcurrentCompareAndSwap: instances of one app incrementing one counter with
// get + cas lose no increment; another app's counter of the same name is untouched.
func TestConcurrentCompareAndSwap(t *testing.T) {
	backends(t, func(t *testing.T, store Store) {
		const workers, each = 6, 40
		other := newGuest(t, store, "other", smallLimits())
		if rc := other.set("n", "untouched", 0); rc != 0 {
			t.Fatal(rc)
		}
		gs := make([]*guest, workers)
		for i := range gs {
			gs[i] = newGuest(t, store, "counter", smallLimits())
		}
		var wg sync.WaitGroup
		errs := make(chan string, workers)
		for _, g := range gs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					for attempt := 0; ; attempt++ {
						if attempt > 10000 {
							errs <- "no progress"
							return
						}
						cur := g.get("n")
						var rc int64
						if cur == "ERR_NOT_FOUND" {
							rc = g.cas("n", "", "1", CASOldAbsent)
						} else {
							v, err := strconv.Atoi(cur)
							if err != nil {
								errs <- "read " + cur
								return
							}
							rc = g.cas("n", cur, strconv.Itoa(v+1), 0)
						}
						if rc == 0 {
							break
						}
						if rc != status(pluginabi.ErrConflict) {
							errs <- pluginabi.StatusText(int32(rc))
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		if got := gs[0].get("n"); got != strconv.Itoa(workers*each) {
			t.Errorf("counter = %s, want %d", got, workers*each)
		}
		if got := other.get("n"); got != "untouched" {
			t.Errorf("the other app's key = %q", got)
		}
	})
}

// TestExpiry: an entry with a TTL is invisible once it passed, in get and list, and
// its bytes return to the quota.
func TestExpiry(t *testing.T) {
	backends(t, func(t *testing.T, store Store) {
		g := newGuest(t, store, "ttl", smallLimits())
		big := strings.Repeat("v", 1000)
		for i := range 3 {
			if rc := g.set(fmt.Sprintf("t%d", i), big, 50); rc != 0 {
				t.Fatal(rc)
			}
		}
		if rc := g.set("keep", "x", 0); rc != 0 {
			t.Fatal(rc)
		}
		deadline := time.Now().Add(10 * time.Second)
		for g.get("t0") != "ERR_NOT_FOUND" || g.get("t1") != "ERR_NOT_FOUND" || g.get("t2") != "ERR_NOT_FOUND" {
			if time.Now().After(deadline) {
				t.Fatal("an entry with a 50 ms TTL is still there after 10 s")
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := g.list("", 4096); len(got) != 1 || got[0] != "keep" {
			t.Errorf("list after expiry: %q", got)
		}
		if b, ok := store.(*Bolt); ok {
			if err := b.Sweep(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 3 {
			if rc := g.set(fmt.Sprintf("n%d", i), big, 0); rc != 0 {
				t.Errorf("the expired entries' bytes did not return to the quota: %s", pluginabi.StatusText(int32(rc)))
			}
		}
	})
}

// TestBoltPersistsAcrossReopen: what an app stored, its usage included, is there
// after the file is closed and opened again (a restart); expiry times too.
func TestBoltPersistsAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	g := newGuest(t, b, "app", smallLimits())
	for i := range 4 {
		if rc := g.set(fmt.Sprintf("k%d", i), strings.Repeat("v", 1000), 0); rc != 0 {
			t.Fatal(rc)
		}
	}
	if rc := g.set("bin", "\x00\xff\x00", 0); rc != 0 {
		t.Fatal(rc)
	}
	if rc := g.set("ttl", "x", 3_600_000); rc != 0 {
		t.Fatal(rc)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	g2 := newGuest(t, b2, "app", smallLimits())
	if got := g2.get("bin"); got != "\x00\xff\x00" {
		t.Errorf("binary value after reopen: %q", got)
	}
	if got := g2.get("ttl"); got != "x" {
		t.Errorf("value with a TTL after reopen: %q", got)
	}
	if got := g2.list("k", 4096); len(got) != 4 {
		t.Errorf("keys after reopen: %q", got)
	}
	// 4 × 1002 + 6 + 4 bytes are in use: another 1000-byte value is over 4096.
	if rc := g2.set("k4", strings.Repeat("v", 1000), 0); rc != status(pluginabi.ErrQuota) {
		t.Errorf("usage was not kept across reopen: a write over the quota got %s", pluginabi.StatusText(int32(rc)))
	}
}

// TestBoltFileInUse: a second open of a file in use fails after about a second,
// naming the file and the way to share state, instead of hanging.
func TestBoltFileInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	start := time.Now()
	b2, err := OpenBolt(path)
	if err == nil {
		b2.Close()
		t.Fatal("opened a bbolt file that is in use")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "Redis") {
		t.Errorf("error %v does not name the file and the shared backend", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v to give up", d)
	}
}

// Both backends report each app's usage (key and value bytes) on their own:
// writes add, overwrites replace, deletes take away, another app is apart.
func TestUsagePerApp(t *testing.T) {
	backends(t, func(t *testing.T, store Store) {
		ctx := context.Background()
		u, ok := store.(UsageStore)
		if !ok {
			t.Fatal("the backend reports no usage")
		}
		usage := func(app string) int64 {
			t.Helper()
			n, err := u.Usage(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := usage("nobody"); n != 0 {
			t.Errorf("an app with no data: %d", n)
		}
		if err := store.Set(ctx, "a", "key", []byte("12345"), 0, Quota{}); err != nil {
			t.Fatal(err)
		}
		if err := store.Set(ctx, "a", "k2", []byte("x"), 0, Quota{}); err != nil {
			t.Fatal(err)
		}
		if err := store.Set(ctx, "b", "key", []byte("1"), 0, Quota{}); err != nil {
			t.Fatal(err)
		}
		if n := usage("a"); n != 3+5+2+1 {
			t.Errorf("a: %d, want 11", n)
		}
		if err := store.Set(ctx, "a", "key", []byte("1"), 0, Quota{}); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Delete(ctx, "a", "k2"); err != nil {
			t.Fatal(err)
		}
		if a, b := usage("a"), usage("b"); a != 4 || b != 4 {
			t.Errorf("a %d, b %d; want 4 and 4", a, b)
		}
	})
}

// TestGroupQuota: the apps of a group (a hosting tenant's namespace "acme_")
// share group_max_bytes: spreading keys over two apps, sequentially or from
// both apps at once, never passes it; a refused write loses nothing stored; a
// delete in one app makes room for the other; an app of another group (or a
// name that only looks alike) is not counted; an app cannot join a group its
// name is not in.
func TestGroupQuota(t *testing.T) {
	backends(t, func(t *testing.T, store Store) {
		sec := func() plugins.Section {
			return plugins.Section{"max_key": 64, "max_value": 1000, "max_bytes": 4096, "group": "acme_", "group_max_bytes": 4096}
		}
		a := newGuest(t, store, "acme_a", sec())
		b := newGuest(t, store, "acme_b", sec())
		val := strings.Repeat("v", 500)
		// Both apps at once: 2 × 10 writes of 503 bytes against 4096 together.
		var wg sync.WaitGroup
		ok := make([]int, 2)
		for i, g := range []*guest{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range 10 {
					switch rc := g.set(fmt.Sprintf("k%02d", n), val, 0); rc {
					case 0:
						ok[i]++
					case status(pluginabi.ErrQuota):
					default:
						t.Errorf("set: %s", pluginabi.StatusText(int32(rc)))
					}
				}
			}()
		}
		wg.Wait()
		if total := (ok[0] + ok[1]) * 503; total > 4096 || ok[0]+ok[1] < 8 {
			t.Fatalf("apps a and b stored %d and %d values of 503 bytes against a group quota of 4096", ok[0], ok[1])
		}
		// Nothing stored was lost by the refusals.
		for i, g := range []*guest{a, b} {
			if got := g.list("k", 4096); len(got) != ok[i] {
				t.Errorf("app %d lists %d keys, stored %d", i, len(got), ok[i])
			}
			for _, k := range g.list("k", 4096) {
				if g.get(k) != val {
					t.Errorf("app %d key %s lost its value", i, k)
				}
			}
		}
		// A CAS growing a value is refused too; shrinking is allowed.
		if rc := a.set("grow", strings.Repeat("g", 900), 0); rc != status(pluginabi.ErrQuota) {
			t.Errorf("a's write over the group's quota: %s", pluginabi.StatusText(int32(rc)))
		}
		// Another tenant's app and a look-alike name are not counted.
		other := newGuest(t, store, "beta_a", plugins.Section{"max_bytes": 4096, "group": "beta_", "group_max_bytes": 4096})
		alike := newGuest(t, store, "acmex_a", plugins.Section{"max_bytes": 4096, "group": "acmex_", "group_max_bytes": 4096})
		for _, g := range []*guest{other, alike} {
			if rc := g.set("k", strings.Repeat("o", 900), 0); rc != 0 {
				t.Errorf("another group's write: %s", pluginabi.StatusText(int32(rc)))
			}
		}
		// A delete in b makes room in a.
		keys := b.list("k", 4096)
		if len(keys) == 0 {
			keys = a.list("k", 4096)
		}
		for _, k := range keys[:1] {
			if rc := b.del(k); rc != 0 {
				if rc = a.del(k); rc != 0 {
					t.Fatal(rc)
				}
			}
		}
		if rc := a.set("room", strings.Repeat("r", 400), 0); rc != 0 {
			t.Errorf("after a delete in the group: %s", pluginabi.StatusText(int32(rc)))
		}
		// An app cannot put itself in a group its name is not in.
		_, err := New(Options{Store: store}).Open(context.Background(), plugins.AppInfo{Name: "evil", Config: sec(), Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			t.Error("app evil opened with group acme_")
		}
	})
}
