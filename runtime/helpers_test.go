package runtime

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// buildGuest builds a Go guest package (relative to this package), or skips the
// test when no Go toolchain is around.
func buildGuest(t testing.TB, dir string) []byte { return testkit.Guest(t, dir) }

// testLog collects log output so tests can assert on what operators would see.
type testLog struct{ testkit.LogBuffer }

func (l *testLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// engines are shared per test binary: compiling a Go guest takes most of a second.
var (
	engineOnce sync.Once
	testEngine *Engine
)

func engine(t testing.TB) *Engine {
	engineOnce.Do(func() {
		e, err := NewEngine(context.Background(), EngineConfig{CacheDir: "-"}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		testEngine = e
	})
	return testEngine
}

// fakeExchange is an in-memory request for pool tests (the host package tests the
// real HTTP side).
type fakeExchange struct {
	head    []byte
	body    io.Reader
	status  int32
	headers []abi.Header
	out     bytes.Buffer
	writes  int
	ended   bool
	aborted atomic.Bool
	abortCh chan struct{}
}

func newFakeExchange(method, path, query string, body io.Reader) *fakeExchange {
	var enc abi.HeadEncoder
	enc.Reset(abi.KindHTTP, 1, 1, 0, -1)
	for _, f := range []string{method, "http", path, query, "", "test.local", "127.0.0.1:1234", "127.0.0.1:80", "t1"} {
		enc.Field(f)
	}
	enc.Header("host", "test.local")
	if body == nil {
		body = strings.NewReader("")
	}
	return &fakeExchange{head: bytes.Clone(enc.Bytes()), body: body, abortCh: make(chan struct{})}
}

func (f *fakeExchange) Head() []byte { return f.head }

func (f *fakeExchange) ReadBody(p []byte) (int, bool, int32) {
	n, err := f.body.Read(p)
	if err == io.EOF {
		return n, true, abi.OK
	}
	if err != nil {
		if f.aborted.Load() {
			return 0, false, abi.ErrTimeout
		}
		return 0, false, abi.ErrClosed
	}
	return n, false, abi.OK
}

func (f *fakeExchange) Start(status int32, block []byte) int32 {
	hs, err := abi.DecodeHeaderBlock(string(block), nil)
	if err != nil {
		return abi.ErrBadArgument
	}
	f.status, f.headers = status, hs
	return abi.OK
}

func (f *fakeExchange) Write(p []byte, flags int32) int32 {
	if f.ended {
		return abi.ErrState
	}
	f.out.Write(p)
	f.writes++
	f.ended = flags&abi.WriteEnd != 0
	return abi.OK
}

func (f *fakeExchange) Disconnected() bool { return f.aborted.Load() }

func (f *fakeExchange) Abort() {
	if f.aborted.CompareAndSwap(false, true) {
		close(f.abortCh)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
