package main

// End-to-end tests of what a new user meets in the first hour: apps that declare
// their shape, errors that say what to do, a sync app whose WebSockets fill its
// pool.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// A package that declares //wasmsrv:mode async is built and served async by `run`
// and `serve` without a flag; a flag or key that contradicts it is refused.
func TestE2EDeclaredMode(t *testing.T) {
	t.Run("run", func(t *testing.T) {
		srv := startServer(t, sample("ws"), "--workers", "1")
		if !strings.Contains(srv.stdout.String(), "(async mode)") {
			t.Errorf("samples/ws without --mode: %q, want async mode", srv.stdout.String())
		}
		c := wsDial(t, "ws://"+srv.Addr+"/echo")
		if got := wsRoundTrip(t, c, websocket.TextMessage, "hi"); got != "hi" {
			t.Errorf("echo %q", got)
		}
	})
	t.Run("run chat", func(t *testing.T) {
		srv := startServer(t, sample("chat"), "--grant", "pubsub", "--workers", "1")
		if !strings.Contains(srv.stdout.String(), "(async mode)") {
			t.Errorf("samples/chat without --mode: %q, want async mode", srv.stdout.String())
		}
	})
	t.Run("run contradicted", func(t *testing.T) {
		res := runWasmsrv(t, 2*time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, "--mode", "sync", sample("ws"))
		want := "mode sync was asked for, but " + filepath.Join(sample("ws"), "main.go")
		if res.code == 0 || !strings.Contains(res.stderr, want) || !strings.Contains(res.stderr, "declares //wasmsrv:mode async") {
			t.Errorf("exit %d, stderr:\n%s\nwant it to say %q", res.code, res.stderr, want)
		}
	})
	t.Run("serve", func(t *testing.T) {
		cfg := writeSite(t, fmt.Sprintf("[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[apps.ws]\npackage = %q\npool_size = 1\n\n[[routes]]\napp = \"ws\"\n", sample("ws")))
		srv := startServe(t, cfg)
		c := wsDial(t, "ws://"+srv.Addr+"/echo")
		if got := wsRoundTrip(t, c, websocket.TextMessage, "hi"); got != "hi" {
			t.Errorf("echo %q", got)
		}
		if !strings.Contains(srv.logs(), `msg="app started" app=ws mode=async`) {
			t.Errorf("app not started async:\n%s", srv.logs())
		}
	})
	t.Run("serve contradicted", func(t *testing.T) {
		cfg := writeSite(t, fmt.Sprintf("[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[apps.ws]\npackage = %q\nmode = \"sync\"\n\n[[routes]]\napp = \"ws\"\n", sample("ws")))
		res := runWasmsrv(t, 2*time.Minute, nil, "serve", "--cache-dir", e2eCache, "-c", cfg)
		if res.code == 0 || !strings.Contains(res.stderr, "apps.ws.mode:") || !strings.Contains(res.stderr, "declares //wasmsrv:mode async") {
			t.Errorf("exit %d, stderr:\n%s", res.code, res.stderr)
		}
	})
}

// `serve` runs a WASI command app with mode = "cgi" (docs/cgi.md said it did not),
// and without a mode; a command configured as sync is refused, naming the app.
func TestE2EServeCGI(t *testing.T) {
	for _, mode := range []string{"cgi", ""} {
		t.Run("mode="+mode, func(t *testing.T) {
			m := ""
			if mode != "" {
				m = fmt.Sprintf("mode = %q\n", mode)
			}
			cfg := writeSite(t, fmt.Sprintf("[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[apps.cgi]\nmodule = %q\n%s\n[[routes]]\napp = \"cgi\"\n", sample("c-cgi/main.wasm"), m))
			srv := startServe(t, cfg)
			resp, body := get(t, httpClient(t), srv.URL+"/hello?x=1")
			if resp.StatusCode != 200 || !strings.Contains(body, "/hello") {
				t.Errorf("GET through the CGI app: %d %q", resp.StatusCode, body)
			}
		})
	}
	cfg := writeSite(t, fmt.Sprintf("[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n\n[apps.cgi]\nmodule = %q\nmode = \"sync\"\n\n[[routes]]\napp = \"cgi\"\n", sample("c-cgi/main.wasm")))
	res := runWasmsrv(t, time.Minute, nil, "serve", "--cache-dir", e2eCache, "-c", cfg)
	if res.code == 0 || !strings.Contains(res.stderr, "apps.cgi.mode:") || !strings.Contains(res.stderr, "the module is a WASI command") {
		t.Errorf("a command as a sync app: exit %d, stderr:\n%s", res.code, res.stderr)
	}
}

