package plugins_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/plugins"
	plugconfig "github.com/wasmsrv/wasmsrv/plugins/config"
	plughttp "github.com/wasmsrv/wasmsrv/plugins/http"
	"github.com/wasmsrv/wasmsrv/plugins/kv"
	pluglog "github.com/wasmsrv/wasmsrv/plugins/log"
	"github.com/wasmsrv/wasmsrv/plugins/pubsub"
	"github.com/wasmsrv/wasmsrv/plugins/sockets"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// The engine is shared by the test binary: compiling a Go guest takes most of a second.
var (
	engineOnce sync.Once
	testEngine *runtime.Engine
)

func engine(t testing.TB) *runtime.Engine {
	engineOnce.Do(func() {
		e, err := runtime.NewEngine(context.Background(), runtime.EngineConfig{CacheDir: "-"}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		testEngine = e
	})
	return testEngine
}

func buildCache() string { return testkit.BuildCache() }

// testRegistry returns the standard plugins with kv in a fresh bbolt file (or path).
func testRegistry(t testing.TB, kvPath string, redisURL string) *registry.Registry {
	t.Helper()
	return wrappedRegistry(t, kvPath, redisURL, nil)
}

// wrappedRegistry is testRegistry with every plugin passed through wrap (nil: as
// they are), for a test that decorates some.
func wrappedRegistry(t testing.TB, kvPath string, redisURL string, wrap func(plugins.Plugin) plugins.Plugin) *registry.Registry {
	t.Helper()
	if kvPath == "" {
		kvPath = filepath.Join(t.TempDir(), "kv.db")
	}
	ps := []plugins.Plugin{pluglog.New(), plugconfig.New(),
		kv.New(kv.Options{Path: kvPath, RedisURL: redisURL}), pubsub.New(pubsub.Options{RedisURL: redisURL}), plughttp.New(),
		sockets.New(sockets.Options{})}
	if wrap != nil {
		for i, p := range ps {
			ps[i] = wrap(p)
		}
	}
	reg, err := registry.New(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

type logBuf = testkit.LogBuffer

type served struct {
	url string
	log *logBuf
}

// serve opens the guest package dir as app name with grants and serves it until the
// test ends.
func serve(t testing.TB, reg *registry.Registry, name, dir string, grants registry.Grants, workers int) *served {
	t.Helper()
	return serveMode(t, reg, name, dir, "", grants, workers)
}

// serveMode is serve with the shape a package dir is built for ("" or "async").
func serveMode(t testing.TB, reg *registry.Registry, name, dir, mode string, grants registry.Grants, workers int) *served {
	t.Helper()
	lb := &logBuf{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app, err := apps.Open(context.Background(), engine(t), apps.Spec{
		Name: name, Source: dir, BuildCacheDir: buildCache(), Mode: testkit.Mode(t, mode),
		Pool:    runtime.PoolConfig{Workers: workers},
		Plugins: reg, Grants: grants,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.Handler)
	t.Cleanup(func() {
		srv.Close()
		_ = app.Close(context.Background())
	})
	return &served{url: srv.URL, log: lb}
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func want(t testing.TB, url, body string) {
	t.Helper()
	if _, got := get(t, url); got != body {
		t.Fatalf("GET %s = %q, want %q", url, got, body)
	}
}

const guest = "internal/testguest"

func allGrants() registry.Grants {
	return registry.Grants{"kv": nil, "pubsub": nil, "http": nil, "config": plugins.Section{"vars": map[string]string{"greeting": "hi"}}}
}

func TestUngrantedImportFailsAtLoad(t *testing.T) {
	reg := testRegistry(t, "", "")
	defer reg.Close()
	_, err := apps.Open(context.Background(), engine(t), apps.Spec{
		Name: "tenant-a", Source: "../samples/counter", BuildCacheDir: buildCache(),
		Plugins: reg, Grants: registry.Grants{"http": nil},
	}, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("counter loaded without the kv grant")
	}
	for _, s := range []string{"tenant-a", "wasmsrv_kv", "not granted"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	// A grant of a plugin this build does not have is refused by name too.
	_, err = reg.Open(context.Background(), "tenant-a", registry.Grants{"nosuch": nil}, nil)
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) || !strings.Contains(err.Error(), "tenant-a") {
		t.Fatalf("unknown grant: %v", err)
	}
}

func TestKVOperationsLimitsAndIsolation(t *testing.T) {
	reg := testRegistry(t, "", "")
	defer reg.Close()
	grants := allGrants()
	grants["kv"] = plugins.Section{"max_value": 100, "max_bytes": 1000}
	a := serve(t, reg, "app-a", guest, grants, 1)
	b := serve(t, reg, "app-b", guest, allGrants(), 1)

	want(t, a.url+"/kv/set?k=user:1&v=ann", "ok")
	want(t, a.url+"/kv/set?k=user:2&v=bob", "ok")
	want(t, a.url+"/kv/set?k=other&v=x", "ok")
	want(t, a.url+"/kv/get?k=user:1", "ann")
	want(t, a.url+"/kv/list?p=user:", "user:1,user:2")
	want(t, a.url+"/kv/list?p=", "other,user:1,user:2")
	want(t, a.url+"/kv/del?k=user:2", "ok")
	want(t, a.url+"/kv/del?k=user:2", "ERR_NOT_FOUND")
	want(t, a.url+"/kv/get?k=nope", "ERR_NOT_FOUND")

	// Tenant isolation: app B sees none of A's keys, even by the same names.
	want(t, b.url+"/kv/get?k=user:1", "ERR_NOT_FOUND")
	want(t, b.url+"/kv/list?p=", "")
	want(t, b.url+"/kv/set?k=user:1&v=eve", "ok")
	want(t, a.url+"/kv/get?k=user:1", "ann")

	// Limits: value size, then the app's total.
	want(t, a.url+"/kv/setsize?k=big&n=101", "ERR_TOO_LARGE")
	for i := 0; i < 9; i++ {
		want(t, a.url+fmt.Sprintf("/kv/setsize?k=fill%d&n=95", i), "ok")
	}
	want(t, a.url+"/kv/setsize?k=fill9&n=95", "ERR_QUOTA")
	want(t, a.url+"/kv/del?k=fill0", "ok")
	want(t, a.url+"/kv/setsize?k=fill9&n=95", "ok")
	// An over-long key is the guest's problem, reported as a bad argument.
	want(t, a.url+"/kv/get?k="+strings.Repeat("k", 600), "ERR_BAD_ARGUMENT")
}

func TestKVSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kv.db")
	for _, wantN := range []string{"1\n", "2\n", "3\n"} {
		reg := testRegistry(t, path, "")
		s := serve(t, reg, "counter", "../samples/counter", registry.Grants{"kv": nil}, 1)
		want(t, s.url+"/", wantN)
		// Closing the registry closes the bbolt file, as a stopping wasmsrv does,
		// so the next round opens it afresh like a restarted process.
		if err := reg.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestKVCompareAndSwapUnderConcurrency(t *testing.T) {
	reg := testRegistry(t, "", "")
	defer reg.Close()
	s := serve(t, reg, "cas", guest, allGrants(), 4)
	const n = 200
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if code, body := get(t, s.url+"/kv/incr?k=c"); code != 200 {
				t.Errorf("incr: %d %s", code, body)
			}
		}()
	}
	wg.Wait()
	want(t, s.url+"/kv/get?k=c", fmt.Sprint(n))
}

func TestConfigAndLog(t *testing.T) {
	reg := testRegistry(t, "", "")
	defer reg.Close()
	t.Setenv("WASMSRV_TEST_SECRET", "s3cret")
	grants := allGrants()
	grants["config"] = plugins.Section{"vars": map[string]string{"greeting": "hi"}, "secrets": map[string]string{"token": "env:WASMSRV_TEST_SECRET"}}
	s := serve(t, reg, "cfg", guest, grants, 1)
	want(t, s.url+"/config?k=greeting", "hi")
	want(t, s.url+"/config?k=token", "s3cret")
	want(t, s.url+"/config?k=missing", "ERR_NOT_FOUND")
	want(t, s.url+"/config", "greeting,token")
	want(t, s.url+"/log?msg=hello+from+guest", "ok")
	l := s.log.String()
	for _, w := range []string{"msg=\"hello from guest\"", "app=cfg", "who=guest", "guest_app=spoofed", "request_id="} {
		if !strings.Contains(l, w) {
			t.Errorf("log lacks %q:\n%s", w, l)
		}
	}
}
