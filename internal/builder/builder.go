// Package builder turns a Go guest package directory into a .wasm module with the
// local Go toolchain (GOOS=wasip1; -buildmode=c-shared for SDK guests, a plain WASI
// command for programs that do not use the SDK, served in CGI mode), caching the result by the
// content of every source file that goes into it.
package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Options configures a build.
type Options struct {
	// CacheDir stores built modules (default: user cache dir/wasmsrv/builds).
	CacheDir string
	// Tags are extra build tags (e.g. "wasmsrv_async" for the async shape).
	Tags []string
	// Mode is the shape to build a Go package for: ModeAuto for what the package
	// declares (//wasmsrv:mode, else sync), sync or async; a Mode the package's
	// directive contradicts is an error. The async tag in Tags asks for async too.
	Mode abi.Mode
	// Go is the go command (default "go" from PATH).
	Go string
	// OnStep, if set, hears what a build that is not cached is doing: "go build"
	// when it starts, "compiling IMPORT/PATH" for each package the Go compiler
	// takes, "linking" once the main package is compiled; for C sources
	// "compiling FILES". A cached result calls nothing.
	OnStep func(step string)
}

// Result is a built module.
type Result struct {
	// Path is the .wasm file, in the cache directory.
	Path string
	// Cached reports that nothing had to be built.
	Cached bool
	// Source is what the directory holds.
	Source *Source
	// Mode is the shape a Go package was built for (sync or async); ModeAuto for
	// a command and for C sources, whose module says its own shape.
	Mode abi.Mode
	// Command reports a Go package built as a WASI command (it does not use the
	// SDK), which wasmsrv serves CGI-style.
	Command bool
}

// AsyncTag is the build tag that selects the Go SDK's async exports.
const AsyncTag = "wasmsrv_async"

// IsPackageDir reports whether path is a directory holding Go files.
func IsPackageDir(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	m, _ := filepath.Glob(filepath.Join(path, "*.go"))
	return len(m) > 0
}

// Build builds the Go package in dir and returns the path of the .wasm file and
// whether it came from the cache. A failed build returns the compiler's output.
func Build(ctx context.Context, dir string, opt Options) (path string, cached bool, err error) {
	r, err := BuildDir(ctx, dir, opt)
	if err != nil {
		return "", false, err
	}
	return r.Path, r.Cached, nil
}

