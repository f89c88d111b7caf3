//go:build !(wasip1 && wasmsrv_async)

package wasmsrv

import (
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Sync-shape (and non-guest) versions of the async primitives, so app code using
// them builds for both shapes.

// waitCtx is never needed in the sync shape: host calls block instead of returning
// ERR_WOULD_BLOCK.
func waitCtx(uint32) { panic("wasmsrv: host returned ERR_WOULD_BLOCK to a sync-mode guest") }

// Sleep pauses the calling goroutine for d. In the sync shape the instance serves
// one request, so time.Sleep is fine; async guests get a host timer instead.
func Sleep(d time.Duration) { time.Sleep(d) }

// AwaitPlugin is for plugin bindings in the async shape (see its async version);
// in the sync shape plugin calls block in the host, so it returns ERR_UNSUPPORTED.
func AwaitPlugin(func(h, ctx, token uint32) int32, uint32, time.Duration) int32 {
	return abi.ErrUnsupported
}

// Go starts f on a new goroutine (in the sync shape, an ordinary go statement).
func Go(f func()) { go f() }

// SetBackpressure has no effect in the sync shape: an instance takes one request
// at a time anyway.
func SetBackpressure(bool) {}

// Async reports whether the guest was built for the async shape.
const Async = false
