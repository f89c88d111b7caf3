package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The proxy scenarios put wasmsrv's built-in nginx role (`wasmsrv serve`) beside
// nginx itself (Debian nginx-light) doing the same job, plus the cache HIT path
// against the uncached app path.

// staticBody is the small file both servers send in the static scenario.
const staticBody = "Hello from a static file served by wasmsrv or nginx, 100 bytes or so of plain text.\n"

func proxyScenario() Scenario {
	upstream := nativeServer() // the same Go net/http hello behind every proxy
	return Scenario{
		Name:        "proxy",
		Description: "reverse proxy to one Go net/http upstream with keep-alive: wasmsrv serve vs nginx",
		Path:        "/",
		Expect:      Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "nginx",
		Subject:     "wasmsrv",
		Servers: []Server{
			withUpstream(wasmsrvSite("upstream group, round_robin, keepalive 64", proxySite), upstream),
			withUpstream(nginxServer("upstream keepalive 64, proxy_http_version 1.1", nginxProxy), upstream),
			withUpstream(floorServer("goroutine"), upstream),
			withUpstream(floorServer("epoll"), upstream),
			nativeServer(),
		},
		Targets: []Target{rpsAtLeast("nginx", 1), p99AtMost("nginx", 1)},
	}
}

func staticScenario() Scenario {
	return Scenario{
		Name:        "static",
		Description: "one small static file (ETag, sendfile): wasmsrv serve vs nginx",
		Path:        "/small.txt",
		Expect:      Expect{Status: 200, ContentType: "text/plain; charset=utf-8", Body: staticBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "nginx",
		Subject:     "wasmsrv",
		Servers: []Server{
			wasmsrvSite("static route, compression on", staticSite),
			nginxServer("root + sendfile, charset utf-8", nginxStatic),
		},
		Targets: []Target{rpsAtLeast("nginx", 0.5)},
	}
}

// The cache scenarios compare a cache HIT with running the app. With
// samples/hello the app answers as fast as the HIT does (both sit at
// net/http's own floor), so the target is judged on samples/mux's JSON
// list: a small API answer from a net/http app, what a cache is put in
// front of.
func cacheScenario() Scenario {
	return Scenario{
		Name:        "cache",
		Description: "response cache HIT vs the uncached Wasm app path (samples/mux GET /books: encoding/json through the net/http adapter; both through wasmsrv serve)",
		Path:        "/books",
		Expect:      Expect{Status: 200, ContentType: "application/json", BodyPrefix: `[{"id":1,`},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "app",
		Subject:     "wasmsrv",
		Servers: []Server{
			wasmsrvSite("app route with cache (ttl 200 = 1h): X-Cache HIT", cachedAppSite("./samples/mux", true)),
			named("app", wasmsrvSite("same app route, no cache", cachedAppSite("./samples/mux", false))),
		},
		Targets: []Target{rpsAtLeast("app", 2)},
	}
}

func cacheHelloScenario() Scenario {
	return Scenario{
		Name:        "cache-hello",
		Description: "response cache HIT vs the uncached path of samples/hello, an app as cheap as the HIT itself (no target: the floor)",
		Path:        "/",
		Expect:      Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "app",
		Subject:     "wasmsrv",
		Servers: []Server{
			wasmsrvSite("app route with cache (ttl 200 = 1h): X-Cache HIT", cachedAppSite("./samples/hello", true)),
			named("app", wasmsrvSite("same app route, no cache", cachedAppSite("./samples/hello", false))),
		},
	}
}

// floorServer runs bench/floorproxy: the least a Go proxy can do per
// request, in one of its two models, to show how far below nginx the floor
// of any proxy written in Go lies on this machine.
func floorServer(mode string) Server {
	notes := map[string]string{
		"goroutine": "least Go proxy: goroutine per connection on Go's netpoller (net/http's model), no routing or parsing",
		"epoll":     "least Go proxy: epoll loop per core on raw syscalls (nginx's model), no routing or parsing",
	}
	return Server{
		Name: "floor-" + mode,
		Note: notes[mode],
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			bin, err := env.WS.GoBinary(ctx, "./bench/floorproxy")
			if err != nil {
				return Command{}, err
			}
			return Command{Argv: []string{bin, "-mode", mode, "-listen", env.Addr, "-upstream", env.Upstreams[0]}}, nil
		},
	}
}

func withUpstream(s Server, up Server) Server { s.Upstreams = []Server{up}; return s }

func named(name string, s Server) Server { s.Name = name; return s }

// siteConfig renders a wasmsrv site config (TOML) for a launch.
type siteConfig func(ctx context.Context, env LaunchEnv, admin string) (string, error)

