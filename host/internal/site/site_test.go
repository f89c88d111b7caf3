package site

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wasmsrv/wasmsrv/host/internal/admin"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// backend is a real upstream: it names itself in every answer and echoes
// WebSocket messages.
func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ws" {
			conn, _, _, err := ws.UpgradeHTTP(r, w)
			if err != nil {
				return
			}
			defer conn.Close()
			for {
				msg, op, err := wsutil.ReadClientData(conn)
				if err != nil {
					return
				}
				wsutil.WriteServerMessage(conn, op, append([]byte(name+":"), msg...))
			}
		}
		w.Header().Set("X-Backend", name)
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "%s %s prefix=%s", name, r.URL.Path, r.Header.Get("X-Forwarded-Prefix"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

type fixture struct {
	dir, cfgPath string
	site         *Site
	url, admin   string
	cancel       context.CancelFunc
	done         chan error
}

func writeConfig(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start writes body (with {{A}}-style placeholders already filled) as the
// config and serves it.
func start(t *testing.T, body string, eng *runtime.Engine) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	os.MkdirAll(filepath.Join(f.dir, "www"), 0o755)
	os.WriteFile(filepath.Join(f.dir, "www", "index.html"), []byte("<h1>site</h1>"), 0o644)
	os.WriteFile(filepath.Join(f.dir, "www", "hello.txt"), []byte("hello file"), 0o644)
	f.cfgPath = filepath.Join(f.dir, "site.toml")
	writeConfig(t, f.cfgPath, body)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(ctx, Options{ConfigPath: f.cfgPath, Engine: eng, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	f.site, f.url, f.admin, f.cancel = s, s.URLs()[0], s.AdminURL(), cancel
	f.done = make(chan error, 1)
	go func() { f.done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-f.done:
		case <-time.After(10 * time.Second):
			t.Error("site did not stop")
		}
	})
	return f
}

func (f *fixture) reload(t *testing.T, body string) (int, string) {
	t.Helper()
	writeConfig(t, f.cfgPath, body)
	return adminPost(t, f.admin+"/reload")
}

// adminPost makes a change through the admin API, with the header changes need.
func adminPost(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(admin.ChangeHeader, "1")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1] // net/http sends req.Host, not a Host header field
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func get(t *testing.T, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return getWith(t, c, url, hdr...)
}

func getWith(t *testing.T, c *http.Client, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1] // net/http sends req.Host, not a Host header field
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const head = `
[admin]
addr = "127.0.0.1:0"

[[listeners]]
addr = "127.0.0.1:0"
`

func TestSiteRoutes(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	f := start(t, head+fmt.Sprintf(`
[upstreams.back]
servers = [{ url = %q }, { url = %q }]

[[routes]]
path = "/svc"
upstream = "back"

[[routes]]
path = "/cached"
upstream = "back"
[routes.cache]
ttl = { 200 = "1m" }

[[routes]]
path = "/limited"
upstream = "back"
[routes.rate_limit]
rate = 0.1
burst = 2

[[routes]]
path = "/old"
redirect = "https://new.example{uri}"
redirect_code = 301

[[routes]]
hosts = ["plain.test"]
redirect = "https://{host}{uri}"

[[routes]]
hosts = ["*.internal.test"]
path = "/"
upstream = "back"
strip_prefix = false

[[routes]]
path = "/"
static = "www"
`, a.URL, b.URL), nil)

	t.Run("upstream with prefix stripped", func(t *testing.T) {
		seen := map[string]bool{}
		for range 4 {
			code, h, body := get(t, f.url+"/svc/x/y")
			if code != 200 || !strings.Contains(body, " /x/y prefix=/svc") {
				t.Fatalf("%d %q", code, body)
			}
			seen[h.Get("X-Backend")] = true
		}
		if !seen["a"] || !seen["b"] {
			t.Errorf("round robin used %v", seen)
		}
	})
	t.Run("static", func(t *testing.T) {
		if code, _, body := get(t, f.url+"/hello.txt"); code != 200 || body != "hello file" {
			t.Errorf("%d %q", code, body)
		}
		if code, _, body := get(t, f.url+"/"); code != 200 || body != "<h1>site</h1>" {
			t.Errorf("%d %q", code, body)
		}
	})
	t.Run("cache", func(t *testing.T) {
		_, h1, b1 := get(t, f.url+"/cached/c")
		_, h2, b2 := get(t, f.url+"/cached/c")
		if h1.Get("X-Cache") != "MISS" || h2.Get("X-Cache") != "HIT" || b1 != b2 {
			t.Errorf("%s %q then %s %q", h1.Get("X-Cache"), b1, h2.Get("X-Cache"), b2)
		}
		_, body := adminPost(t, f.admin+"/purge?key="+f.url+"/cached/*")
		var out struct{ Purged int }
		_ = json.Unmarshal([]byte(body), &out)
		if out.Purged != 1 {
			t.Errorf("purged %d", out.Purged)
		}
		if _, h, _ := get(t, f.url+"/cached/c"); h.Get("X-Cache") != "MISS" {
			t.Errorf("after purge: %s", h.Get("X-Cache"))
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		codes := []int{}
		for range 3 {
			c, _, _ := get(t, f.url+"/limited")
			codes = append(codes, c)
		}
		if fmt.Sprint(codes) != "[200 200 429]" {
			t.Errorf("codes %v", codes)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		code, h, _ := get(t, f.url+"/old/page?q=1")
		if code != 301 || h.Get("Location") != "https://new.example/old/page?q=1" {
			t.Errorf("%d %q", code, h.Get("Location"))
		}
	})
	t.Run("redirect to https, by template", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.url+"/a/b?c=d", nil)
		req.Host = "Plain.test"
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 308 || resp.Header.Get("Location") != "https://plain.test/a/b?c=d" {
			t.Errorf("%d %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
	t.Run("virtual host", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.url+"/hello.txt", nil)
		req.Host = "api.internal.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), " /hello.txt prefix=") {
			t.Errorf("wildcard host went elsewhere: %q", body)
		}
	})
	t.Run("status", func(t *testing.T) {
		_, _, body := get(t, f.admin+"/status")
		if !strings.Contains(body, `"generation": 1`) || !strings.Contains(body, a.URL) {
			t.Errorf("%s", body)
		}
	})
}

func TestBadReloadKeepsRunningConfig(t *testing.T) {
	a := backend(t, "a")
	good := head + fmt.Sprintf("[upstreams.back]\nservers = [{ url = %q }]\n[[routes]]\nupstream = \"back\"\n", a.URL)
	f := start(t, good, nil)
	code, body := f.reload(t, good+"[[routes]]\npath = \"/x\"\nupstream = \"missing\"\n")
	if code != 422 || !strings.Contains(body, "site.toml:13") || !strings.Contains(body, `unknown upstream \"missing\"`) {
		t.Errorf("bad reload: %d %s", code, body)
	}
	if c, _, b := get(t, f.url+"/"); c != 200 || !strings.HasPrefix(b, "a ") {
		t.Errorf("old config not serving: %d %q", c, b)
	}
}

// Reloading under load, switching the upstream group back and forth,
// fails no request.
func TestReloadUnderLoad(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	cfgFor := func(u string) string {
		return head + fmt.Sprintf(`
[upstreams.back]
servers = [{ url = %q }]

[[routes]]
path = "/svc"
upstream = "back"

[[routes]]
path = "/"
static = "www"
`, u)
	}
	f := start(t, cfgFor(a.URL), nil)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var total, failed atomic.Int64
	var lastB atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			path := "/svc/x"
			if i%3 == 0 {
				path = "/hello.txt"
			}
			for ctx.Err() == nil {
				resp, err := client.Get(f.url + path)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					t.Logf("error: %v", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Logf("status %d: %s", resp.StatusCode, body)
				}
				if strings.HasPrefix(string(body), "b ") {
					lastB.Store(true)
				}
			}
		})
	}
	for i := range 10 {
		time.Sleep(40 * time.Millisecond)
		u := a.URL
		if i%2 == 0 {
			u = b.URL
		}
		if code, body := f.reload(t, cfgFor(u)); code != 200 {
			t.Fatalf("reload %d: %d %s", i, code, body)
		}
	}
	time.Sleep(40 * time.Millisecond)
	cancel()
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across 10 reloads", failed.Load(), total.Load())
	}
	if !lastB.Load() {
		t.Error("reloads never switched traffic to b")
	}
	if total.Load() < 100 {
		t.Errorf("only %d requests: load too light to mean anything", total.Load())
	}
	t.Logf("%d requests, 10 reloads, generation %d", total.Load(), f.site.cur.Load().id)
}

