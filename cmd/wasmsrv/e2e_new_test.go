package main

// End-to-end tests of apps outside this repository: `wasmsrv new`, the README's
// tour run as written, `--update-sdk`, `wasmsrv build`.

import (
	"context"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tetratelabs/wazero"

	"github.com/wasmsrv/wasmsrv/internal/scaffold"
)

// outsideEnv is the environment of a user's app outside this repository: no
// workspace, no GOFLAGS that could reach back into the repository; GOPROXY as the
// environment has it (an app made by `wasmsrv new` needs no module from it).
var outsideEnv = []string{"GOWORK=off", "GOFLAGS=-mod=readonly"}

// outsideRepo returns a fresh directory and fails if it is inside the repository.
func outsideRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if rel, err := filepath.Rel(repo, dir); err == nil && !strings.HasPrefix(rel, "..") {
		t.Fatalf("temporary directory %s is inside the repository %s", dir, repo)
	}
	return dir
}

// tourLines are the shell lines of the README's tour (between <!-- tour --> and
// <!-- /tour -->, inside ```sh blocks), each split into its words and its comment.
func tourLines(t *testing.T) (lines [][]string, comments []string) {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "<!-- tour -->")
	tour, _, ok2 := strings.Cut(rest, "<!-- /tour -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no <!-- tour --> … <!-- /tour --> section")
	}
	comment := regexp.MustCompile(`\s+#\s?(.*)$`)
	inBlock := false
	for _, l := range strings.Split(tour, "\n") {
		switch {
		case strings.HasPrefix(l, "```sh"):
			inBlock = true
			continue
		case strings.HasPrefix(l, "```"):
			inBlock = false
			continue
		}
		if !inBlock || strings.TrimSpace(l) == "" {
			continue
		}
		c := ""
		if m := comment.FindStringSubmatchIndex(l); m != nil {
			c, l = l[m[2]:m[3]], l[:m[0]]
		}
		lines = append(lines, shellWords(t, l))
		comments = append(comments, c)
	}
	return lines, comments
}

// shellWords splits a line as sh would for the simple commands of the README:
// words separated by blanks, '…' and "…" quoting.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case ' ', '\t':
			if inWord {
				words, inWord = append(words, cur.String()), false
				cur.Reset()
			}
		case '\'', '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				t.Fatalf("unbalanced quote in README line %q", line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestE2EReadmeTour runs the README's tour as a reader who copies its commands:
