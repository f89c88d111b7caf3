package runtime

import (
	"errors"
	"fmt"
)

// Errors a pool returns instead of running a request. The host maps them to HTTP
// statuses: 503 for the first four, 504 for ErrDeadline, 500 for *GuestError.
var (
	// ErrQueueFull: every instance is busy and the wait queue is full.
	ErrQueueFull = errors.New("all instances busy and wait queue full")
	// ErrQueueTimeout: no instance became free within the queue wait.
	ErrQueueTimeout = errors.New("no instance became free in time")
	// ErrUnavailable: the app has no working instance (start failures, crash loop).
	ErrUnavailable = errors.New("app unavailable")
	// ErrPoolClosed: the pool is shutting down.
	ErrPoolClosed = errors.New("pool closed")
	// ErrDeadline: the request overran its deadline; the instance was discarded.
	ErrDeadline = errors.New("request deadline exceeded")
	// ErrAbandoned: the host gave up on an async connection before its guest
	// ended it (Conn.Abandon); the client was already answered or is gone.
	ErrAbandoned = errors.New("connection abandoned by the host")
)

// Kinds of guest failure.
const (
	FailTrap   = "trap"          // wasm trap: Go panic/deadlock/fatal error, unreachable, OOB access
	FailExit   = "exit"          // the guest called proc_exit
	FailMemory = "memory limit"  // the guest ran out of its memory limit
	FailABI    = "abi violation" // the guest broke the host-function contract
)

// GuestError reports a guest that failed during a call. The instance is discarded.
type GuestError struct {
	App    string
	Kind   string // one of the Fail* constants
	Err    error  // the wazero error
	Stderr string // the tail of the guest's stderr
	Reason string // the guest runtime's own explanation ("fatal error: ..."), if any
}

func (e *GuestError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("app %s: guest %s (%s): %v", e.App, e.Kind, e.Reason, e.Err)
	}
	return fmt.Sprintf("app %s: guest %s: %v", e.App, e.Kind, e.Err)
}

func (e *GuestError) Unwrap() error { return e.Err }

// ABIError is the panic value host functions use to trap a guest that breaks the
// contract (bad pointer, unknown handle).
type ABIError struct {
	Func string
	Msg  string
}

func (e *ABIError) Error() string { return fmt.Sprintf("%s: %s", e.Func, e.Msg) }

// trap aborts the calling guest with an ABI violation.
func trap(fn, msg string) { panic(&ABIError{Func: fn, Msg: msg}) }
