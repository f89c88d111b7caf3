package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sseSite writes a site config serving samples/sse at / with the given grace
// and an admin listener (which drains with a grace of its own).
func sseSite(t *testing.T, grace string) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "site.toml")
	body := fmt.Sprintf(`[server]
shutdown_timeout = %q
[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[apps.sse]
package = %q
[[routes]]
path = "/"
app = "sse"
`, grace, sample("sse"))
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startSSE starts `run` or `serve` on samples/sse with a 30 s grace.
func startSSE(t *testing.T, cmd string) *server {
	t.Helper()
	if cmd == "serve" {
		return startServe(t, sseSite(t, "30s"))
	}
	return startServer(t, sample("sse"), "--workers", "2", "--shutdown-timeout", "30s")
}

// waitLogMatch waits (bounded) until the server's log matches re.
func waitLogMatch(t *testing.T, s *server, re *regexp.Regexp, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !re.MatchString(s.logs()) {
		if time.Now().After(deadline) {
			t.Fatalf("log does not match %v within %v:\n%s", re, within, s.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	shuttingDown = regexp.MustCompile(`msg="shutting down`)
	stoppedRec   = regexp.MustCompile(`msg=stopped`)
)

// checkStoppedOnce: "shutting down" at most once, "stopped" exactly once and
// in the last record.
func checkStoppedOnce(t *testing.T, logs string) {
	t.Helper()
	if n := len(shuttingDown.FindAllString(logs, -1)); n > 1 {
		t.Errorf("%d \"shutting down\" records, want one:\n%s", n, logs)
	}
	if n := len(stoppedRec.FindAllString(logs, -1)); n != 1 {
		t.Errorf("%d \"stopped\" records, want one:\n%s", n, logs)
	}
	lines := strings.Split(strings.TrimSpace(logs), "\n")
	if last := lines[len(lines)-1]; !stoppedRec.MatchString(last) {
		t.Errorf("the last record is not \"stopped\": %s\n%s", last, logs)
	}
}

// TestE2ESecondSignal: while a graceful drain waits for a stream that still has
// seconds to run, a second SIGINT or SIGTERM ends the process at once with
// status 128+signal, for run and serve; the log says "shutting down" once when
// the drain begins and "stopped" once, last, naming the forced stop.
func TestE2ESecondSignal(t *testing.T) {
	for _, cmd := range []string{"run", "serve"} {
		for _, pair := range [][2]syscall.Signal{
			{syscall.SIGTERM, syscall.SIGINT},
			{syscall.SIGINT, syscall.SIGINT},
			{syscall.SIGTERM, syscall.SIGTERM},
		} {
			t.Run(fmt.Sprintf("%s/%s-%s", cmd, sigName(pair[0]), sigName(pair[1])), func(t *testing.T) {
				srv := startSSE(t, cmd)
				// 40 events 300 ms apart: the stream holds the drain for 12 s.
				_, done := openStream(t, httpClient(t), srv.URL+"/events?n=40&interval=300ms")
				srv.signal(pair[0])
				waitLogMatch(t, srv, shuttingDown, 10*time.Second)
				if code, exited := srv.wait(500 * time.Millisecond); exited {
					t.Fatalf("exited (%d) on the first signal with a stream in flight and 30s of grace\n%s", code, srv.logs())
				}
				sigAt := time.Now()
				srv.signal(pair[1])
				code, exited := srv.wait(10 * time.Second)
				if !exited {
					t.Fatalf("still running 10s after the second signal\n%s", srv.logs())
				}
				if want := 128 + int(pair[1]); code != want {
					t.Errorf("exit code %d, want %d", code, want)
				}
				t.Logf("exited %v after the second signal", time.Since(sigAt).Round(time.Millisecond))
				select {
				case out := <-done:
					if len(out.evs) >= 40 {
						t.Errorf("the stream got all its events; the drain was not cut")
					}
				case <-time.After(10 * time.Second):
					t.Error("the client's stream is still open 10s after the process exited")
				}
				logs := srv.logs()
				checkStoppedOnce(t, logs)
				wantStop := fmt.Sprintf(`level=WARN msg=stopped forced="second signal" signal=%s`, sigName(pair[1]))
				if !strings.Contains(logs, wantStop) {
					t.Errorf("no %q record:\n%s", wantStop, logs)
				}
				if want := "signal=" + sigName(pair[0]) + " grace=30s"; !strings.Contains(logs, want) {
					t.Errorf("the shutting-down record lacks %q:\n%s", want, logs)
				}
			})
		}
	}
}

// TestE2EStoppedOnce: a graceful stop of run and serve (a site with an admin
// listener, which drains with a grace of its own) logs "shutting down" once,
// with the signal and the configured grace, and "stopped" once at the end, and
// exits 0.
func TestE2EStoppedOnce(t *testing.T) {
	for _, cmd := range []string{"run", "serve"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(cmd+"/"+sigName(sig), func(t *testing.T) {
				srv := startSSE(t, cmd)
				srv.signal(sig)
				code, exited := srv.wait(20 * time.Second)
				if !exited {
					t.Fatalf("still running 20s after %s with nothing in flight\n%s", sigName(sig), srv.logs())
				}
				if code != 0 {
					t.Errorf("exit code %d, want 0\n%s", code, srv.logs())
				}
				logs := srv.logs()
				checkStoppedOnce(t, logs)
				if n := len(shuttingDown.FindAllString(logs, -1)); n != 1 {
					t.Errorf("%d \"shutting down\" records, want one", n)
				}
				if want := "signal=" + sigName(sig) + " grace=30s"; !strings.Contains(logs, want) {
					t.Errorf("the shutting-down record lacks %q:\n%s", want, logs)
				}
			})
		}
	}
}

// TestE2ESignalWhileBuilding: a signal while the app is still being built (a
// compiler that takes minutes) stops the build and the process at once, exit 0,
// with "stopped" once; a second signal is not needed.
func TestE2ESignalWhileBuilding(t *testing.T) {
	for _, cmd := range []string{"run", "serve"} {
		t.Run(cmd, func(t *testing.T) {
			// A wasi-sdk whose clang answers --version and -MM, and takes five
			// minutes to compile.
			sdk := t.TempDir()
			if err := os.MkdirAll(filepath.Join(sdk, "bin"), 0o755); err != nil {
				t.Fatal(err)
			}
			clang := "#!/bin/sh\ncase \"$*\" in\n*--version*) echo 'slow clang 1.0';;\n*-MM*) echo 'main.o: main.c';;\n*) exec sleep 300;;\nesac\n"
			if err := os.WriteFile(filepath.Join(sdk, "bin", "clang"), []byte(clang), 0o755); err != nil {
				t.Fatal(err)
			}
			app := filepath.Join(t.TempDir(), "slow")
			if err := os.MkdirAll(app, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(app, "main.c"), []byte("int main(void) { return 0; }\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"run", "--listen", "127.0.0.1:0", "--cache-dir", t.TempDir(), app}
			if cmd == "serve" {
				cfg := filepath.Join(t.TempDir(), "site.toml")
				body := fmt.Sprintf("[admin]\naddr = \"\"\n[[listeners]]\naddr = \"127.0.0.1:0\"\n[apps.slow]\npackage = %q\n[[routes]]\npath = \"/\"\napp = \"slow\"\n", app)
				if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				args = []string{"serve", "-c", cfg, "--cache-dir", t.TempDir()}
			}
			p := startUnready(t, []string{"WASI_SDK_PATH=" + sdk}, args...)
			waitLogMatch(t, p, regexp.MustCompile(`msg="building guest"`), time.Minute)
			time.Sleep(300 * time.Millisecond) // the compiler is running
			start := time.Now()
			p.signal(syscall.SIGINT)
			code, exited := p.wait(10 * time.Second)
			if !exited {
				t.Fatalf("still building 10s after SIGINT\n%s", p.logs())
			}
			if code != 0 {
				t.Errorf("exit code %d, want 0\n%s", code, p.logs())
			}
			t.Logf("stopped %v after SIGINT", time.Since(start).Round(time.Millisecond))
			logs := p.logs()
			checkStoppedOnce(t, logs)
			if !strings.Contains(logs, `msg="shutting down while starting" signal=SIGINT`) ||
				!strings.Contains(logs, "msg=stopped while=starting signal=SIGINT") {
				t.Errorf("the log does not say the start was stopped:\n%s", logs)
			}
		})
	}
}

// startUnready starts wasmsrv with args and returns at once (no "serving" line
// awaited); the process is killed when the test ends.
func startUnready(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	s := &server{
		t:      t,
		cmd:    exec.Command(wasmsrvBin, args...),
		stdout: &stdoutWatcher{url: make(chan string, 1)},
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	s.cmd.Env = cleanEnv(env...)
	s.cmd.Stdout, s.cmd.Stderr = s.stdout, s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// sigName is how the log names SIGINT and SIGTERM.
func sigName(s syscall.Signal) string {
	if s == syscall.SIGINT {
		return "SIGINT"
	}
	return "SIGTERM"
}
