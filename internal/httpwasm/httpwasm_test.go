package httpwasm

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// probe is testdata/probe.wat: one guest whose config letter picks what it does.
func probe(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/probe.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type fixture struct {
	h    *Handler
	pool *runtime.SyncPool
	logs *testkit.LogBuffer
}

// open loads the probe with config and returns its handler.
func open(t *testing.T, config string, cfg Config, pcfg runtime.PoolConfig) *fixture {
	t.Helper()
	ctx := context.Background()
	logs := &testkit.LogBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(ctx) })
	app, err := eng.Load(ctx, runtime.AppConfig{Name: "probe", Wasm: probe(t), Logger: log,
		MemoryLimit: 4 << 20,
		HostModules: []runtime.HostModule{Module(ModuleOptions{Config: []byte(config), Log: log})}})
	if err != nil {
		t.Fatal(err)
	}
	if app.Info().Mode != runtime.ModeHTTPWasm {
		t.Fatalf("mode %s, want http-wasm", app.Info().Mode)
	}
	if pcfg.Workers == 0 {
		pcfg.Workers = 1
	}
	pool, err := runtime.NewSyncPool(ctx, app, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pool.Close(ctx)
		_ = app.Close(ctx)
	})
	return &fixture{h: New(pool, cfg, log), pool: pool, logs: logs}
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// next is a target that reports what it received.
func next(t *testing.T, got *http.Request, body *string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*got = *r.Clone(context.Background())
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("next: reading the body: %v", err)
		}
		*body = string(b)
		w.Header().Set("X-Next", "1")
		_, _ = io.WriteString(w, "from next")
	})
}

func TestRequestFacts(t *testing.T) { // get_method, get_uri, get_protocol_version, get_source_addr, set_header_value
	f := open(t, "r", Config{}, runtime.PoolConfig{})
	srv := serve(t, f.h)
	resp, _ := get(t, srv.URL+"/a%20b/c?q=1&r=%26")
	for k, want := range map[string]string{
		"X-Method": "GET", "X-Uri": "/a%20b/c?q=1&r=%26", "X-Proto": "HTTP/1.1",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if src := resp.Header.Get("X-Source"); !strings.HasPrefix(src, "127.0.0.1:") {
		t.Errorf("X-Source = %q, want 127.0.0.1:port", src)
	}
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want the default 200 of a guest that answered", resp.StatusCode)
	}
}

func TestHeaderNames(t *testing.T) { // get_header_names: lower case, NUL-terminated, count
	f := open(t, "n", Config{}, runtime.PoolConfig{})
	srv := serve(t, f.h)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("X-One", "1")
	req.Header.Set("Accept", "a")
	resp, body := do(t, req)
	names := strings.Split(body, "\x00")
	if names[len(names)-1] != "" {
		t.Fatalf("names %q are not NUL-terminated", body)
	}
	names = names[:len(names)-1]
	if resp.StatusCode != 200+len(names) {
		t.Errorf("count %d (status-200), names %q", resp.StatusCode-200, names)
	}
	for _, want := range []string{"host", "x-one", "accept", "user-agent"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("names %q lack %q", names, want)
		}
	}
}

func TestHeaderValues(t *testing.T) { // get_header_values, a buf_limit too small writes nothing
	f := open(t, "v", Config{}, runtime.PoolConfig{})
	srv := serve(t, f.h)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Add("Accept", "text/html")
	req.Header.Add("accept", "a=b")
	resp, body := do(t, req)
	if resp.StatusCode != 202 || body != "text/html\x00a=b\x00" {
		t.Errorf("status %d body %q, want 202 and both values NUL-terminated", resp.StatusCode, body)
	}
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Del("Accept")
	resp, body = do(t, req)
	if resp.StatusCode != 200 || body != "" {
		t.Errorf("absent header: status %d body %q, want 200 and nothing", resp.StatusCode, body)
	}
}

