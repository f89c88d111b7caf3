//go:build wasip1 && wasmsrv_async

package wasmsrv

import (
	"time"

	"github.com/wasmsrv/wasmsrv/abi"
)

// pluginWaits maps the tokens of armed plugin notifications (SPEC §8.2 PLUGIN) to
// the goroutines waiting for them. Like sched, it is touched only by the guest's
// single thread.
var pluginWaits struct {
	m    map[uint32]*waiter
	next uint32
	free []*waiter
}

// AwaitPlugin parks the calling goroutine until the host posts the plugin
// completion event (SPEC §8.2 PLUGIN) for a notification it arms, or until
// timeout passes (timeout < 0: no timeout). notify is a plugin's notify host
// function, (handle, ctx, token) -> status, such as wasmsrv_pubsub.notify;
// AwaitPlugin calls it with h, ctx 0 (the event goes to the instance, so any
// goroutine may wait, not only a connection's own) and a fresh token. The
// instance's other connections run meanwhile.
//
// The result is 0 when the event came or another event of the calling
// connection woke it (re-check with the plugin call: events are hints),
// abi.ErrTimeout when the timeout passed first or the calling connection was
// cancelled (its request deadline passed, or the host drains), notify's status
// when it failed, and abi.ErrUnsupported where the goroutine cannot park on an
// event: outside an event (a lifespan hook), on a goroutine the SDK does not
// schedule (a plain go statement: start it with Go instead), and in the sync
// shape, where plugin calls block in the host. It is meant for plugin bindings
// (sdk/go/pubsub, sdk/go/fetch, sdk/go/sockets).
func AwaitPlugin(notify func(h, ctx, token uint32) int32, h uint32, timeout time.Duration) int32 {
	if !sched.inEvent || !sdkGoroutine() {
		return abi.ErrUnsupported
	}
	if timeout == 0 {
		return abi.ErrTimeout
	}
	// On a connection's coroutine the wait is the connection's own, so its
	// CANCEL ends it too.
	var t *task
	if c := sched.cur; c != nil {
		t = c.t
	}
	if t != nil && t.cancelled {
		return abi.ErrTimeout
	}
	pw := &pluginWaits
	if pw.m == nil {
		pw.m = make(map[uint32]*waiter)
	}
	for {
		pw.next++
		if _, used := pw.m[pw.next]; pw.next != 0 && !used {
			break
		}
	}
	token := pw.next
	var w *waiter
	switch n := len(pw.free); {
	case t != nil:
		w = &t.w
	case n > 0:
		w, pw.free = pw.free[n-1], pw.free[:n-1]
	default:
		w = &waiter{ch: make(chan struct{}, 1)}
	}
	release := func() {
		if t == nil {
			w.pending, w.parked = false, false
			if len(pw.free) < 256 {
				pw.free = append(pw.free, w)
			}
		}
	}
	pw.m[token] = w
	if rc := notify(h, 0, token); rc != abi.OK {
		delete(pw.m, token)
		release()
		return rc
	}
	var timer uint32
	if timeout > 0 {
		sched.nextTimer++
		if sched.nextTimer == 0 {
			sched.nextTimer = 1
		}
		timer = sched.nextTimer
		ms := int64((timeout + time.Millisecond - 1) / time.Millisecond)
		if timerSet(timer, ms) != abi.OK {
			panic("wasmsrv: timer_set failed (too many timers on this instance)")
		}
		sched.timers[timer] = w
	}
	w.wait()
	// wakePlugin and the timer event delete their entry when they wake us. A
	// notification still armed in the host stays so until the plugin replaces or
	// fires it; its late event finds no token and is ignored (a TIMER likewise).
	fired := pw.m[token] != w
	if !fired {
		delete(pw.m, token)
	}
	timedOut := timer != 0 && sched.timers[timer] != w
	if timer != 0 && !timedOut {
		delete(sched.timers, timer)
		timerCancel(timer)
	}
	release()
	switch {
	case fired:
		return abi.OK
	case t != nil && t.cancelled, timedOut:
		return abi.ErrTimeout
	}
	return abi.OK // another event of the connection: a hint, the caller looks again
}

// wakePlugin routes a PLUGIN event to the goroutine waiting on its token; a token
// nobody waits for any more (timed out) is ignored.
func wakePlugin(token uint32) {
	if w := pluginWaits.m[token]; w != nil {
		delete(pluginWaits.m, token)
		w.wake()
	}
}