// BuildDir builds the guest in dir: a Go main package (GOOS=wasip1, for the shape
// it declares or opt.Mode asks for) or a directory of C sources (clang
// --target=wasm32-wasi). The result is cached by the content of every file that
// goes into it.
func BuildDir(ctx context.Context, dir string, opt Options) (*Result, error) {
	src, err := Inspect(dir)
	if err != nil {
		return nil, err
	}
	cacheDir := opt.CacheDir
	if cacheDir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		cacheDir = filepath.Join(base, "wasmsrv", "builds")
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if src.Lang == "c" {
		return buildC(ctx, abs, cacheDir, src, opt)
	}
	want := opt.Mode
	if slices.Contains(opt.Tags, AsyncTag) && want == abi.ModeAuto {
		want = abi.ModeAsync
	}
	mode, err := src.BuildMode(want)
	if err != nil {
		return nil, err
	}
	tags := slices.Clone(opt.Tags)
	if mode == abi.ModeAsync && !slices.Contains(tags, AsyncTag) {
		tags = append(tags, AsyncTag)
	}
	goCmd := opt.Go
	if goCmd == "" {
		goCmd = "go"
	}
	if _, err := exec.LookPath(goCmd); err != nil {
		return nil, fmt.Errorf("building %s needs the Go toolchain (%q not found in PATH): %w", dir, goCmd, err)
	}
	key, usesSDK, mainPath, err := contentKey(ctx, goCmd, abs, tags)
	if err != nil {
		return nil, err
	}
	r := &Result{Source: src, Mode: mode, Command: !usesSDK, Path: filepath.Join(cacheDir, filepath.Base(abs)+"-"+key+".wasm")}
	if r.Command {
		r.Mode = abi.ModeAuto
	}
	if _, err := os.Stat(r.Path); err == nil {
		r.Cached = true
		return r, nil
	}
	args := []string{"build", "-trimpath"}
	if usesSDK {
		// A reactor with the SDK's exports. Without the SDK the package is an
		// ordinary main: built as a WASI command, which wasmsrv serves CGI-style.
		args = append(args, "-buildmode=c-shared")
	}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	if opt.OnStep != nil {
		args = append(args, "-v") // the packages as they are compiled, on stderr
	}
	if opt.OnStep != nil {
		opt.OnStep("go build")
	}
	err = buildInto(cacheDir, abs, r.Path, func(tmp string) error {
		cmd := exec.CommandContext(ctx, goCmd, append(args, "-o", tmp, ".")...)
		cmd.Dir = abs
		cmd.Env = guestEnv()
		out := &stepWriter{onStep: opt.OnStep, main: mainPath}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build of %s for wasip1 failed: %w\n%s", dir, err, explain(out.diagnostics()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// buildInto runs build with a scratch file name and renames the result to out.
// Each build writes into its own scratch directory, so two processes building the
// same guest at once (empty cache) cannot clobber each other's output or rename it
// away from under the other.
func buildInto(cacheDir, abs, out string, build func(tmp string) error) error {
	scratch, err := os.MkdirTemp(cacheDir, filepath.Base(abs)+"-*.tmp")
	if err != nil {
		return fmt.Errorf("build cache: %w", err)
	}
	defer os.RemoveAll(scratch)
	tmp := filepath.Join(scratch, "out.wasm")
	if err := build(tmp); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// stepWriter collects the go command's output: with -v, the lines that are import
// paths report progress; everything else is a diagnostic.
type stepWriter struct {
	onStep  func(string)
	main    string // the main package's import path
	partial []byte
	diag    bytes.Buffer
}

func (w *stepWriter) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

func (w *stepWriter) line(l string) {
	// `go build -v` names each package it compiles, one per line: an import path
	// has no spaces or colons; compiler messages ("# pkg", "./x.go:3:1: …") do.
	if w.onStep != nil && l != "" && !strings.ContainsAny(l, " :\t#") {
		w.onStep("compiling " + l)
		if l == w.main {
			w.onStep("linking") // the main package is compiled last; the linker runs next
		}
		return
	}
	w.diag.WriteString(l)
	w.diag.WriteByte('\n')
}

func (w *stepWriter) diagnostics() string {
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
	return strings.TrimSpace(w.diag.String())
}

// sdkModule is the module of the Go SDK, and sdkImportPath its package: guests
// that use it are reactors.
const (
	sdkModule     = "github.com/wasmsrv/wasmsrv"
	sdkImportPath = sdkModule + "/sdk/go"
)

func guestEnv() []string {
	return append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

// contentKey hashes the Go version, the tags, and every file of every non-standard
// package the guest depends on (and their go.mod/go.sum), so an edit anywhere in
// the guest or the SDK means a rebuild and nothing else does.
// It also reports whether the guest depends on the wasmsrv Go SDK, and the main
// package's import path.
func contentKey(ctx context.Context, goCmd, dir string, tags []string) (key string, usesSDK bool, mainPath string, err error) {
	args := []string{"list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{\"\\t\"}}{{with .Module}}{{.GoMod}}{{end}}{{\"\\t\"}}{{.ImportPath}}{{end}}"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, ".")...)
	cmd.Dir = dir
	cmd.Env = guestEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	listing, err := cmd.Output()
	if err != nil {
		return "", false, "", fmt.Errorf("go list in %s failed: %w\n%s", dir, err, explain(strings.TrimSpace(stderr.String())))
	}
	ver, err := exec.CommandContext(ctx, goCmd, "env", "GOVERSION").Output()
	if err != nil {
		return "", false, "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", bytes.TrimSpace(ver), strings.Join(tags, ","))
	var files []string
	for _, line := range strings.Split(strings.TrimSpace(string(listing)), "\n") {
		pkgDir, rest, _ := strings.Cut(line, "\t")
		gomod, importPath, _ := strings.Cut(rest, "\t")
		if importPath == sdkImportPath {
			usesSDK = true
		}
		mainPath = importPath // -deps lists the package itself last
		if pkgDir == "" {
			continue
		}
		ents, err := os.ReadDir(pkgDir)
		if err != nil {
			return "", false, "", err
		}
		for _, e := range ents {
			if !e.IsDir() {
				files = append(files, filepath.Join(pkgDir, e.Name()))
			}
		}
		if gomod != "" {
			files = append(files, gomod, strings.TrimSuffix(gomod, ".mod")+".sum")
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)
	for _, f := range files {
		if strings.HasSuffix(f, ".wasm") {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			continue // go.sum may not exist
		}
		fmt.Fprintf(h, "%s\x00", f)
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", false, "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], usesSDK, mainPath, nil
}

// explain adds a line saying what to do to the go command's output when it shows a
// problem every new user of an app outside this repository meets.
func explain(out string) string {
	switch {
	case strings.Contains(out, "go.mod file not found"):
		return out + "\n(the app is not in a Go module: `wasmsrv new DIR` writes a new app with its go.mod; for existing sources, `go mod init NAME` then `wasmsrv new --update-sdk DIR` adds the SDK)"
	case strings.Contains(out, sdkModule) && (strings.Contains(out, "no required module provides") ||
		strings.Contains(out, "cannot find module") || strings.Contains(out, "missing go.sum entry") ||
		strings.Contains(out, "reading https://") || strings.Contains(out, "unknown revision")):
		return out + "\n(the wasmsrv SDK is not a published module: `wasmsrv new --update-sdk DIR` copies the SDK this wasmsrv carries into DIR/.wasmsrv and points go.mod at it)"
	}
	return out
}
