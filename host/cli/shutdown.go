package cli

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// exitBound is how long after the grace period a shutdown may still take (stop
// hooks cut short, plugins closing, logs flushed) before the process exits
// regardless.
const exitBound = 10 * time.Second

// boundShutdown makes a shutdown that starts when ctx ends (SIGTERM, SIGINT)
// finish whatever guests are doing: once the grace period (grace, read at the
// signal: a reload may have changed it) is over, every guest still running —
// requests, instance starts, stop hooks, background refills — is interrupted
// (Engine.Interrupt), and if the process is still there exitBound later, it
// logs so and exits with status 1. The returned function disarms both timers
// (call it when the command returns).
func boundShutdown(ctx context.Context, grace func() time.Duration, eng *runtime.Engine, log *slog.Logger) (disarm func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-ctx.Done():
		}
		g := grace()
		interrupt := time.NewTimer(g)
		defer interrupt.Stop()
		select {
		case <-done:
			return
		case <-interrupt.C:
		}
		log.Warn("grace period over: interrupting every guest still running", "grace", g)
		eng.Interrupt()
		exit := time.NewTimer(exitBound)
		defer exit.Stop()
		select {
		case <-done:
		case <-exit.C:
			log.Error("shutdown still not complete: exiting", "grace", g, "after_grace", exitBound)
			os.Exit(1)
		}
	}()
	return func() { close(done) }
}
