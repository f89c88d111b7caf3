package progress

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drawn splits terminal output into the lines drawn with \r … \x1b[K.
var drawn = regexp.MustCompile("\r([^\r\x1b]+)\x1b\\[K")

func TestTerminalLine(t *testing.T) {
	scr := &testkit.LogBuffer{} // the terminal
	m := NewTerminal(scr, func() int { return 60 })
	log := slog.New(slog.NewTextHandler(m, &slog.HandlerOptions{ReplaceAttr: dropTime}))

	task := m.Start(log, 0, "building guest", "app", "hello")
	waitFor(t, "the line", func() bool { return strings.Contains(scr.String(), "building guest app=hello · ") })
	task.SetStep("compiling net/http")
	waitFor(t, "the step", func() bool { return strings.Contains(scr.String(), "· compiling net/http · ") })
	log.Info("a record meanwhile", "k", "v")
	waitFor(t, "the line again after the record", func() bool {
		out := scr.String()
		i := strings.Index(out, "a record meanwhile")
		return i >= 0 && strings.Contains(out[i:], "\rbuilding guest")
	})
	if !task.End() {
		t.Error("End says the task was not shown")
	}
	out := scr.String()
	if !strings.HasSuffix(out, "\r\x1b[K") {
		t.Errorf("the line is not cleared at the end: %q", out[max(0, len(out)-80):])
	}
	// The record went out whole, on a cleared line, and never inside a drawn line.
	if !strings.Contains(out, "\r\x1b[Klevel=INFO msg=\"a record meanwhile\" k=v\n") {
		t.Errorf("record not written on a cleared line: %q", out)
	}
	for _, d := range drawn.FindAllStringSubmatch(out, -1) {
		if n := utf8.RuneCountInString(d[1]); n > 59 {
			t.Errorf("drawn line of %d columns on a 60-column terminal: %q", n, d[1])
		}
		if strings.Contains(d[1], "\n") || strings.Contains(d[1], "record") {
			t.Errorf("drawn line mixed with a record: %q", d[1])
		}
	}
	if !regexp.MustCompile(`· \d+\.\ds\x1b`).MatchString(out) {
		t.Errorf("no elapsed time in the line: %q", out)
	}
}

func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// A line too wide for the terminal is cut, not wrapped (a wrapped line cannot be
// redrawn in place).
func TestTerminalNarrow(t *testing.T) {
	scr := &testkit.LogBuffer{} // the terminal
	m := NewTerminal(scr, func() int { return 20 })
	task := m.Start(nil, 0, "compiling module (first start; cached afterwards)", "app", "a-rather-long-name")
	waitFor(t, "the line", func() bool { return strings.Contains(scr.String(), "…") })
	task.End()
	for _, d := range drawn.FindAllStringSubmatch(scr.String(), -1) {
		if n := utf8.RuneCountInString(d[1]); n > 19 {
			t.Errorf("drawn line of %d columns on a 20-column terminal: %q", n, d[1])
		}
		if !regexp.MustCompile(`… · \d+\.\ds$`).MatchString(d[1]) {
			t.Errorf("the cut line lost its clock: %q", d[1])
		}
	}
}

// Work that ends within the delay (a cache hit) shows nothing, on a terminal or in
// the log.
func TestQuickWorkIsQuiet(t *testing.T) {
	scr := &testkit.LogBuffer{} // the terminal
	task := NewTerminal(scr, nil).Start(nil, time.Hour, "compiling module")
	if task.End() || scr.String() != "" {
		t.Errorf("quick task shown: %q", scr.String())
	}
	rec := &records{}
	var m *Meter
	if m.Start(slog.New(rec), time.Hour, "compiling module").End() || rec.count() != 0 {
		t.Errorf("quick task logged %d records", rec.count())
	}
}

// Log writes that end mid-line while a task is shown are held until the line ends,
// so the live line is never glued to half a record.
func TestPartialWrites(t *testing.T) {
	scr := &testkit.LogBuffer{} // the terminal
	m := NewTerminal(scr, nil)
	task := m.Start(nil, 0, "building")
	waitFor(t, "the line", func() bool { return strings.Contains(scr.String(), "building") })
	m.Write([]byte("par"))
	m.Write([]byte("tial\n"))
	task.End()
	if out := scr.String(); !strings.Contains(out, "\r\x1b[Kpartial\n") {
		t.Errorf("partial writes not kept together on a cleared line: %q", out)
	}
	// Without a task, writes go straight through.
	m.Write([]byte("direct"))
	if !strings.HasSuffix(scr.String(), "direct") {
		t.Errorf("write without a task: %q", scr.String())
	}
}

// records is a slog.Handler that keeps records.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec)
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.recs)
}

func (r *records) attrs(i int) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{"msg": r.recs[i].Message}
	r.recs[i].Attrs(func(a slog.Attr) bool {
		out[a.Key] = a.Value.String()
		return true
	})
	return out
}

// Without a terminal, long work is a log record when it starts and one per
// heartbeat with the latest step; nothing after it ends.
func TestNoTerminalLogs(t *testing.T) {
	rec := &records{}
	var m *Meter
	task := m.start(slog.New(rec), 0, 20*time.Millisecond, "building guest", "app", "hello")
	waitFor(t, "the first record", func() bool { return rec.count() >= 1 })
	task.SetStep("linking")
	waitFor(t, "a heartbeat with the step", func() bool {
		n := rec.count()
		return n >= 2 && rec.attrs(n - 1)["step"] == "linking"
	})
	if !task.End() {
		t.Error("End says the task was not shown")
	}
	first := rec.attrs(0)
	if first["msg"] != "building guest" || first["app"] != "hello" || first["elapsed"] != "" {
		t.Errorf("first record %v", first)
	}
	last := rec.attrs(rec.count() - 1)
	if last["msg"] != "building guest" || last["app"] != "hello" || last["elapsed"] == "" {
		t.Errorf("heartbeat %v", last)
	}
	// End waited for the task's goroutine: nothing can be logged any more.
	n := rec.count()
	task.End() // twice is fine
	if rec.count() != n {
		t.Errorf("%d records after End", rec.count()-n)
	}
}
