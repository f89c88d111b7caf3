// Package testkit holds what the tests of several packages need alike: building a
// Go guest once per content (shared cache under the temp dir) and collecting logs.
package testkit

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wasmsrv/wasmsrv/abi"
	"github.com/wasmsrv/wasmsrv/internal/builder"
)

// Mode is the mode named by a test ("" for what the app declares; runtime.Mode is
// this type).
func Mode(t testing.TB, name string) abi.Mode {
	t.Helper()
	m, err := abi.ParseMode(name)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// BuildCache is the build cache shared by test runs, so guests are built once per
// content across packages.
func BuildCache() string { return filepath.Join(os.TempDir(), "wasmsrv-test-cache", "builds") }

// Guest builds the Go guest package dir (with build tags) and returns the module
// bytes. It skips the test when no Go toolchain is available.
func Guest(t testing.TB, dir string, tags ...string) []byte {
	t.Helper()
	p, _, err := builder.Build(context.Background(), dir, builder.Options{CacheDir: BuildCache(), Tags: tags})
	if err != nil {
		if strings.Contains(err.Error(), "not found in PATH") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// LogBuffer collects log output safely across goroutines, so tests can check what
// an operator would see.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// BuildC compiles a C reactor guest (sdk/c) with Debian's clang and wasi-libc into
// the test's temp dir, or skips the test when they are absent.
func BuildC(t testing.TB, src string) string {
	t.Helper()
	cc, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not installed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
	}
	wasm := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".c")+".wasm")
	out, err := exec.Command(cc, "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wextra", "-Werror",
		"-o", wasm, src).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "wasi") && strings.Contains(string(out), "not found") {
			t.Skipf("no wasi-libc for clang: %s", out)
		}
		t.Fatalf("clang: %v\n%s", err, out)
	}
	return wasm
}
