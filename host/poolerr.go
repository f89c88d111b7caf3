package host

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// errorAnswer is what the host answers when a pool (or command runner) did not
// serve a request: the one table of pool errors to HTTP statuses that the sync,
// async and CGI gateways share (answerFor).
type errorAnswer struct {
	// Status is the HTTP status; 0 means there is nobody to answer (the
	// client went away while the request waited).
	Status int
	// Retry: a Retry-After goes with it (the condition is temporary).
	Retry bool
	// Body is the plain-text body; for a 503 the error follows it.
	Body string
	// Close closes the connection after the answer (a request body that was
	// not read to its end).
	Close bool
	// Log is the message to log, at Level; "" logs nothing.
	Log   string
	Level slog.Level
}

// lostWithInstanceError marks an error that ended an async connection because
// its instance failed (a trap, an event that overran its deadline, a guest
// that stopped answering): whatever the cause, the connection is lost with its
// instance, which is the app's fault, so 500. In the sync pool the same
// runtime.ErrDeadline means this request overran its own deadline: 504.
type lostWithInstanceError struct{ err error }

func (e lostWithInstanceError) Error() string { return e.err.Error() }
func (e lostWithInstanceError) Unwrap() error { return e.err }

// answerFor maps an error a pool returned to the answer (table in
// poolerr_test.go). The first matching row wins.
func answerFor(err error) errorAnswer {
	var lost lostWithInstanceError
	var ge *runtime.GuestError
	switch {
	case errors.Is(err, runtime.ErrQueueFull), errors.Is(err, runtime.ErrQueueTimeout),
		errors.Is(err, runtime.ErrUnavailable), errors.Is(err, runtime.ErrPoolClosed),
		errors.Is(err, runtime.ErrConcurrencyLimit), errors.Is(err, runtime.ErrCPUBudget):
		// Shutting down, busy or not working right now: try again later.
		return errorAnswer{Status: http.StatusServiceUnavailable, Retry: true,
			Body: "503 service unavailable: ", Log: "request not served", Level: slog.LevelWarn}
	case errors.As(err, &lost):
		return errorAnswer{Status: http.StatusInternalServerError, Body: "500 internal server error",
			Log: "instance failed; request lost", Level: slog.LevelError}
	case errors.Is(err, runtime.ErrDeadline):
		return errorAnswer{Status: http.StatusGatewayTimeout, Body: "504 gateway timeout: the app did not answer in time",
			Log: "request deadline exceeded; instance replaced", Level: slog.LevelError}
	case errors.As(err, &ge):
		// Not logged here: the pool logs the failure once, with the instance it
		// discarded and the guest's crash report (CGIHandler, whose runs no pool
		// keeps, logs it itself).
		return errorAnswer{Status: http.StatusInternalServerError, Body: "500 internal server error"}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errorAnswer{} // the client went away: nothing to answer, nothing to report
	default:
		return errorAnswer{Status: http.StatusInternalServerError, Body: "500 internal server error",
			Log: "request failed", Level: slog.LevelError}
	}
}

// logPoolError logs err as its answer says, with the request it cost.
func logPoolError(log *slog.Logger, a errorAnswer, err error, r *http.Request) {
	if a.Log == "" {
		return
	}
	attrs := []any{"err", err, "method", r.Method, "path", r.URL.Path}
	log.Log(r.Context(), a.Level, a.Log, attrs...)
}

// write sends the answer (Status != 0) on w, replacing whatever the guest
// had set; retry is the Retry-After value, closeConn closes the connection
// after it (a request body that was not read to its end).
func (a errorAnswer) write(w http.ResponseWriter, err error, retry string, closeConn bool) {
	if a.Status == 0 {
		return
	}
	h := w.Header()
	clear(h)
	if closeConn || a.Close {
		h.Set("Connection", "close")
	}
	body := a.Body
	if a.Retry {
		var later interface{ RetryAfter() time.Duration }
		if errors.As(err, &later) { // a CPU budget: when its window ends
			retry = strconv.Itoa(max(int((later.RetryAfter()+time.Second-1)/time.Second), 1))
		}
		h.Set("Retry-After", retry)
		body += err.Error()
	}
	http.Error(w, body, a.Status)
}

// tooLargeAnswer refuses a request body over the limit.
var tooLargeAnswer = errorAnswer{Status: http.StatusRequestEntityTooLarge, Body: "413 request body too large", Close: true}

// internalError is the answer to a guest that broke its response.
var internalError = errorAnswer{Status: http.StatusInternalServerError, Body: "500 internal server error"}

// bodyOverLimit answers 413 (and closes the connection) when r declares a body
// over limit (0: none); it reports whether it did.
func bodyOverLimit(w http.ResponseWriter, r *http.Request, limit int64) bool {
	if limit > 0 && r.ContentLength > limit {
		tooLargeAnswer.write(w, nil, "", false)
		return true
	}
	return false
}

// gatewayLog and retryAfter apply the defaults every gateway shares: the
// default logger, and a Retry-After of 1 s.
func gatewayLog(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.Default()
	}
	return log
}

func retryAfter(seconds int) string {
	return strconv.Itoa(max(seconds, 1))
}
