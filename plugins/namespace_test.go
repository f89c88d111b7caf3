package plugins_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/plugins/kv"
	"github.com/wasmsrv/wasmsrv/plugins/pubsub"
)

// hostileNames are app names built to share a namespace: the pair that did (Redis
// kv hex-encoded "a:b" as "x613a62", a valid name of its own), names holding the
// separators and brackets of the backends' key layouts, the encodings' markers,
// the empty name, Unicode (composed and decomposed forms), NUL, case variants and
// length extremes. Store is an embedder's API, so it must keep them apart even
// though config and Registry.Open accept only the app name set.
func hostileNames() []string {
	return []string{
		"a:b", "x613a62", "x", "x61", "a", "A", "a-b", "a_b", "a.b",
		"a}", "{a}", "a}:d:", "a:d:b", "app{x}", "app{x}}:d:", "app", "a:b:c", "a\x00", "a\n",
		"~", "~61", "~613a62", "%61", "x7e", "",
		"é", "e\u0301", "\u202ea", "\xff",
		strings.Repeat("n", 64), strings.Repeat("n", 65), strings.Repeat("n", 4096),
	}
}

// TestKVNamespacesAreDisjoint gives every hostile name a secret and keys of its
// own in each backend, then checks that each name reads, lists and deletes only
// its own. A backend may refuse a name (bbolt: the empty one) with an error, never
// by sharing another's data.
func TestKVNamespacesAreDisjoint(t *testing.T) {
	ctx := context.Background()
	bolt, err := kv.OpenBolt(filepath.Join(t.TempDir(), "kv.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	stores := []struct {
		name string
		s    kv.Store
	}{{"bolt", bolt}}
	if redisInstalled() {
		r, err := kv.OpenRedis(ctx, startRedis(t))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		stores = append(stores, struct {
			name string
			s    kv.Store
		}{"redis", r})
	} else {
		t.Log("redis-server not installed: only the bbolt backend is checked")
	}
	names := hostileNames()
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			s := st.s
			refused := map[string]bool{}
			for i, n := range names {
				if err := s.Set(ctx, n, "secret", fmt.Appendf(nil, "secret of %d", i), 0, kv.Quota{}); err != nil {
					t.Logf("%s refuses app name %q: %v", st.name, n, err)
					refused[n] = true
					continue
				}
				for _, k := range []string{"k1", "k2", "i", "s", "u", "d:secret"} {
					if err := s.Set(ctx, n, fmt.Sprintf("%s-%d", k, i), []byte("v"), 0, kv.Quota{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if len(refused) > 1 || (len(refused) == 1 && !refused[""]) {
				t.Errorf("%s refused more than the empty name: %v", st.name, refused)
			}
			for i, n := range names {
				if refused[n] {
					continue
				}
				v, ok, err := s.Get(ctx, n, "secret")
				if err != nil || !ok || string(v) != fmt.Sprintf("secret of %d", i) {
					t.Errorf("app %q reads %q (ok=%v, err=%v), want its own secret", n, v, ok, err)
				}
				keys, more, err := s.List(ctx, n, "", "", 1000)
				if err != nil || more {
					t.Fatalf("list %q: %v more=%v", n, err, more)
				}
				want := []string{"secret"}
				for _, k := range []string{"k1", "k2", "i", "s", "u", "d:secret"} {
					want = append(want, fmt.Sprintf("%s-%d", k, i))
				}
				slices.Sort(want)
				if !slices.Equal(keys, want) {
					t.Errorf("app %q lists %q, want only its own %q", n, keys, want)
				}
			}
			// Deleting and swapping in one namespace leaves the others alone.
			if ok, err := s.Delete(ctx, "a:b", "secret"); err != nil || !ok {
				t.Fatalf("delete: %v %v", ok, err)
			}
			if swapped, err := s.CAS(ctx, "x613a62", "secret", nil, true, []byte("mine now"), false, 0, kv.Quota{}); err != nil || swapped {
				t.Errorf("x613a62's CAS on an absent key succeeded (%v, %v): its secret is gone", swapped, err)
			}
			if v, ok, _ := s.Get(ctx, "x613a62", "secret"); !ok || string(v) != fmt.Sprintf("secret of %d", slices.Index(names, "x613a62")) {
				t.Errorf("deleting a:b's secret changed x613a62's: %q %v", v, ok)
			}
		})
	}
}

// TestPubSubNamespacesAreDisjoint subscribes every hostile name to the same topics
// and publishes once per name: each subscriber gets its own app's messages only.
func TestPubSubNamespacesAreDisjoint(t *testing.T) {
	ctx := context.Background()
	brokers := []struct {
		name string
		b    pubsub.Broker
	}{{"local", pubsub.NewLocal()}}
	if redisInstalled() {
		r, err := pubsub.OpenRedis(ctx, startRedis(t))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		brokers = append(brokers, struct {
			name string
			b    pubsub.Broker
		}{"redis", r})
	}
	names := hostileNames()
	topics := []string{"t", "}:t", ":t", "{x}:t"}
	for _, br := range brokers {
		t.Run(br.name, func(t *testing.T) {
			var mu sync.Mutex
			got := map[string][]string{}
			fences := 0
			allFenced := make(chan struct{})
			for _, n := range names {
				for _, tp := range topics {
					unsub, err := br.b.Subscribe(n, tp, func(m []byte) {
						mu.Lock()
						defer mu.Unlock()
						if string(m) != "fence" {
							got[n+"\x00"+tp] = append(got[n+"\x00"+tp], string(m))
							return
						}
						if fences++; fences == len(names)*len(topics) {
							close(allFenced)
						}
					})
					if err != nil {
						t.Fatal(err)
					}
					defer unsub()
				}
			}
			// Every message, then a fence on every channel: a broker delivers a
			// channel's messages in order, so once each fence is in, every message
			// that was going to arrive anywhere has.
			for _, msg := range []func(n, tp string) string{
				func(n, tp string) string { return n + "|" + tp },
				func(string, string) string { return "fence" },
			} {
				for _, n := range names {
					for _, tp := range topics {
						if err := br.b.Publish(ctx, n, tp, []byte(msg(n, tp))); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			select {
			case <-allFenced:
			case <-time.After(30 * time.Second):
				t.Fatal("not every subscriber got its fence")
			}
			mu.Lock()
			defer mu.Unlock()
			for _, n := range names {
				for _, tp := range topics {
					if g := got[n+"\x00"+tp]; len(g) != 1 || g[0] != n+"|"+tp {
						t.Errorf("app %q topic %q got %q, want only its own message", n, tp, g)
					}
				}
			}
		})
	}
}

// TestNamesThroughTheBinary runs `wasmsrv run` against one Redis: the name that
// used to be hex-encoded into another app's namespace is refused at start, naming
// the flag and the allowed set, and two nodes with different names (one of them
// the other half of the old collision) keep their data apart, while two nodes with
// one name share it.
func TestNamesThroughTheBinary(t *testing.T) {
	if !redisInstalled() {
		t.Skip("redis-server not installed")
	}
	url := startRedis(t)
	bin := wasmsrvBinary(t)
	wasm, _, err := builder.Build(context.Background(), guest, builder.Options{CacheDir: buildCache()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a:b", "x}", "", "é"} {
		args := []string{"run", "--listen", "127.0.0.1:0", "--cache-dir", "-", "--grant", "kv", "--redis-url", url, "--name=" + name, wasm}
		if name == "" {
			// No --name: the default (the file name) must be checked too.
			odd := filepath.Join(t.TempDir(), "a:b.wasm")
			if err := os.Link(wasm, odd); err != nil {
				t.Fatal(err)
			}
			args = []string{"run", "--listen", "127.0.0.1:0", "--cache-dir", "-", odd}
		}
		out, err := exec.Command(bin, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "name:") || !strings.Contains(string(out), appname.Allowed) {
			t.Errorf("run --name %q: %v\n%s", name, err, out)
		}
	}
	// One compile cache for the three nodes (a later --cache-dir wins).
	common := []string{"--grant", "kv,pubsub,config,http", "--redis-url", url, "--workers", "1", "--cache-dir", t.TempDir()}
	x := startNode(t, bin, wasm, append([]string{"--name", "x613a62"}, common...)...)
	ab := startNode(t, bin, wasm, append([]string{"--name", "a-b"}, common...)...)
	x2 := startNode(t, bin, wasm, append([]string{"--name", "x613a62"}, common...)...)
	want(t, x+"/kv/set?k=secret&v=x-only", "ok")
	want(t, ab+"/kv/set?k=secret&v=ab-only", "ok")
	want(t, x2+"/kv/get?k=secret", "x-only")
	want(t, ab+"/kv/get?k=secret", "ab-only")
}