func TestRequestChanges(t *testing.T) { // set_method, set_uri, set/add/remove request headers, Host, response header before next
	f := open(t, "m", Config{}, runtime.PoolConfig{})
	var got http.Request
	var body string
	srv := serve(t, f.h.Wrap(next(t, &got, &body)))
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/old?gone=1", nil)
	req.Header.Set("X-Remove", "x")
	req.Header.Set("X-Set", "old")
	resp, rbody := do(t, req)
	if got.Method != "PATCH" || got.URL.Path != "/new/path" || got.URL.RawQuery != "x=1" || got.RequestURI != "/new/path?x=1" {
		t.Errorf("next saw %s %s (query %q, RequestURI %q)", got.Method, got.URL.Path, got.URL.RawQuery, got.RequestURI)
	}
	if got.Header.Get("X-Set") != "yes" || strings.Join(got.Header["X-Add"], ",") != "1,2" || got.Header.Get("X-Remove") != "" {
		t.Errorf("next saw headers %v", got.Header)
	}
	if got.Host != "rewritten.example" {
		t.Errorf("next saw Host %q", got.Host)
	}
	if resp.Header.Get("X-Early") != "yes" || resp.Header.Get("X-Next") != "1" || rbody != "from next" {
		t.Errorf("response %v %q", resp.Header, rbody)
	}
}

func TestEchoBody(t *testing.T) { // read_body in small pieces, write_body appends
	f := open(t, "e", Config{}, runtime.PoolConfig{})
	srv := serve(t, f.h)
	in := strings.Repeat("0123456789", 100)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(in))
	_, body := do(t, req)
	if body != in {
		t.Errorf("echo: %d bytes back, want %d", len(body), len(in))
	}
}

func TestBufferRequest(t *testing.T) { // feature_buffer_request: next reads what the guest read
	f := open(t, "b", Config{}, runtime.PoolConfig{})
	var got http.Request
	var body string
	srv := serve(t, f.h.Wrap(next(t, &got, &body)))
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("the whole body"))
	do(t, req)
	if body != "the whole body" {
		t.Errorf("next read %q", body)
	}
}

func TestUnbufferedReadConsumes(t *testing.T) { // without buffer_request, read bytes are gone
	f := open(t, "c", Config{}, runtime.PoolConfig{})
	var got http.Request
	var body string
	srv := serve(t, f.h.Wrap(next(t, &got, &body)))
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("abcdef"))
	do(t, req)
	if body != "def" {
		t.Errorf("next read %q, want the rest after 3 bytes", body)
	}
}

func TestWriteRequestBody(t *testing.T) { // write_body(request) replaces it
	f := open(t, "w", Config{}, runtime.PoolConfig{})
	var got http.Request
	var body string
	srv := serve(t, f.h.Wrap(next(t, &got, &body)))
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("original"))
	do(t, req)
	if body != "new-body" || got.ContentLength != 8 {
		t.Errorf("next read %q (length %d)", body, got.ContentLength)
	}
}

func TestBufferResponse(t *testing.T) { // feature_buffer_response, ctx, get/set_status_code, read/write_body(response)
	for _, op := range []string{"R", "I"} { // enabled per request; in the start function
		t.Run(op, func(t *testing.T) {
			f := open(t, op, Config{}, runtime.PoolConfig{})
			target := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Next", "1")
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, "not here")
			})
			srv := serve(t, f.h.Wrap(target))
			for range 3 { // the same instance, request after request
				resp, body := get(t, srv.URL)
				if resp.StatusCode != 405 || body != "wrapped:not here" || resp.Header.Get("X-Next") != "1" {
					t.Fatalf("status %d body %q headers %v", resp.StatusCode, body, resp.Header)
				}
				if resp.ContentLength != int64(len(body)) {
					t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(body))
				}
			}
		})
	}
}

