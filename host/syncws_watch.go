package host

import (
	"sync/atomic"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// syncWSWatch notices a sync app whose WebSockets hold every instance of its pool.
// In the sync shape a WebSocket keeps its instance for its whole life, so once as
// many are open as the pool has instances, every further request and WebSocket
// waits for one to close and then times out — which looks, from outside, like an
// app that hangs. The operator is told once, with the fix.
type syncWSWatch struct {
	open   atomic.Int64 // accepted WebSockets not yet finished
	warned atomic.Bool
}

// wsArriving runs for each WebSocket upgrade request of a sync app, before it
// waits for an instance.
func (g *Gateway) wsArriving() {
	w := &g.wsWatch
	if w.warned.Load() {
		return
	}
	p, ok := g.pool.(interface{ Stats() runtime.SyncStats })
	if !ok {
		return
	}
	open, workers := w.open.Load(), p.Stats().Workers
	if workers <= 0 || open < int64(workers) || w.warned.Swap(true) {
		return
	}
	g.log.Warn("every instance of this sync app holds a WebSocket: new requests and WebSockets wait for one to close, then time out; "+
		"serve it in async mode, where one instance carries many WebSockets (wasmsrv run --mode async, mode = \"async\" in a site file, or //wasmsrv:mode async in a Go package)",
		"websockets", open, "workers", workers)
}
