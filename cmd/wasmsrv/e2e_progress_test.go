package main

import (
	"io"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"
)

// A cold start (a Go build and a first compile) on a terminal shows a live line,
// redrawn in place, that says what is being done and for how long; log records
// go above it, never into it. The test's terminal is a pseudo-terminal.
func TestE2EProgressOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 60, Rows: 30}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wasmsrvBin, "run", "--listen", "127.0.0.1:0", "--cache-dir", t.TempDir(), sample("hello"))
	cmd.Env = cleanEnv("TERM=xterm")
	stdout := &stdoutWatcher{url: make(chan string, 1)}
	activity := make(chan struct{}, 1)
	cmd.Stdout, cmd.Stderr = activityWriter{stdout, activity}, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close() // the child has it
	screen := &lockedBuffer{}
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(activityWriter{screen, activity}, ptmx) // ends with EIO when the child is gone
	}()
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		close(exited)
		done <- err
	}()
	switch _, outcome := awaitProgress(stdout.url, exited, activity, startTimeout); outcome {
	case "":
	case "exited":
		t.Fatalf("wasmsrv exited before serving: %v\n%q", <-done, screen.String())
	default:
		_ = cmd.Process.Kill()
		t.Fatalf("not serving: %s:\n%q", outcome, screen.String())
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("wasmsrv did not stop on SIGTERM")
	}
	<-read
	out := screen.String()

	// The live lines: "\r" + text + "\x1b[K", redrawn with the time so far.
	drawn := regexp.MustCompile("\r([^\r\n\x1b]+)\x1b\\[K").FindAllStringSubmatch(out, -1)
	var build, compile int
	for _, d := range drawn {
		line := d[1]
		if n := utf8.RuneCountInString(line); n > 59 {
			t.Errorf("a live line of %d columns on a 60-column terminal: %q", n, line)
		}
		if !regexp.MustCompile(` · \d+\.\ds$`).MatchString(line) {
			t.Errorf("a live line without its time: %q", line)
		}
		switch {
		case strings.HasPrefix(line, "building guest app=hello"):
			build++
		case strings.HasPrefix(line, "compiling module"):
			compile++
		}
	}
	if build == 0 || compile == 0 {
		t.Errorf("live lines: %d of the build, %d of the compile; want both\n%q", build, compile, out)
	}
	// Records are written on a cleared line, whole.
	for _, rec := range []string{`msg="built guest" app=hello`, `msg="compiled module" app=hello`} {
		i := strings.Index(out, rec)
		if i < 0 {
			t.Errorf("no record %s:\n%q", rec, out)
			continue
		}
		start := strings.LastIndex(out[:i], "time=")
		if start < 0 || !strings.HasSuffix(out[:start], "\r\x1b[K") {
			t.Errorf("record %s not written on a cleared line: %q", rec, out[max(0, start-60):i])
		}
	}
}

// Without a terminal the same start is told in log records only: whole lines, no
// carriage returns or escape sequences.
func TestE2EProgressThroughAPipe(t *testing.T) {
	srv := launch(t, "", []string{"TERM=xterm"}, "run", "--listen", "127.0.0.1:0", "--cache-dir", t.TempDir(), sample("hello"))
	logs := srv.logs()
	if strings.ContainsAny(logs, "\r\x1b") {
		t.Errorf("terminal control characters in piped output: %q", logs)
	}
	for _, rec := range []string{`msg="building guest" app=hello`, `msg="built guest" app=hello`,
		`msg="compiling module (first start; cached afterwards)" app=hello`, `msg="compiled module" app=hello`} {
		if !strings.Contains(logs, rec) {
			t.Errorf("no record %s:\n%s", rec, logs)
		}
	}
	// JSON logs stay JSON: every line is an object.
	srv = launch(t, "", nil, "run", "--listen", "127.0.0.1:0", "--log-format", "json", "--cache-dir", t.TempDir(), sample("hello"))
	for _, l := range strings.Split(strings.TrimSpace(srv.logs()), "\n") {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			t.Errorf("not a JSON line: %q", l)
		}
	}
	if !strings.Contains(srv.logs(), `"msg":"building guest"`) {
		t.Errorf("no building record in JSON:\n%s", srv.logs())
	}
}