// An open WebSocket survives a reload that replaces its upstream group.
func TestReloadKeepsWebSocket(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	cfgFor := func(u string) string {
		return head + fmt.Sprintf("[upstreams.back]\nservers = [{ url = %q }]\n[[routes]]\nupstream = \"back\"\n", u)
	}
	f := start(t, cfgFor(a.URL), nil)
	conn, _, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(f.url, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo := func(msg string) string {
		if err := wsutil.WriteClientText(conn, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		got, err := wsutil.ReadServerText(conn)
		if err != nil {
			t.Fatal(err)
		}
		return string(got)
	}
	if got := echo("one"); got != "a:one" {
		t.Fatalf("got %q", got)
	}
	if code, body := f.reload(t, cfgFor(b.URL)); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if got := echo("two"); got != "a:two" {
		t.Errorf("after reload the open socket says %q", got)
	}
	if _, h, _ := get(t, f.url+"/"); h.Get("X-Backend") != "b" {
		t.Errorf("new requests not on the new config: %q", h.Get("X-Backend"))
	}
}

// TestAdminListenerGuard: the site's admin listener answers its own names only
// (localhost, its address, admin.hosts, which a reload changes), and refuses
// changes without the admin header and requests from another origin.
func TestAdminListenerGuard(t *testing.T) {
	body := "[admin]\naddr = \"127.0.0.1:0\"\nhosts = [\"ops.example\"]\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n[[routes]]\nredirect = \"/x\"\n"
	f := start(t, body, nil)
	for _, tt := range []struct {
		host string
		code int
	}{{"", 200}, {"ops.example", 200}, {"OPS.example.:9", 200}, {"localhost", 200}, {"evil.example", 421}, {"new.example", 421}} {
		if code, _, b := get(t, f.admin+"/status", "Host", tt.host); code != tt.code {
			t.Errorf("Host %q: %d %s, want %d", tt.host, code, b, tt.code)
		}
	}
	resp, err := http.Post(f.admin+"/reload", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("a form-style POST /reload: %d, want 403", resp.StatusCode)
	}
	if code, b := adminPost(t, f.admin+"/reload", "Origin", "http://evil.example"); code != 403 {
		t.Errorf("cross-origin reload: %d %s", code, b)
	}
	if code, b := adminPost(t, f.admin+"/reload", "Host", "evil.example"); code != 421 {
		t.Errorf("reload with a foreign Host: %d %s", code, b)
	}
	if code, b := f.reload(t, strings.Replace(body, `"ops.example"`, `"ops.example", "new.example"`, 1)); code != 200 {
		t.Fatalf("reload: %d %s", code, b)
	}
	if code, _, b := get(t, f.site.AdminURL()+"/status", "Host", "new.example"); code != 200 {
		t.Errorf("after the reload, Host new.example: %d %s", code, b)
	}
}
