package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/abi"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Inspect says in one line what is wrong with a directory that holds no app, and
// reads the shape a package declares.
func TestInspect(t *testing.T) {
	const mainGo = "package main\n\nfunc main() {}\n"
	for _, tt := range []struct {
		name    string
		files   map[string]string
		lang    string
		mode    string
		modeAt  string
		mention []string // in the error; none means no error
	}{
		{"empty", nil, "", "", "", []string{"is empty", "wasmsrv new"}},
		{"only a readme", map[string]string{"README.md": "# x"}, "", "", "", []string{"no Go or C sources", "wasmsrv new"}},
		{"only a module", map[string]string{"app.wasm": "\x00asm"}, "", "", "", []string{"to serve the module in it, run", "app.wasm"}},
		{"only a subdirectory", map[string]string{"src/main.go": mainGo}, "", "", "", []string{"no Go or C sources"}},
		{"library package", map[string]string{"lib.go": "package lib\n"}, "", "", "", []string{"is package lib, not a main package", "func main() {}"}},
		{"two packages", map[string]string{"a.go": mainGo, "b.go": "package other\n"}, "", "", "", []string{"mixes packages main and other"}},
		{"only tests", map[string]string{"a_test.go": "package main\n"}, "", "", "", []string{"no Go or C sources"}},
		{"excluded by build tags", map[string]string{"a.go": "//go:build linux\n\npackage main\n"}, "", "", "", []string{"no Go files that build for GOOS=wasip1"}},
		{"plain main", map[string]string{"main.go": mainGo}, "go", "", "", nil},
		{"declares async", map[string]string{"main.go": "// Doc.\n//\n//wasmsrv:mode async\npackage main\n\nfunc main() {}\n"}, "go", "async", "main.go:3", nil},
		{"declares sync in another file", map[string]string{"main.go": mainGo, "shape.go": "package main\n\n//wasmsrv:mode sync\n"}, "go", "sync", "shape.go:3", nil},
		{"same twice", map[string]string{"a.go": "//wasmsrv:mode async\npackage main\n", "b.go": "package main\n\n//wasmsrv:mode async\nfunc main() {}\n"}, "go", "async", "a.go:1", nil},
		{"contradiction", map[string]string{"a.go": "//wasmsrv:mode async\npackage main\n", "b.go": "package main\n\n//wasmsrv:mode sync\nfunc main() {}\n"}, "", "", "", []string{"b.go:3", "//wasmsrv:mode sync contradicts //wasmsrv:mode async at a.go:1"}},
		{"bad value", map[string]string{"main.go": "//wasmsrv:mode fast\npackage main\n"}, "", "", "", []string{"main.go:1", `"fast"`, "sync or"}},
		{"misspelt", map[string]string{"main.go": "//wasmsrv:mdoe async\npackage main\n"}, "", "", "", []string{"main.go:1", "unknown directive //wasmsrv:mdoe"}},
		{"in a test file", map[string]string{"main.go": mainGo, "main_test.go": "//wasmsrv:mode async\npackage main\n"}, "go", "", "", nil},
		{"in a string, not a comment", map[string]string{"main.go": "package main\n\nconst s = `\n//wasmsrv:mode async\n`\n\nfunc main() {}\n"}, "go", "", "", nil},
		{"a space is not a directive", map[string]string{"main.go": "// wasmsrv:mode async\npackage main\n"}, "go", "", "", nil},
		{"C sources", map[string]string{"main.c": "int x;\n"}, "c", "", "", nil},
		{"Go wins over C", map[string]string{"main.go": mainGo, "helper.c": "int x;\n"}, "go", "", "", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeTree(t, tt.files)
			src, err := Inspect(dir)
			if len(tt.mention) > 0 {
				if err == nil {
					t.Fatalf("no error; source %+v", src)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error spans lines: %q", err)
				}
				for _, m := range append(tt.mention, dir) {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not mention %q", err, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			mode := src.Mode.String()
			if src.Mode == abi.ModeAuto {
				mode = ""
			}
			if src.Lang != tt.lang || mode != tt.mode || src.ModeAt != tt.modeAt {
				t.Errorf("got lang %q mode %q at %q, want %q %q at %q", src.Lang, src.Mode, src.ModeAt, tt.lang, tt.mode, tt.modeAt)
			}
		})
	}
}

// A mode setting must agree with the package's directive; without either, a
// package is built sync.
func TestSourceBuildMode(t *testing.T) {
	declared := &Source{Dir: "app", Lang: "go", Mode: abi.ModeAsync, ModeAt: "main.go:3"}
	plain := &Source{Dir: "app", Lang: "go"}
	for _, tt := range []struct {
		src        *Source
		want, got  string
		errMention string
	}{
		{declared, "", "async", ""},
		{declared, "auto", "async", ""},
		{declared, "async", "async", ""},
		{declared, "sync", "", "app/main.go:3 declares //wasmsrv:mode async"},
		{plain, "", "sync", ""},
		{plain, "async", "async", ""},
		{plain, "cgi", "", "a Go package is built sync or async"},
	} {
		want, err := abi.ParseMode(tt.want)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tt.src.BuildMode(want)
		if tt.errMention != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errMention) {
				t.Errorf("BuildMode(%q) on %+v: err %v, want one mentioning %q", tt.want, tt.src, err, tt.errMention)
			}
			continue
		}
		if err != nil || got.String() != tt.got {
			t.Errorf("BuildMode(%q) on %+v = %q, %v; want %q", tt.want, tt.src, got, err, tt.got)
		}
	}
}

// BenchmarkInspect is what reading a package's //wasmsrv:mode costs a start
// (samples/chat: one file of 140 lines).
func BenchmarkInspect(b *testing.B) {
	for b.Loop() {
		if _, err := Inspect("../../samples/chat"); err != nil {
			b.Fatal(err)
		}
	}
}
