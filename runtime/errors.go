package runtime

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wasmsrv/wasmsrv/internal/cpushare"
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
	// ErrCPUBudget: the app's tenant used its CPU budget for the current window
	// (AppConfig.CPU); the error is a *cpushare.BudgetError, whose RetryAfter
	// says when the window ends. The host answers 503 with that Retry-After.
	ErrCPUBudget = cpushare.ErrBudget
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
	Stderr string // the tail of the guest's stderr, when it wrote no crash report
	Reason string // the guest runtime's own explanation ("fatal error: ..."), if any
	// Stack is the rest of the crash report the guest wrote on stderr (a Go
	// panic's goroutine stacks), charged to the app's log budget.
	Stack string
}

// wasmStackMark starts the wasm stack trace wazero appends to a trap's error.
const wasmStackMark = "\nwasm stack trace:\n"

// Error says what failed, without the wasm stack trace (WasmStack).
func (e *GuestError) Error() string {
	msg := e.Err.Error()
	if i := strings.Index(msg, wasmStackMark); i >= 0 {
		msg = msg[:i]
	}
	if e.Reason != "" {
		return fmt.Sprintf("app %s: guest %s (%s): %s", e.App, e.Kind, e.Reason, msg)
	}
	return fmt.Sprintf("app %s: guest %s: %s", e.App, e.Kind, msg)
}

// WasmStack is the wasm stack trace of a trap, one frame a line, or "".
func (e *GuestError) WasmStack() string {
	msg := e.Err.Error()
	if i := strings.Index(msg, wasmStackMark); i >= 0 {
		return strings.ReplaceAll(strings.TrimSpace(msg[i+len(wasmStackMark):]), "\n\t", "\n")
	}
	return ""
}

// LogAttrs are the attributes of the one record that reports the failure: the
// error, and those of the guest's crash report, wasm stack and stderr tail
// that are there.
func (e *GuestError) LogAttrs() []any {
	attrs := []any{"err", e.Error()}
	if e.Stack != "" {
		attrs = append(attrs, "stack", e.Stack)
	}
	if ws := e.WasmStack(); ws != "" {
		attrs = append(attrs, "wasm_stack", ws)
	}
	if e.Stderr != "" {
		attrs = append(attrs, "stderr", e.Stderr)
	}
	return attrs
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

// errAttrs are the attributes of a record reporting err: err and, for a guest
// failure (a *GuestError, wrapped or not: an instance start that failed), the
// crash report's stack, the wasm stack and the stderr tail.
func errAttrs(err error) []any {
	var ge *GuestError
	if !errors.As(err, &ge) {
		return []any{"err", err}
	}
	return append([]any{"err", err.Error()}, ge.LogAttrs()[2:]...)
}
