package main

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// helloBody and helloType are what samples/hello answers; every peer in the hello
// scenario serves exactly these bytes.
const (
	helloBody = "Hello from wasmsrv!\n"
	helloType = "text/plain; charset=utf-8"
)

func helloScenario() Scenario {
	return Scenario{
		Name:        "hello",
		Description: "plain-text hello world: wasmsrv (samples/hello) vs native net/http, uvicorn, gunicorn",
		Path:        "/",
		Expect:      Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "native",
		Subject:     "wasmsrv",
		Servers: []Server{
			wasmsrvServer("samples/hello, default pool, --access-log=false", goGuest("./samples/hello")),
			renamed("wasmsrv-fresh", wasmsrvServer("the same with --snapshot=false: every instance runs its start", goGuest("./samples/hello"), "--snapshot=false")),
			nativeServer(),
			uvicornServer("asgi_hello:app"),
			gunicornServer("wsgi_hello:app"),
		},
		Targets: []Target{
			rpsAtLeast("native", 0.9),
			p99AtMost("native", 1.2),
			rpsAtLeast("uvicorn", 2),
			rpsAtLeast("gunicorn", 8),
			rssAtMost("wasmsrv", 40<<20),
		},
	}
}

// wasmsrvServer runs `wasmsrv run` with its default pool and no access log on the
// .wasm that app provides, plus any extra CLI flags.
func wasmsrvServer(note string, app appSource, flags ...string) Server {
	return Server{
		Name: "wasmsrv",
		Note: note,
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			bin, err := env.WS.GoBinary(ctx, "./cmd/wasmsrv")
			if err != nil {
				return Command{}, err
			}
			wasm, err := app(ctx, env.WS)
			if err != nil {
				return Command{}, err
			}
			argv := append([]string{bin, "run", "--listen", env.Addr, "--access-log=false"}, flags...)
			return Command{Argv: append(argv, wasm)}, nil
		},
	}
}

// appSource yields the path of a .wasm app for wasmsrv to serve.
type appSource func(ctx context.Context, ws *Workspace) (string, error)

// goGuest builds a Go guest package. Prebuilding keeps the CLI's own build step out
// of the server's start-up.
func goGuest(pkg string) appSource {
	return func(ctx context.Context, ws *Workspace) (string, error) { return ws.WasmGuest(ctx, pkg) }
}

// nativeServer is the same handler written directly on net/http, in its own process
// so its memory is measured the same way.
func nativeServer() Server {
	return Server{
		Name: "native",
		Note: "Go net/http, same handler",
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			bin, err := env.WS.GoBinary(ctx, "./bench/native")
			if err != nil {
				return Command{}, err
			}
			return Command{Argv: []string{bin, "-listen", env.Addr}}, nil
		},
	}
}

// uvicornServer runs an ASGI app from bench/apps the way its docs recommend for
// speed: httptools parser, uvloop, no access log, one worker per core. Debian's
// package has no uvicorn script, hence python3 -m.
func uvicornServer(app string) Server {
	const workers = 2
	return Server{
		Name:     "uvicorn",
		Note:     fmt.Sprintf("%d workers, httptools+uvloop", workers),
		Requires: []Tool{pythonTool([]string{"uvicorn", "uvloop", "httptools"}, "python3-uvicorn", "python3-uvloop", "python3-httptools")},
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			host, port, err := splitAddr(env.Addr)
			if err != nil {
				return Command{}, err
			}
			return Command{Argv: []string{
				debianPython, "-m", "uvicorn", "--app-dir", filepath.Join(env.WS.Root, "bench", "apps"),
				"--host", host, "--port", port, "--workers", strconv.Itoa(workers),
				"--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
				app,
			}}, nil
		},
	}
}

// gunicornServer runs a WSGI app from bench/apps with gunicorn's sizing advice:
// 2×CPU+1 sync workers. Its access log is off by default.
func gunicornServer(app string) Server {
	workers := 2*runtime.NumCPU() + 1
	return Server{
		Name:     "gunicorn",
		Note:     fmt.Sprintf("%d sync workers", workers),
		Requires: []Tool{commandTool("gunicorn", "gunicorn")},
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			return Command{Argv: []string{
				"gunicorn", "--chdir", filepath.Join(env.WS.Root, "bench", "apps"),
				"--bind", env.Addr, "--workers", strconv.Itoa(workers), "--worker-class", "sync",
				"--log-level", "warning", app,
			}}, nil
		},
	}
}
