package scaffold

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/modfile"
)

func readMod(t *testing.T, dir string) *modfile.File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sdkReplace is the directory go.mod replaces the SDK with ("" if none).
func sdkReplace(f *modfile.File) string {
	for _, r := range f.Replace {
		if r.Old.Path == SDKModule {
			return r.New.Path
		}
	}
	return ""
}

func TestNewEveryTemplate(t *testing.T) {
	sdk, err := CurrentSDK()
	if err != nil {
		t.Fatal(err)
	}
	for _, tmpl := range Templates() {
		t.Run(tmpl.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "my-app")
			c, err := New(dir, Options{Template: tmpl.Name, Version: "test"})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range c.Files {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("listed file %s: %v", f, err)
				}
			}
			if !slices.Contains(c.Files, "README.md") {
				t.Errorf("no README: %v", c.Files)
			}
			readme, _ := os.ReadFile(filepath.Join(dir, "README.md"))
			if !bytes.Contains(readme, []byte("# my-app")) || !bytes.Contains(readme, []byte("--update-sdk")) || bytes.Contains(readme, []byte("<no value>")) {
				t.Errorf("README:\n%s", readme)
			}
			switch tmpl.Lang {
			case "go":
				mod := readMod(t, dir)
				if mod.Module.Mod.Path != "my-app" {
					t.Errorf("module %q", mod.Module.Mod.Path)
				}
				want := ""
				if tmpl.SDK {
					want = "./" + sdk.Dir()
					if h, err := hashDir(filepath.Join(dir, sdk.Dir())); err != nil || h != sdk.Hash {
						t.Errorf("SDK directory hashes to %q (%v), want %s", h, err, sdk.Hash)
					}
				} else if _, err := os.Stat(filepath.Join(dir, sdkRoot)); err == nil {
					t.Errorf("%s written for a template without the SDK", sdkRoot)
				}
				if got := sdkReplace(mod); got != want {
					t.Errorf("replace %q, want %q", got, want)
				}
			case "c":
				for _, h := range []string{"wasmsrv.h", "wasmsrv_plugins.h"} {
					b, err := os.ReadFile(filepath.Join(dir, h))
					if err != nil || headerSDK(b) == "" {
						t.Errorf("%s: %v, marked %q", h, err, headerSDK(b))
					}
				}
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o644)
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o644)
	for _, tt := range []struct {
		name, dir string
		opt       Options
		mention   []string
	}{
		{"non-empty", full, Options{}, []string{"is not empty (notes.txt)", "overwrites nothing", "--update-sdk " + full}},
		{"a file", file, Options{}, []string{"is not a directory"}},
		{"bad directory name", filepath.Join(t.TempDir(), "My App"), Options{}, []string{`"My App" cannot be an app name`, "e.g. my-app"}},
		{"dotted directory name", filepath.Join(t.TempDir(), "my.app"), Options{Template: "c"}, []string{`"my.app" cannot be an app name`, "e.g. my-app"}},
		{"bad module", filepath.Join(t.TempDir(), "x"), Options{Module: "-x"}, []string{`--module "-x"`}},
		{"unknown template", filepath.Join(t.TempDir(), "x"), Options{Template: "rust"}, []string{`unknown template "rust"`, "templates: go, go-http"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.dir, tt.opt)
			if err == nil {
				t.Fatal("no error")
			}
			for _, m := range tt.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	if b, _ := os.ReadFile(filepath.Join(full, "notes.txt")); string(b) != "mine" {
		t.Error("the non-empty directory was touched")
	}
	// An empty directory that exists is fine, and so is a module path given.
	empty := t.TempDir()
	if _, err := New(empty, Options{Module: "example.com/x"}); err != nil {
		t.Fatal(err)
	}
	if got := readMod(t, empty).Module.Mod.Path; got != "example.com/x" {
		t.Errorf("module %q", got)
	}
}

func TestLookupSuggests(t *testing.T) {
	for in, want := range map[string]string{"htpp": "go-http", "http": "go-http", "async": "go-async", "go-asnyc": "go-async",
		"cgi": "go-cgi", "C": "c", "goo": "go", "rust": "", "zig": ""} {
		_, err := Lookup(in)
		if err == nil {
			t.Fatalf("%q found", in)
		}
		got := ""
		if _, s, ok := strings.Cut(err.Error(), "did you mean "); ok {
			got, _, _ = strings.Cut(s, "?")
		}
		if got != want {
			t.Errorf("Lookup(%q) suggests %q, want %q (%v)", in, got, want, err)
		}
	}
}

// replaceSDK points the app's go.mod at another SDK directory, as if an older
// wasmsrv had written it.
func replaceSDK(t *testing.T, dir, to string) {
	t.Helper()
	mod := readMod(t, dir)
	if err := mod.DropReplace(SDKModule, ""); err != nil {
		t.Fatal(err)
	}
	if err := mod.AddReplace(SDKModule, "", to, ""); err != nil {
		t.Fatal(err)
	}
	b, err := mod.Format()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// olderSDK turns an app's SDK into one "from an older wasmsrv": its files differ,
// its directory is named by their hash. edited leaves the name and changes a file.
func olderSDK(t *testing.T, dir string, sdk *SDK, edited bool) string {
	t.Helper()
	cur := filepath.Join(dir, sdk.Dir())
	p := filepath.Join(cur, "sdk", "go", "doc.go")
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, append(b, "\n// an older SDK\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := hashDir(cur)
	if err != nil {
		t.Fatal(err)
	}
	name := "sdk-" + h
	if edited {
		name = "sdk-0123456789ab" // named for other contents than it has
	}
	if err := os.Rename(cur, filepath.Join(dir, sdkRoot, name)); err != nil {
		t.Fatal(err)
	}
	replaceSDK(t, dir, "./"+sdkRoot+"/"+name)
	return name
}

func TestUpdateSDK(t *testing.T) {
	sdk, err := CurrentSDK()
	if err != nil {
		t.Fatal(err)
	}
	newApp := func(t *testing.T, tmpl string) string {
		dir := filepath.Join(t.TempDir(), "app")
		if _, err := New(dir, Options{Template: tmpl}); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	t.Run("current", func(t *testing.T) {
		dir := newApp(t, "go")
		u, err := UpdateSDK(dir, "test")
		if err != nil || !u.Current || len(u.Changed) != 0 {
			t.Fatalf("%+v, %v", u, err)
		}
	})
	t.Run("older", func(t *testing.T) {
		dir := newApp(t, "go-http")
		old := olderSDK(t, dir, sdk, false)
		u, err := UpdateSDK(dir, "test")
		if err != nil || u.Current || u.From != old || u.To != "sdk-"+sdk.Hash || len(u.Kept) != 0 {
			t.Fatalf("%+v, %v", u, err)
		}
		if got := sdkReplace(readMod(t, dir)); got != "./"+sdk.Dir() {
			t.Errorf("replace %q after the update", got)
		}
		if _, err := os.Stat(filepath.Join(dir, sdkRoot, old)); err == nil {
			t.Error("the old SDK is still there")
		}
		if h, err := hashDir(filepath.Join(dir, sdk.Dir())); err != nil || h != sdk.Hash {
			t.Errorf("new SDK hashes to %q, %v", h, err)
		}
	})
	t.Run("older and edited", func(t *testing.T) {
		dir := newApp(t, "go")
		old := olderSDK(t, dir, sdk, true)
		u, err := UpdateSDK(dir, "test")
		if err != nil || len(u.Kept) != 1 || u.Kept[0] != sdkRoot+"/"+old {
			t.Fatalf("%+v, %v", u, err)
		}
		if _, err := os.Stat(filepath.Join(dir, sdkRoot, old, "sdk", "go", "doc.go")); err != nil {
			t.Error("the edited SDK was removed")
		}
	})
	t.Run("current but edited", func(t *testing.T) {
		dir := newApp(t, "go")
		p := filepath.Join(dir, sdk.Dir(), "abi", "abi.go")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, append(b, "\n// mine\n"...), 0o644)
		if _, err := UpdateSDK(dir, "test"); err == nil || !strings.Contains(err.Error(), "was edited") {
			t.Fatalf("err %v", err)
		}
		if b2, _ := os.ReadFile(p); !bytes.HasSuffix(b2, []byte("// mine\n")) {
			t.Error("the edit was lost")
		}
	})
	t.Run("older, and an edited copy of the current beside it", func(t *testing.T) {
		dir := newApp(t, "go")
		olderSDK(t, dir, sdk, false)
		edited := filepath.Join(dir, sdk.Dir(), "abi", "abi.go")
		if err := writeFile(edited, []byte("package abi // mine\n")); err != nil {
			t.Fatal(err)
		}
		if _, err := UpdateSDK(dir, "test"); err == nil || !strings.Contains(err.Error(), "was edited") {
			t.Fatalf("err %v", err)
		}
		if b, _ := os.ReadFile(edited); string(b) != "package abi // mine\n" {
			t.Error("the edit was lost")
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		dir := newApp(t, "go")
		os.RemoveAll(filepath.Join(dir, sdkRoot))
		if u, err := UpdateSDK(dir, "test"); err != nil || u.Current || !slices.Contains(u.Changed, sdk.Dir()) {
			t.Fatalf("%+v, %v", u, err)
		}
	})
	t.Run("someone else's replace", func(t *testing.T) {
		dir := newApp(t, "go")
		replaceSDK(t, dir, "../my-wasmsrv-checkout")
		before, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		if _, err := UpdateSDK(dir, "test"); err == nil || !strings.Contains(err.Error(), "../my-wasmsrv-checkout") {
			t.Fatalf("err %v", err)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, "go.mod")); !bytes.Equal(before, after) {
			t.Error("go.mod changed")
		}
	})
	t.Run("a module of one's own", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/mine\n\ngo 1.24\n"), 0o644)
		u, err := UpdateSDK(dir, "test")
		if err != nil || u.From != "" || !slices.Contains(u.Changed, "go.mod") {
			t.Fatalf("%+v, %v", u, err)
		}
		mod := readMod(t, dir)
		if sdkReplace(mod) != "./"+sdk.Dir() || !slices.ContainsFunc(mod.Require, func(r *modfile.Require) bool { return r.Mod.Path == SDKModule }) {
			t.Errorf("go.mod:\n%s", mustRead(t, filepath.Join(dir, "go.mod")))
		}
	})
	t.Run("C", func(t *testing.T) {
		dir := newApp(t, "c")
		h := filepath.Join(dir, "wasmsrv.h")
		b, _ := os.ReadFile(h)
		cur := headerSDK(b)
		// As written by an older wasmsrv: another mark, other contents.
		os.WriteFile(h, bytes.Replace(append(b, "/* older */\n"...), []byte(cur), []byte("0123456789ab"), 1), 0o644)
		u, err := UpdateSDK(dir, "test")
		if err != nil || u.From != "sdk-0123456789ab" || u.To != "sdk-"+cur || !slices.Equal(u.Changed, []string{"wasmsrv.h"}) {
			t.Fatalf("%+v, %v", u, err)
		}
		if b2, _ := os.ReadFile(h); !bytes.Equal(b, b2) {
			t.Error("header not restored to this SDK's")
		}
		if u, err := UpdateSDK(dir, "test"); err != nil || !u.Current {
			t.Fatalf("second update: %+v, %v", u, err)
		}
	})
	t.Run("nothing of ours", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "wasmsrv.h"), []byte("/* my own copy */\n"), 0o644)
		if _, err := UpdateSDK(dir, "test"); err == nil || !strings.Contains(err.Error(), "no go.mod and no wasmsrv.h written by `wasmsrv new`") {
			t.Fatalf("err %v", err)
		}
	})
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSDKOf(t *testing.T) {
	sdk, err := CurrentSDK()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "app")
	if _, err := New(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "cmd", "x")
	os.MkdirAll(sub, 0o755)
	for _, d := range []string{dir, sub} {
		if have, cur, ok := SDKOf(d); !ok || have != "sdk-"+sdk.Hash || cur != have {
			t.Errorf("SDKOf(%s) = %q, %q, %v", d, have, cur, ok)
		}
	}
	olderSDK(t, dir, sdk, false)
	if have, cur, ok := SDKOf(dir); !ok || have == cur {
		t.Errorf("older SDK not told apart: %q, %q, %v", have, cur, ok)
	}
	if _, _, ok := SDKOf("../../samples/hello"); ok {
		t.Error("the repository's own samples are not apps of wasmsrv new")
	}
}

// The embedded SDK must hold every package the Go SDK imports from this module,
// in both shapes: a new import (another package of this repository) must be added
// to the go:embed line in sources.go, or apps outside the repository stop building.
func TestEmbeddedSDKIsComplete(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	sdk, err := CurrentSDK()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range sdk.files {
		have[filepath.Dir(f.path)] = true
	}
	for _, tags := range []string{"", "wasmsrv_async"} {
		cmd := exec.Command("go", "list", "-deps", "-tags", tags, "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "../../sdk/go/...")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(p, SDKModule+"/")
			if !ok {
				t.Errorf("the SDK imports %s, outside this module: apps could not build offline", p)
				continue
			}
			if !have[rel] {
				t.Errorf("the SDK imports %s, which sources.go does not embed", p)
			}
		}
	}
}
