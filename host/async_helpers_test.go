package host

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// The WebSocket and async tests run real guests (host/testdata/wsapp, built with the
// SDK in both shapes) behind real gateways on loopback sockets.

var (
	wsEngineOnce sync.Once
	wsEngine     *runtime.Engine
	wsEngineErr  error
)

func testEngine(t testing.TB) *runtime.Engine {
	wsEngineOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "wasmsrv-test-cache", "wazero-host")
		wsEngine, wsEngineErr = runtime.NewEngine(context.Background(), runtime.EngineConfig{CacheDir: dir}, slog.New(slog.DiscardHandler))
	})
	if wsEngineErr != nil {
		t.Fatal(wsEngineErr)
	}
	return wsEngine
}

// buildWSApp builds the test guest for the given shape (cached by content).
func buildWSApp(t testing.TB, async bool) []byte {
	if async {
		return testkit.Guest(t, "testdata/wsapp", "wasmsrv_async")
	}
	return testkit.Guest(t, "testdata/wsapp")
}

// logBuf collects logs so tests can check what an operator would see.
type logBuf = testkit.LogBuffer

type asyncSetup struct {
	pool *runtime.AsyncPool
	gw   *AsyncGateway
	srv  *httptest.Server
	logs *logBuf
}

// startAsync serves the async test guest on a loopback server.
func startAsync(t testing.TB, pc runtime.PoolConfig, ac runtime.AsyncConfig, wc WSConfig) *asyncSetup {
	t.Helper()
	return serveAsync(t, "wsapp", buildWSApp(t, true), 256<<20, pc, ac,
		GatewayConfig{App: "wsapp", WebSocket: wc, BodyLimit: 1 << 20})
}

// serveAsync loads bin as app name (memLimit 0: the default) on an async pool
// and serves it through an async gateway on a loopback server, all closed at
// the end of the test.
func serveAsync(t testing.TB, name string, bin []byte, memLimit int64, pc runtime.PoolConfig, ac runtime.AsyncConfig, gc GatewayConfig) *asyncSetup {
	t.Helper()
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app, err := testEngine(t).Load(context.Background(), runtime.AppConfig{Name: name, Wasm: bin, Logger: log, MemoryLimit: memLimit})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := runtime.NewAsyncPool(context.Background(), app, pc, ac)
	if err != nil {
		_ = app.Close(context.Background())
		t.Fatal(err)
	}
	gw := NewAsyncGateway(pool, AsyncGatewayConfig{GatewayConfig: gc, RequestTimeout: pc.RequestTimeout}, log)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		gw.Close()
		srv.CloseClientConnections()
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pool.Close(ctx); err != nil {
			t.Errorf("pool close: %v", err)
		}
		_ = app.Close(context.Background())
	})
	return &asyncSetup{pool: pool, gw: gw, srv: srv, logs: logs}
}

// startSync serves the sync build of the test guest, with responses held as
// by wasmsrv run's default.
func startSync(t *testing.T, pc runtime.PoolConfig, wc WSConfig) (*runtime.SyncPool, *httptest.Server) {
	t.Helper()
	return startSyncWith(t, pc, GatewayConfig{App: "wsapp-sync", WebSocket: wc, ResponseBuffer: 256 << 10})
}

// startSyncWith serves the sync build of the test guest through a gateway
// configured by gc, all closed at the end of the test.
func startSyncWith(t *testing.T, pc runtime.PoolConfig, gc GatewayConfig) (*runtime.SyncPool, *httptest.Server) {
	t.Helper()
	bin := buildWSApp(t, false)
	log := slog.New(slog.DiscardHandler)
	app, err := testEngine(t).Load(context.Background(), runtime.AppConfig{Name: "wsapp-sync", Wasm: bin, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := runtime.NewSyncPool(context.Background(), app, pc)
	if err != nil {
		_ = app.Close(context.Background())
		t.Fatal(err)
	}
	gw := NewGateway(pool, gc, log)
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		gw.Close()
		srv.CloseClientConnections()
		srv.Close()
		// Let WebSocket guests see their sockets close and hand their instances
		// back before the pool closes (SyncPool.Close racing a late release is
		// flagged by the race detector).
		deadline := time.Now().Add(10 * time.Second)
		for st := pool.Stats(); st.Idle < st.Live && time.Now().Before(deadline); st = pool.Stats() {
			time.Sleep(10 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := pool.Close(ctx); err != nil {
			t.Errorf("pool close: %v", err)
		}
		_ = app.Close(context.Background())
	})
	return pool, srv
}

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp, b.String()
}

// slowGets starts n concurrent requests to /id?ms=800 on base; the returned
// func waits for them and counts their statuses.
func slowGets(t *testing.T, base string, n int) (wait func() map[int]int) {
	t.Helper()
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := http.Get(fmt.Sprintf("%s/id?ms=800&id=%d", base, i))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	return func() map[int]int {
		wg.Wait()
		close(codes)
		got := map[int]int{}
		for c := range codes {
			got[c]++
		}
		return got
	}
}

func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
