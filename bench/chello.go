package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// cHelloScenario compares the same hello app as a C guest (samples/c-hello, built
// with wasmsrv.h) and as a Go guest (samples/hello), both under `wasmsrv run`, with
// native net/http.
func cHelloScenario() Scenario {
	return Scenario{
		Name:        "c-hello",
		Description: "hello world as a C guest (samples/c-hello) vs the Go guest (samples/hello) vs native net/http",
		Path:        "/",
		Expect:      Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "native",
		Subject:     "wasmsrv-c",
		Servers: []Server{
			renamed("wasmsrv-c", wasmsrvServer("samples/c-hello (C, wasmsrv.h), default pool", committedWasm("samples/c-hello/main.wasm"))),
			renamed("wasmsrv-go", wasmsrvServer("samples/hello (Go SDK), default pool", goGuest("./samples/hello"))),
			nativeServer(),
		},
		Targets: []Target{
			rpsAtLeast("wasmsrv-go", 1),
			rpsAtLeast("native", 0.9),
		},
	}
}

// cgiScenario measures CGI mode: a plain WASI command (bench/apps/cgi_hello.c) run
// in a fresh instance per request, against the same hello as a sync C guest, native
// net/http and gunicorn.
func cgiScenario() Scenario {
	return Scenario{
		Name:        "cgi",
		Description: "hello world in CGI mode (a fresh WASI command instance per request) vs the sync ABI (C guest), native net/http and gunicorn",
		Path:        "/",
		Expect:      Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "native",
		Subject:     "wasmsrv-cgi",
		Servers: []Server{
			renamed("wasmsrv-cgi", wasmsrvServer("bench/apps/cgi_hello.c as a WASI command, CGI mode", committedWasm("bench/apps/cgi_hello.wasm"))),
			renamed("wasmsrv-c", wasmsrvServer("samples/c-hello, sync ABI, default pool", committedWasm("samples/c-hello/main.wasm"))),
			nativeServer(),
			gunicornServer("wsgi_hello:app"),
		},
		Targets: []Target{
			rpsAtLeast("wasmsrv-c", 0.2), // within 5× of the sync ABI
			rpsAtLeast("gunicorn", 2),
		},
	}
}

// renamed gives a server a distinct name, for scenarios running wasmsrv twice.
func renamed(name string, s Server) Server {
	s.Name = name
	return s
}

// committedWasm serves a .wasm committed in the repository (C guests are built by
// sdk/c/build.sh and checked in, so the benchmark needs no clang).
func committedWasm(rel string) appSource {
	return func(_ context.Context, ws *Workspace) (string, error) {
		p := filepath.Join(ws.Root, rel)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s: %w (rebuild with bash sdk/c/build.sh)", rel, err)
		}
		return p, nil
	}
}
