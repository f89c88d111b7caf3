package runtime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Instance is one instantiated guest. It is not safe for concurrent use: a pool hands
// it to one request (sync) or one owner goroutine (async) at a time.
type Instance struct {
	app    *App
	id     uint64
	mod    api.Module
	handle api.Function
	// handleResponse is an http-wasm guest's handle_response (nil otherwise).
	handleResponse api.Function
	stack          []uint64
	ctx            *callCtx // &cctx
	cctx           callCtx

	stdout, stderr *logWriter
	// snap is the snapshot the instance started from, or nil.
	snap *snapshot

	// memSeen is the linear memory size in bytes when the instance last came
	// back to its sync pool (Stats reads it; the memory itself may be growing
	// on another goroutine).
	memSeen atomic.Int64

	// deadline: one timer per instance, re-armed per call, so a request costs no
	// allocation for its deadline.
	timer   *time.Timer
	done    chan struct{} // closed when the deadline fires: the instance is dead
	expired atomic.Bool

	// cur is the request running on this instance. The calling goroutine reads it
	// without locking; mu orders its updates with expire on the timer goroutine.
	mu      sync.Mutex
	cur     exchangeSlot
	handles uint32
	// event is the exchange of the connection an async instance's current
	// event is for (RequestContext); owner goroutine only.
	event Exchange
	// interrupt is the injected flag the guest checks on every loop iteration
	// (package interrupt); guarded by mu against expire.
	interrupt api.MutableGlobal

	// slot: the current call holds a slot of the app's CPU gate; slept is the
	// part of the current call spent off it (asleep, or in a plugin call that
	// may block), not charged.
	slot  bool
	slept time.Duration
	// lastCall is the wall time of the last request or event call (the pool
	// observer's EventGuestCall: one clock for the gate, accounting and metrics).
	lastCall time.Duration

	served    int
	maxServed int       // 0 = unlimited
	idleSince time.Time // a scaling sync pool's: when the instance last went idle
	broken    bool

	// async is the instance's async-pool state (handle table, timers); nil in
	// sync mode. Only the owner goroutine touches it.
	async *asyncInst

	// values and onClose hold plugin state that lives and dies with the instance
	// (subscriptions, outbound-call handles); see Value and OnClose.
	values  map[any]any
	onClose []func()
}

type exchangeSlot struct {
	handle uint32
	ex     Exchange
}

// callCtx is the context.Context wazero sees for every call into this instance. It
// carries the instance (for host functions), its deadline (done) and, for
// instantiation, the app's memory allocator without a per-request (or
// per-instance) context allocation.
type callCtx struct{ in *Instance }

type instanceKey struct{}

func (c *callCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *callCtx) Done() <-chan struct{}       { return c.in.done }
func (c *callCtx) Err() error {
	if c.in.expired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}
func (c *callCtx) Value(key any) any {
	if key == (instanceKey{}) {
		return c.in
	}
	if c.in.snap != nil {
		return c.in.snap.allocCtx.Value(key)
	}
	return c.in.app.allocCtx.Value(key)
}

// InstanceFrom returns the instance a host function is called from, or nil.
// Plugins use it to reach per-app state.
func InstanceFrom(ctx context.Context) *Instance {
	in, _ := ctx.Value(instanceKey{}).(*Instance)
	return in
}

// App returns the app the instance belongs to.
func (in *Instance) App() *App { return in.app }

// Async reports whether the instance is an async one (SPEC §8): plugin waits park
// the connection and end with an event instead of blocking the instance.
func (in *Instance) Async() bool { return in.app.info.Mode == ModeAsync }

// Disconnected reports whether the client of the request the instance is serving
// has gone away (false between requests): a plugin blocking a sync instance stops
// waiting for a client that can no longer get the answer.
func (in *Instance) Disconnected() bool { return in.cur.ex != nil && in.cur.ex.Disconnected() }

// ID returns the instance's id, unique within its app among the instances that
// serve (from 1); the instances started to take the app's snapshot are 0.
func (in *Instance) ID() uint64 { return in.id }

// Request returns the exchange of the request the instance is serving, or nil (in
// lifespan hooks, between requests). Plugins use it for the request id and to notice
// a client that went away while they block.
func (in *Instance) Request() Exchange { return in.cur.ex }

