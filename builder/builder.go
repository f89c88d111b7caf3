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
)

// Options configures a build.
type Options struct {
	// CacheDir stores built modules (default: user cache dir/wasmsrv/builds).
	CacheDir string
	// Tags are extra build tags (e.g. "wasmsrv_async" for the async shape).
	Tags []string
	// Go is the go command (default "go" from PATH).
	Go string
}

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
	goCmd := opt.Go
	if goCmd == "" {
		goCmd = "go"
	}
	if _, err := exec.LookPath(goCmd); err != nil {
		return "", false, fmt.Errorf("building %s needs the Go toolchain (%q not found in PATH): %w", dir, goCmd, err)
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
		return "", false, fmt.Errorf("build cache: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	key, usesSDK, err := contentKey(ctx, goCmd, abs, opt.Tags)
	if err != nil {
		return "", false, err
	}
	out := filepath.Join(cacheDir, filepath.Base(abs)+"-"+key+".wasm")
	if _, err := os.Stat(out); err == nil {
		return out, true, nil
	}
	// Each build writes into its own scratch directory and renames the result into
	// place, so two processes building the same guest at once (empty cache) cannot
	// clobber each other's output or rename it away from under the other.
	scratch, err := os.MkdirTemp(cacheDir, filepath.Base(abs)+"-*.tmp")
	if err != nil {
		return "", false, fmt.Errorf("build cache: %w", err)
	}
	defer os.RemoveAll(scratch)
	tmp := filepath.Join(scratch, "out.wasm")
	args := []string{"build", "-trimpath", "-o", tmp}
	if usesSDK {
		// A reactor with the SDK's exports. Without the SDK the package is an
		// ordinary main: built as a WASI command, which wasmsrv serves CGI-style.
		args = append(args, "-buildmode=c-shared")
	}
	if len(opt.Tags) > 0 {
		args = append(args, "-tags", strings.Join(opt.Tags, ","))
	}
	cmd := exec.CommandContext(ctx, goCmd, append(args, ".")...)
	cmd.Dir = abs
	cmd.Env = guestEnv()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", false, fmt.Errorf("go build of %s for wasip1 failed: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", false, err
	}
	return out, false, nil
}

// sdkImportPath is the Go SDK's package: guests that use it are reactors.
const sdkImportPath = "github.com/wasmsrv/wasmsrv/sdk/go"

func guestEnv() []string {
	return append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
}

// contentKey hashes the Go version, the tags, and every file of every non-standard
// package the guest depends on (and their go.mod/go.sum), so an edit anywhere in
// the guest or the SDK means a rebuild and nothing else does.
// It also reports whether the guest depends on the wasmsrv Go SDK.
func contentKey(ctx context.Context, goCmd, dir string, tags []string) (key string, usesSDK bool, err error) {
	args := []string{"list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{\"\\t\"}}{{.Module.GoMod}}{{\"\\t\"}}{{.ImportPath}}{{end}}"}
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
		return "", false, fmt.Errorf("go list in %s failed: %w\n%s", dir, err, strings.TrimSpace(stderr.String()))
	}
	ver, err := exec.CommandContext(ctx, goCmd, "env", "GOVERSION").Output()
	if err != nil {
		return "", false, fmt.Errorf("go env GOVERSION: %w", err)
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
		if pkgDir == "" {
			continue
		}
		ents, err := os.ReadDir(pkgDir)
		if err != nil {
			return "", false, err
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
			return "", false, err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16], usesSDK, nil
}
