package host

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestAsyncLifespan: a failing start hook keeps the app out of rotation with the
// guest's message; stop hooks run when instances retire (recycling and close).
func TestAsyncLifespan(t *testing.T) {
	bin := buildWSApp(t, true)
	logs := &logBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app, err := testEngine(t).Load(context.Background(), runtime.AppConfig{Name: "failing", Wasm: bin, Logger: log,
		Env: []string{"FAIL_START=1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(context.Background())
	if _, err := runtime.NewAsyncPool(context.Background(), app, runtime.PoolConfig{Workers: 2}, runtime.AsyncConfig{}); err == nil ||
		!strings.Contains(err.Error(), "start refused on purpose") {
		t.Fatalf("pool with a failing start hook: %v", err)
	}

	s := startAsync(t, runtime.PoolConfig{Workers: 2, MaxRequests: 5}, runtime.AsyncConfig{}, WSConfig{})
	for i := range 40 {
		resp, body := get(t, s.srv.URL+"/")
		if resp.StatusCode != 200 || body != "hello\n" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	waitUntil(t, "recycled instances replaced", 10*time.Second, func() bool {
		st := s.pool.Stats()
		return st.Recycled >= 4 && st.Live == 2
	})
	waitUntil(t, "stop hooks", 10*time.Second, func() bool { return strings.Count(s.logs.String(), "stop hook ran") >= 4 })
}
