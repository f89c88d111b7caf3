// Package pubsub is the guest binding of the wasmsrv `pubsub` plugin
// (plugins/pubsub/ABI.md): publish/subscribe between the instances of this app, on
// this node or, with Redis configured, on every node. The app must be granted pubsub.
//
//	pubsub.Publish("room:1", []byte("hello"))
//	s, _ := pubsub.Subscribe("room:1")
//	defer s.Close()
//	msg, err := s.Receive(30 * time.Second) // ErrTimeout when nothing came
package pubsub

import (
	"time"
	"unsafe"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
)

// Error is a status returned by the host.
type Error int32

func (e Error) Error() string { return "pubsub: " + pluginabi.StatusText(int32(e)) }

// Errors the host returns.
const (
	// ErrTimeout: no message within the timeout.
	ErrTimeout = Error(pluginabi.ErrTimeout)
	// ErrClosed: the request is over (deadline passed or client gone).
	ErrClosed = Error(pluginabi.ErrClosed)
	// ErrTooLarge: the message is over the app's limit.
	ErrTooLarge = Error(pluginabi.ErrTooLarge)
	// ErrQuota: too many subscriptions on this instance.
	ErrQuota = Error(pluginabi.ErrQuota)
	// ErrBadArgument: empty or over-long topic.
	ErrBadArgument = Error(pluginabi.ErrBadArgument)
	// ErrUnavailable: the broker (Redis) failed.
	ErrUnavailable = Error(pluginabi.ErrUnavailable)
)

func sptr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Publish sends msg to every current subscriber of topic in this app.
func Publish(topic string, msg []byte) error {
	if r := publish(sptr(topic), uint32(len(topic)), ptr(msg), uint32(len(msg))); r != 0 {
		return Error(r)
	}
	return nil
}

// Subscription receives the messages of one topic published after it was made.
type Subscription struct {
	h   uint32
	buf []byte
}

// Subscribe starts receiving topic's messages.
func Subscribe(topic string) (*Subscription, error) {
	r := subscribe(sptr(topic), uint32(len(topic)))
	if r < 0 {
		return nil, Error(r)
	}
	return &Subscription{h: uint32(r), buf: make([]byte, 4096)}, nil
}

// hookPoll is how often Receive looks for messages in an async guest's lifespan
// hook, where no event can arrive to wake it (and a hook holds its instance anyway).
const hookPoll = 20 * time.Millisecond

// Receive returns the next message, waiting up to timeout (0: only what is queued).
// The returned slice is valid until the next Receive. It works in both shapes: in
// the sync shape the host blocks; in the async shape only the calling goroutine
// waits, parked until the host's completion event for the subscription (notify,
// ABI 1.1) or a host timer for the timeout.
func (s *Subscription) Receive(timeout time.Duration) ([]byte, error) {
	ms := timeout.Milliseconds()
	if ms > 1<<31-1 {
		ms = 1<<31 - 1
	}
	var deadline time.Time
	if wasmsrv.Async {
		deadline = time.Now().Add(timeout)
	}
	for {
		r := receive(s.h, ptr(s.buf), uint32(len(s.buf)), uint32(ms))
		if r == int64(pluginabi.ErrWouldBlock) {
			left := time.Until(deadline)
			if left <= 0 {
				return nil, ErrTimeout
			}
			switch rc := wasmsrv.AwaitPlugin(notify, s.h, left); rc {
			case 0: // a message is there (or was taken by another goroutine): look
			case pluginabi.ErrTimeout:
				return nil, ErrTimeout
			case pluginabi.ErrUnsupported:
				wasmsrv.Sleep(min(left, hookPoll))
			default:
				return nil, Error(rc)
			}
			continue
		}
		if r < 0 {
			return nil, Error(r)
		}
		if int(r) <= len(s.buf) {
			return s.buf[:r], nil
		}
		s.buf = make([]byte, r) // the host keeps the message for the retry
	}
}

// Close ends the subscription.
func (s *Subscription) Close() error {
	if r := unsubscribe(s.h); r != 0 {
		return Error(r)
	}
	return nil
}
