package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/guestlog"
)

// jsonSink is a sink on a JSON handler whose records the test reads back.
type jsonSink struct {
	mu   sync.Mutex
	recs []map[string]any
}

func (j *jsonSink) Write(p []byte) (int, error) {
	var m map[string]any
	if err := json.Unmarshal(p, &m); err != nil {
		return 0, err
	}
	j.mu.Lock()
	j.recs = append(j.recs, m)
	j.mu.Unlock()
	return len(p), nil
}

func (j *jsonSink) records() []map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]map[string]any(nil), j.recs...)
}

// goPanic is what Go's runtime writes for an unrecovered panic, in the small
// writes its print makes.
var goPanic = []string{"panic: ", "boom", "\n", "\n", "goroutine 1 [running]:\n", "main.f()\n", "\t/app/main.go:12 +0x1d\n",
	"created by main.main in goroutine 1\n", "\t/app/main.go:20 +0x2"}

// TestCrashReportIsOneRecord: a crash report on stderr, however it is written
// (Go's runtime prints piece by piece), is no record while the call runs; when
// the call survives it (a recovered panic) it is one error record with the stack
// in one attribute; when the call fails, Crash hands it to the failure's record.
// Lines before and after it are lines as usual.
func TestCrashReportIsOneRecord(t *testing.T) {
	var js jsonSink
	out := guestlog.New(slog.NewJSONHandler(&js, nil), guestlog.Config{})
	w := newLogWriter(out, "stderr", slog.LevelWarn, "instance", 3)
	_, _ = w.Write([]byte("before\n"))
	for _, p := range goPanic {
		_, _ = w.Write([]byte(p))
	}
	if n := len(js.records()); n != 1 {
		t.Fatalf("%d records while the crash report is written, want only the line before it: %v", n, js.records())
	}
	w.endCall()
	recs := js.records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %v", len(recs), recs)
	}
	r := recs[1]
	wantStack := "goroutine 1 [running]:\nmain.f()\n\t/app/main.go:12 +0x1d\ncreated by main.main in goroutine 1\n\t/app/main.go:20 +0x2"
	if r["msg"] != "panic: boom" || r["level"] != "ERROR" || r["stack"] != wantStack || r["instance"] != float64(3) || r["stream"] != "stderr" {
		t.Errorf("crash record %v", r)
	}
	// The next call's lines are lines again; a call that fails hands its report over.
	_, _ = w.Write([]byte("after\n"))
	for _, p := range goPanic {
		_, _ = w.Write([]byte(p))
	}
	head, stack := w.Crash()
	if head != "panic: boom" || stack != wantStack {
		t.Errorf("Crash() = %q, %q", head, stack)
	}
	w.endCall() // nothing left
	if recs := js.records(); len(recs) != 3 || recs[2]["msg"] != "after" {
		t.Errorf("records %v", recs)
	}
	if h, _ := w.Crash(); h != "" {
		t.Errorf("a second Crash() = %q", h)
	}
	// stdout has no crash reports: a "panic:" there is a line.
	so := newLogWriter(out, "stdout", slog.LevelInfo, "instance", 3)
	_, _ = so.Write([]byte("panic: not really\n"))
	if recs := js.records(); recs[len(recs)-1]["msg"] != "panic: not really" {
		t.Errorf("stdout line %v", recs[len(recs)-1])
	}
}

// TestCrashReportBounded: a guest that writes a crash head and then floods (in
// one call) keeps at most crashMax bytes of stack, counts the rest, and its
// record — one — is charged to the budget and cut to the line limit from the
// end: the first line stays whole.
func TestCrashReportBounded(t *testing.T) {
	var js jsonSink
	out := guestlog.New(slog.NewJSONHandler(&js, nil), guestlog.Config{Rate: 64 << 10, Window: time.Hour})
	w := newLogWriter(out, "stderr", slog.LevelWarn, "instance", 1)
	head := "panic: " + strings.Repeat("h", 3000)
	_, _ = w.Write([]byte(head + "\n"))
	flood := strings.Repeat("goroutine 9 [running]:\n\x00\x00\x00\x00\n", 1<<16) // 1.6 MiB, NULs escape ×6
	_, _ = w.Write([]byte(flood))
	if len(w.crash.stack) > crashMax || w.crash.cut == 0 {
		t.Fatalf("kept %d bytes of stack, cut %d", len(w.crash.stack), w.crash.cut)
	}
	w.endCall()
	recs := js.records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r["msg"] != head {
		t.Errorf("the first line was cut: %.60q…", r["msg"])
	}
	if tb, _ := r[guestlog.TruncatedKey].(float64); tb == 0 {
		t.Errorf("record not cut to the line limit: %d keys", len(r))
	}
	st := out.Stats()
	if st.Lines != 1 || st.Bytes > guestlog.MaxLine+512 {
		t.Errorf("stats %+v: want one record charged at most the line limit", st)
	}

	// Past the budget, a failure's stack becomes a note; its first line stays.
	spent := guestlog.New(slog.NewJSONHandler(&js, nil), guestlog.Config{Rate: 1, Window: time.Hour})
	for _, n := range []int{8 << 10, 1} { // spent to less than a short record's cost
		for d := spent.Stats().DroppedLines; spent.Stats().DroppedLines == d; {
			spent.Logger().Info(strings.Repeat("x", n))
		}
	}
	w2 := newLogWriter(spent, "stderr", slog.LevelWarn, "instance", 2)
	_, _ = w2.Write([]byte("fatal error: all goroutines are asleep - deadlock!\n\ngoroutine 1 [chan receive]:\nmain.main()\n" +
		strings.Repeat("\t/app/main.go:1 +0x1\n", 20)))
	h, stack := w2.Crash()
	if h != "fatal error: all goroutines are asleep - deadlock!" || !strings.Contains(stack, "left out: over the app's log budget") {
		t.Errorf("Crash() past the budget = %q, %q", h, stack)
	}
}

