package guestlog

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// lockedBuffer is a log destination safe for the report's timer goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func handlers(w io.Writer) map[string]slog.Handler {
	return map[string]slog.Handler{"text": slog.NewTextHandler(w, nil), "json": slog.NewJSONHandler(w, nil)}
}

// trickyStrings are the escapes of both slog formats, the worst of each.
func trickyStrings() []string {
	out := []string{
		"", "hello", "a b", "a=b", `"`, `\`, "\n\r\t", "\x00\x01\x1f", "\x7f", "\a\b\f\v",
		"\x80", "\xff\xfe", "é", "e\u0301", "\u2028\u2029", "\u00ad", "\U000e0001", "\ufeff", "\U0010ffff",
		strings.Repeat("\x00", 1000), strings.Repeat("\U000e0001", 100), "日本語", "\xed\xa0\x80",
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		b := make([]byte, r.IntN(64))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		out = append(out, string(b))
	}
	return out
}

// written is how many bytes h writes for a record with message msg (and, if
// key is set, one attribute key=msg).
func written(h func(io.Writer) slog.Handler, msg string, attr bool) int {
	var b bytes.Buffer
	r := slog.NewRecord(time.Time{}, slog.LevelInfo, msg, 0)
	if attr {
		r = slog.NewRecord(time.Time{}, slog.LevelInfo, "", 0)
		r.AddAttrs(slog.String("k", msg))
	}
	_ = h(&b).Handle(context.Background(), r)
	return b.Len()
}

// TestEscapedLenBoundsSlog checks the measure against what slog's handlers really
// write, as message and as attribute value: never less (else a budget would let
// more through than it says).
func TestEscapedLenBoundsSlog(t *testing.T) {
	for name, h := range map[string]func(io.Writer) slog.Handler{
		"text": func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) },
		"json": func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) },
	} {
		for _, attr := range []bool{false, true} {
			base := written(h, "", attr) - 2 // "" is written with its quotes in both forms
			for _, s := range trickyStrings() {
				if got := written(h, s, attr) - base; got > EscapedLen(s) {
					t.Errorf("%s (attr %v): %q takes %d bytes, EscapedLen says %d", name, attr, s, got, EscapedLen(s))
				}
			}
		}
	}
}

func FuzzEscapedLen(f *testing.F) {
	for _, s := range trickyStrings()[:24] {
		f.Add(s)
	}
	text := func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, nil) }
	js := func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, nil) }
	tb, jb := written(text, "", false)-2, written(js, "", false)-2
	f.Fuzz(func(t *testing.T, s string) {
		n := EscapedLen(s)
		if got := written(text, s, false) - tb; got > n {
			t.Errorf("text: %q takes %d bytes, EscapedLen says %d", s, got, n)
		}
		if got := written(js, s, false) - jb; got > n {
			t.Errorf("json: %q takes %d bytes, EscapedLen says %d", s, got, n)
		}
		if c, cl := cut(s, n); c != s || cl != n {
			t.Errorf("cut(%q, EscapedLen) = %q, %d", s, c, cl)
		}
		if c, cl := cut(s, n/2); cl > max(n/2, 2) || !strings.HasPrefix(s, c) || EscapedLen(c) != cl {
			t.Errorf("cut(%q, %d) = %q, %d (EscapedLen %d)", s, n/2, c, cl, EscapedLen(c))
		}
		if c, cl := cutFront(s, n/2); cl > max(n/2, 2) || !strings.HasSuffix(s, c) || EscapedLen(c) != cl {
			t.Errorf("cutFront(%q, %d) = %q, %d (EscapedLen %d)", s, n/2, c, cl, EscapedLen(c))
		}
	})
}

func TestASCIICost(t *testing.T) {
	for b := range utf8.RuneSelf {
		want := 1
		switch {
		case b == '"' || b == '\\' || b == '\n' || b == '\r' || b == '\t':
			want = 2
		case b < 0x20:
			want = 6
		case b == 0x7f:
			want = 4
		}
		if int(asciiCost[b]) != want {
			t.Errorf("asciiCost[%#x] = %d, want %d", b, asciiCost[b], want)
		}
	}
}

// TestLongRecordsAreCut floods one record per form with escape-heavy content: the
// line written stays within MaxLine plus the host's part, keeps the host's short
// attributes and says how much was cut.
func TestLongRecordsAreCut(t *testing.T) {
	huge := strings.Repeat("\x00", 64<<10)
	for _, name := range []string{"text", "json"} {
		var b lockedBuffer
		s := New(handlers(&b)[name], Config{Rate: 1 << 30})
		log := s.Logger().With("app", "a")
		log.Warn(huge, "instance", uint64(7), "stream", "stderr")
		log.Error("msg", "k1", huge, huge, "v", "short", "ok")
		out := b.String()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("%s: %d lines", name, len(lines))
		}
		for _, l := range lines {
			if len(l) > MaxLine+recordOverhead+len(`,"app":"a"`) {
				t.Errorf("%s: a line of %d bytes", name, len(l))
			}
			if !strings.Contains(l, "truncated_bytes") {
				t.Errorf("%s: no truncated_bytes in %.200q", name, l)
			}
		}
		for _, want := range []string{"instance", "stream", "stderr", "app"} {
			if !strings.Contains(lines[0], want) {
				t.Errorf("%s: the cut line lost %q: ...%q", name, want, lines[0][len(lines[0])-200:])
			}
		}
		if !strings.Contains(lines[1], "short") || !strings.Contains(lines[1], "k1") {
			t.Errorf("%s: the cut line lost an attribute: ...%q", name, lines[1][len(lines[1])-300:])
		}
		if st := s.Stats(); st.TruncatedLines != 2 || st.Lines != 2 {
			t.Errorf("%s: stats %+v", name, st)
		}
	}
}

// TestTruncatedCountsAddUp: a record a writer already cut (TruncatedKey) and the
// sink cuts again says so once, with the sum.
func TestTruncatedCountsAddUp(t *testing.T) {
	var b lockedBuffer
	s := New(slog.NewJSONHandler(&b, nil), Config{Rate: 1 << 30})
	msg := strings.Repeat("\x00", 16<<10) // 96 KiB escaped: cut to 16 KiB
	s.Logger().Info(msg, TruncatedKey, 1000)
	var m map[string]any
	if err := json.Unmarshal([]byte(b.String()), &m); err != nil {
		t.Fatal(err)
	}
	kept := len(m["msg"].(string))
	if got := m[TruncatedKey]; got != float64(1000+len(msg)-kept) {
		t.Errorf("%s = %v, want %d", TruncatedKey, got, 1000+len(msg)-kept)
	}
	if n := strings.Count(b.String(), TruncatedKey); n != 1 {
		t.Errorf("%s appears %d times", TruncatedKey, n)
	}
}

// TestBudgetHolds floods a sink as fast as it takes records: what reaches the
// log stays within the burst plus the rate for the time taken, in both forms and
// with escape-heavy lines, and every record is either written or counted dropped.
func TestBudgetHolds(t *testing.T) {
	const rate = 16 << 10
	lines := map[string]string{"plain": strings.Repeat("x", 1000), "nul": strings.Repeat("\x00", 1000), "mixed": strings.Repeat("\x00a\u2028\xff", 250)}
	for _, form := range []string{"text", "json"} {
		for lname, line := range lines {
			var b lockedBuffer
			s := New(handlers(&b)[form], Config{Rate: rate, Window: time.Hour})
			log := s.Logger().With("app", "flood")
			start := time.Now()
			n := 0
			// At least 300 ms, and on until the budget has dropped something
			// (a starved goroutine may write little in 300 ms).
			for (time.Since(start) < 300*time.Millisecond || s.Stats().DroppedLines == 0) && n < 200000 {
				log.Warn(line, "instance", uint64(1), "stream", "stderr")
				n++
			}
			took := time.Since(start)
			burst := max(2*rate, 2*MaxLine)
			limit := burst + int(float64(rate)*took.Seconds()) + 1024
			if b.Len() > limit {
				t.Errorf("%s/%s: %d bytes in %s, budget allows %d", form, lname, b.Len(), took, limit)
			}
			st := s.Stats()
			if st.Lines+st.DroppedLines != uint64(n) || st.DroppedLines == 0 {
				t.Errorf("%s/%s: %d records, stats %+v", form, lname, n, st)
			}
			if st.Bytes < uint64(b.Len()) {
				t.Errorf("%s/%s: charged %d bytes for %d written", form, lname, st.Bytes, b.Len())
			}
		}
	}
}

var reportRE = regexp.MustCompile(`lines dropped.*dropped_lines=(\d+)`)

// TestDropsReportedOncePerWindow floods a sink for several windows: there is at
// most one report per window, and the reports add up to the drops.
func TestDropsReportedOncePerWindow(t *testing.T) {
	const window = 50 * time.Millisecond
	var b lockedBuffer
	s := New(slog.NewTextHandler(&b, nil), Config{Rate: 1024, Window: window})
	log := s.Logger()
	start := time.Now()
	for i := 0; time.Since(start) < 6*window && i < 1e6; i++ {
		log.Info(strings.Repeat("y", 100))
		s.Drop(1) // another limit's refusals are reported with these
	}
	s.Close()
	took := time.Since(start)
	reports := reportRE.FindAllStringSubmatch(b.String(), -1)
	if len(reports) == 0 || len(reports) > int(took/window)+2 {
		t.Fatalf("%d reports in %s with a %s window", len(reports), took, window)
	}
	var sum uint64
	for _, r := range reports {
		n, _ := strconv.ParseUint(r[1], 10, 64)
		sum += n
	}
	if st := s.Stats(); sum != st.DroppedLines {
		t.Errorf("reports add up to %d dropped lines, stats say %d", sum, st.DroppedLines)
	}
	// A quiet sink reports nothing.
	b2 := lockedBuffer{}
	q := New(slog.NewTextHandler(&b2, nil), Config{Window: window})
	q.Logger().Info("fine")
	q.Close()
	if strings.Contains(b2.String(), "dropped") {
		t.Errorf("a sink within its budget reported drops: %s", b2.String())
	}
}

// TestSpent: the check writers make before building a record measures the line
// as escaped, so escape-heavy lines past the budget are refused up front, while
// lines that fit are not.
func TestSpent(t *testing.T) {
	s := New(slog.NewTextHandler(io.Discard, nil), Config{Rate: 1024, Window: time.Hour})
	nul := []byte(strings.Repeat("\x00", 4096))
	built := 0
	for range 100 {
		if !s.Spent(nul) {
			built++
			s.Logger().Warn(string(nul))
		}
	}
	if built > 4 {
		t.Errorf("built %d records of a 24 KiB (escaped) line on a 32 KiB burst", built)
	}
	if st := s.Stats(); st.Lines+st.DroppedLines != 100 || st.Lines < 1 {
		t.Errorf("stats %+v", st)
	}
	if s.Spent([]byte("short")) {
		t.Error("a short line was refused, with most of a cut record's worth of budget left")
	}
}

// TestAdmit charges pieces of guest output that host records quote.
func TestAdmit(t *testing.T) {
	s := New(slog.NewJSONHandler(io.Discard, nil), Config{Rate: 1024, Window: time.Hour})
	tail := strings.Repeat("\x00", 4096) // 24 KiB escaped: cut to MaxLine
	admitted := 0
	for range 10 {
		if got, ok := s.Admit(tail); ok {
			admitted++
			if EscapedLen(got) > MaxLine || !strings.HasSuffix(tail, got) || len(got) < MaxLine/6-2 {
				t.Errorf("admitted %d bytes (%d escaped) of the tail", len(got), EscapedLen(got))
			}
		}
	}
	if got, ok := s.Admit("short"); ok && got != "short" {
		t.Errorf("Admit(short) = %q", got)
	}
	// The burst is 2×MaxLine: two pieces, maybe a third as time refills it.
	if admitted < 1 || admitted > 3 {
		t.Errorf("admitted %d of 10 pieces of %d escaped bytes", admitted, EscapedLen(tail))
	}
	if st := s.Stats(); st.DroppedLines < uint64(10-admitted) {
		t.Errorf("stats %+v", st)
	}
}

// TestRecordsStayValidJSON: cut records are still one JSON object per line.
func TestRecordsStayValidJSON(t *testing.T) {
	var b lockedBuffer
	s := New(slog.NewJSONHandler(&b, nil), Config{Rate: 1 << 30})
	s.Logger().Info(strings.Repeat("\U000e0001\x00\"\\", 10000), "k", strings.Repeat("\xff", 20000))
	var m map[string]any
	if err := json.Unmarshal(bytes.TrimSpace([]byte(b.String())), &m); err != nil {
		t.Fatalf("%v in %.300q", err, b.String())
	}
	if _, ok := m["truncated_bytes"]; !ok {
		t.Errorf("no truncated_bytes: %v", m["truncated_bytes"])
	}
}

// BenchmarkLine is one ordinary guest log line (a stderr line of a request
// handler) into a text log, straight to slog (the host before budgets) and
// through a Sink: the cost of the budget on the hot path. "discard" leaves out
// the write; "devnull" writes each record to a file as the host log does (a
// write(2) per record).
func BenchmarkLine(b *testing.B) {
	line := "GET /api/books/42 200 handled in 3.2ms user=alice"
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	for _, dst := range []struct {
		name string
		w    io.Writer
	}{{"discard", io.Discard}, {"devnull", devnull}} {
		base := slog.New(slog.NewTextHandler(dst.w, nil)).With("app", "shop")
		for _, bc := range []struct {
			name string
			log  *slog.Logger
		}{
			{"direct", base},
			{"budget", New(base.Handler(), Config{Rate: 1 << 40}).Logger()},
		} {
			b.Run(dst.name+"/"+bc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					bc.log.Log(context.Background(), slog.LevelWarn, line, "instance", uint64(3), "stream", "stderr")
				}
			})
		}
	}
}
