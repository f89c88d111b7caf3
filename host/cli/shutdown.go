package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// exitBound is how long after the grace period a shutdown may still take (stop
// hooks cut short, plugins closing, logs flushed) before the process exits
// regardless.
const exitBound = 10 * time.Second

// shutdown is how the process stops, as gunicorn and uvicorn do: the first SIGINT
// or SIGTERM ends ctx, and the serving command drains (in-flight requests get the
// grace period, then every guest still running is interrupted); a second signal
// ends the process at once with status 128+signal (130 for SIGINT, 143 for
// SIGTERM), drained or not, starting or not. The log says "shutting down" when
// the first signal lands and "stopped" once, at the very end, however it ends.
type shutdown struct {
	ctx    context.Context
	cancel context.CancelFunc
	exit   func(code int) // os.Exit; tests record the code instead
	stderr io.Writer      // for a forced stop before any logger exists

	mu   sync.Mutex
	log  *slog.Logger // the serving command's, once it has one
	sig  os.Signal    // the first signal; nil until then, or for a context that just ended
	at   time.Time    // when the stop began
	done bool         // "stopped" is logged (or the process is exiting)
}

type shutdownKey struct{}

// newShutdown returns the process's shutdown, its context a child of parent.
// Signals reach it through watch.
func newShutdown(parent context.Context, stderr io.Writer, exit func(int)) *shutdown {
	ctx, cancel := context.WithCancel(parent)
	sh := &shutdown{cancel: cancel, exit: exit, stderr: stderr}
	sh.ctx = context.WithValue(ctx, shutdownKey{}, sh)
	return sh
}

// shutdownOf returns the shutdown ctx belongs to. A context made elsewhere (a
// test running a command in-process) gets one of its own that ends with ctx
// and sees no signals.
func shutdownOf(ctx context.Context) *shutdown {
	if sh, ok := ctx.Value(shutdownKey{}).(*shutdown); ok {
		return sh
	}
	return newShutdown(ctx, io.Discard, func(int) {})
}

// watch turns the signals arriving on sigs into the stop: the first ends the
// context, the next ends the process.
func (sh *shutdown) watch(sigs <-chan os.Signal) {
	first := true
	for s := range sigs {
		if first {
			first = false
			sh.mu.Lock()
			sh.sig, sh.at = s, time.Now()
			sh.mu.Unlock()
			sh.cancel()
			continue
		}
		sh.force(exitCodeFor(s), "second signal", "signal", signalName(s))
	}
}

// exitCodeFor is the status a shell reports for a process that a signal ended.
func exitCodeFor(s os.Signal) int {
	if n, ok := s.(syscall.Signal); ok {
		return 128 + int(n)
	}
	return 1
}

// signalName says SIGINT and SIGTERM as people write them (Go says "interrupt"
// and "terminated").
func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// force logs "stopped" with why (unless it was logged already: the process is
// past its drain, closing), then exits with code.
func (sh *shutdown) force(code int, why string, attrs ...any) {
	sh.mu.Lock()
	defer sh.mu.Unlock() // reached only when exit returns (tests)
	if sh.done {
		sh.exit(code)
		return
	}
	sh.done = true
	attrs = append([]any{"forced", why}, attrs...)
	if !sh.at.IsZero() {
		attrs = append(attrs, "took", time.Since(sh.at).Round(time.Millisecond))
	}
	attrs = append(attrs, "exit_code", code)
	if sh.log != nil {
		sh.log.Warn("stopped", attrs...)
	} else {
		fmt.Fprintf(sh.stderr, "wasmsrv: stopped (%s)\n", why)
	}
	sh.exit(code)
}

// stopped logs "stopped" at the end of a command that served or was stopped
// while starting, once (a forced stop already said it).
func (sh *shutdown) stopped(log *slog.Logger, attrs ...any) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.done {
		return
	}
	sh.done = true
	if sh.sig != nil {
		attrs = append(attrs, "signal", signalName(sh.sig))
	}
	if !sh.at.IsZero() {
		attrs = append(attrs, "took", time.Since(sh.at).Round(time.Millisecond))
	}
	log.Info("stopped", attrs...)
}

// serve attaches a serving command to the shutdown: its logger takes the
// shutdown's records, and once ctx ends (the first signal) it logs "shutting
// down", and when the grace period (grace, read then: a reload may have changed
// it; 0 while starting: there is nothing to drain) is over, every guest still
// running — requests, instance starts, stop hooks, background refills — is
// interrupted (Engine.Interrupt); if the process is still there exitBound later,
// it exits with status 1. The returned function disarms the timers (call it when
// the command returns).
func (sh *shutdown) serve(log *slog.Logger, eng *runtime.Engine, grace func() (d time.Duration, serving bool)) (disarm func()) {
	sh.mu.Lock()
	sh.log = log
	sh.mu.Unlock()
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-sh.ctx.Done():
		}
		g, serving := grace()
		if !serving {
			g = 0 // nothing to drain: guests starting are stopped at once
		}
		sh.mu.Lock()
		if sh.at.IsZero() {
			sh.at = time.Now()
		}
		attrs := []any{}
		if sh.sig != nil {
			attrs = append(attrs, "signal", signalName(sh.sig))
		}
		sh.mu.Unlock()
		if serving {
			log.Info("shutting down: finishing in-flight requests (a second signal stops at once)", append(attrs, "grace", g)...)
		} else {
			log.Info("shutting down while starting", attrs...)
		}
		interrupt := time.NewTimer(g)
		defer interrupt.Stop()
		select {
		case <-done:
			return
		case <-interrupt.C:
		}
		if serving {
			log.Warn("grace period over: interrupting every guest still running", "grace", g)
		}
		eng.Interrupt()
		exit := time.NewTimer(exitBound)
		defer exit.Stop()
		select {
		case <-done:
		case <-exit.C:
			sh.force(1, "shutdown not complete", "grace", g, "after_grace", exitBound)
		}
	}()
	return func() { close(done) }
}

// stopRecord is the "stopped" record of a command: report, deferred first,
// runs after every other close, and logs it once the command has come to a
// stop (stopped); a command that failed before that logs none.
type stopRecord struct {
	sh    *shutdown
	log   *slog.Logger
	attrs []any // nil until stopped
}

func (r *stopRecord) stopped(attrs ...any) { r.attrs = append([]any{}, attrs...) }

func (r *stopRecord) report() {
	if r.attrs != nil {
		r.sh.stopped(r.log, r.attrs...)
	}
}

// commandLog routes the libraries' loggers through log and gives the
// command's shutdown and its stop record.
func commandLog(ctx context.Context, log *slog.Logger) (*shutdown, *stopRecord) {
	routeLibraryLogs(log)
	sh := shutdownOf(ctx)
	return sh, &stopRecord{sh: sh, log: log}
}
