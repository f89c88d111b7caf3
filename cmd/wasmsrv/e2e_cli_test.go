package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/appname"
)

func TestE2EConfigErrors(t *testing.T) {
	broken := t.TempDir()
	writeFile(t, filepath.Join(broken, "go.mod"), "module example.com/broken\n\ngo 1.24\n")
	writeFile(t, filepath.Join(broken, "main.go"), "package main\n\nfunc main() {\n\tvar x int = \"not a number\"\n\t_ = x\n}\n")
	foreign := filepath.Join(t.TempDir(), "foreign.wasm")
	// The smallest valid module: magic and version, no sections.
	writeFile(t, foreign, "\x00asm\x01\x00\x00\x00")
	missing := filepath.Join(t.TempDir(), "no-such-app.wasm")
	badName := filepath.Join(t.TempDir(), "site.toml")
	writeFile(t, badName, "[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[apps.\"a:b\"]\nmodule = \"site.toml\"\n")

	tests := []struct {
		name     string
		env      []string
		args     []string
		code     int      // exact exit code; -1 means any non-zero
		mentions []string // substrings of stderr
	}{
		{"env not a number", []string{"WASMSRV_WORKERS=lots"}, []string{"run", sample("hello")}, 2,
			[]string{"WASMSRV_WORKERS", "whole number"}},
		{"env bad size", []string{"WASMSRV_BODY_LIMIT=huge"}, []string{"run", sample("hello")}, 2,
			[]string{"WASMSRV_BODY_LIMIT"}},
		{"env bad buffer size", []string{"WASMSRV_BUFFER_BODY=lots"}, []string{"run", sample("hello")}, 2,
			[]string{"WASMSRV_BUFFER_BODY"}},
		{"negative body timeout", nil, []string{"run", "--body-timeout", "-1s", sample("hello")}, 2,
			[]string{"body-timeout"}},
		{"memory limit too small", nil, []string{"run", "--memory-limit", "1", sample("hello")}, 2,
			[]string{"memory-limit"}},
		{"unknown flag", nil, []string{"run", "--no-such-flag", sample("hello")}, 2,
			[]string{"no-such-flag"}},
		{"no app", nil, []string{"run"}, 2, []string{"APP"}},
		{"bad app name", nil, []string{"run", "--name", "a:b", sample("hello")}, 2,
			[]string{"name:", `"a:b"`, appname.Allowed}},
		{"bad app name in env", []string{"WASMSRV_APP_NAME=x}"}, []string{"run", sample("hello")}, 2,
			[]string{"name:", appname.Allowed}},
		{"bad app name in a site", nil, []string{"check", "-c", badName}, 1,
			[]string{badName + ":4: apps.a:b:", appname.Allowed}},
		{"bad log rate", nil, []string{"run", "--log-rate", "0", sample("hello")}, 2,
			[]string{"log-rate"}},
		{"unknown command", nil, []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"missing app path", nil, []string{"run", "--cache-dir", e2eCache, missing}, 1,
			[]string{missing, "no such file"}},
		{"not a wasmsrv guest", nil, []string{"run", "--cache-dir", e2eCache, foreign}, 1,
			[]string{"not a wasmsrv guest", "wasmsrv_abi_v1"}},
		{"build fails", nil, []string{"run", "--cache-dir", e2eCache, broken}, -1,
			[]string{"main.go:4", "not a number", "go build"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runWasmsrv(t, 2*time.Minute, tt.env, tt.args...)
			if tt.code >= 0 && res.code != tt.code || tt.code < 0 && res.code == 0 {
				want := "non-zero"
				if tt.code >= 0 {
					want = strconv.Itoa(tt.code)
				}
				t.Errorf("exit code %d, want %s\nstderr:\n%s", res.code, want, res.stderr)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(res.stderr, m) {
					t.Errorf("stderr does not mention %q:\n%s", m, res.stderr)
				}
			}
			if strings.Contains(res.stdout, "serving") {
				t.Errorf("server started anyway: %s", res.stdout)
			}
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestE2EVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		res := runWasmsrv(t, 30*time.Second, nil, arg)
		if res.code != 0 || !regexp.MustCompile(`^wasmsrv \S+ \(.+\)\n$`).MatchString(res.stdout) || strings.Contains(res.stdout, "(devel)") {
			t.Errorf("wasmsrv %s: exit %d, stdout %q; want 0 and \"wasmsrv VERSION (DETAILS)\"", arg, res.code, res.stdout)
		}
	}
}

// A wasmsrv built by `go build` in a git checkout says its revision, and that the
// tree had uncommitted changes. The test tree may be a git worktree, which Go does
// not stamp, so the sources as they are now go into a fresh repository first.
func TestE2EVersionFromVCS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasmsrv in a fresh repository")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=test", "-c", "user.email=test@example.com"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git %s: %v", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	src := t.TempDir()
	for _, f := range strings.Split(git("../..", "ls-files", "--cached", "--others", "--exclude-standard"), "\n") {
		b, err := os.ReadFile(filepath.Join("../..", f))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(src, f), string(b))
	}
	git(src, "init", "--quiet")
	git(src, "add", "-A")
	git(src, "commit", "--quiet", "-m", "snapshot")
	rev := git(src, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(src, "UNCOMMITTED"), "a change\n")
	bin := filepath.Join(t.TempDir(), "wasmsrv")
	build := exec.Command("go", "build", "-trimpath", "-buildvcs=true", "-o", bin, "./cmd/wasmsrv")
	build.Dir = src
	build.Env = append(cleanEnv(), "GOFLAGS=", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in a fresh repository: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	// wasmsrv v0.0.0-20261201110400-486f2f397e65+dirty (rev 486f2f397e65+dirty, 2026-12-01T11:04:00Z, go1.26.8)
	want := regexp.MustCompile(`^wasmsrv v0\.0\.0-\d{14}-` + rev[:12] + `\+dirty \(rev ` + rev[:12] + `\+dirty, \S+, go\S+\)\n$`)
	if !want.Match(out) {
		t.Errorf("version %q, want it to match %s", out, want)
	}
}

// accessRecord is one access-log record in --log-format json.
type accessRecord struct {
	Msg    string `json:"msg"`
	Method string `json:"method"`
	Path   string `json:"path"`
	Status int    `json:"status"`
	Proto  string `json:"proto"`
}

func accessRecords(t *testing.T, logs string) []accessRecord {
	t.Helper()
	var recs []accessRecord
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r accessRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		if r.Msg == "request" {
			recs = append(recs, r)
		}
	}
	return recs
}

