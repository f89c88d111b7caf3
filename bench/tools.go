package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
)

// Tool is something a server needs from the machine, with the Debian packages that
// provide it.
type Tool struct {
	Name     string
	Packages []string
	Present  func(ctx context.Context) bool
}

// commandTool is a tool that is a program on PATH.
func commandTool(name string, pkgs ...string) Tool {
	return Tool{
		Name:     name,
		Packages: pkgs,
		Present: func(context.Context) bool {
			_, err := exec.LookPath(name)
			return err == nil
		},
	}
}

// debianPython is the interpreter Debian's python3-* packages install into. The
// python3 first on PATH may be another one (pyenv) that cannot see them.
const debianPython = "/usr/bin/python3"

// pythonTool is a set of Python modules importable by Debian's python3.
func pythonTool(modules []string, pkgs ...string) Tool {
	return Tool{
		Name:     "python modules " + strings.Join(modules, ", "),
		Packages: pkgs,
		Present: func(ctx context.Context) bool {
			return exec.CommandContext(ctx, debianPython, "-c", "import "+strings.Join(modules, ", ")).Run() == nil
		},
	}
}

// Installer brings in missing tools with apt-get, at most one `apt-get update` per run.
type Installer struct {
	Log     *slog.Logger
	Enabled bool
	updated bool
}

// Ensure makes each tool present, installing its packages when allowed. It returns
// an error naming the first tool still missing.
func (in *Installer) Ensure(ctx context.Context, tools []Tool) error {
	for _, t := range tools {
		if t.Present(ctx) {
			continue
		}
		if err := in.install(ctx, t); err != nil {
			in.Log.Warn("install failed", "tool", t.Name, "err", err)
		}
		if !t.Present(ctx) {
			return fmt.Errorf("%s not installed", t.Name)
		}
	}
	return nil
}

func (in *Installer) install(ctx context.Context, t Tool) error {
	if !in.Enabled {
		return errors.New("installing is disabled (-install=false)")
	}
	if os.Geteuid() != 0 {
		return errors.New("apt-get needs root")
	}
	in.Log.Info("installing", "tool", t.Name, "packages", t.Packages)
	err := in.aptGet(ctx, append([]string{"install", "-y", "--no-install-recommends"}, t.Packages...)...)
	if err == nil || in.updated {
		return err
	}
	// A fresh machine may have no package lists yet: update once, then retry.
	in.updated = true
	if uerr := in.aptGet(ctx, "update"); uerr != nil {
		return fmt.Errorf("%w; apt-get update: %w", err, uerr)
	}
	return in.aptGet(ctx, append([]string{"install", "-y", "--no-install-recommends"}, t.Packages...)...)
}

func (in *Installer) aptGet(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "apt-get", args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-get %s: %w: %s", args[0], err, tail(out, 400))
	}
	return nil
}

// tail returns the last n bytes of b, trimmed, for error messages.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
