package plugins_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/plugins/kv"
)

// startRedis runs a private redis-server on a free loopback port for the test and
// returns its URL (testkit.StartRedis; Debian: apt-get install redis-server).
func startRedis(t testing.TB) string { return testkit.StartRedis(t).URL }

func TestRedisStore(t *testing.T) {
	url := startRedis(t)
	ctx := context.Background()
	s, err := kv.OpenRedis(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range []string{"b", "a:2", "a:1", "c"} {
		if err := s.Set(ctx, "app{x}", k, []byte("v"+k), 0, kv.Quota{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Set(ctx, "app{x}", "a:ttl", []byte("gone"), 50*time.Millisecond, kv.Quota{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(120 * time.Millisecond)
	keys, more, err := s.List(ctx, "app{x}", "a:", "", 10)
	if err != nil || more || strings.Join(keys, ",") != "a:1,a:2" {
		t.Fatalf("list = %v %v %v", keys, more, err)
	}
	keys, more, _ = s.List(ctx, "app{x}", "", "a:1", 2)
	if strings.Join(keys, ",") != "a:2,b" || !more {
		t.Fatalf("page = %v more=%v", keys, more)
	}
	// Another app (even one whose name looks like a key prefix) sees nothing.
	if _, ok, _ := s.Get(ctx, "app", "a:1"); ok {
		t.Fatal("namespace leak")
	}
	if keys, _, _ := s.List(ctx, "app{x}}:d:", "", "", 10); len(keys) != 0 {
		t.Fatalf("namespace leak via list: %v", keys)
	}
	// CAS and quota.
	if ok, _ := mustCAS(t, s, "a:1", "wrong", "x"); ok {
		t.Fatal("cas with a wrong old value succeeded")
	}
	if ok, _ := mustCAS(t, s, "a:1", "va:1", "x"); !ok {
		t.Fatal("cas failed")
	}
	if err := s.Set(ctx, "small", "k", make([]byte, 100), 0, kv.Quota{MaxBytes: 50}); err != kv.ErrQuota {
		t.Fatalf("quota: %v", err)
	}
}

func mustCAS(t *testing.T, s *kv.Redis, key, old, nv string) (bool, error) {
	ok, err := s.CAS(context.Background(), "app{x}", key, []byte(old), false, []byte(nv), false, 0, kv.Quota{})
	if err != nil {
		t.Fatal(err)
	}
	return ok, err
}

// wasmsrvBinary builds cmd/wasmsrv once per test run.
func wasmsrvBinary(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "wasmsrv")
	cmd := exec.Command("go", "build", "-o", out, "../cmd/wasmsrv")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// startNode runs `wasmsrv run` on a free port and returns its URL.
func startNode(t testing.TB, bin, wasm string, args ...string) string {
	t.Helper()
	return startNodeWith(t, nil, bin, wasm, args...)
}

// startNodeWith is startNode that also hands the command to got (to stop it early).
func startNodeWith(t testing.TB, got func(*exec.Cmd), bin, wasm string, args ...string) string {
	t.Helper()
	full := append([]string{"run", "--listen", "127.0.0.1:0", "--cache-dir", "-", "--access-log=false"}, args...)
	cmd := exec.Command(bin, append(full, wasm)...)
	if got != nil {
		got(cmd)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() {
		t.Fatalf("wasmsrv printed nothing: %v", sc.Err())
	}
	line := sc.Text()
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("unexpected first line %q", line)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	return strings.TrimSpace(line[i:])
}

func TestTwoNodesShareRedis(t *testing.T) {
	url := startRedis(t)
	bin := wasmsrvBinary(t)
	wasm, _, err := builder.Build(context.Background(), guest, builder.Options{CacheDir: buildCache()})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--grant", "kv,pubsub,config,http", "--redis-url", url, "--workers", "3"}
	n1 := startNode(t, bin, wasm, args...)
	n2 := startNode(t, bin, wasm, args...)

	want(t, n1+"/kv/set?k=shared&v=from-1", "ok")
	want(t, n2+"/kv/get?k=shared", "from-1")

	// CAS increments from both nodes, many instances each: the count is exact.
	const per = 60
	var wg sync.WaitGroup
	for _, n := range []string{n1, n2} {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per/4; i++ {
					if code, body := get(t, n+"/kv/incr?k=hits"); code != 200 {
						t.Errorf("incr: %d %s", code, body)
					}
				}
			}()
		}
	}
	wg.Wait()
	want(t, n1+"/kv/get?k=hits", fmt.Sprint(2*per))

	// A subscriber on node 1 receives what node 2 publishes.
	sub := subscriber(t, n1, "news", 2)
	want(t, n2+"/pub?t=news&m=one", "ok")
	want(t, n1+"/pub?t=news&m=two", "ok")
	got := []string{next(t, sub), next(t, sub)}
	if strings.Join(got, ",") != "one,two" {
		t.Fatalf("subscriber got %v", got)
	}
}

func redisInstalled() bool {
	_, err := exec.LookPath("redis-server")
	return err == nil
}