// in a fresh directory outside the repository, `wasmsrv new` for each template,
// `wasmsrv run` (here on an ephemeral port), and every curl, whose comment is what
// the answer says. Then the async app's WebSocket echo, with gorilla/websocket.
func TestE2EReadmeTour(t *testing.T) {
	if _, err := exec.LookPath("clang"); err != nil {
		t.Skip("the tour's C app needs clang with wasi-libc (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
	}
	lines, comments := tourLines(t)
	var cwd string
	var srv *server
	templates := map[string]string{} // template name → app directory
	ran := map[string]bool{}         // app directories served
	client := httpClient(t)
	for i, words := range lines {
		line := strings.Join(words, " ")
		switch {
		case len(words) == 2 && words[0] == "cd" && words[1] == "$(mktemp -d)":
			cwd = outsideRepo(t)
		case len(words) >= 2 && words[0] == "wasmsrv" && words[1] == "new":
			if cwd == "" {
				t.Fatalf("README tour: %q before any cd into a fresh directory", line)
			}
			res := runWasmsrvIn(t, cwd, time.Minute, outsideEnv, words[1:]...)
			if res.code != 0 {
				t.Fatalf("%s: exit %d\n%s%s", line, res.code, res.stdout, res.stderr)
			}
			if m := regexp.MustCompile(`created (\S+) from template (\S+)`).FindStringSubmatch(res.stdout); m != nil {
				templates[m[2]] = m[1]
			}
		case len(words) >= 3 && words[0] == "wasmsrv" && words[1] == "run":
			if srv != nil {
				srv.stop() // the reader's Ctrl-C
			}
			args := append([]string{"run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache}, words[2:]...)
			srv = launch(t, cwd, outsideEnv, args...)
			ran[words[len(words)-1]] = true
		case len(words) >= 2 && words[0] == "curl":
			if srv == nil {
				t.Fatalf("README tour: %q with no server running", line)
			}
			method, body, url := http.MethodGet, "", ""
			for j := 1; j < len(words); j++ {
				switch w := words[j]; {
				case w == "-d":
					j++
					method, body = http.MethodPost, words[j]
				case strings.HasPrefix(w, "localhost:8080"):
					url = "http://" + srv.Addr + strings.TrimPrefix(w, "localhost:8080")
				default:
					t.Fatalf("README tour: curl argument %q the test does not know", w)
				}
			}
			req := mustRequest(t, method, url, strings.NewReader(body))
			if body != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
			}
			resp, got := do(t, client, req)
			if resp.StatusCode != 200 || !strings.Contains(got, comments[i]) {
				t.Errorf("%s: %d %q, want the README's %q\nserver log:\n%s", line, resp.StatusCode, got, comments[i], srv.logs())
			}
		default:
			t.Fatalf("README tour: a command the test does not know how to run: %q", line)
		}
	}
	if srv != nil {
		srv.stop()
	}
	for _, tmpl := range scaffold.Templates() {
		dir, ok := templates[tmpl.Name]
		if !ok {
			t.Errorf("the README's tour makes no app from template %s", tmpl.Name)
			continue
		}
		if !ran[dir] {
			t.Errorf("the README's tour does not run the %s app (%s)", tmpl.Name, dir)
		}
	}

	// The async app: built async by its directive, and a WebSocket round trip.
	dir, ok := templates["go-async"]
	if !ok {
		return
	}
	srv = launch(t, cwd, outsideEnv, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, dir)
	if !strings.Contains(srv.stdout.String(), "(async mode)") {
		t.Errorf("the go-async app is not served async: %q", srv.stdout.String())
	}
	c := wsDial(t, "ws://"+srv.Addr+"/ws")
	for _, msg := range []string{"hello", strings.Repeat("x", 70000)} {
		if got := wsRoundTrip(t, c, websocket.TextMessage, msg); got != msg {
			t.Errorf("WebSocket echo of %d bytes: got %d bytes", len(msg), len(got))
		}
	}
	if got := wsRoundTrip(t, c, websocket.BinaryMessage, "\x00\x01\xff"); got != "\x00\x01\xff" {
		t.Errorf("binary echo %q", got)
	}

	// An app made by `wasmsrv new` needs no network at all: its module graph is
	// the app and the SDK in it.
	list := exec.Command("go", "list", "-deps", ".")
	list.Dir = filepath.Join(cwd, templates["go"])
	list.Env = append(cleanEnv(outsideEnv...), "GOOS=wasip1", "GOARCH=wasm", "GOPROXY=off", "GOSUMDB=off")
	if out, err := list.CombinedOutput(); err != nil {
		t.Errorf("go list with GOPROXY=off in the new app: %v\n%s", err, out)
	}
}

// `wasmsrv new` overwrites nothing and suggests a template name it knows.
func TestE2ENewRefuses(t *testing.T) {
	dir := outsideRepo(t)
	app := filepath.Join(dir, "app")
	if err := os.Mkdir(app, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(app, "main.go"), "package main // mine\n")
	res := runWasmsrvIn(t, dir, time.Minute, outsideEnv, "new", "app")
	if res.code != 1 || !strings.Contains(res.stderr, "app is not empty (main.go)") || !strings.Contains(res.stderr, "--update-sdk app") {
		t.Errorf("new into a non-empty directory: exit %d\n%s", res.code, res.stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(app, "main.go")); string(b) != "package main // mine\n" {
		t.Errorf("main.go was overwritten: %q", b)
	}
	res = runWasmsrvIn(t, dir, time.Minute, outsideEnv, "new", "other", "--template", "htpp")
	if res.code != 2 || !strings.Contains(res.stderr, `unknown template "htpp": did you mean go-http?`) {
		t.Errorf("new with a misspelt template: exit %d\n%s", res.code, res.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "other")); err == nil {
		t.Error("a directory was made for a refused template")
	}
	res = runWasmsrvIn(t, dir, time.Minute, outsideEnv, "new", "--list")
	for _, tmpl := range scaffold.Templates() {
		if !strings.Contains(res.stdout, tmpl.Name+" ") {
			t.Errorf("--list does not name %s:\n%s", tmpl.Name, res.stdout)
		}
	}
}

// An app on an older SDK: `wasmsrv run` says so; `wasmsrv new --update-sdk`, run
// from elsewhere with the app's absolute path, moves it to this wasmsrv's SDK, and
// it serves again, without the notice.
func TestE2EUpdateSDK(t *testing.T) {
	dir := outsideRepo(t)
	if res := runWasmsrvIn(t, dir, time.Minute, outsideEnv, "new", "--template", "go-http", "books"); res.code != 0 {
		t.Fatalf("new: %d\n%s", res.code, res.stderr)
	}
	app := filepath.Join(dir, "books")
	ents, _ := filepath.Glob(filepath.Join(app, ".wasmsrv", "sdk-*"))
	if len(ents) != 1 {
		t.Fatalf("SDK directories: %v", ents)
	}
	current := filepath.Base(ents[0])
	// As an older wasmsrv would have left it: another SDK, named by its hash.
	doc := filepath.Join(ents[0], "sdk", "go", "doc.go")
	b, _ := os.ReadFile(doc)
	writeFile(t, doc, string(b)+"\n// from an older wasmsrv\n")
	older := "sdk-000000000001"
	if err := os.Rename(ents[0], filepath.Join(app, ".wasmsrv", older)); err != nil {
		t.Fatal(err)
	}
	mod, _ := os.ReadFile(filepath.Join(app, "go.mod"))
	writeFile(t, filepath.Join(app, "go.mod"), strings.Replace(string(mod), current, older, 1))

	srv := launch(t, outsideRepo(t), outsideEnv, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, app)
	if !strings.Contains(srv.logs(), "app_sdk="+older+" wasmsrv_sdk="+current) || !strings.Contains(srv.logs(), "--update-sdk") {
		t.Errorf("no notice of the older SDK:\n%s", srv.logs())
	}
	srv.stop()

	res := runWasmsrvIn(t, outsideRepo(t), time.Minute, outsideEnv, "new", "--update-sdk", app)
	if res.code != 0 || !strings.Contains(res.stdout, "moved from "+older+" to "+current) {
		t.Fatalf("--update-sdk: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	// The edited old SDK (its name no longer matches its files) is kept and said.
	if !strings.Contains(res.stdout, "kept "+filepath.Join(app, ".wasmsrv", older)) {
		t.Errorf("the edited SDK directory is not reported as kept:\n%s", res.stdout)
	}
	if mod, _ := os.ReadFile(filepath.Join(app, "go.mod")); !strings.Contains(string(mod), "=> ./.wasmsrv/"+current) {
		t.Errorf("go.mod after the update:\n%s", mod)
	}
	srv = launch(t, outsideRepo(t), outsideEnv, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, app)
	if strings.Contains(srv.logs(), "app_sdk=") {
		t.Errorf("notice after the update:\n%s", srv.logs())
	}
	if resp, body := get(t, httpClient(t), srv.URL+"/hello/you"); resp.StatusCode != 200 || !strings.Contains(body, "Hello, you!") {
		t.Errorf("after the update: %d %q", resp.StatusCode, body)
	}
	res = runWasmsrvIn(t, dir, time.Minute, outsideEnv, "new", "--update-sdk", "books")
	if res.code != 0 || !strings.Contains(res.stdout, "already has the SDK of this wasmsrv ("+current+")") {
		t.Errorf("second --update-sdk: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
}

// `wasmsrv build` writes the module `wasmsrv run DIR` would serve, for the shape
// the package declares.
func TestE2EBuild(t *testing.T) {
	dir := outsideRepo(t)
	if res := runWasmsrvIn(t, dir, time.Minute, outsideEnv, "new", "--template", "go-async", "chat"); res.code != 0 {
		t.Fatalf("new: %d\n%s", res.code, res.stderr)
	}
	res := runWasmsrvIn(t, dir, 3*time.Minute, outsideEnv, "build", "--cache-dir", e2eCache, "chat")
	if res.code != 0 || !strings.Contains(res.stdout, "built chat (go, async) into chat.wasm") {
		t.Fatalf("build: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "chat.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	cm, err := rt.CompileModule(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	exports := cm.ExportedFunctions()
	if _, ok := exports["wasmsrv_mode_async"]; !ok {
		t.Errorf("chat.wasm is not an async guest: exports %v", slices.Sorted(maps.Keys(exports)))
	}
	res = runWasmsrvIn(t, dir, time.Minute, outsideEnv, "build", "--mode", "sync", "chat")
	if res.code == 0 || !strings.Contains(res.stderr, "declares //wasmsrv:mode async") {
		t.Errorf("build --mode sync of an async package: exit %d\n%s", res.code, res.stderr)
	}
}