func TestE2EAccessLog(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []accessRecord
	}{
		{"default on", nil, []accessRecord{
			{Msg: "request", Method: "GET", Path: "/books/2", Status: 200, Proto: "HTTP/1.1"},
			{Msg: "request", Method: "DELETE", Path: "/books", Status: 405, Proto: "HTTP/1.1"},
			{Msg: "request", Method: "GET", Path: "/books/9", Status: 404, Proto: "HTTP/1.1"},
		}},
		{"explicitly on", []string{"--access-log=true"}, []accessRecord{
			{Msg: "request", Method: "GET", Path: "/books/2", Status: 200, Proto: "HTTP/1.1"},
			{Msg: "request", Method: "DELETE", Path: "/books", Status: 405, Proto: "HTTP/1.1"},
			{Msg: "request", Method: "GET", Path: "/books/9", Status: 404, Proto: "HTTP/1.1"},
		}},
		{"off", []string{"--access-log=false"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, sample("mux"), append([]string{"--workers", "1", "--log-format", "json"}, tt.args...)...)
			c := httpClient(t)
			for _, r := range []struct{ method, path string }{{"GET", "/books/2"}, {"DELETE", "/books"}, {"GET", "/books/9"}} {
				do(t, c, mustRequest(t, r.method, srv.URL+r.path, nil))
			}
			// Stopping the server flushes everything it logged: no polling needed.
			if code := srv.stop(); code != 0 {
				t.Errorf("exit code %d after SIGTERM, want 0", code)
			}
			got := accessRecords(t, srv.logs())
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("access records:\n got %+v\nwant %+v\nlogs:\n%s", got, tt.want, srv.logs())
			}
		})
	}

	t.Run("text format", func(t *testing.T) {
		srv := startServer(t, sample("hello"), "--workers", "1")
		_, _ = get(t, httpClient(t), srv.URL+"/text/path")
		srv.stop()
		re := regexp.MustCompile(`(?m)^.*msg=request client=127\.0\.0\.1 host=\S+ method=GET path=/text/path proto=HTTP/1\.1 status=200 .* request_id=[0-9a-f]{32}( |$)`)
		if !re.MatchString(srv.logs()) {
			t.Errorf("no text access record for GET /text/path:\n%s", srv.logs())
		}
	})

	t.Run("h2c request", func(t *testing.T) {
		srv := startServer(t, sample("hello"), "--workers", "1", "--log-format", "json")
		resp, _ := get(t, h2cClient(t), srv.URL+"/h2")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
		srv.stop()
		want := []accessRecord{{Msg: "request", Method: "GET", Path: "/h2", Status: 200, Proto: "HTTP/2.0"}}
		if got := accessRecords(t, srv.logs()); !reflect.DeepEqual(got, want) {
			t.Errorf("access records %+v, want %+v (the h2c preface must not be logged as a request)", got, want)
		}
	})
}
