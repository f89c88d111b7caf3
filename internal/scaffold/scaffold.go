// Package scaffold makes apps that live outside this repository: `wasmsrv new`
// writes a starter app from a template, and `wasmsrv new --update-sdk` moves an app
// to the SDK of the running wasmsrv.
//
// The Go SDK is not a published module, so it travels inside the wasmsrv binary
// (package github.com/wasmsrv/wasmsrv, go:embed) and is written into the app, at
// .wasmsrv/sdk-HASH, with a replace directive in the app's go.mod. HASH is taken
// from the SDK's files, so the directory names exactly what the app builds against;
// an upgrade writes the new directory, points go.mod at it and removes the old one,
// so the change shows as one line in go.mod. Living in the app, the SDK is committed
// with it: a clone builds the same way on any machine, in CI with only a Go
// toolchain, and with no network. C apps get the headers beside their sources,
// marked with the SDK they came from.
package scaffold

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"golang.org/x/mod/modfile"

	wasmsrv "github.com/wasmsrv/wasmsrv"
	"github.com/wasmsrv/wasmsrv/internal/appname"
	"github.com/wasmsrv/wasmsrv/internal/suggest"
)

// SDKModule is the module path of the Go SDK.
const SDKModule = "github.com/wasmsrv/wasmsrv"

// sdkRoot is where an app keeps what wasmsrv wrote into it.
const sdkRoot = ".wasmsrv"

// Template is a starter app.
type Template struct {
	Name    string
	Summary string
	Lang    string   // "go" or "c"
	SDK     bool     // the app imports the SDK (a Go app gets it in .wasmsrv)
	Try     []string // commands to try once it runs, for the app's README
	Then    string   // and what else to try
}

// Templates lists the starter apps, the default first.
func Templates() []Template {
	return []Template{
		{Name: "go", Summary: "Go on the SDK's native API: the smallest, fastest Go guest", Lang: "go", SDK: true,
			Try: []string{"curl 'localhost:8080/?name=you'"}},
		{Name: "go-http", Summary: "Go on net/http: an http.ServeMux through the wasmhttp adapter", Lang: "go", SDK: true,
			Try: []string{"curl localhost:8080/hello/you", "curl -d 'some bytes' localhost:8080/echo"}},
		{Name: "go-async", Summary: "Go in the async shape: one instance carries many requests and WebSockets; a WebSocket echo on /ws", Lang: "go", SDK: true,
			Try: []string{"curl localhost:8080/"}, Then: "any WebSocket client on ws://localhost:8080/ws: it echoes what you send"},
		{Name: "go-cgi", Summary: "a plain Go program served CGI-style, a WASI command with no SDK, as any language can be", Lang: "go",
			Try: []string{"curl -d 'some bytes' 'localhost:8080/path?x=1'"}},
		{Name: "c", Summary: "C on the single-header SDK, built with clang --target=wasm32-wasi", Lang: "c", SDK: true,
			Try: []string{"curl localhost:8080/you"}},
	}
}

// Lookup returns the template called name, or an error that lists the templates
// and suggests the closest name.
func Lookup(name string) (Template, error) {
	var names []string
	for _, t := range Templates() {
		if t.Name == name {
			return t, nil
		}
		names = append(names, t.Name)
	}
	msg := fmt.Sprintf("unknown template %q", name)
	if s := closest(name, names); s != "" {
		msg += fmt.Sprintf(": did you mean %s?", s)
	}
	return Template{}, fmt.Errorf("%s (templates: %s; `wasmsrv new --list` describes them)", msg, strings.Join(names, ", "))
}

// closest is the name nearest to s by edit distance, if it is near enough, or a
// name that contains s ("http" → "go-http").
func closest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		// "http" is near "go-http": compare with the language prefix dropped too.
		d := min(suggest.Distance(strings.ToLower(s), n), suggest.Distance(strings.ToLower(s), strings.TrimPrefix(n, "go-")))
		if d < bestD {
			best, bestD = n, d
		}
	}
	if best != "" || len(s) < 2 {
		return best
	}
	for _, n := range names {
		if strings.Contains(n, strings.ToLower(s)) {
			return n
		}
	}
	return ""
}