// RequestID returns the host's id of the current request (SPEC §3 field
// request_id), or "" outside a request. It reads the encoded head without copying.
func (in *Instance) RequestID() string {
	if in.cur.ex == nil {
		return ""
	}
	var h abi.Head
	// The head was encoded by the host itself; a decode error cannot come from the
	// guest, and an empty id is the right answer for it anyway.
	if abi.DecodeHead(string(in.cur.ex.Head()), &h) != nil {
		return ""
	}
	return h.Fields[abi.FieldRequestID]
}

// RequestContext returns the context of the request the current call serves
// (the exchange's, RequestContexter): plugins continue its trace in their
// outbound calls. It carries values only: its cancellation is the request's, not
// the call's, so a plugin does not wait on it. context.Background() outside a
// request or for an exchange without one.
func (in *Instance) RequestContext() context.Context {
	ex := in.cur.ex
	if ex == nil {
		ex = in.event
	}
	if rc, ok := ex.(RequestContexter); ok {
		if ctx := rc.RequestContext(); ctx != nil {
			return ctx
		}
	}
	return context.Background()
}

// Value returns the plugin state stored under key on this instance, or nil. Like the
// instance itself it is for the goroutine currently calling into the guest only.
func (in *Instance) Value(key any) any { return in.values[key] }

// SetValue stores plugin state under key for the life of the instance.
func (in *Instance) SetValue(key, v any) {
	if in.values == nil {
		in.values = map[any]any{}
	}
	in.values[key] = v
}

// OnClose registers f to run when the instance is closed (recycled, broken or at
// shutdown), so a plugin can release what the guest forgot to (subscriptions,
// pending outbound responses). f must not call into the guest.
func (in *Instance) OnClose(f func()) { in.onClose = append(in.onClose, f) }

// exchangeFor returns the exchange of request handle h, trapping on a bad handle.
func exchangeFor(ctx context.Context, fn string, h uint64) Exchange {
	in := InstanceFrom(ctx)
	if in == nil {
		trap(fn, "called outside a request")
	}
	if in.async != nil {
		return in.async.exchange(fn, h)
	}
	if in.cur.ex == nil || uint64(in.cur.handle) != h&0xffffffff {
		trap(fn, fmt.Sprintf("unknown request handle %d", uint32(h)))
	}
	return in.cur.ex
}

// expire is the deadline timer's callback: it stops the guest (through callCtx.Done,
// which wazero watches, and the interruptible sleep) and unblocks host I/O.
func (in *Instance) expire() {
	if !in.expired.CompareAndSwap(false, true) {
		return // already expired (deadline and shutdown can race)
	}
	// Abort runs under mu: serveSync clears the exchange under mu once the guest
	// returns, so the request cannot finish (and its connection move on to the
	// next request) while Abort is still touching it.
	in.mu.Lock()
	if in.cur.ex != nil {
		in.cur.ex.Abort()
	}
	if in.interrupt != nil {
		in.interrupt.Set(1) // the guest traps at its next loop iteration
	}
	in.mu.Unlock()
	close(in.done)
}

// interruptIfBusy stops the request running on the instance, if any, as its
// deadline would. It reports whether there was one.
func (in *Instance) interruptIfBusy() bool {
	in.mu.Lock()
	busy := in.cur.ex != nil
	in.mu.Unlock()
	if busy {
		in.expire()
	}
	return busy
}

// sleep is the guest's nanosleep: real time, but cut short when the instance dies,
// so a sleeping guest cannot outlive its deadline.
func (in *Instance) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	wait := func() {
		select {
		case <-t.C:
		case <-in.done:
			t.Stop()
		}
	}
	if in.slot {
		in.offSlot(wait)
		return
	}
	wait()
}

// offSlot runs wait (a sleep, a plugin call that may block) with the current
// call's CPU slot given back; the time it takes, the wait for the slot again
// included, is not charged as guest time.
func (in *Instance) offSlot(wait func()) {
	gate := in.app.cfg.CPU
	start := time.Now()
	gate.ReleaseAt(start, 0) // the call is charged at its end, less this
	in.slot = false
	defer func() {
		gate.AcquireSlot()
		in.slot = true
		in.slept += time.Since(start)
	}()
	wait()
}

