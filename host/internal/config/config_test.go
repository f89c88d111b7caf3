package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/guestlog"
)

const goodTOML = `
[server]
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]

[[listeners]]
addr = "127.0.0.1:8080"

[upstreams.backend]
policy = "hash"
hash_key = "cookie:sid"
servers = [
  { url = "http://127.0.0.1:9001", weight = 2 },
  { url = "http://127.0.0.1:9002" },
]
[upstreams.backend.health]
path = "/healthz"

[[routes]]
hosts = ["example.com", "*.example.com"]
path = "/api"
upstream = "backend"
[routes.cache]
ttl = { 200 = "60s" }
[routes.rate_limit]
rate = 10
burst = 20

[[routes]]
path = "/"
static = "."
`

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var noEnv map[string]string // no WASMSRV_* variables

func TestLoadGood(t *testing.T) {
	p := write(t, "site.toml", goodTOML)
	c, err := Load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams["backend"]
	if u.Servers[0].Weight != 2 || u.Servers[1].Weight != 1 {
		t.Errorf("weights %+v", u.Servers)
	}
	if u.Health.Interval.D() != DefaultHealthInterval {
		t.Errorf("health interval default not applied: %v", u.Health.Interval.D())
	}
	if c.Routes[0].Cache == nil || c.Routes[0].RateLimit.Per != "ip" {
		t.Errorf("route 0: %+v", c.Routes[0])
	}
	if c.Routes[1].Static != filepath.Dir(p) {
		t.Errorf("static not resolved against config dir: %q", c.Routes[1].Static)
	}
}