// file is one file to write, by its path in the app (slash-separated).
type file struct {
	path string
	data []byte
}

// SDK is the Go SDK this binary carries, as the files of its module.
type SDK struct {
	// Hash names this SDK: 12 hex digits of the SHA-256 of its files.
	Hash  string
	files []file
}

// Dir is the SDK's directory in an app, relative to the app: .wasmsrv/sdk-HASH.
func (s *SDK) Dir() string { return sdkRoot + "/sdk-" + s.Hash }

// goVersion is the go directive of this repository's go.mod: the SDK's minimum.
func goVersion() (string, error) {
	b, err := wasmsrv.Sources.ReadFile("go.mod")
	if err != nil {
		return "", err
	}
	f, err := modfile.ParseLax("go.mod", b, nil)
	if err != nil || f.Go == nil {
		return "", fmt.Errorf("embedded go.mod has no go directive: %v", err)
	}
	return f.Go.Version, nil
}

// CurrentSDK is the Go SDK embedded in this binary: the packages under sdk/go,
// abi and plugins/pluginabi (without their tests), and a go.mod for the module.
func CurrentSDK() (*SDK, error) {
	gover, err := goVersion()
	if err != nil {
		return nil, err
	}
	s := &SDK{}
	s.files = append(s.files, file{"go.mod", []byte("module " + SDKModule + "\n\ngo " + gover + "\n")})
	err = fs.WalkDir(wasmsrv.Sources, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.HasSuffix(p, "_test.go") || !strings.HasSuffix(p, ".go") {
			return nil
		}
		if !strings.HasPrefix(p, "sdk/go/") && !strings.HasPrefix(p, "abi/") && !strings.HasPrefix(p, "plugins/pluginabi/") {
			return nil
		}
		b, err := wasmsrv.Sources.ReadFile(p)
		if err != nil {
			return err
		}
		s.files = append(s.files, file{p, b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Hash = hashFiles(s.files)
	return s, nil
}

// hashFiles hashes paths and contents, in path order.
func hashFiles(files []file) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b file) int { return strings.Compare(a.path, b.path) })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%s\x00%d\x00", f.path, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// sdkNote is the README of an SDK directory; it is not part of the hash.
const sdkNote = "README.md"

// hashDir hashes an SDK directory as written (without its note), to tell whether
// it was edited.
func hashDir(dir string) (string, error) {
	var files []file
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if rel == sdkNote {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{filepath.ToSlash(rel), b})
		return nil
	})
	if err != nil {
		return "", err
	}
	return hashFiles(files), nil
}

// cHeaders are the C SDK's headers, each with a first line saying which SDK it is
// and how to upgrade it.
func cHeaders() ([]file, string, error) {
	var files []file
	for _, name := range []string{"wasmsrv.h", "wasmsrv_plugins.h"} {
		b, err := wasmsrv.Sources.ReadFile("sdk/c/" + name)
		if err != nil {
			return nil, "", err
		}
		files = append(files, file{name, b})
	}
	hash := hashFiles(files)
	for i := range files {
		files[i].data = append([]byte(headerMark+hash+headerMarkEnd), files[i].data...)
	}
	return files, hash, nil
}

// The first line of a C header written by wasmsrv new.
const (
	headerMark    = "/* wasmsrv C SDK sdk-"
	headerMarkEnd = ", written by `wasmsrv new`; upgrade with `wasmsrv new --update-sdk DIR`, do not edit. */\n"
)

// headerSDK reads the SDK hash from a header's first line ("" if it has none).
func headerSDK(b []byte) string {
	rest, ok := bytes.CutPrefix(b, []byte(headerMark))
	if !ok {
		return ""
	}
	hash, _, ok := bytes.Cut(rest, []byte(","))
	if !ok {
		return ""
	}
	return string(hash)
}

// Options describe a new app.
type Options struct {
	// Template names the starter app (default "go").
	Template string
	// Module is the Go module path (default: the directory's name).
	Module string
	// Version says which wasmsrv writes the app, for the SDK's note.
	Version string
}

// Created says what New wrote.
type Created struct {
	Dir      string
	Template Template
	Files    []string // paths in the app, slash-separated
	SDKDir   string   // the Go SDK's directory in the app, "" if none
}

