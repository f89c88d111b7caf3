package runtime

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/wasmsrv/wasmsrv/abi"
)

// Waker posts one abi.EventPlugin event (SPEC §8.2) to an async instance: the
// completion of a plugin operation a guest armed a notification for (a pubsub
// message arriving, an outbound response completing). A plugin gets one from
// Instance.Waker inside the host function that arms the notification, keeps it
// with the operation's state, and calls Wake from whatever goroutine completes
// the operation.
//
// A Waker names its connection by handle, not by *Conn, so a plugin holding one
// pins no connection state: when the connection has ended by the time the event
// is dispatched, the event is dropped there. The zero Waker is not armed.
type Waker struct {
	ai    *asyncInst
	conn  uint32 // connection handle, 0 for an instance-wide event
	token uint32
}

// Waker returns a Waker that posts EventPlugin with token to connection handle h
// of this instance (h 0: to the instance, ctx 0 like EventTimer). It must be
// called from a host function of this instance. ok is false where no event can
// come: in sync mode and in lifespan hooks (the start hook runs before the
// instance takes events, the stop hook after). An h that names no live connection
// traps the guest, like any unknown request handle (SPEC §2); fn names the
// calling function in that trap.
func (in *Instance) Waker(fn string, h uint64, token uint32) (w Waker, ok bool) {
	ai := in.async
	if ai == nil || ai.over.Load() {
		return Waker{}, false
	}
	id := uint32(h)
	if id != 0 {
		c := ai.table[id]
		if c == nil || c.done || uint64(id) != h&0xffffffff {
			trap(fn, fmt.Sprintf("unknown request handle %d", id))
		}
	}
	return Waker{ai: ai, conn: id, token: token}, true
}

// Armed reports whether w was made by Instance.Waker.
func (w Waker) Armed() bool { return w.ai != nil }

// Wake queues the event. It is safe from any goroutine, including another
// instance's host function (the in-process pubsub broker delivers on the
// publisher's goroutine), so it never blocks and never runs guest code on the
// caller: when the mailbox has room the event is queued and the instance is
// started on a fresh goroutine if it is idle; when the mailbox is full (the
// bounded mailbox of AsyncConfig) the event waits in the instance's overflow
// queue, which one goroutine moves into the mailbox as room appears. Wake on an
// instance that is gone does nothing. It reports whether the event was queued.
func (w Waker) Wake() bool {
	ai := w.ai
	if ai == nil || ai.over.Load() {
		return false
	}
	ev := event{kind: ctlPlugin, a: int64(w.token), b: int64(w.conn)}
	select {
	case ai.mail <- ev:
	default:
		return ai.wakes.add(ai, ev)
	}
	// The owner, if there is one, sees the event before it lets go (drain's
	// re-check); otherwise the instance needs a goroutine to run on. One is
	// enough for a burst (a publish waking many subscribers of this instance):
	// it clears kick before it drains, so an event queued after its last look
	// starts another.
	if ai.run.TryLock() {
		ai.run.Unlock()
		if ai.wakes.kick.CompareAndSwap(false, true) {
			go func() {
				ai.wakes.kick.Store(false)
				ai.drain()
			}()
		}
	}
	return true
}

// wakeQueue holds an instance's Waker events that found the mailbox full. Its
// length is capped at the mailbox size: a guest cannot have that many
// notifications armed through its handles (max_subscriptions, max_open), so only
// one that re-arms a ready handle in a loop reaches the cap, and it loses the
// events beyond it instead of growing host memory.
type wakeQueue struct {
	kick    atomic.Bool // a goroutine to run the idle instance is on its way
	mu      sync.Mutex
	q       []event
	pumping bool // a goroutine moves q into the mailbox
}

func (wq *wakeQueue) add(ai *asyncInst, ev event) bool {
	wq.mu.Lock()
	if len(wq.q) >= cap(ai.mail) {
		wq.mu.Unlock()
		return false
	}
	wq.q = append(wq.q, ev)
	start := !wq.pumping
	wq.pumping = true
	wq.mu.Unlock()
	if start {
		go wq.pump(ai)
	}
	return true
}

// pump moves deferred events into the mailbox, running the instance when it can
// (a goroutine of its own), until none is left or the instance is gone.
func (wq *wakeQueue) pump(ai *asyncInst) {
	for {
		wq.mu.Lock()
		if len(wq.q) == 0 {
			wq.q, wq.pumping = wq.q[:0], false
			wq.mu.Unlock()
			return
		}
		ev := wq.q[0]
		wq.q = wq.q[1:]
		wq.mu.Unlock()
		select {
		case ai.mail <- ev:
			ai.drain()
		case <-ai.dead:
			wq.mu.Lock()
			wq.q, wq.pumping = nil, false
			wq.mu.Unlock()
			return
		}
	}
}

// dispatchPlugin delivers a Waker's event on the owner goroutine: to the
// connection it names if that is still live, else nowhere.
func (ai *asyncInst) dispatchPlugin(ev event) {
	id := uint32(ev.b)
	if id != 0 {
		if c := ai.table[id]; c == nil || c.done {
			return // the connection ended first: the late completion is dropped
		}
	}
	ai.call(id, abi.EventPlugin, ev.a, 0)
}

// Notification is a plugin operation's slot for the one Waker a guest armed on
// it: Fire wakes it at most once. Arm, Fire and Disarm are safe from any
// goroutine. To arm without losing a completion that races it, arm first,
// then check whether the operation is already complete and Fire if so (the
// completing side completes first, then Fires): one of the two Fires sees the
// Waker, the other finds the slot empty.
type Notification struct {
	mu sync.Mutex
	w  Waker
}

// Arm sets w, replacing an earlier Waker, which then never fires.
func (n *Notification) Arm(w Waker) {
	n.mu.Lock()
	n.w = w
	n.mu.Unlock()
}

// Disarm drops the armed Waker, if any.
func (n *Notification) Disarm() { n.Arm(Waker{}) }

// Fire wakes the armed Waker, if any, and disarms it.
func (n *Notification) Fire() {
	n.mu.Lock()
	w := n.w
	n.w = Waker{}
	n.mu.Unlock()
	if w.Armed() {
		w.Wake()
	}
}