// gatedCall is call for a request or an event: through the app's CPU gate (a
// slot held for the call, given back while the guest sleeps), its guest time
// accounted to the app and charged to the tenant.
func (in *Instance) gatedCall(fn api.Function, timeout time.Duration) error {
	gate := in.app.cfg.CPU
	if gate != nil {
		gate.AcquireSlot()
		in.slot = true
	}
	in.slept = 0
	start := time.Now()
	err := in.call(fn, timeout)
	end := time.Now()
	in.lastCall = end.Sub(start)
	used := in.lastCall - in.slept
	in.app.guestNS.Add(int64(used))
	if gate != nil {
		in.slot = false
		gate.ReleaseAt(end, used)
	}
	return err
}

// call runs fn with the instance's stack under a deadline and classifies failures.
// A non-nil error means the instance must be discarded.
func (in *Instance) call(fn api.Function, timeout time.Duration) error {
	in.timer.Reset(timeout)
	err := fn.CallWithStack(in.ctx, in.stack)
	fired := !in.timer.Stop()
	if fired || in.expired.Load() { // the timer, or a shutdown that ran out of time
		in.broken = true
		in.stderr.endCall()
		// The deadline won the race even if the guest returned: the done channel
		// is closed, so this instance cannot be used again.
		return ErrDeadline
	}
	if err != nil {
		in.broken = true
		return in.classify(err)
	}
	in.stderr.endCall()
	return nil
}

func (in *Instance) classify(err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == sys.ExitCodeDeadlineExceeded {
		return ErrDeadline
	}
	ge := &GuestError{App: in.app.name, Kind: FailTrap, Err: err}
	// A crash report on stderr (a Go panic and its stacks) is quoted whole, in
	// the failure's record; else the tail of stderr, for context.
	head, stack := in.stderr.Crash()
	if head != "" {
		ge.Reason, ge.Stack = head[:min(len(head), reasonMax)], stack
	} else {
		ge.Stderr = in.stderr.Tail()
	}
	var abiErr *ABIError
	switch {
	case errors.As(err, &exit):
		ge.Kind = FailExit
	case errors.As(err, &abiErr):
		ge.Kind = FailABI
		ge.Err = abiErr
	case strings.Contains(in.stderr.Reason(), "out of memory"):
		ge.Kind = FailMemory
	}
	if r := in.stderr.Reason(); r != "" && ge.Reason == "" {
		ge.Reason = r
	}
	return ge
}

// serveSync runs one request on a sync instance. The returned code is the guest's
// wasmsrv_handle result.
func (in *Instance) serveSync(ex Exchange, timeout time.Duration) (int32, error) {
	in.handles++
	if in.handles == 0 {
		in.handles = 1
	}
	in.setExchange(exchangeSlot{handle: in.handles, ex: ex})
	in.stack[0] = uint64(in.handles)
	if ct, ok := ex.(CallTimeouter); ok {
		timeout = ct.CallTimeout(timeout)
	}
	err := in.gatedCall(in.handle, timeout)
	in.setExchange(exchangeSlot{})
	in.served++
	if err != nil {
		return 0, err
	}
	return int32(uint32(in.stack[0])), nil
}

// hook runs a lifespan export (wasmsrv_on_start / wasmsrv_on_stop) if present.
func (in *Instance) hook(name string, timeout time.Duration) error {
	fn := in.mod.ExportedFunction(name)
	if fn == nil {
		return nil
	}
	if err := in.call(fn, timeout); err != nil {
		return err
	}
	if rc := int32(uint32(in.stack[0])); rc != 0 {
		return fmt.Errorf("%s returned %d: %s", name, rc, lastLine(in.stderr.Tail()))
	}
	return nil
}

func (in *Instance) setExchange(s exchangeSlot) {
	in.mu.Lock()
	in.cur = s
	in.mu.Unlock()
}

// recycleDue reports whether the instance has served its quota.
func (in *Instance) recycleDue() bool { return in.maxServed > 0 && in.served >= in.maxServed }

// close releases the instance's memory.
func (in *Instance) close(ctx context.Context) {
	in.timer.Stop()
	in.app.forget(in)
	_ = in.mod.Close(ctx)
	for _, f := range in.onClose {
		f()
	}
	in.onClose, in.values = nil, nil
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	if s == "" {
		return "(no stderr output)"
	}
	return s
}
