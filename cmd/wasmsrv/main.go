// Command wasmsrv is an application server for WebAssembly apps.
//
//	wasmsrv run [flags] APP       serve one app (a .wasm file or a Go guest package dir)
//	wasmsrv serve -c FILE         serve a site from a TOML/YAML config
//	wasmsrv check -c FILE         validate a site config
//	wasmsrv version               print the version
//
// Configuration comes from WASMSRV_* environment variables; flags override them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = ""

const usage = `wasmsrv — an application server for WebAssembly apps

Usage:
  wasmsrv run [flags] APP      serve one app: a .wasm file or a Go guest package directory
  wasmsrv serve -c FILE        serve a site from a config file (apps, proxy, static, cache)
  wasmsrv check -c FILE        validate a site config file
  wasmsrv version              print the version
  wasmsrv help [command]       show help

Run 'wasmsrv run --help' for the flags; each has a WASMSRV_* environment variable.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; a second one ends the process
	// at once (the default action), as with gunicorn or uvicorn.
	go func() { <-ctx.Done(); stop() }()
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wasmsrv:", err)
		os.Exit(exitCode(err))
	}
}

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{"no command given"}
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "wasmsrv", versionString())
		return nil
	case "help", "-h", "--help":
		if len(args) > 1 {
			return dispatch(ctx, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
		if bi.Main.Version != "" {
			return bi.Main.Version
		}
	}
	return "dev"
}
