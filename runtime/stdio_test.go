package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	goruntime "runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/guestlog"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
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
	}), nil), guestlog.Config{Rate: 1, Window: time.Hour}) // 1 B/s: no refill while the test runs, however slowly
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

// TestLogWriterLines: lines are split at newlines across writes, and a line longer
// than tailSize (terminated or not, in one write of any size or many) is logged in
// pieces of tailSize, so a write of the guest's whole memory costs the host no
// copy of it.
func TestLogWriterLines(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	h := slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		var rec struct{ Msg string }
		if err := json.Unmarshal(p, &rec); err != nil {
			t.Error(err)
		}
		mu.Lock()
		lines = append(lines, rec.Msg)
		mu.Unlock()
		return len(p), nil
	}), nil)
	w := newLogWriter(guestlog.New(h, guestlog.Config{Rate: 1 << 40}), "stderr", slog.LevelWarn, "instance", 1)
	long := strings.Repeat("x", 2*tailSize+10)
	for _, chunk := range []string{"a", "b\nc\n", "\n", "d", long[:5], long[5:] + "\ne", "\n" + long, "\nf\n"} {
		_, _ = w.Write([]byte(chunk))
	}
	want := []string{"ab", "c", "dxxxxx" + long[5:tailSize-1], long[tailSize-1 : 2*tailSize-1], long[2*tailSize-1:], "e",
		long[:tailSize], long[tailSize : 2*tailSize], long[2*tailSize:], "f"}
	mu.Lock()
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d: %.80q", len(lines), len(want), lines)
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d: %.40q (%d bytes), want %.40q (%d bytes)", i, lines[i], len(lines[i]), want[i], len(want[i]))
		}
	}
	mu.Unlock()

	// A write of 32 MiB, a crash message and no newline, past a small budget:
	// the host allocates a fraction of it and keeps a bounded reason.
	small := newLogWriter(guestlog.New(slog.NewTextHandler(io.Discard, nil), guestlog.Config{Rate: 1024}), "stderr", slog.LevelWarn, "instance", 2)
	big := make([]byte, 32<<20)
	copy(big, "panic: "+strings.Repeat("y", 4096))
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	_, _ = small.Write(big)
	goruntime.ReadMemStats(&after)
	// Copying it whole (as the writer once did, twice) would be 32 MiB or more;
	// the bound leaves room for whatever else the process allocates meanwhile.
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("a 32 MiB write allocated %d bytes", n)
	}
	if r := small.Reason(); !strings.HasPrefix(r, "panic: yyy") || len(r) > reasonMax {
		t.Errorf("reason %.20q (%d bytes)", r, len(r))
	}
}

// TestLogWriterFloodOfShortLines: a single write of millions of short lines past
// the budget costs one scan, not a record per line, and every line is counted.
func TestLogWriterFloodOfShortLines(t *testing.T) {
	out := guestlog.New(slog.NewTextHandler(io.Discard, nil), guestlog.Config{Rate: 1024, Window: time.Hour})
	w := newLogWriter(out, "stdout", slog.LevelInfo, "instance", 1)
	flood := bytes.Repeat([]byte("a\n"), 8<<20) // 8 Mi lines in 16 MiB
	// A record per line would allocate its string: count allocations, not time.
	// (AllocsPerRun writes twice: a warm-up and the run measured.)
	allocs := testing.AllocsPerRun(1, func() { _, _ = w.Write(flood) })
	st := out.Stats()
	if st.Lines+st.DroppedLines != 2*8<<20 {
		t.Errorf("%d lines logged and %d dropped, want %d in all", st.Lines, st.DroppedLines, 2*8<<20)
	}
	if allocs > 10000 {
		t.Errorf("a write of 8 Mi short lines allocated %v times: lines past the budget were made into records", allocs)
	}
	// What follows the last newline starts the next line, counted once ended.
	_, _ = w.Write([]byte("partial"))
	_, _ = w.Write([]byte(" line\n"))
	if st := out.Stats(); st.Lines+st.DroppedLines != 2*8<<20+1 {
		t.Errorf("after one more line: %d logged and %d dropped", st.Lines, st.DroppedLines)
	}
}

// BenchmarkStdioLine is one ordinary stderr line of a guest (a write of one
// line) into a text log written to a file, as the host log is: "unbudgeted" is
// what the writer did before budgets (a Logger record straight to the handler),
// "budgeted" the writer as it is.
func BenchmarkStdioLine(b *testing.B) {
	line := []byte("GET /api/books/42 200 handled in 3.2ms user=alice\n")
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	h := slog.NewTextHandler(devnull, nil).WithAttrs([]slog.Attr{slog.String("app", "shop")})
	b.Run("unbudgeted", func(b *testing.B) {
		log := slog.New(h)
		b.ReportAllocs()
		for b.Loop() {
			log.Log(context.Background(), slog.LevelWarn, string(line[:len(line)-1]), "instance", uint64(3), "stream", "stderr")
		}
	})
	b.Run("budgeted", func(b *testing.B) {
		w := newLogWriter(guestlog.New(h, guestlog.Config{Rate: 1 << 40}), "stderr", slog.LevelWarn, "instance", 3)
		b.ReportAllocs()
		cpu0 := testkit.CPUTime(b)
		for b.Loop() {
			_, _ = w.Write(line)
		}
		testkit.ReportCPU(b, cpu0)
	})
}