func TestDefaultStatus(t *testing.T) {
	f := open(t, "d", Config{}, runtime.PoolConfig{})
	resp, _ := get(t, serve(t, f.h).URL)
	if resp.StatusCode != 404 {
		t.Errorf("status %d, want the default 404", resp.StatusCode)
	}
	f = open(t, "d", Config{DefaultStatus: 204}, runtime.PoolConfig{})
	resp, _ = get(t, serve(t, f.h).URL)
	if resp.StatusCode != 204 {
		t.Errorf("status %d, want the configured 204", resp.StatusCode)
	}
}

func TestConfigAndStatus(t *testing.T) { // get_config, set_status_code
	cfg := `k{"headers":{"X-A":"1"}}`
	f := open(t, cfg, Config{}, runtime.PoolConfig{})
	_, body := get(t, serve(t, f.h).URL)
	if body != cfg {
		t.Errorf("config %q, want %q", body, cfg)
	}
	f = open(t, "s", Config{}, runtime.PoolConfig{})
	resp, body := get(t, serve(t, f.h).URL)
	if resp.StatusCode != 418 || body != "teapot" {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
}

func TestLog(t *testing.T) { // log, log_enabled
	f := open(t, "l", Config{}, runtime.PoolConfig{})
	resp, _ := get(t, serve(t, f.h).URL)
	if resp.Header.Get("X-Log") != "1" || resp.Header.Get("X-Debug") != "0" {
		t.Errorf("log_enabled: info %q debug %q, want 1 and 0", resp.Header.Get("X-Log"), resp.Header.Get("X-Debug"))
	}
	if n := strings.Count(f.logs.String(), "guest says hi"); n != 1 {
		t.Errorf("logged %d times (level none must log nothing): %s", n, f.logs.String())
	}
}

func TestTrailers(t *testing.T) { // feature_trailers: a response trailer
	f := open(t, "T", Config{}, runtime.PoolConfig{})
	resp, body := get(t, serve(t, f.h).URL)
	if body != "new-body" || resp.Trailer.Get("X-Trailer") != "t1" {
		t.Errorf("body %q trailers %v", body, resp.Trailer)
	}
}

// TestContractErrors: what the specification says must fail fails, costing the
// request and the instance only.
func TestContractErrors(t *testing.T) {
	cases := []struct {
		op, why string
		status  int
		target  bool // as middleware
	}{
		{"t", "a trailer without feature_trailers", 500, false},
		{"A", "a request header changed after next", 500, true},
		{"S", "a status code that is not one", 500, false},
		{"x", "a buffer outside memory", 500, false},
		{"X", "a body length of 4 GiB", 500, false},
		{"y", "a name wrapping around the address space", 500, false},
		{"K", "an unknown header kind", 500, false},
		{"N", "an invalid header name", 500, false},
		{"z", "read_body with buf_limit 0", 500, false},
		{"u", "set_uri with a space", 500, false},
		{"M", "a guest growing memory until refused", 500, false},
		{"F", "a guest writing a body forever", 500, false},
		{"H", "a guest adding 32 KiB header values forever", 500, false},
		{"o", "a guest looping forever", 504, false},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			f := open(t, c.op, Config{BufferLimit: 1 << 20}, runtime.PoolConfig{RequestTimeout: 500 * time.Millisecond})
			var h http.Handler = f.h
			if c.target {
				h = f.h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "target") }))
			}
			srv := serve(t, h)
			for i := range 2 { // the replacement instance fails the same way
				resp, _ := get(t, srv.URL)
				if resp.StatusCode != c.status {
					t.Fatalf("%s: request %d got %d, want %d", c.why, i, resp.StatusCode, c.status)
				}
			}
			if st := f.pool.Stats(); st.Discarded != 2 {
				t.Errorf("%s: %d instances discarded, want 2", c.why, st.Discarded)
			}
		})
	}
}