// wasmsrvSite runs `wasmsrv serve` on a config written for this launch.
func wasmsrvSite(note string, cfg siteConfig) Server {
	return Server{
		Name: "wasmsrv",
		Note: note,
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			bin, err := env.WS.GoBinary(ctx, "./cmd/wasmsrv")
			if err != nil {
				return Command{}, err
			}
			admin, err := freeAddr()
			if err != nil {
				return Command{}, err
			}
			body, err := cfg(ctx, env, admin)
			if err != nil {
				return Command{}, err
			}
			path, err := env.WS.WriteFile(filepath.Join("site", portOf(env.Addr), "site.toml"), body)
			if err != nil {
				return Command{}, err
			}
			// No access log, as nginx here (access_log off) and as the run scenarios.
			return Command{Argv: []string{bin, "serve", "-c", path, "--access-log=false"}}, nil
		},
	}
}

func siteHead(env LaunchEnv, admin string) string {
	return fmt.Sprintf("[server]\nlog_level = \"warn\"\n\n[admin]\naddr = %q\n\n[[listeners]]\naddr = %q\n\n", admin, env.Addr)
}

func proxySite(_ context.Context, env LaunchEnv, admin string) (string, error) {
	return siteHead(env, admin) + fmt.Sprintf(`[upstreams.back]
servers = [{ url = "http://%s" }]
keepalive = 64

[[routes]]
upstream = "back"
`, env.Upstreams[0]), nil
}

func staticSite(_ context.Context, env LaunchEnv, admin string) (string, error) {
	dir, err := staticDir(env)
	if err != nil {
		return "", err
	}
	return siteHead(env, admin) + fmt.Sprintf("[[routes]]\nstatic = %q\n", dir), nil
}

func cachedAppSite(pkg string, cached bool) siteConfig {
	return func(ctx context.Context, env LaunchEnv, admin string) (string, error) {
		wasm, err := env.WS.WasmGuest(ctx, pkg)
		if err != nil {
			return "", err
		}
		cfg := siteHead(env, admin) + fmt.Sprintf("[apps.app]\nmodule = %q\n\n[[routes]]\napp = \"app\"\n", wasm)
		if cached {
			cfg += "\n[routes.cache]\nttl = { 200 = \"1h\" }\n"
		}
		return cfg, nil
	}
}

func staticDir(env LaunchEnv) (string, error) {
	p, err := env.WS.WriteFile("static/small.txt", staticBody)
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}

// nginxConfig renders the http{} body for a launch.
type nginxConfig func(env LaunchEnv) (string, error)

// nginxServer runs Debian's nginx in the foreground with a config written for
// this launch: as many workers as cores, no access log, everything under the
// run's temp dir.
func nginxServer(note string, body nginxConfig) Server {
	return Server{
		Name:     "nginx",
		Note:     note + ", worker_processes auto",
		Requires: []Tool{commandTool("nginx", "nginx-light")},
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			http, err := body(env)
			if err != nil {
				return Command{}, err
			}
			prefix := filepath.Join(env.WS.Dir, "nginx", portOf(env.Addr))
			for _, d := range []string{"tmp", "logs"} {
				if err := os.MkdirAll(filepath.Join(prefix, d), 0o755); err != nil {
					return Command{}, err
				}
			}
			user := ""
			if os.Geteuid() == 0 {
				// Workers would drop to "nobody", who cannot read the 0700 temp dir.
				user = "user root;\n"
			}
			conf := fmt.Sprintf(`%sworker_processes auto;
pid %[2]s/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    keepalive_requests 100000;
%[3]s
}
`, user, prefix, http)
			path, err := env.WS.WriteFile(filepath.Join("nginx", portOf(env.Addr), "nginx.conf"), conf)
			if err != nil {
				return Command{}, err
			}
			bin, err := nginxPath()
			if err != nil {
				return Command{}, err
			}
			return Command{Argv: []string{bin, "-e", "stderr", "-p", prefix, "-c", path, "-g", "daemon off;"}}, nil
		},
	}
}

func nginxProxy(env LaunchEnv) (string, error) {
	return fmt.Sprintf(`    upstream back {
        server %s;
        keepalive 64;
    }
    server {
        listen %s;
        location / {
            proxy_pass http://back;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }
    }`, env.Upstreams[0], env.Addr), nil
}

func nginxStatic(env LaunchEnv) (string, error) {
	dir, err := staticDir(env)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`    sendfile on;
    tcp_nopush on;
    charset utf-8;
    server {
        listen %s;
        root %s;
    }`, env.Addr, dir), nil
}

// nginxPath finds nginx, which Debian installs in /usr/sbin (not always on PATH).
func nginxPath() (string, error) {
	for _, p := range []string{"/usr/sbin/nginx", "/usr/bin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("nginx not found in /usr/sbin or /usr/bin")
}

func portOf(addr string) string {
	return addr[strings.LastIndexByte(addr, ':')+1:]
}
