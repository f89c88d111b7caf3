package host

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/cpushare"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// TestAnswerFor is the table of pool errors to HTTP answers that the sync, async
// and CGI gateways share: wrapped errors map like the ones they wrap.
func TestAnswerFor(t *testing.T) {
	guest := &runtime.GuestError{App: "a", Kind: runtime.FailTrap, Err: errors.New("unreachable"), Stderr: "panic: boom"}
	for _, tc := range []struct {
		name   string
		err    error
		status int
		retry  bool
		logged bool
	}{
		{"queue full", runtime.ErrQueueFull, 503, true, true},
		{"queue timeout", runtime.ErrQueueTimeout, 503, true, true},
		{"unavailable", fmt.Errorf("%w: start failed", runtime.ErrUnavailable), 503, true, true},
		{"pool closed", runtime.ErrPoolClosed, 503, true, true},
		{"concurrency limit", runtime.ErrConcurrencyLimit, 503, true, true},
		{"request deadline", runtime.ErrDeadline, 504, false, true},
		{"request deadline wrapped", fmt.Errorf("call: %w", runtime.ErrDeadline), 504, false, true},
		{"guest failure", guest, 500, false, false}, // the pool logs it, once
		{"guest failure wrapped", fmt.Errorf("x: %w", guest), 500, false, false},
		{"instance lost on an event deadline", lostWithInstanceError{runtime.ErrDeadline}, 500, false, true},
		{"instance lost on a trap", lostWithInstanceError{guest}, 500, false, true},
		{"client gone", context.Canceled, 0, false, false},
		{"client deadline", context.DeadlineExceeded, 0, false, false},
		{"other", errors.New("disk on fire"), 500, false, true},
		{"abandoned", runtime.ErrAbandoned, 500, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := answerFor(tc.err)
			if a.Status != tc.status || a.Retry != tc.retry || (a.Log != "") != tc.logged {
				t.Fatalf("answerFor(%v) = %+v, want status %d retry %v logged %v", tc.err, a, tc.status, tc.retry, tc.logged)
			}
			if a.Status == 0 {
				return
			}
			if !strings.HasPrefix(a.Body, fmt.Sprint(a.Status)) {
				t.Errorf("body %q does not start with the status", a.Body)
			}
			rec := httptest.NewRecorder()
			rec.Header().Set("X-From-Guest", "1") // what the guest had set goes
			a.write(rec, tc.err, "7", false)
			if rec.Code != tc.status {
				t.Errorf("wrote %d, want %d", rec.Code, tc.status)
			}
			if got := rec.Header().Get("Retry-After"); (got == "7") != tc.retry || (got != "" && got != "7") {
				t.Errorf("Retry-After %q (retry %v)", got, tc.retry)
			}
			if rec.Header().Get("X-From-Guest") != "" {
				t.Error("the guest's header survived the error answer")
			}
			if tc.retry && !strings.Contains(rec.Body.String(), tc.err.Error()) {
				t.Errorf("503 body %q does not say why", rec.Body.String())
			}
			if !tc.retry && strings.Contains(rec.Body.String(), "unreachable") {
				t.Errorf("body %q shows the guest's error to the client", rec.Body.String())
			}
		})
	}
}

// A tenant over its CPU budget gets 503 with a Retry-After of the rest of its
// window, rounded up to whole seconds.
func TestAnswerForCPUBudget(t *testing.T) {
	err := fmt.Errorf("app a: %w", &cpushare.BudgetError{Tenant: "t", Budget: time.Second, Window: time.Minute, Retry: 41*time.Second + time.Millisecond})
	a := answerFor(err)
	if a.Status != 503 || !a.Retry {
		t.Fatalf("answerFor(budget) = %+v, want 503 with Retry-After", a)
	}
	rec := httptest.NewRecorder()
	a.write(rec, err, "1", false)
	if got := rec.Header().Get("Retry-After"); got != "42" {
		t.Fatalf("Retry-After %q, want 42 (the window's rest)", got)
	}
	if !strings.Contains(rec.Body.String(), "CPU budget") {
		t.Fatalf("body %q does not say why", rec.Body.String())
	}
}

func TestErrorAnswerClose(t *testing.T) {
	rec := httptest.NewRecorder()
	tooLargeAnswer.write(rec, nil, "1", false)
	if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Connection") != "close" {
		t.Fatalf("413: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	internalError.write(rec, nil, "1", true)
	if rec.Code != 500 || rec.Header().Get("Connection") != "close" {
		t.Fatalf("500 closing: %d %v", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	errorAnswer{}.write(rec, nil, "1", false)
	if rec.Code != 200 || rec.Body.Len() != 0 {
		t.Fatalf("no answer wrote %d %q", rec.Code, rec.Body.String())
	}
}
