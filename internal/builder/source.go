package builder

import (
	"errors"
	"fmt"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Source is what a guest directory holds, learnt without building it.
type Source struct {
	// Dir is the directory as given.
	Dir string
	// Lang is "go" (a main package) or "c" (C sources, no Go files).
	Lang string
	// Mode is the shape a Go package declares with a //wasmsrv:mode directive:
	// sync, async, or ModeAuto when it declares none. ModeAt says where
	// ("main.go:3").
	Mode   abi.Mode
	ModeAt string
}

// ModeDirective is the comment by which a Go guest package declares its shape, so
// that `wasmsrv run` and `wasmsrv serve` build it right without a flag:
//
//	//wasmsrv:mode async
//
// on a line of its own in any non-test .go file of the package.
const ModeDirective = "//wasmsrv:mode"

// directivePrefix starts every wasmsrv directive; unknown ones are errors, so a
// misspelt directive is not silently ignored.
const directivePrefix = "//wasmsrv:"

// Inspect tells what dir holds: a Go main package (with the shape it declares) or
// C sources. Its errors say in one line what is wrong and what to do instead: an
// empty directory, no sources, a package that is not main, a bad directive.
func Inspect(dir string) (*Source, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var goFiles, cFiles, wasmFiles []string
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		switch name := e.Name(); {
		case strings.HasSuffix(name, "_test.go"):
		case strings.HasSuffix(name, ".go"):
			goFiles = append(goFiles, name)
		case strings.HasSuffix(name, ".c"):
			cFiles = append(cFiles, name)
		case strings.HasSuffix(name, ".wasm"):
			wasmFiles = append(wasmFiles, name)
		}
	}
	switch {
	case len(goFiles) > 0:
		return inspectGo(dir, goFiles)
	case len(cFiles) > 0:
		return &Source{Dir: dir, Lang: "c"}, nil
	case len(ents) == 0:
		return nil, fmt.Errorf("%s is empty: there is no app to build (`wasmsrv new %s` writes a starter app)", dir, dir)
	case len(wasmFiles) == 1:
		return nil, fmt.Errorf("%s has no Go or C sources to build: to serve the module in it, run %s", dir, filepath.Join(dir, wasmFiles[0]))
	}
	return nil, fmt.Errorf("%s has no Go or C sources (*.go, *.c): APP is a .wasm file, a Go main package or a directory of C sources (`wasmsrv new DIR` writes a starter app)", dir)
}

func inspectGo(dir string, files []string) (*Source, error) {
	ctxt := build.Default
	ctxt.GOOS, ctxt.GOARCH, ctxt.CgoEnabled = "wasip1", "wasm", false
	pkg, err := ctxt.ImportDir(dir, 0)
	var mp *build.MultiplePackageError
	var ng *build.NoGoError
	switch {
	case errors.As(err, &mp):
		return nil, fmt.Errorf("%s mixes packages %s: a guest is one main package", dir, strings.Join(slices.Compact(slices.Sorted(slices.Values(mp.Packages))), " and "))
	case errors.As(err, &ng):
		return nil, fmt.Errorf("%s has no Go files that build for GOOS=wasip1 (check their //go:build lines)", dir)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", dir, err)
	case pkg.Name != "main":
		return nil, fmt.Errorf("%s is package %s, not a main package: a guest is `package main` with an empty `func main() {}` (the SDK registers handlers from init); `wasmsrv new DIR` writes one", dir, pkg.Name)
	}
	src := &Source{Dir: dir, Lang: "go"}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			// The compiler will say the same, with context.
			continue
		}
		for _, g := range f.Comments {
			for _, c := range g.List {
				if !strings.HasPrefix(c.Text, directivePrefix) {
					continue
				}
				at := fmt.Sprintf("%s:%d", name, fset.Position(c.Slash).Line)
				if err := src.directive(c.Text, at); err != nil {
					return nil, fmt.Errorf("%s: %w", filepath.Join(dir, at), err)
				}
			}
		}
	}
	return src, nil
}

// directive applies one //wasmsrv: comment found at at.
func (s *Source) directive(text, at string) error {
	name, arg, _ := strings.Cut(strings.TrimPrefix(text, directivePrefix), " ")
	arg = strings.TrimSpace(arg)
	if name != "mode" {
		return fmt.Errorf("unknown directive %s%s (the one wasmsrv reads is %s sync|async)", directivePrefix, name, ModeDirective)
	}
	m, err := abi.ParseMode(arg)
	if err != nil || (m != abi.ModeSync && m != abi.ModeAsync) {
		return fmt.Errorf("%s %q: want %s sync or %s async", ModeDirective, arg, ModeDirective, ModeDirective)
	}
	if s.Mode != abi.ModeAuto && s.Mode != m {
		return fmt.Errorf("%s %s contradicts %s %s at %s", ModeDirective, m, ModeDirective, s.Mode, s.ModeAt)
	}
	if s.Mode == abi.ModeAuto {
		s.Mode, s.ModeAt = m, at
	}
	return nil
}

// ErrWrongMode is wrapped by the errors of a mode a package cannot be built for:
// callers name their mode setting.
var ErrWrongMode = errors.New("wrong mode")

// errWrongMode wraps ErrWrongMode without adding to the message.
var errWrongMode = quiet{ErrWrongMode}

type quiet struct{ error }

func (quiet) Error() string   { return "" }
func (q quiet) Unwrap() error { return q.error }

// BuildMode is the shape to build the package for: want (ModeAuto for what the
// package declares, else sync or async) must agree with the directive. An
// undeclared package with no wish is built sync (the default shape).
func (s *Source) BuildMode(want abi.Mode) (abi.Mode, error) {
	switch want {
	case abi.ModeAuto:
		if s.Mode != abi.ModeAuto {
			return s.Mode, nil
		}
		return abi.ModeSync, nil
	case abi.ModeSync, abi.ModeAsync:
		if s.Mode != abi.ModeAuto && s.Mode != want {
			return abi.ModeAuto, fmt.Errorf("mode %s was asked for, but %s declares %s %s: drop the mode setting or change the directive%w",
				want, filepath.Join(s.Dir, s.ModeAt), ModeDirective, s.Mode, errWrongMode)
		}
		return want, nil
	}
	return abi.ModeAuto, fmt.Errorf("mode %s: a Go package is built sync or async%w", want, errWrongMode)
}
