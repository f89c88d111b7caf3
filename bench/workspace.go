package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/wasmsrv/wasmsrv/internal/pgcluster"
)

// Workspace is one run's scratch space: the module root it builds from, a temp dir for
// binaries and configs, and a memo so each package is built once per run.
type Workspace struct {
	Root  string
	Dir   string
	Log   *slog.Logger
	built map[string]string
	pg    *pgcluster.Cluster // the todo scenario's database, made once (todo.go)
}

// NewWorkspace finds the module root from the current directory and makes a temp dir.
func NewWorkspace(ctx context.Context, log *slog.Logger) (*Workspace, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return nil, fmt.Errorf("not inside a Go module: run from the wasmsrv repo")
	}
	dir, err := os.MkdirTemp("", "wasmsrv-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	return &Workspace{Root: filepath.Dir(gomod), Dir: dir, Log: log, built: map[string]string{}}, nil
}

// Close removes the temp dir.
func (w *Workspace) Close() error { return os.RemoveAll(w.Dir) }

// GoBinary builds a main package for the host and returns the binary's path.
func (w *Workspace) GoBinary(ctx context.Context, pkg string) (string, error) {
	return w.build(ctx, pkg, filepath.Base(pkg), nil)
}

// GoBinaryAt builds pkg as it is at git revision ref (e.g. "main"), from a
// detached worktree of the repository that is removed again after the build:
// the "today's main" baseline some scenarios compare against.
func (w *Workspace) GoBinaryAt(ctx context.Context, ref, pkg string) (string, error) {
	key := "@" + ref + " " + pkg
	if path, ok := w.built[key]; ok {
		return path, nil
	}
	tree := filepath.Join(w.Dir, "rev-"+strings.ReplaceAll(ref, "/", "_"))
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", w.Root}, args...)...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, tail(msg, 1000))
		}
		return nil
	}
	if err := git("worktree", "add", "--detach", tree, ref); err != nil {
		return "", err
	}
	defer func() { _ = git("worktree", "remove", "--force", tree) }()
	out := filepath.Join(w.Dir, "bin", "rev-"+strings.ReplaceAll(ref, "/", "_"), filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = tree
	w.Log.Info("building", "pkg", pkg, "at", ref)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s at %s: %w: %s", pkg, ref, err, tail(msg, 2000))
	}
	w.built[key] = out
	return out, nil
}

// WasmGuest builds a Go guest package as a wasip1 reactor and returns the .wasm path.
func (w *Workspace) WasmGuest(ctx context.Context, pkg string) (string, error) {
	return w.build(ctx, pkg, filepath.Base(pkg)+".wasm", []string{"GOOS=wasip1", "GOARCH=wasm"}, "-buildmode=c-shared")
}

func (w *Workspace) build(ctx context.Context, pkg, name string, env []string, flags ...string) (string, error) {
	key := strings.Join(env, " ") + " " + pkg
	if path, ok := w.built[key]; ok {
		return path, nil
	}
	// One dir per package so two packages with the same base name cannot collide.
	out := filepath.Join(w.Dir, "bin", strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "_"), name)
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = w.Root
	cmd.Env = append(os.Environ(), env...)
	w.Log.Info("building", "pkg", pkg, "env", env)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", pkg, err, tail(msg, 2000))
	}
	w.built[key] = out
	return out, nil
}

// WriteFile writes a scratch file (a config, a script) and returns its path.
func (w *Workspace) WriteFile(name, content string) (string, error) {
	path := filepath.Join(w.Dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("mkdir for %s: %w", name, err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return path, nil
}