func TestAppMounts(t *testing.T) {
	p := write(t, "site.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"site.toml\"\n"+
		"[[apps.a.mounts]]\nhost = \".\"\nguest = \"/data\"\n[[apps.a.mounts]]\nhost = \"/\"\nguest = \"/ro\"\nread_only = true\n")
	c, err := Load(p, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{{Host: filepath.Dir(p), Guest: "/data"}, {Host: "/", Guest: "/ro", ReadOnly: true}}
	if got := c.Apps["a"].Mounts; !slices.Equal(got, want) {
		t.Errorf("mounts = %+v, want %+v (host relative to the config file)", got, want)
	}
}

// errorCase is a config with a problem and what its error must say.
type errorCase struct {
	name, file, body string
	want             []string
}

// errorCases are shared by TestErrorsNameKeyAndLine and FuzzParse's seeds.
func errorCases() []errorCase {
	return []errorCase{
		{"unknown top key", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\nbogus = 1\n", []string{"a.toml:3", "listeners[0].bogus", "unknown key"}},
		{"bad duration", "a.toml", "[server]\nshutdown_timeout = \"forever\"\n", []string{"a.toml:2", "bad duration"}},
		{"unknown upstream", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n\n[[routes]]\npath = \"/x\"\nupstream = \"nope\"\n", []string{"a.toml:6", "routes[0].upstream", `unknown upstream "nope"`}},
		{"bad policy in second array element", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.u]\nservers = [{url = \"http://127.0.0.1:1\"}]\npolicy = \"random\"\n", []string{"a.toml:5", "upstreams.u.policy"}},
		{"bad server url inline", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.u]\nservers = [\n {url = \"http://127.0.0.1:1\"},\n {url = \"ftp://x\"},\n]\n", []string{"a.toml:6", "upstreams.u.servers[1].url"}},
		{"second route", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\n[[routes]]\npath = \"nope\"\nredirect = \"/y\"\n", []string{"a.toml:6", "routes[1].path"}},
		{"rate limit nested", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\n[routes.rate_limit]\nrate = 0\n", []string{"a.toml:6", "routes[0].rate_limit.rate"}},
		{"shared rate limit without redis", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\n[routes.rate_limit]\nrate = 1\nshared = true\n", []string{"a.toml:7", "routes[0].rate_limit.shared", "plugins.redis_url"}},
		{"header edit of a framing field", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\n[routes.headers.response]\nset = { \"X-A\" = \"1\", \"Content-Length\" = \"5\" }\n", []string{"a.toml:6", "routes[0].headers.response.set.Content-Length", "set by the server"}},
		{"header remove, bad name", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\n[routes.headers.request]\nremove = [\"Cookie\", \"bad name\"]\n", []string{"a.toml:6", "routes[0].headers.request.remove[1]", "not a valid header field name"}},
		{"header value with a newline", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\nroutes:\n  - redirect: /x\n    headers:\n      response:\n        add:\n          X-A: \"a\\nb\"\n", []string{"a.yaml:8", "routes[0].headers.response.add.X-A", "control characters"}},
		{"buffer_body on an app route", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\nbuffer_body = \"1KiB\"\n", []string{"a.toml:5", "routes[0].buffer_body", "only for upstream routes"}},
		{"negative app body timeout", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nbody_timeout = \"-1s\"\n", []string{"a.toml:5", "apps.a.body_timeout", "negative duration"}},
		{"header value template", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\n[routes.headers.request]\nset = { \"X-Real-IP\" = \"{remote_addr}\" }\n", []string{"a.toml:6", "routes[0].headers.request.set.X-Real-IP", "unknown variable {remote_addr}", "client_ip"}},
		{"redirect template", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"https://{hostname}{uri}\"\n", []string{"a.toml:4", "routes[0].redirect", "unknown variable {hostname}"}},
		{"bad WebSocket origin", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nws_origins = [\"https://ok.example\", \"https://bad.example/app\"]\n", []string{"a.toml:5", "apps.a.ws_origins[1]", "no path"}},
		{"WebSocket origin star among others", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[upstreams.u]\nservers = [{url = \"http://127.0.0.1:1\"}]\n[[routes]]\nupstream = \"u\"\nws_origins = [\"https://a.example\", \"*\"]\n", []string{"a.toml:7", "routes[0].ws_origins[1]", "list nothing else"}},
		{"ws_origins on an app route", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\n[[routes]]\napp = \"a\"\nws_origins = [\"*\"]\n", []string{"a.toml:7", "routes[0].ws_origins", "apps.a.ws_origins"}},
		{"ws_origins on a redirect", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[routes]]\nredirect = \"/x\"\nws_origins = [\"*\"]\n", []string{"a.toml:5", "routes[0].ws_origins", "only for routes to an upstream"}},
		{"no listeners", "a.toml", "", []string{"listeners", "at least one"}},
		{"admin off loopback without token", "a.toml", "[admin]\naddr = \"0.0.0.0:9\"\n[[listeners]]\naddr = \"127.0.0.1:1\"\n", []string{"a.toml:1", "admin.token"}},
		{"yaml unknown key", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\n    nope: 2\n", []string{"a.yaml:3", "listeners[0].nope", "unknown key"}},
		{"yaml wrong type", "a.yaml", "upstreams:\n  u:\n    servers:\n      - url: http://x:1\n        weight: heavy\n", []string{"a.yaml:5", "upstreams.u.servers[0].weight", "want a whole number"}},
		{"yaml list for string", "a.yaml", "listeners:\n  - addr: [1, 2]\n", []string{"a.yaml:2", "listeners[0].addr", "got a list"}},
		{"yaml bad size", "a.yaml", "cache:\n  max_bytes: lots\n", []string{"a.yaml:2", "cache.max_bytes", `bad size "lots"`}},
		{"yaml syntax", "a.yaml", "routes: {\n", []string{"a.yaml:1", "flow mapping"}},
		{"yaml bad route", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\nroutes:\n  - path: /a\n    app: ghost\n", []string{"a.yaml:5", "routes[0].app"}},
		{"bad regex", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[[filter.rules]]\npath = \"(\"\n", []string{"a.toml:4", "filter.rules[0].path", "bad pattern"}},
		{"format", "a.ini", "", []string{"unknown config format"}},
		{"mount host missing", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\n[[apps.a.mounts]]\nhost = \"nope\"\nguest = \"/data\"\n", []string{"a.toml:6", "apps.a.mounts[0].host", "is not a directory"}},
		{"mount host is a file", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nmounts = [{ host = \"a.toml\", guest = \"/data\" }]\n", []string{"a.toml:5", "apps.a.mounts[0].host", "is not a directory"}},
		{"mount guest relative", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nmounts = [{ host = \".\", guest = \"data\" }]\n", []string{"apps.a.mounts[0].guest", "want an absolute path"}},
		{"mount guest twice", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\napps:\n  a:\n    module: a.yaml\n    mounts:\n      - host: .\n        guest: /data\n      - host: .\n        guest: /data/\n        read_only: true\n", []string{"a.yaml:10", "apps.a.mounts[1].guest", "mounted twice"}},
		{"app name with a colon", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.\"a:b\"]\nmodule = \"a.toml\"\n", []string{"a.toml:3", "apps.a:b", `bad app name "a:b"`, appname.Allowed}},
		{"app name with a brace, yaml", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\napps:\n  \"x}\":\n    module: a.yaml\n", []string{"a.yaml:", "apps.x}", appname.Allowed}},
		{"app name empty", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.\"\"]\nmodule = \"a.toml\"\n", []string{"a.toml:3", "apps.", `bad app name ""`}},
		{"app name unicode", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.\"caf\u00e9\"]\nmodule = \"a.toml\"\n", []string{"a.toml:3", appname.Allowed}},
		{"app name too long", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps." + strings.Repeat("a", 65) + "]\nmodule = \"a.toml\"\n", []string{"a.toml:3", appname.Allowed}},
		{"admin host with a port", "a.toml", "[admin]\nhosts = [\"ops.example\", \"ops.example:9901\"]\n[[listeners]]\naddr = \"127.0.0.1:1\"\n", []string{"a.toml:2", "admin.hosts[1]", "bad host"}},
		{"log rate zero", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nlog_rate = \"0\"\n", []string{"a.toml:5", "apps.a.log_rate", "must be > 0"}},
		{"misspelt app key", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nqueue_sise = 4\n", []string{"a.toml:5", "apps.a.queue_sise", `unknown key (did you mean "queue_size"?)`}},
		{"misspelt key, yaml", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\n    idle_timout: 5s\n", []string{"a.yaml:3", "listeners[0].idle_timout", `did you mean "idle_timeout"?`}},
		{"unknown key far from any", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\nzzzzzzzz = 1\n", []string{"a.toml:3", "listeners[0].zzzzzzzz: unknown key"}},
		{"bad mode", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nmode = \"turbo\"\n", []string{"a.toml:5", "apps.a.mode", `unknown mode "turbo"`}},
		{"negative app setting", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nlimit_concurrency = -1\n", []string{"a.toml:5", "apps.a.limit_concurrency", "must be >= 0"}},
		{"plugin section not granted", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\n[apps.a.plugins.http]\nallow = [\"x.example\"]\n", []string{"a.toml:5", "apps.a.plugins.http", "not in grants"}},
		{"size as a bare number of bytes", "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\nbody_limit = -5\n", []string{"a.toml:5", "apps.a.body_limit", `bad size "-5"`}},
	}
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	tests := errorCases()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(write(t, tt.file, tt.body), noEnv)
			if err == nil {
				t.Fatal("want error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestEnvOverrides(t *testing.T) {
	env := map[string]string{EnvListen: "127.0.0.1:7000", EnvAdminToken: "s3cret", EnvAdminAddr: "0.0.0.0:9901", EnvTrustedProxies: "10.0.0.0/8, 192.168.0.1"}
	c, err := Load(write(t, "s.toml", goodTOML), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listeners[0].Addr != "127.0.0.1:7000" || c.Admin.Token != "s3cret" || len(c.Server.TrustedProxies) != 2 {
		t.Errorf("overrides not applied: %+v %+v %+v", c.Listeners, c.Admin, c.Server)
	}
	_, err = Load(write(t, "s.toml", goodTOML), map[string]string{EnvShutdownTimeout: "soon"})
	if err == nil || !strings.Contains(err.Error(), EnvShutdownTimeout) {
		t.Errorf("bad env value: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "64KiB": 64 << 10, "1MiB": 1 << 20, "2 MB": 2e6} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "-1", "1TB", "x"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// The site sample exists in both formats; they must mean the same.
func TestSampleTOMLAndYAMLAgree(t *testing.T) {
	a, err := Load("../../../samples/site/site.toml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load("../../../samples/site/site.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	a.Path, b.Path, a.lines, b.lines = "", "", nil, nil
	if !reflect.DeepEqual(a, b) {
		t.Errorf("TOML and YAML samples differ:\n%+v\n%+v", a, b)
	}
}

func TestAppLogBudget(t *testing.T) {
	c, err := Load(write(t, "a.toml", "[[listeners]]\naddr = \"127.0.0.1:1\"\n[apps.a]\nmodule = \"a.toml\"\n[apps.b]\nmodule = \"a.toml\"\nlog_rate = \"1MiB\"\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Apps["a"].LogRate; got != guestlog.DefaultRate {
		t.Errorf("default log budget %d, want %d", got, guestlog.DefaultRate)
	}
	if got := c.Apps["b"].LogRate; got != 1<<20 {
		t.Errorf("log budget %d, want 1MiB", got)
	}
}

// admin.addr absent means the default listener; "" (in the file, in YAML, or as
// WASMSRV_ADMIN_ADDR) turns it off; anything else must be host:port.
func TestAdminAddr(t *testing.T) {
	base := "[[listeners]]\naddr = \"127.0.0.1:1\"\n"
	for _, tt := range []struct {
		name, file, body string
		env              map[string]string
		want             string
		err              string
	}{
		{"absent", "a.toml", base, nil, DefaultAdminAddr, ""},
		{"table without addr", "a.toml", base + "[admin]\ntoken = \"t\"\n", nil, DefaultAdminAddr, ""},
		{"empty", "a.toml", base + "[admin]\naddr = \"\"\n", nil, "", ""},
		{"yaml empty", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\nadmin:\n  addr: \"\"\n", nil, "", ""},
		{"yaml absent", "a.yaml", "listeners:\n  - addr: 127.0.0.1:1\n", nil, DefaultAdminAddr, ""},
		{"set", "a.toml", base + "[admin]\naddr = \"127.0.0.1:9999\"\n", nil, "127.0.0.1:9999", ""},
		{"env empty", "a.toml", base, map[string]string{EnvAdminAddr: ""}, "", ""},
		{"env over file", "a.toml", base + "[admin]\naddr = \"\"\n", map[string]string{EnvAdminAddr: "127.0.0.1:9998"}, "127.0.0.1:9998", ""},
		{"bad", "a.toml", base + "[admin]\naddr = \"nowhere\"\n", nil, "", "admin.addr"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(write(t, tt.file, tt.body), tt.env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one naming %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Admin.Listen(); got != tt.want {
				t.Errorf("admin listens on %q, want %q", got, tt.want)
			}
		})
	}
}

// One load reports every problem of a file, each at its line, whatever stage finds
// it (an unknown key, a value of the wrong kind, a bad value, a broken rule), in
// the order of the file; what is fine still decodes.
func TestEveryErrorAtOnce(t *testing.T) {
	body := "[[listeners]]\naddr = \"127.0.0.1:1\"\nidle_timeout = 5\n\n[apps.a]\nmodule = \"a.toml\"\npool_sise = 2\nqueue_size = \"many\"\nws_send_buffer = 0\n\n[[routes]]\napp = \"ghost\"\n"
	cfg, errs := Check(write(t, "a.toml", body), nil)
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprintf("%d %s", e.Line, e.Key))
	}
	want := []string{"3 listeners[0].idle_timeout", "7 apps.a.pool_sise", "8 apps.a.queue_size", "9 apps.a.ws_send_buffer", "12 routes[0].app"}
	if !slices.Equal(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
	if cfg == nil || cfg.Apps["a"].QueueSize != DefaultApp().QueueSize || cfg.Listeners[0].Addr != "127.0.0.1:1" {
		t.Errorf("what was fine did not decode: %+v", cfg)
	}
}

// A tenant has one CPU weight and one budget: apps of one tenant that disagree
// are refused at the later app's key; bad scaling and share values name theirs.
func TestTenantSettings(t *testing.T) {
	body := "[[listeners]]\naddr = \"127.0.0.1:1\"\n\n" +
		"[apps.a]\nmodule = \"a.toml\"\ntenant = \"acme\"\ncpu_weight = 2\ncpu_budget = \"10s\"\n\n" +
		"[apps.b]\nmodule = \"a.toml\"\ntenant = \"acme\"\ncpu_weight = 3\ncpu_budget = \"5s\"\n\n" +
		"[apps.c]\nmodule = \"a.toml\"\ntenant = \"no.dots\"\ncpu_weight = 0\ncpu_budget = \"2m\"\npool_size = 2\npool_min = 3\npool_idle_timeout = \"-1s\"\n\n" +
		"[apps.d]\nmodule = \"a.toml\"\ntenant = \"acme\"\ncpu_weight = 2\ncpu_budget = \"10s\"\npool_idle_timeout = \"1m\"\n\n" +
		"[[routes]]\napp = \"a\"\n"
	_, errs := Check(write(t, "a.toml", body), nil)
	var got []string
	for _, e := range errs {
		got = append(got, e.Key)
	}
	slices.Sort(got)
	want := []string{"apps.b.cpu_budget", "apps.b.cpu_weight", "apps.c.cpu_budget", "apps.c.cpu_weight", "apps.c.pool_idle_timeout", "apps.c.pool_min", "apps.c.tenant"}
	if !slices.Equal(got, want) {
		t.Errorf("errors at %q, want %q (%v)", got, want, errs)
	}
}
