package runtime

import (
	"errors"
	"time"
)

// Observer hears what a pool and its instances do: for metrics and the status
// page's recent crashes. Set it in PoolConfig.Observer; nil costs nothing (no
// clock read, no call). Observe is called on the request path and on the pools'
// own goroutines, concurrently: it must be quick, must not block and must not
// call back into the pool. The Event is passed by value; keep nothing it points
// to beyond Err.
type Observer interface {
	Observe(Event)
}

// EventKind says what an Event reports.
type EventKind uint8

// The kinds of Event.
const (
	// EventInstanceStarted: an instance started (pre-warm or replacement); Took
	// is how long its start took (instantiation, start function, start hook).
	EventInstanceStarted EventKind = iota + 1
	// EventInstanceStartFailed: a replacement instance failed to start; Err says why.
	EventInstanceStartFailed
	// EventInstanceRecycled: a healthy instance retires after its request budget
	// (PoolConfig.MaxRequests), or, async, because its guest keeps abandoned
	// connections.
	EventInstanceRecycled
	// EventInstanceCrashed: an instance was discarded because its guest failed;
	// Reason is the GuestError's Kind (FailTrap, FailExit, FailMemory, FailABI)
	// or ReasonOther, Err the failure.
	EventInstanceCrashed
	// EventDeadlineKill: a guest call overran its deadline and was stopped; the
	// instance was discarded (a CGI run: its one instance). Err says which deadline.
	EventDeadlineKill
	// EventGuestCall: one call into the guest ended (a sync request's
	// wasmsrv_handle, one async event, one CGI run); Took is its wall time.
	EventGuestCall
	// EventQueueWait: a request got an instance (or a CGI run slot) after
	// waiting Took (0 when one was free at once); sent once per request that got
	// one, not for those refused (queue full, timeout).
	EventQueueWait
)

// ReasonOther is an EventInstanceCrashed's Reason when the failure is not a
// *GuestError (an instance broken by its host side).
const ReasonOther = "other"

// Event is one thing an Observer hears.
type Event struct {
	Kind     EventKind
	App      string
	Instance uint64        // the instance's id (0 for queue waits and CGI runs)
	Reason   string        // EventInstanceCrashed
	Took     time.Duration // EventInstanceStarted, EventGuestCall, EventQueueWait
	Err      error         // EventInstanceStartFailed, EventInstanceCrashed, EventDeadlineKill
}

// lossEvent is the event of an instance discarded because of err: a deadline
// kill, or a crash with its reason.
func lossEvent(app string, id uint64, err error) Event {
	if errors.Is(err, ErrDeadline) {
		return Event{Kind: EventDeadlineKill, App: app, Instance: id, Err: err}
	}
	reason := ReasonOther
	var ge *GuestError
	if errors.As(err, &ge) {
		reason = ge.Kind
	}
	return Event{Kind: EventInstanceCrashed, App: app, Instance: id, Reason: reason, Err: err}
}

// Observers is one Observer that tells each non-nil one of obs in turn; nil
// when there is none, so the pool stays free.
func Observers(obs ...Observer) Observer {
	var list multiObserver
	for _, o := range obs {
		if o != nil {
			list = append(list, o)
		}
	}
	switch len(list) {
	case 0:
		return nil
	case 1:
		return list[0]
	}
	return list
}

type multiObserver []Observer

func (m multiObserver) Observe(ev Event) {
	for _, o := range m {
		o.Observe(ev)
	}
}
