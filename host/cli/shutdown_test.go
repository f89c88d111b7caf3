package cli

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// exits records the codes a shutdown exits with.
type exits chan int

func (e exits) exit(code int) { e <- code }

func newTestShutdown(t *testing.T) (*shutdown, exits, chan os.Signal) {
	t.Helper()
	ex := make(exits, 4)
	sh := newShutdown(context.Background(), &strings.Builder{}, ex.exit)
	sigs := make(chan os.Signal, 2)
	t.Cleanup(func() { close(sigs) })
	go sh.watch(sigs)
	return sh, ex, sigs
}

func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
	}
	var zero T
	return zero
}

func TestShutdownSecondSignalExits(t *testing.T) {
	for _, tc := range []struct {
		first, second syscall.Signal
		code          int
	}{
		{syscall.SIGTERM, syscall.SIGINT, 130},
		{syscall.SIGINT, syscall.SIGINT, 130},
		{syscall.SIGINT, syscall.SIGTERM, 143},
	} {
		t.Run(signalName(tc.first)+"-"+signalName(tc.second), func(t *testing.T) {
			sh, ex, sigs := newTestShutdown(t)
			var buf testkit.LogBuffer
			log := slog.New(slog.NewTextHandler(&buf, nil))
			eng, err := runtime.NewEngine(context.Background(), runtime.EngineConfig{CacheDir: "-"}, log)
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close(context.Background())
			disarm := sh.serve(log, eng, func() (time.Duration, bool) { return time.Hour, true })
			defer disarm()
			sigs <- tc.first
			<-sh.ctx.Done()
			select {
			case code := <-ex:
				t.Fatalf("exited (%d) on the first signal", code)
			case <-time.After(50 * time.Millisecond):
			}
			sigs <- tc.second
			if code := recv(t, ex, "exit"); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			// The drain ends after the forced stop: "stopped" is not said twice.
			sh.stopped(log)
			logs := buf.String()
			if n := strings.Count(logs, "msg=stopped"); n != 1 {
				t.Errorf("%d stopped records:\n%s", n, logs)
			}
			if !strings.Contains(logs, "signal="+signalName(tc.first)+" grace=1h0m0s") ||
				!strings.Contains(logs, `forced="second signal" signal=`+signalName(tc.second)) {
				t.Errorf("records do not name the signals:\n%s", logs)
			}
		})
	}
}

func TestShutdownStoppedOnce(t *testing.T) {
	sh, ex, sigs := newTestShutdown(t)
	var buf testkit.LogBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	sigs <- syscall.SIGTERM
	<-sh.ctx.Done()
	sh.stopped(log, "while", "starting")
	sh.stopped(log)
	// A signal after "stopped" (the process is returning) does not log again.
	sigs <- syscall.SIGINT
	if code := recv(t, ex, "exit"); code != 130 {
		t.Errorf("exit code %d", code)
	}
	if n := strings.Count(buf.String(), "msg=stopped"); n != 1 {
		t.Errorf("%d stopped records:\n%s", n, buf.String())
	}
}

// TestShutdownOfPlainContext: a command run in-process with a context of its own
// (tests) stops when that context ends and never exits the process.
func TestShutdownOfPlainContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	sh := shutdownOf(ctx)
	if shutdownOf(sh.ctx) != sh {
		t.Fatal("shutdownOf does not find the shutdown in its own context")
	}
	cancel()
	<-sh.ctx.Done()
	sh.force(1, "test") // exit is a no-op here
}