// New writes a new app into dir, which must not exist or be empty.
func New(dir string, opt Options) (*Created, error) {
	if opt.Template == "" {
		opt.Template = Templates()[0].Name
	}
	tmpl, err := Lookup(opt.Template)
	if err != nil {
		return nil, err
	}
	if err := emptyOrAbsent(dir); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// `wasmsrv run DIR` names the app after its directory, and the name is the
	// app's namespace in plugins: refuse one that would need --name every time.
	name := filepath.Base(abs)
	if err := appname.Check(name); err != nil {
		return nil, fmt.Errorf("the directory name %q cannot be an app name (wasmsrv run names an app after its directory; %s): choose another, e.g. %s", name, appname.Allowed, sanitize(name))
	}
	module := opt.Module
	if module == "" && tmpl.Lang == "go" {
		module = name
	} else if tmpl.Lang == "go" && !validModule(module) {
		return nil, fmt.Errorf("--module %q is not a Go module path (letters, digits and . _ ~ - /, not starting with . / or -)", module)
	}

	files, err := templateFiles(tmpl)
	if err != nil {
		return nil, err
	}
	c := &Created{Dir: dir, Template: tmpl}
	var sdk *SDK
	switch tmpl.Lang {
	case "go":
		gover, err := goVersion()
		if err != nil {
			return nil, err
		}
		mod := &modfile.File{}
		if err := mod.AddModuleStmt(module); err != nil {
			return nil, err
		}
		if err := mod.AddGoStmt(gover); err != nil {
			return nil, err
		}
		if tmpl.SDK {
			if sdk, err = CurrentSDK(); err != nil {
				return nil, err
			}
			if err := pointAt(mod, sdk); err != nil {
				return nil, err
			}
			c.SDKDir = sdk.Dir()
		}
		b, err := mod.Format()
		if err != nil {
			return nil, err
		}
		files = append(files, file{"go.mod", b})
	case "c":
		hdrs, _, err := cHeaders()
		if err != nil {
			return nil, err
		}
		files = append(files, hdrs...)
	}
	readme, err := appReadme(tmpl, filepath.Base(abs), c.SDKDir)
	if err != nil {
		return nil, err
	}
	files = append(files, file{"README.md", readme})

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(f.path)), f.data); err != nil {
			return nil, err
		}
		c.Files = append(c.Files, f.path)
	}
	if sdk != nil {
		if err := writeSDK(dir, sdk, opt.Version); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// emptyOrAbsent refuses a path that holds anything.
func emptyOrAbsent(dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s exists and is not a directory: `wasmsrv new` writes a new directory", dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(ents) > 0 {
		names := make([]string, 0, 3)
		for _, e := range ents[:min(3, len(ents))] {
			names = append(names, e.Name())
		}
		more := ""
		if len(ents) > 3 {
			more = ", …"
		}
		return fmt.Errorf("%s is not empty (%s%s): `wasmsrv new` writes only into a new or empty directory and overwrites nothing; "+
			"to add or upgrade the SDK of an existing app, run `wasmsrv new --update-sdk %s`", dir, strings.Join(names, ", "), more, dir)
	}
	return nil
}

var modulePath = regexp.MustCompile(`^[A-Za-z0-9_~][A-Za-z0-9._~-]*(/[A-Za-z0-9_~][A-Za-z0-9._~-]*)*$`)

func validModule(m string) bool { return modulePath.MatchString(m) && !strings.HasSuffix(m, ".") }

// sanitize makes an app name of s: the characters appname allows, lower case.
func sanitize(s string) string {
	s = regexp.MustCompile(`[^a-z0-9_-]+`).ReplaceAllString(strings.ToLower(s), "-")
	s = strings.TrimLeft(strings.TrimRight(s, "-"), "-_")
	if len(s) > appname.MaxLen {
		s = s[:appname.MaxLen]
	}
	if s == "" {
		return "app"
	}
	return s
}

// templateFiles are a template's own files (sdk/templates/NAME/…).
func templateFiles(t Template) ([]file, error) {
	root := "sdk/templates/" + t.Name
	var files []file
	err := fs.WalkDir(wasmsrv.Sources, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := wasmsrv.Sources.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, file{strings.TrimPrefix(p, root+"/"), b})
		return nil
	})
	return files, err
}

