package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/wasmsrv/wasmsrv/host/internal/config"
	"github.com/wasmsrv/wasmsrv/internal/builder"
	"github.com/wasmsrv/wasmsrv/internal/progress"
	"github.com/wasmsrv/wasmsrv/runtime"
)

const buildUsage = `Usage: wasmsrv build [-o FILE] [--mode sync|async] DIR

Build the app in DIR (a Go main package or C sources) into a .wasm module, exactly
as 'wasmsrv run DIR' builds it: a Go package for the shape it declares
(//wasmsrv:mode) or --mode asks for, C sources with clang --target=wasm32-wasi.
'wasmsrv run FILE' then serves the module, with no toolchain needed.

Flags:
`

// buildFlags are build's settings from WASMSRV_MODE and WASMSRV_CACHE_DIR, the
// variables of run's --mode and --cache-dir.
type buildFlags struct {
	Mode     runtime.Mode `env:"MODE"`
	CacheDir string       `env:"CACHE_DIR"`
}

func cmdBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, buildUsage); fs.PrintDefaults() }
	out := fs.String("o", "", "the module to write (default: DIR's name + .wasm, here)")
	bf, err := config.ParseEnv[buildFlags](env.ToMap(os.Environ()))
	if err != nil {
		return &usageError{err.Error()}
	}
	fs.TextVar(&bf.Mode, "mode", bf.Mode, "sync or async for a Go package (default: what it declares, else sync) [$WASMSRV_MODE]")
	fs.StringVar(&bf.CacheDir, "cache-dir", bf.CacheDir, "build cache (default: user cache dir) [$WASMSRV_CACHE_DIR]")
	mode, cacheDir := &bf.Mode, &bf.CacheDir
	dirs, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if len(dirs) != 1 {
		fs.Usage()
		return &usageError{"build needs exactly one DIR"}
	}
	dir := dirs[0]
	switch *mode {
	case runtime.ModeAuto, runtime.ModeSync, runtime.ModeAsync:
	default:
		return &usageError{fmt.Sprintf("mode: %s, want sync or async (a Go package's shape)", *mode)}
	}
	if *out == "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return err
		}
		*out = filepath.Base(abs) + ".wasm"
	}
	buildCache := ""
	if *cacheDir != "" && *cacheDir != "-" {
		buildCache = filepath.Join(*cacheDir, "builds")
	}
	logOut, meter := progressOutput(stderr, "text")
	log := newLogger(logOut, "info", "text")
	start := time.Now()
	var task *progress.Task // started by the first step: a cached build shows nothing
	r, err := builder.BuildDir(ctx, dir, builder.Options{CacheDir: buildCache, Mode: *mode, OnStep: func(step string) {
		if task == nil {
			task = meter.Start(log, 0, "building guest", "dir", dir)
		}
		task.SetStep(step)
	}})
	if task != nil {
		task.End()
	}
	if err != nil {
		return err
	}
	if err := copyFile(r.Path, *out); err != nil {
		return err
	}
	shape := r.Source.Lang
	switch {
	case r.Mode != runtime.ModeAuto:
		shape += ", " + r.Mode.String()
	case r.Command:
		shape += ", a WASI command: CGI mode"
	}
	cached := ""
	if r.Cached {
		cached = ", cached"
	}
	fmt.Fprintf(stdout, "wasmsrv: built %s (%s) into %s in %v%s\n", dir, shape, *out, time.Since(start).Round(time.Millisecond), cached)
	return nil
}

// copyFile copies src to dst through a temporary file beside dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