// A sync app whose WebSockets hold its whole pool gets one warning naming
// --mode async, however many connections wait.
func TestE2ESyncWebSocketsWarning(t *testing.T) {
	srv := startServer(t, sample("ws-sync"), "--workers", "1", "--queue-wait", "300ms")
	c := wsDial(t, "ws://"+srv.Addr+"/")
	if got := wsRoundTrip(t, c, websocket.TextMessage, "hi"); got != "#1 hi" {
		t.Errorf("reply %q", got)
	}
	for range 3 {
		_, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr+"/", nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("WebSocket beyond the pool: %v %v, want 503", err, resp)
		}
	}
	if n := strings.Count(srv.logs(), "--mode async"); n != 1 {
		t.Errorf("the warning naming --mode async is logged %d times, want once:\n%s", n, srv.logs())
	}
}

// wasmExporting is a valid module with an exported memory and one empty function
// () -> () exported under each name.
func wasmExporting(names ...string) []byte {
	bin := []byte(testkit.WasmHeader)
	bin = append(bin, testkit.Section(1, testkit.Vec(testkit.FuncType(nil, nil)))...)
	var funcs, bodies, exps [][]byte
	for i, n := range names {
		funcs = append(funcs, testkit.LEB(0))
		bodies = append(bodies, testkit.Body(0x0b))
		exps = append(exps, testkit.Export(n, 0, uint64(i)))
	}
	bin = append(bin, testkit.Section(3, testkit.Vec(funcs...))...)
	bin = append(bin, testkit.Section(5, testkit.Vec([]byte{0, 1}))...) // one memory, min 1 page
	bin = append(bin, testkit.Section(7, testkit.Vec(append(exps, testkit.Export("memory", 2, 0))...))...)
	return append(bin, testkit.Section(10, testkit.Vec(bodies...))...)
}

// Each mistake a new user makes gets one line naming the problem and the fix.
func TestE2EErrorsSayWhatToDo(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	lib := filepath.Join(dir, "lib")
	onlyWasm := filepath.Join(dir, "built")
	for _, d := range []string{empty, lib, onlyWasm} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(lib, "go.mod"), "module example.com/lib\n\ngo 1.24\n")
	writeFile(t, filepath.Join(lib, "lib.go"), "package lib\n\nfunc Hello() string { return \"hi\" }\n")
	writeFile(t, filepath.Join(onlyWasm, "app.wasm"), "\x00asm\x01\x00\x00\x00")
	noModule := filepath.Join(dir, "nomod")
	if err := os.Mkdir(noModule, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(noModule, "main.go"), "package main\n\nfunc main() {}\n")
	v2 := filepath.Join(dir, "v2.wasm")
	writeFile(t, v2, string(wasmExporting("wasmsrv_abi_v2", "wasmsrv_mode_sync")))

	// A Go guest built as a command: its exports would trap with "wasmexport
	// function called before runtime initialization" on the first request.
	command := filepath.Join(dir, "hello-command.wasm")
	build := exec.Command("go", "build", "-o", command, ".")
	build.Dir = sample("hello")
	build.Env = append(cleanEnv(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building samples/hello without -buildmode=c-shared: %v\n%s", err, out)
	}

	for _, tt := range []struct {
		name, app string
		oneLine   bool // no compiler output to show: the whole message is one line
		mentions  []string
	}{
		{"empty directory", empty, true, []string{empty + " is empty", "wasmsrv new " + empty}},
		{"not a main package", lib, true, []string{"is package lib, not a main package", "func main() {}"}},
		{"only a module in the directory", onlyWasm, true, []string{"run " + filepath.Join(onlyWasm, "app.wasm")}},
		{"no go.mod", noModule, false, []string{"go.mod file not found", "wasmsrv new DIR", "go mod init"}},
		{"another ABI version", v2, true, []string{`built for ABI "v2", this host speaks v1`, "wasmsrv new --update-sdk", "a wasmsrv that speaks v2"}},
		{"Go guest without c-shared", command, true, []string{"built as a WASI command, not a reactor", "-buildmode=c-shared"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := runWasmsrv(t, 2*time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, tt.app)
			if res.code == 0 {
				t.Fatalf("served %s", tt.app)
			}
			// Log records may come before it; the error is the line "wasmsrv: …".
			msg := res.stderr
			if tt.oneLine {
				i := strings.LastIndex("\n"+res.stderr, "\nwasmsrv: ")
				if i < 0 || strings.Count(strings.TrimSpace(res.stderr[i:]), "\n") != 0 {
					t.Fatalf("the error is not one line at the end:\n%s", res.stderr)
				}
				msg = res.stderr[i:]
			}
			for _, m := range tt.mentions {
				if !strings.Contains(msg, m) {
					t.Errorf("the error does not mention %q:\n%s", m, res.stderr)
				}
			}
		})
	}
}