// pointAt makes mod require the SDK module and replace it with sdk's directory.
func pointAt(mod *modfile.File, sdk *SDK) error {
	has := slices.ContainsFunc(mod.Require, func(r *modfile.Require) bool { return r.Mod.Path == SDKModule })
	if !has {
		if err := mod.AddRequire(SDKModule, "v0.0.0"); err != nil {
			return err
		}
	}
	for _, r := range slices.Clone(mod.Replace) {
		if r.Old.Path == SDKModule {
			if err := mod.DropReplace(SDKModule, r.Old.Version); err != nil {
				return err
			}
		}
	}
	if err := mod.AddReplace(SDKModule, "", "./"+sdk.Dir(), ""); err != nil {
		return err
	}
	mod.Cleanup()
	return nil
}

// writeSDK writes sdk into the app at dir, in a scratch directory renamed into
// place, so a directory named sdk-HASH is always complete.
func writeSDK(dir string, sdk *SDK, version string) error {
	final := filepath.Join(dir, filepath.FromSlash(sdk.Dir()))
	if _, err := os.Stat(final); err == nil {
		// Already there (another app state, or a half-done upgrade): use it only
		// if it is what its name says.
		h, err := hashDir(final)
		if err != nil {
			return err
		}
		if h != sdk.Hash {
			return fmt.Errorf("%s was edited (its files no longer hash to %s): move your changes out of it, delete it, and try again", final, sdk.Hash)
		}
		return nil
	}
	root := filepath.Join(dir, sdkRoot)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(root, "sdk-*.tmp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, f := range sdk.files {
		if err := writeFile(filepath.Join(tmp, filepath.FromSlash(f.path)), f.data); err != nil {
			return err
		}
	}
	note := fmt.Sprintf("# wasmsrv Go SDK sdk-%s\n\nWritten by `wasmsrv new` (wasmsrv %s): the Go SDK this app builds against,\n"+
		"through the `replace` in its go.mod. Commit it with the app: builds are then the same\n"+
		"everywhere and need no network. Do not edit it: `wasmsrv new --update-sdk DIR`\n"+
		"replaces it with the SDK of the wasmsrv you run (and refuses to if it was edited).\n", sdk.Hash, version)
	if err := writeFile(filepath.Join(tmp, sdkNote), []byte(note)); err != nil {
		return err
	}
	return os.Rename(tmp, final)
}

func writeFile(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// writeAtomic replaces p's content through a temporary file in its directory.
func writeAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if st, err := os.Stat(p); err == nil {
		_ = os.Chmod(f.Name(), st.Mode().Perm())
	}
	return os.Rename(f.Name(), p)
}

// appReadme is the README of a new app.
func appReadme(t Template, name, sdkDir string) ([]byte, error) {
	b, err := wasmsrv.Sources.ReadFile("sdk/templates/README.md.tmpl")
	if err != nil {
		return nil, err
	}
	tt, err := template.New("README").Parse(string(b))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	err = tt.Execute(&out, map[string]any{"Name": name, "T": t, "SDKDir": sdkDir})
	return out.Bytes(), err
}

// Updated says what UpdateSDK did.
type Updated struct {
	From, To string   // "sdk-HASH"; From is "" when the app had no SDK
	Current  bool     // nothing to do: the app has this binary's SDK
	Kept     []string // old SDK directories or headers left in place because they were edited
	Changed  []string // paths written, relative to the app
}

