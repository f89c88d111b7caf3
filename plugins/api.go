package plugins

import (
	"context"
	"log/slog"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// This file is what a plugin's host functions see of the runtime. A plugin
// imports this package and nothing else of wasmsrv (plus plugins/pluginabi for
// the status codes it shares with its guest bindings): the runtime's own types
// are named here as aliases, so they are one type on both sides and the runtime
// keeps no second copy.

// HostFunc is one function of a plugin's import module. Fn uses wazero's
// stack-based convention (api.GoModuleFunc): parameters in, results out, in
// stack; it runs on the goroutine of the guest that called it.
type HostFunc = runtime.HostFunc

// ABIError is the panic value of Trap: a guest that broke its side of the
// contract loses its instance, and only that.
type ABIError = runtime.ABIError

// Waker posts the one plugin event (SPEC §8.2) a guest armed: from Instance.Waker
// inside the host function that arms it, then Wake from any goroutine.
type Waker = runtime.Waker

// Notification holds at most one Waker for an operation and fires it once.
type Notification = runtime.Notification

// Instance is the guest instance a host function runs for (InstanceFrom). It is
// the calling guest's: a plugin keeps per-instance state with Value and SetValue
// (or a map keyed by ID) and releases it in OnClose.
type Instance interface {
	// ID is unique among the app's instances while they live.
	ID() uint64
	// Async reports an async instance: waits must park (ERR_WOULD_BLOCK then a
	// Waker), never block the call.
	Async() bool
	// RequestID is the host's id of the request being served ("" in lifespan
	// hooks), for log records.
	RequestID() string
	// RequestContext is the context of the request being served
	// (context.Background() outside one): an outbound call continues the
	// request's trace from it (go.opentelemetry.io/otel/trace.SpanFromContext;
	// traceparent into the outbound headers). It carries values only: wait on
	// the plugin's own timeouts, not on it.
	RequestContext() context.Context
	// Disconnected reports that the client of the current request has gone: a
	// blocking call in a sync instance stops waiting.
	Disconnected() bool
	// OnClose runs f when the instance is closed (recycled, crashed, drained).
	OnClose(f func())
	// Value and SetValue keep per-instance state under the plugin's own key.
	Value(key any) any
	SetValue(key, v any)
	// Waker arms one plugin event for connection handle h with token; ok is
	// false in a sync instance or for a handle that is not a live connection.
	Waker(fn string, h uint64, token uint32) (w Waker, ok bool)
}

// InstanceFrom returns the instance a host function was called for, or nil when
// ctx is not a host call's.
func InstanceFrom(ctx context.Context) Instance {
	if in := runtime.InstanceFrom(ctx); in != nil {
		return in
	}
	return nil
}

// Output is an app's guest output budget (bytes per second, shared with its
// guests' stdout and stderr): records written on a guest's behalf go through
// Logger, and what a plugin refuses by a limit of its own is counted with Drop.
type Output interface {
	// Logger logs records charged to the budget (a record over budget is dropped
	// and counted).
	Logger() *slog.Logger
	// Spent reports, before a record is built, whether the budget is too low
	// now for one whose message is line; if so the record is counted as dropped.
	Spent(line []byte) bool
	// Drop counts records refused by a limit of the plugin's own, so they are
	// reported with the rest.
	Drop(records int)
}

var _ Instance = (*runtime.Instance)(nil)