func TestLiveResponseIsReadOnly(t *testing.T) {
	// Without buffer_response the next handler's response is out before
	// handle_response: changing it traps; the client has its answer.
	f := open(t, "L", Config{}, runtime.PoolConfig{})
	srv := serve(t, f.h.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "target") })))
	resp, body := get(t, srv.URL)
	if resp.StatusCode != 200 || body != "target" {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
	// Release runs after the response: wait for the discard, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for f.pool.Stats().Discarded != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if st := f.pool.Stats(); st.Discarded != 1 {
		t.Errorf("%d instances discarded, want 1", st.Discarded)
	}
	if !strings.Contains(f.logs.String(), "already sent") {
		t.Errorf("the log does not say why: %s", f.logs.String())
	}
}

func TestRequestFunctionOutsideRequest(t *testing.T) {
	// get_method in the start function: the instance cannot start.
	ctx := context.Background()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	app, err := eng.Load(ctx, runtime.AppConfig{Name: "probe", Wasm: probe(t),
		HostModules: []runtime.HostModule{Module(ModuleOptions{Config: []byte("G")})}})
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	_, err = runtime.NewSyncPool(ctx, app, runtime.PoolConfig{Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "outside a request") {
		t.Errorf("err = %v, want the start to fail naming the cause", err)
	}
}

func TestLoadWithoutHostModule(t *testing.T) {
	ctx := context.Background()
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	_, err = eng.Load(ctx, runtime.AppConfig{Name: "probe", Wasm: probe(t)})
	if !errors.Is(err, runtime.ErrHTTPWasmModule) || !errors.Is(err, runtime.ErrNotGuest) {
		t.Errorf("err = %v, want ErrHTTPWasmModule", err)
	}
}

func TestRequestTrailers(t *testing.T) { // header kind 2 with feature_trailers
	f := open(t, "P", Config{}, runtime.PoolConfig{})
	srv := serve(t, f.h)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, io.MultiReader(strings.NewReader("body")))
	req.ContentLength = -1 // chunked, so that trailers can follow
	req.Trailer = http.Header{"X-Trailer": {"rt"}}
	resp, body := do(t, req)
	if resp.StatusCode != 201 || body != "rt\x00" {
		t.Errorf("status %d body %q, want 201 and the trailer's value", resp.StatusCode, body)
	}
}

func TestBufferedResponseTrailers(t *testing.T) { // header kind 3 of a buffered response
	f := open(t, "Q", Config{}, runtime.PoolConfig{})
	target := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Trailer")
		_, _ = io.WriteString(w, "body:")
		w.Header().Set("X-Trailer", "from-target")
	})
	srv := serve(t, f.h.Wrap(target))
	resp, body := get(t, srv.URL)
	if body != "body:from-target\x00" || resp.Trailer.Get("X-Trailer") != "from-target" {
		t.Errorf("body %q trailers %v", body, resp.Trailer)
	}
}

// A guest built as a WASI command (TinyGo's -target=wasi): its _start runs once
// per instance, before any request; one that exits there cannot serve, and the
// error says so.
func TestCommandGuest(t *testing.T) {
	ctx := context.Background()
	wasm, err := os.ReadFile("testdata/command.wasm")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(ctx)
	load := func(config string) (*runtime.App, error) {
		return eng.Load(ctx, runtime.AppConfig{Name: "command", Wasm: wasm,
			HostModules: []runtime.HostModule{Module(ModuleOptions{Config: []byte(config)})}})
	}
	app, err := load("")
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	if !app.Info().RunsMain {
		t.Fatal("_start not recognised as the guest's main")
	}
	pool, err := runtime.NewSyncPool(ctx, app, runtime.PoolConfig{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close(ctx)
	_, body := get(t, serve(t, New(pool, Config{}, nil)).URL)
	if body != "ready" {
		t.Errorf("body %q", body)
	}

	exiting, err := load("exit")
	if err != nil {
		t.Fatal(err)
	}
	defer exiting.Close(ctx)
	_, err = runtime.NewSyncPool(ctx, exiting, runtime.PoolConfig{Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "_start") || !strings.Contains(err.Error(), "c-shared") {
		t.Errorf("err = %v, want the start to fail naming _start", err)
	}
}
