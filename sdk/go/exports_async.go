//go:build wasip1 && wasmsrv_async

package wasmsrv

import (
	"iter"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
)

// The async shape (SPEC §8): one instance carries many requests and WebSockets.
// Handlers keep the blocking look of the sync shape: each request runs on its own
// goroutine, and where a host call answers ERR_WOULD_BLOCK the SDK parks that
// goroutine on a channel. Every wasmsrv_on_event call wakes the goroutines its event
// concerns and then pumps the Go scheduler until every goroutine the SDK knows of
// is parked again, and only then returns to the host: a Go guest cannot yield to the
// host while goroutines are runnable (abis.md §6.2, §6.4).

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_abi_v1
func markerABIv1() {}

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_mode_async
func markerModeAsync() {}

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_on_start
func exportOnStart() int32 { return startInstance() } // GOGC=25 as in the sync shape

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_on_stop
func exportOnStop() int32 { return runHook("stop", app.onStop) }

// sched is the SDK's view of the guest's goroutines. The guest is single-threaded,
// so no locking: goroutines switch only where they block.
//
// Each connection runs on a worker coroutine (iter.Pull): the event goroutine
// resumes it directly and gets control back when it waits in an SDK call or
// finishes, a direct switch that costs ~0.2 µs in a wasm guest where a pass
// through the Go scheduler costs ~0.7 µs and a channel hand-off ~1.2 µs.
// Goroutines started with Go are ordinary goroutines: they park on channels and
// the event goroutine runs the Go scheduler until every one of them is parked.
var sched struct {
	// active counts the Go goroutines (not the coroutines) the SDK considers
	// runnable: started and not parked in an SDK wait.
	active    int
	inEvent   bool
	pumping   bool          // the event's goroutine waits on pumpDone
	pumpDone  chan struct{} // buffered (1)
	tasks     ctxTable[task]
	timers    map[uint32]*waiter
	nextTimer uint32
	free      []*task
	// cur is the worker coroutine running now, nil outside one: an SDK wait
	// made while it is set comes from that coroutine (app code must not wait
	// in SDK calls from plain go statements) and yields back to the event
	// goroutine.
	cur  *worker
	runq []*worker // coroutines to resume before the event returns
	idle []*worker // parked workers without a connection, reused
}

// maxIdleWorkers bounds the workers kept for reuse: starting a coroutine costs
// about ten times more than resuming a parked one.
const maxIdleWorkers = 64

// gosched is how many times the event goroutine yields before it parks while Go
// goroutines are runnable: those woken by an event usually park within one
// scheduler pass, a second covers a hand-off among them.
const gosched = 2

// worker is a coroutine serving connections, one at a time.
type worker struct {
	next  func() (struct{}, bool)
	yield func(struct{}) bool
	t     *task // the connection it serves; nil while idle
}

// waiter parks the goroutines that wait for one event source (a connection or a
// timer): at most one worker coroutine and any number of Go goroutines. A wake
// that comes while nothing is parked is remembered, so the next wait returns at
// once: events are hints, and every caller re-checks its condition with the host
// afterwards.
type waiter struct {
	co      *worker
	ch      chan struct{} // Go goroutines; made at the first such wait
	nplain  int
	parked  bool // co or Go goroutines wait here
	pending bool
}

func (w *waiter) wait() {
	if w.pending {
		w.pending = false
		return
	}
	w.parked = true
	if c := sched.cur; c != nil {
		w.co = c
		sched.cur = nil
		c.yield(struct{}{}) // back to the event goroutine until wake resumes us
		return
	}
	if w.ch == nil {
		w.ch = make(chan struct{})
	}
	w.nplain++
	idle()
	<-w.ch
}

func (w *waiter) wake() {
	if !w.parked {
		w.pending = true
		return
	}
	w.parked = false
	if c := w.co; c != nil {
		w.co = nil
		sched.runq = append(sched.runq, c)
	}
	for ; w.nplain > 0; w.nplain-- {
		sched.active++
		w.ch <- struct{}{} // the receiver is parked: this does not block
	}
}

