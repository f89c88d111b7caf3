package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// asyncHelloScenario compares the same hello guest built for the async shape and
// for the sync shape, with native net/http as the baseline, in one run.
func asyncHelloScenario() Scenario {
	return Scenario{
		Name:        "async-hello",
		Description: "samples/hello built for the async shape vs the same guest in the sync shape and native net/http",
		Path:        "/",
		Expect:      Expect{Status: 200, ContentType: helloType, Body: helloBody},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "native",
		Subject:     "wasmsrv",
		Servers: []Server{
			wasmsrvServer("samples/hello, async shape, default pool (CPU instances)", asyncGuest("./samples/hello")),
			named("wasmsrv-sync", wasmsrvServer("samples/hello, sync shape, default pool", goGuest("./samples/hello"))),
			nativeServer(),
		},
		Targets: []Target{
			rpsAtLeast("wasmsrv-sync", 0.9),
		},
	}
}

// asyncGuest builds a Go guest package for the async shape (-tags wasmsrv_async).
func asyncGuest(pkg string) appSource {
	return func(ctx context.Context, ws *Workspace) (string, error) {
		// GOFLAGS carries the tag, and makes the build key differ from the sync build
		// of the same package.
		flags := strings.TrimSpace(os.Getenv("GOFLAGS") + " -tags=wasmsrv_async")
		return ws.build(ctx, pkg, filepath.Base(pkg)+"-async.wasm",
			[]string{"GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=" + flags}, "-buildmode=c-shared")
	}
}
