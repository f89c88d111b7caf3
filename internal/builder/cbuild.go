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

// cFlags are the flags every C guest is built with: WASI preview 1, optimized, and
// no DWARF (it would carry build paths; the name section stays, so traps still name
// functions). They are the flags of sdk/c/build.sh.
var cFlags = []string{"--target=wasm32-wasi", "-O2", "-Wl,--strip-debug"}

// cCompiler is clang from PATH, or a wasi-sdk's clang and sysroot when
// WASI_SDK_PATH is set (the wasi-sdk convention).
func cCompiler() (cc string, flags []string, err error) {
	if sdk := os.Getenv("WASI_SDK_PATH"); sdk != "" {
		cc = filepath.Join(sdk, "bin", "clang")
		flags = []string{"--sysroot=" + filepath.Join(sdk, "share", "wasi-sysroot")}
	} else {
		cc = "clang"
	}
	if _, err := exec.LookPath(cc); err != nil {
		return "", nil, fmt.Errorf("building C sources needs clang with WASI support (%q not found: on Debian, apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32; or set WASI_SDK_PATH to a wasi-sdk), or build the .wasm yourself and run that", cc)
	}
	return cc, flags, nil
}

// buildC compiles every .c file of dir into one module: a reactor when a source
// includes the C SDK (wasmsrv.h), else a plain WASI command (served CGI-style),
// as the Go builder decides by the SDK import. The cache key covers the compiler's
// version, the flags and every file the sources include outside the system
// headers (as `clang -MM` lists them).
func buildC(ctx context.Context, abs, cacheDir string, src *Source, opt Options) (*Result, error) {
	cc, flags, err := cCompiler()
	if err != nil {
		return nil, err
	}
	flags = append(slices.Clone(cFlags), flags...)
	m, _ := filepath.Glob(filepath.Join(abs, "*.c"))
	var files []string
	for _, f := range m {
		files = append(files, filepath.Base(f))
	}
	slices.Sort(files)

	deps, err := cDeps(ctx, cc, flags, abs, files)
	if err != nil {
		return nil, fmt.Errorf("the C sources in %s: %w", src.Dir, err)
	}
	reactor := slices.ContainsFunc(deps, func(d string) bool { return filepath.Base(d) == "wasmsrv.h" })
	if reactor {
		flags = append(flags, "-mexec-model=reactor")
	}
	ver, err := exec.CommandContext(ctx, cc, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --version: %w", cc, err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00", bytes.TrimSpace(ver), strings.Join(flags, " "))
	for _, d := range deps {
		p := d
		if !filepath.IsAbs(p) {
			p = filepath.Join(abs, p)
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(h, "%s\x00", d)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	r := &Result{Source: src, Path: filepath.Join(cacheDir, filepath.Base(abs)+"-c-"+hex.EncodeToString(h.Sum(nil))[:16]+".wasm")}
	if _, err := os.Stat(r.Path); err == nil {
		r.Cached = true
		return r, nil
	}
	if opt.OnStep != nil {
		opt.OnStep("compiling " + strings.Join(files, " "))
	}
	err = buildInto(cacheDir, abs, r.Path, func(tmp string) error {
		cmd := exec.CommandContext(ctx, cc, append(append(slices.Clone(flags), "-o", tmp), files...)...)
		cmd.Dir = abs
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s of the C sources in %s failed: %w\n%s", filepath.Base(cc), src.Dir, err, strings.TrimSpace(out.String()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return r, nil
}

// cDeps lists the sources and the non-system headers they include, sorted.
func cDeps(ctx context.Context, cc string, flags []string, dir string, files []string) ([]string, error) {
	cmd := exec.CommandContext(ctx, cc, append(append(slices.Clone(flags), "-MM"), files...)...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -MM: %w\n%s", filepath.Base(cc), err, strings.TrimSpace(stderr.String()))
	}
	// Make rules: "main.o: main.c ../../sdk/c/wasmsrv.h \<newline> …".
	var deps []string
	rules := strings.ReplaceAll(strings.ReplaceAll(string(out), "\\\n", " "), "\\ ", "\x00") // "\ " is a space in a name
	for _, f := range strings.Fields(rules) {
		if strings.HasSuffix(f, ":") {
			continue
		}
		deps = append(deps, strings.ReplaceAll(f, "\x00", " "))
	}
	slices.Sort(deps)
	return slices.Compact(deps), nil
}
