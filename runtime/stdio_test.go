package runtime

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime/guestlog"
)

// TestLogWriterBudget: the lines of every stream of an app share the app's byte
// budget, lines are cut after escaping, and a crash report's copy of the stderr
// tail is charged too, with a note in its place once the budget is spent, while
// the tail and the crash reason themselves stay whole for classification.
func TestLogWriterBudget(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	out := guestlog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil), guestlog.Config{Rate: 4 << 10, Window: time.Hour})
	stdout := newLogWriter(out, "stdout", slog.LevelInfo, "instance", 1)
	stderr := newLogWriter(out, "stderr", slog.LevelWarn, "instance", 2)
	nul := strings.Repeat("\x00", 64<<10)
	for range 32 {
		_, _ = stdout.Write([]byte(nul))
		_, _ = stderr.Write([]byte("fatal error: runtime: out of memory\n" + nul[:4096]))
	}
	_, _ = stderr.Write([]byte("\nruntime: out of memory: cannot allocate\n"))
	st := out.Stats()
	if st.DroppedLines == 0 || st.TruncatedLines == 0 {
		t.Errorf("stats %+v: want drops and cut lines", st)
	}
	mu.Lock()
	n := buf.Len()
	mu.Unlock()
	if limit := 2*guestlog.MaxLine + 4<<10 + 4096; n > limit {
		t.Errorf("%d bytes logged, budget allows about %d", n, limit)
	}
	if got := stderr.Tail(); !strings.Contains(got, "left out: over the app's log budget") {
		t.Errorf("Tail over the budget = %.100q", got)
	}
	if !stderr.mentions("out of memory") || stderr.Reason() != "fatal error: runtime: out of memory" {
		t.Errorf("the tail or reason was lost: reason %q", stderr.Reason())
	}
	// Within budget the tail is quoted as it is.
	quiet := newLogWriter(guestlog.New(slog.NewTextHandler(io.Discard, nil), guestlog.Config{}), "stderr", slog.LevelWarn, "run", 1)
	_, _ = quiet.Write([]byte("panic: boom\n"))
	if got := quiet.Tail(); got != "panic: boom" {
		t.Errorf("Tail = %q", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
