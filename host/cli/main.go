// Package cli is the wasmsrv command line, as a library: cmd/wasmsrv is one call to
// Main, and a custom binary with plugins of its own is another (docs/custom-binary.md).
//
//	wasmsrv new [-t TEMPLATE] DIR  write a new app (Go or C) ready for wasmsrv run DIR
//	wasmsrv run [flags] APP       serve one app (a .wasm file, a Go guest package or C sources dir)
//	wasmsrv build [-o FILE] DIR   build an app dir into a .wasm module
//	wasmsrv serve -c FILE         serve a site from a TOML/YAML config
//	wasmsrv check -c FILE         validate a site config
//	wasmsrv version               print the version
//
// Configuration comes from WASMSRV_* environment variables; flags override them.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/wasmsrv/wasmsrv/plugins"
)

const usage = `wasmsrv — an application server for WebAssembly apps

Usage:
  wasmsrv new [-t TEMPLATE] DIR  write a new app into DIR (Go or C; 'wasmsrv new --list')
  wasmsrv run [flags] APP      serve one app: a .wasm file, or a directory with a Go
                               main package or C sources (built for you)
  wasmsrv build [-o FILE] DIR  build an app directory into a .wasm module
  wasmsrv serve -c FILE        serve a site from a config file (apps, proxy, static, cache)
  wasmsrv check -c FILE        validate a site config file
  wasmsrv deploy APP.wasm|DIR  deploy a version to a hosting site (docs/hosting.md)
  wasmsrv versions|rollback|apps|tenants   a hosting site's versions, rollback,
                               apps and tenants (server and token: --server,
                               --token or WASMSRV_SERVER, WASMSRV_TOKEN)
  wasmsrv version              print the version
  wasmsrv help [command]       show help

Run 'wasmsrv run --help' for the flags; each has a WASMSRV_* environment variable.
`

// Options make a wasmsrv binary of one's own.
type Options struct {
	// Plugins are compiled into the binary beside the built-in ones (log, config,
	// kv, pubsub, http, sockets) and granted to apps like them (--grant NAME,
	// [apps.NAME.plugins.NAME]). A name that is already taken is an error at start.
	Plugins []plugins.Plugin
	// Version is what `wasmsrv version` prints first; empty: the main module's
	// version and VCS revision from the build info.
	Version string
}

// Main runs the wasmsrv command line on args (without the program name), with
// os.Stdout and os.Stderr, and returns the process's exit code: 0, 1 for an error,
// 2 for a usage error. SIGINT and SIGTERM start a graceful shutdown; a second one
// ends the process at once, as with gunicorn or uvicorn.
func Main(args []string, opts Options) int {
	// The first SIGINT or SIGTERM starts a graceful shutdown; a second one ends
	// the process at once with 128+signal (shutdown.go).
	sh := newShutdown(context.Background(), os.Stderr, os.Exit)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go sh.watch(sigs)
	err := dispatch(sh.ctx, &opts, args, os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		var re *reportedError
		if !errors.As(err, &re) { // else it is in the log already
			fmt.Fprintln(os.Stderr, "wasmsrv:", err)
		}
		return exitCode(err)
	}
	return 0
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

func dispatch(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &usageError{"no command given"}
	}
	switch args[0] {
	case "new":
		return cmdNew(ctx, opts, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, opts, args[1:], stdout, stderr)
	case "build":
		return cmdBuild(ctx, args[1:], stdout, stderr)
	case "serve":
		return cmdServe(ctx, opts, args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, opts, args[1:], stdout, stderr)
	case "deploy":
		return cmdDeploy(ctx, args[1:], stdout, stderr)
	case "versions":
		return cmdVersions(ctx, args[1:], stdout, stderr)
	case "rollback":
		return cmdRollback(ctx, args[1:], stdout, stderr)
	case "apps":
		return cmdApps(ctx, args[1:], stdout, stderr)
	case "tenants":
		return cmdTenants(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "wasmsrv", versionString(opts.Version))
		return nil
	case "help", "-h", "--help":
		if len(args) > 1 {
			return dispatch(ctx, opts, []string{args[1], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return &usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func versionString(version string) string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

// formatVersion says which wasmsrv this is: the version set at link time, else the
// main module's version from the build info (a release tag for `go install …@v1.2.3`,
// a pseudo-version such as v0.0.0-20261201110400-486f2f397e65+dirty for `go build` in a
// git checkout), then the VCS revision with "+dirty" for uncommitted changes, the
// commit time and the Go version. A build with no stamp (go run, -buildvcs=false, a
// git worktree, which Go does not recognise) says so instead of "(devel)".
func formatVersion(linked string, bi *debug.BuildInfo) string {
	v := linked
	if v == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	var rev, when string
	dirty := false
	goVersion := ""
	if bi != nil {
		goVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	var details []string
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "+dirty"
		}
		details = append(details, "rev "+rev)
		if when != "" {
			details = append(details, when)
		}
	}
	if v == "" {
		if rev != "" {
			v = "devel"
		} else {
			v, details = "devel", append(details, "no version or VCS stamp in this build")
		}
	}
	if goVersion != "" {
		details = append(details, goVersion)
	}
	if len(details) == 0 {
		return v
	}
	return v + " (" + strings.Join(details, ", ") + ")"
}