// task is one connection (ctx) and the worker serving it.
type task struct {
	ctx  uint32
	code int32 // non-zero: the head could not be read, answer with this
	w    waiter
	// cancelled: the host sent CANCEL (the request deadline passed, or the host
	// drains); plugin waits of the connection end with ERR_TIMEOUT.
	cancelled bool
	req       Request
	resp      ResponseWriter
}

//lint:ignore U1000 exported to the host by go:wasmexport, which staticcheck does not count as a use
//go:wasmexport wasmsrv_on_event
func exportOnEvent(ctx uint32, kind int32, a, b int64) int32 {
	if sched.timers == nil {
		sched.timers = make(map[uint32]*waiter)
		sched.pumpDone = make(chan struct{}, 1)
	}
	switch kind {
	case abi.EventRequest, abi.EventWSConnect:
		t := newTask(ctx)
		// Read the head here, on the event's goroutine: its decoding is the deepest
		// stack of a request, and a goroutine's stack stays as large as it ever was
		// while the connection lives (an idle WebSocket would keep it).
		t.code = prepare(ctx, &t.req, &t.resp)
		sched.tasks.put(ctx, t)
		var wk *worker
		if n := len(sched.idle); n > 0 {
			wk = sched.idle[n-1]
			sched.idle = sched.idle[:n-1]
		} else {
			wk = newWorker()
		}
		wk.t = t
		sched.runq = append(sched.runq, wk)
	case abi.EventTimer:
		if w := sched.timers[uint32(a)]; w != nil {
			delete(sched.timers, uint32(a))
			w.wake()
		}
	case abi.EventPlugin:
		wakePlugin(uint32(a))
	case abi.EventCancel:
		if t := sched.tasks.get(ctx); t != nil {
			t.cancelled = true
			t.w.wake()
		}
	case abi.EventPoll:
	default:
		// Body, writable, message, closed, disconnect, cancel: wake the task; its
		// host call tells it what happened.
		if t := sched.tasks.get(ctx); t != nil {
			t.w.wake()
		}
	}
	sched.inEvent = true
	pump()
	sched.inEvent = false
	return abi.EventIdle
}

// pump runs the worker coroutines the event made runnable, each until it waits
// again or ends, then the Go goroutines until every one is parked.
func pump() {
	for {
		// FIFO by index, so that whatever a resumed coroutine queues still runs
		// in this loop, and a burst costs O(n).
		for i := 0; i < len(sched.runq); i++ {
			wk := sched.runq[i]
			sched.runq[i] = nil
			sched.cur = wk
			if _, ok := wk.next(); !ok {
				sched.cur = nil // the worker ended (too many idle ones)
			}
		}
		sched.runq = sched.runq[:0]
		if sched.active == 0 {
			return
		}
		for spins := 0; sched.active > 0; spins++ {
			// Yield first: the goroutines the event woke sit in the local run
			// queue and Gosched puts this one behind them, so it runs again once
			// they all parked, without a channel hand-off either way. If some are
			// still active after that, park until the last one parks (idle signals
			// pumpDone). A goroutine blocked elsewhere (a channel of the app's own)
			// then leaves this goroutine asleep too, and Go reports the deadlock:
			// the instance traps at once with "all goroutines are asleep" in its
			// log.
			if spins < gosched {
				runtime.Gosched()
				continue
			}
			sched.pumping = true
			<-sched.pumpDone
		}
	}
}

func newTask(ctx uint32) *task {
	var t *task
	if n := len(sched.free); n > 0 {
		t, sched.free = sched.free[n-1], sched.free[:n-1]
	} else {
		t = new(task)
	}
	t.ctx = ctx
	return t
}

// newWorker starts a worker coroutine; its first resume serves wk.t.
func newWorker() *worker {
	wk := new(worker)
	wk.next, _ = iter.Pull(func(yield func(struct{}) bool) {
		wk.yield = yield
		markSDKGoroutine()
		for {
			// handle is called from here directly: a parked connection's stack is
			// this frame, handle's and the handler's; an idle WebSocket keeps it
			// (4 KiB with the test guest, TestAsyncIdleWebSocketGuestStack).
			t := wk.t
			code := t.code
			if code == 0 {
				code = handle(&t.req, &t.resp)
			}
			endTask(t, code)
			wk.t = nil
			if len(sched.idle) >= maxIdleWorkers {
				return
			}
			sched.idle = append(sched.idle, wk)
			sched.cur = nil
			yield(struct{}{})
		}
	})
	return wk
}