// TestGuestErrorRecord: a trap's wasm stack is an attribute of its own, not
// part of err; the crash report and the tail go with it when there.
func TestGuestErrorRecord(t *testing.T) {
	ge := &GuestError{App: "a", Kind: FailTrap, Reason: "panic: boom", Stack: "goroutine 1 [running]:",
		Err: errors.New("wasm error: unreachable\nwasm stack trace:\n\t.runtime.abort(i32) i32\n\t.main.f(i32) i32")}
	if got := ge.Error(); got != "app a: guest trap (panic: boom): wasm error: unreachable" {
		t.Errorf("Error() = %q", got)
	}
	attrs := ge.LogAttrs()
	want := []any{"err", ge.Error(), "stack", "goroutine 1 [running]:", "wasm_stack", ".runtime.abort(i32) i32\n.main.f(i32) i32"}
	if len(attrs) != len(want) {
		t.Fatalf("LogAttrs() = %q", attrs)
	}
	for i := range want {
		if attrs[i] != want[i] {
			t.Errorf("LogAttrs()[%d] = %q, want %q", i, attrs[i], want[i])
		}
	}
	// Wrapped (an instance start that failed), the record keeps the wrapping
	// and the guest's attributes.
	wrapped := fmt.Errorf("initialize: %w", ge)
	if a := errAttrs(wrapped); len(a) != 6 || a[1] != "initialize: "+ge.Error() || a[2] != "stack" || a[4] != "wasm_stack" {
		t.Errorf("errAttrs(wrapped) = %q", a)
	}
	if a := errAttrs(ErrDeadline); len(a) != 2 || a[1] != ErrDeadline {
		t.Errorf("errAttrs(ErrDeadline) = %q", a)
	}
	plain := &GuestError{App: "a", Kind: FailExit, Err: errors.New("module closed with exit_code(3)"), Stderr: "bye"}
	if a := plain.LogAttrs(); len(a) != 4 || a[2] != "stderr" {
		t.Errorf("LogAttrs() = %q", a)
	}
}

// TestLogWriterLevels: a line that names its level is logged at it (and below
// the log level not at all); others at the stream's.
func TestLogWriterLevels(t *testing.T) {
	var js jsonSink
	out := guestlog.New(slog.NewJSONHandler(&js, &slog.HandlerOptions{Level: slog.LevelInfo}), guestlog.Config{})
	w := newLogWriter(out, "stderr", slog.LevelWarn, "instance", 1)
	_, _ = w.Write([]byte("ERROR: db down\nDEBUG hidden\ninfo: started\nplain\n{\"level\":\"warn\",\"msg\":\"x\"}\n"))
	recs := js.records()
	want := [][2]string{{"ERROR", "db down"}, {"INFO", "started"}, {"WARN", "plain"}, {"WARN", `{"level":"warn","msg":"x"}`}}
	if len(recs) != len(want) {
		t.Fatalf("records %v", recs)
	}
	for i, w := range want {
		if recs[i]["level"] != w[0] || recs[i]["msg"] != w[1] {
			t.Errorf("record %d: %v, want %s %q", i, recs[i], w[0], w[1])
		}
	}
}

// TestCompileStopsWithContext: a stop while an app loads (a signal at startup)
// does not wait for wazero's compile, which does not check the context itself.
func TestCompileStopsWithContext(t *testing.T) {
	bin := buildGuest(t, "testdata/hostile")
	e, err := NewEngine(context.Background(), EngineConfig{CacheDir: "-"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	app, err := e.Load(ctx, AppConfig{Name: "h", Wasm: bin})
	if err == nil {
		app.Close(context.Background())
		t.Fatal("Load with an ended context compiled the module")
	}
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "compile") {
		t.Errorf("Load: %v, want the compile stopped by the context", err)
	}
	t.Logf("returned after %v", time.Since(start))
}