// UpdateSDK moves the app at dir to this binary's SDK. A Go app (go.mod) gets the
// SDK in .wasmsrv/sdk-HASH and its go.mod pointed there (require and replace are
// added if missing, so `go mod init` then --update-sdk sets up an existing
// module); the SDK directory it used before is removed unless it was edited. A C
// app gets its marked headers rewritten. Nothing the user wrote is touched.
func UpdateSDK(dir, version string) (*Updated, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	modPath := filepath.Join(dir, "go.mod")
	if b, err := os.ReadFile(modPath); err == nil {
		return updateGo(dir, modPath, b, version)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return updateC(dir)
}

func updateGo(dir, modPath string, data []byte, version string) (*Updated, error) {
	mod, err := modfile.Parse(modPath, data, nil)
	if err != nil {
		return nil, err
	}
	sdk, err := CurrentSDK()
	if err != nil {
		return nil, err
	}
	u := &Updated{To: "sdk-" + sdk.Hash}
	old := ""
	for _, r := range mod.Replace {
		if r.Old.Path != SDKModule {
			continue
		}
		p := filepath.ToSlash(filepath.Clean(r.New.Path))
		if r.New.Version != "" || !strings.HasPrefix(p, sdkRoot+"/sdk-") || strings.Count(p, "/") != 1 {
			return nil, fmt.Errorf("%s replaces %s with %s, which `wasmsrv new` did not write: left as it is (remove that replace to let --update-sdk manage the SDK)",
				modPath, SDKModule, r.New)
		}
		old = path.Base(p)
		u.From = old
	}
	if old == u.To {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(sdk.Dir()))); err == nil {
			if h, err := hashDir(filepath.Join(dir, filepath.FromSlash(sdk.Dir()))); err != nil {
				return nil, err
			} else if h != sdk.Hash {
				return nil, fmt.Errorf("%s was edited (its files no longer hash to %s): move your changes out of it, delete it, and run --update-sdk again",
					filepath.Join(dir, filepath.FromSlash(sdk.Dir())), sdk.Hash)
			}
			u.Current = true
			return u, nil
		}
	}
	if err := writeSDK(dir, sdk, version); err != nil {
		return nil, err
	}
	u.Changed = append(u.Changed, sdk.Dir())
	if err := pointAt(mod, sdk); err != nil {
		return nil, err
	}
	b, err := mod.Format()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(b, data) {
		if err := writeAtomic(modPath, b); err != nil {
			return nil, err
		}
		u.Changed = append(u.Changed, "go.mod")
	}
	if old != "" && old != u.To {
		oldDir := filepath.Join(dir, sdkRoot, old)
		switch h, err := hashDir(oldDir); {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		case "sdk-"+h != old:
			u.Kept = append(u.Kept, sdkRoot+"/"+old)
		default:
			if err := os.RemoveAll(oldDir); err != nil {
				return nil, err
			}
		}
	}
	return u, nil
}

func updateC(dir string) (*Updated, error) {
	hdrs, hash, err := cHeaders()
	if err != nil {
		return nil, err
	}
	u := &Updated{To: "sdk-" + hash, Current: true}
	found := false
	for _, h := range hdrs {
		p := filepath.Join(dir, h.path)
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		have := headerSDK(b)
		if have == "" {
			u.Kept = append(u.Kept, h.path) // the user's own copy: not ours to replace
			continue
		}
		found = true
		if u.From == "" || "sdk-"+have != u.To {
			u.From = "sdk-" + have
		}
		if bytes.Equal(b, h.data) {
			continue
		}
		u.Current = false
		if err := writeAtomic(p, h.data); err != nil {
			return nil, err
		}
		u.Changed = append(u.Changed, h.path)
	}
	if !found {
		return nil, fmt.Errorf("%s has no go.mod and no wasmsrv.h written by `wasmsrv new`: --update-sdk updates apps made by `wasmsrv new` (or Go modules: `go mod init NAME` first)", dir)
	}
	return u, nil
}

// SDKOf tells which SDK the Go app at dir builds against ("sdk-HASH") when its
// go.mod (in dir or above) points into .wasmsrv, and this binary's; ok is false
// when the app does not use an SDK written by `wasmsrv new`.
func SDKOf(dir string) (have, current string, ok bool) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", false
	}
	for d := abs; ; {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			mod, err := modfile.Parse("go.mod", b, nil)
			if err != nil {
				return "", "", false
			}
			for _, r := range mod.Replace {
				p := filepath.ToSlash(filepath.Clean(r.New.Path))
				if r.Old.Path == SDKModule && strings.HasPrefix(p, sdkRoot+"/sdk-") {
					sdk, err := CurrentSDK()
					if err != nil {
						return "", "", false
					}
					return path.Base(p), "sdk-" + sdk.Hash, true
				}
			}
			return "", "", false
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", "", false
		}
		d = parent
	}
}