// endTask reports the end of t to the host and keeps t for reuse.
func endTask(t *task, code int32) {
	sched.tasks.del(t.ctx)
	ctxDone(t.ctx, code)
	// Keep a bounded number of tasks for reuse; drop big buffers so an idle
	// instance does not hold the largest response it ever wrote.
	t.w = waiter{}
	t.cancelled = false
	t.req = Request{Header: Header{list: t.req.Header.list[:0]}}
	if cap(t.resp.buf) > bufSize {
		t.resp.buf = nil
	}
	if len(sched.free) < 256 {
		sched.free = append(sched.free, t)
	}
}

// idle records that the calling Go goroutine stops running (it parks or ends) and
// wakes the event's goroutine when none is left.
func idle() {
	sched.active--
	if sched.active == 0 && sched.pumping {
		sched.pumping = false
		sched.pumpDone <- struct{}{}
	}
}

// waitCtx parks the calling goroutine until the next event for ctx.
func waitCtx(ctx uint32) {
	t := sched.tasks.get(ctx)
	if t == nil {
		panic("wasmsrv: wait on a request that is not running")
	}
	t.w.wait()
}

// Sleep pauses the calling goroutine for d using a host timer (SPEC §8.4), so the
// instance keeps serving other connections meanwhile. time.Sleep would stall every
// connection of the instance: use this in async guests.
func Sleep(d time.Duration) {
	if d <= 0 {
		return
	}
	if !sched.inEvent || !sdkGoroutine() {
		// Lifespan hooks: no other connection to serve. A goroutine the SDK does
		// not schedule (a plain go statement in a library) cannot park on a host
		// timer: it sleeps in the Go runtime, which stalls the instance if
		// nothing else can run meanwhile.
		time.Sleep(d)
		return
	}
	sched.nextTimer++
	if sched.nextTimer == 0 {
		sched.nextTimer = 1
	}
	id := sched.nextTimer
	w := new(waiter)
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if timerSet(id, ms) != abi.OK {
		panic("wasmsrv: timer_set failed (too many timers on this instance)")
	}
	sched.timers[id] = w
	w.wait()
}

// Go starts f on a goroutine the SDK accounts for, so f may use the SDK's blocking
// calls (Sleep, WebSocket reads, body reads of a request it was given). A plain go
// statement works for goroutines that only compute and communicate with the
// handler that started them while it waits for them.
func Go(f func()) {
	sched.active++
	go func() {
		markSDKGoroutine()
		defer idle()
		f()
	}()
}

// The SDK tells the goroutines it schedules (connection coroutines and those
// started with Go) from any other — a plain go statement inside a library, such
// as a connection pool dialling in the background — by a per-goroutine flag the
// Go runtime already has and wasm never uses otherwise: panic-on-fault (there are
// no memory faults in wasm, so its effect never shows). Go resets it when a
// goroutine ends. Only SDK goroutines may park on host events: a parked goroutine
// the SDK does not count would leave the event call's accounting wrong, or switch
// away from a coroutine it is not running on. Plugin waits from any other
// goroutine get ERR_UNSUPPORTED from AwaitPlugin and wait in the host instead.

func markSDKGoroutine() { debug.SetPanicOnFault(true) }

func sdkGoroutine() bool {
	if debug.SetPanicOnFault(true) {
		return true
	}
	debug.SetPanicOnFault(false)
	return false
}

// SetBackpressure asks the host to stop (true) or resume (false) sending new
// connections to this instance; connections already here keep their events.
func SetBackpressure(on bool) {
	v := uint32(0)
	if on {
		v = 1
	}
	setBackpressure(v)
}

// Async reports whether the guest was built for the async shape.
const Async = true
