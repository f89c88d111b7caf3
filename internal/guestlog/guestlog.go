// Package guestlog holds what a guest may write to the host log to a budget. A
// guest controls the bytes of its stdout and stderr lines and of its log plugin
// records, and an escaped byte can take six in the log (a NUL is "\u0000" in JSON),
// so a record limit alone still lets a guest fill the disk. A Sink is one app's
// budget in bytes per second, shared by all its instances and all the ways its
// output reaches the log: every record is measured as the log will write it,
// escapes included, cut to MaxLine, and dropped when the budget is spent. Drops
// are counted (Stats) and reported in one warning per window.
package guestlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/time/rate"
)

const (
	// DefaultRate is an app's budget in bytes per second when none is configured:
	// a busy app's logging (hundreds of lines a second) fits, a flood is cut to
	// ~21 GiB a day at most.
	DefaultRate = 256 << 10
	// MaxLine caps the guest's part of one record (message, attribute keys and
	// values) as written to the log, escapes included; longer records are cut and
	// say how many bytes were cut ("truncated_bytes").
	MaxLine = 16 << 10
	// TruncatedKey is the attribute that says how many bytes of a record were
	// cut. A writer that cut a record before it came here adds it (an int); the
	// sink adds what it cuts to that.
	TruncatedKey = "truncated_bytes"
	// DefaultWindow is how often drops are reported, at most.
	DefaultWindow = 10 * time.Second
	// recordOverhead is charged per record for what the host adds to it besides
	// the attributes: time, level, the message's key, braces and newline (70
	// bytes in JSON with nanoseconds and a zone offset).
	recordOverhead = 96
)

// Config sets a Sink's budget.
type Config struct {
	// Rate is the budget in bytes per second (0: DefaultRate). Up to twice as
	// much (at least 2×MaxLine) may pass at once after a quiet time.
	Rate int64
	// Window is the least time between two warnings about drops (0:
	// DefaultWindow).
	Window time.Duration
}

// Counters are a Sink's counters since it was made: what reached the log and what
// the budget refused. Exported for metrics.
type Counters struct {
	Lines, Bytes               uint64 // records passed on and their size as charged
	DroppedLines, DroppedBytes uint64 // records dropped (DroppedBytes counts those the Sink measured)
	TruncatedLines             uint64 // records cut to MaxLine
}

// Sink is one app's guest output budget. Its Logger passes records to the handler
// it was made with while the budget lasts. Safe for concurrent use.
type Sink struct {
	inner  slog.Handler
	lim    *rate.Limiter
	rate   int64
	window time.Duration

	lines, bytes, dropped, droppedBytes, truncated atomic.Uint64

	mu                           sync.Mutex
	timer                        *time.Timer // armed while drops wait to be reported
	reportedLines, reportedBytes uint64      // counts already reported
	closed                       bool
}

// New returns a sink writing to h (the app's log handler, tagged with the app).
func New(h slog.Handler, cfg Config) *Sink {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	burst := max(2*cfg.Rate, 2*MaxLine)
	return &Sink{inner: h, lim: rate.NewLimiter(rate.Limit(cfg.Rate), int(burst)), rate: cfg.Rate, window: cfg.Window}
}

// Logger returns a logger whose records go through the budget.
func (s *Sink) Logger() *slog.Logger { return slog.New(&handler{s: s, inner: s.inner}) }

// Stats returns the counters.
func (s *Sink) Stats() Counters {
	return Counters{Lines: s.lines.Load(), Bytes: s.bytes.Load(), DroppedLines: s.dropped.Load(),
		DroppedBytes: s.droppedBytes.Load(), TruncatedLines: s.truncated.Load()}
}

// Drop counts records refused before they reached the sink (by another limit,
// such as the log plugin's records per second), so they are reported with the
// rest.
func (s *Sink) Drop(lines int) {
	s.dropped.Add(uint64(lines))
	s.arm()
}

func (s *Sink) drop(n int) {
	s.droppedBytes.Add(uint64(n))
	s.Drop(1)
}

// arm makes sure a report is due within the window.
func (s *Sink) arm() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timer == nil && !s.closed {
		s.timer = time.AfterFunc(s.window, s.report)
	}
}

// report logs the drops since the last report, once.
func (s *Sink) report() {
	s.mu.Lock()
	s.timer = nil
	lines, bytes := s.dropped.Load(), s.droppedBytes.Load()
	dl, db := lines-s.reportedLines, bytes-s.reportedBytes
	s.reportedLines, s.reportedBytes = lines, bytes
	s.mu.Unlock()
	if dl == 0 {
		return
	}
	r := slog.NewRecord(time.Now(), slog.LevelWarn, "guest output over the app's log budget: lines dropped", 0)
	r.AddAttrs(slog.Uint64("dropped_lines", dl), slog.Uint64("dropped_bytes", db),
		slog.String("budget", fmt.Sprintf("%d bytes/s", s.rate)), slog.Duration("window", s.window))
	_ = s.inner.Handle(context.Background(), r)
}

// Close reports drops not reported yet and stops the timer; records after Close
// are still held to the budget, and reported on the next Close.
func (s *Sink) Close() {
	s.mu.Lock()
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.closed = true
	s.mu.Unlock()
	s.report()
}

// Admit charges the log budget for text, a piece of guest output the host is
// about to quote in a record of its own (the tail of stderr in a crash report).
// It returns the end of text that fits in MaxLine as escaped, and whether the
// budget allows it; a refused piece counts as a dropped line.
func (s *Sink) Admit(text string) (string, bool) {
	text, n := cutFront(text, MaxLine)
	if !s.allow(time.Now(), n) {
		return "", false
	}
	return text, true
}

// AdmitHead is Admit for text whose beginning matters most (a stack, whose
// first goroutine is the one that failed): it returns the start of text that
// fits in MaxLine.
func (s *Sink) AdmitHead(text string) (string, bool) {
	text, n := cut(text, MaxLine)
	if !s.allow(time.Now(), n) {
		return "", false
	}
	return text, true
}

// Spent reports whether the budget is too low now for a record of line (a guest's
// stdout or stderr line about to be logged with a few short attributes), and if
// so counts it as dropped: a writer asks before it builds the record, so a flood
// past the budget costs a scan of each line and no record.
func (s *Sink) Spent(line []byte) bool {
	if len(line) == 0 {
		return false
	}
	// A read-only view for the length only: line is neither kept nor changed.
	need := min(EscapedLen(unsafe.String(&line[0], len(line))), MaxLine) + recordOverhead
	if s.lim.TokensAt(time.Now()) >= float64(need) {
		return false
	}
	s.drop(need)
	return true
}

// allow charges n bytes at now.
func (s *Sink) allow(now time.Time, n int) bool {
	if n > s.lim.Burst() {
		n = s.lim.Burst()
	}
	if !s.lim.AllowN(now, n) {
		s.drop(n)
		return false
	}
	s.lines.Add(1)
	s.bytes.Add(uint64(n))
	return true
}

// handler measures each record and passes it on while the budget lasts. fixed is
// the size of the attributes and groups added with WithAttrs and WithGroup.
type handler struct {
	s     *Sink
	inner slog.Handler
	fixed int
}

func (h *handler) Enabled(ctx context.Context, lv slog.Level) bool { return h.inner.Enabled(ctx, lv) }

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	n := h.fixed
	for _, a := range as {
		n += attrLen(a)
	}
	return &handler{s: h.s, inner: h.inner.WithAttrs(as), fixed: n}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{s: h.s, inner: h.inner.WithGroup(name), fixed: h.fixed + EscapedLen(name) + 1}
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	_, err := h.s.handle(ctx, h.inner, h.fixed, r)
	return err
}

// handle passes r on to inner if the budget allows it, and says whether it did;
// fixed is the size of inner's own attributes.
func (s *Sink) handle(ctx context.Context, inner slog.Handler, fixed int, r slog.Record) (bool, error) {
	guest := recordLen(r)
	if guest > MaxLine {
		r, guest = truncate(r)
		s.truncated.Add(1)
	}
	now := r.Time // records carry the time already
	if now.IsZero() {
		now = time.Now()
	}
	if !s.allow(now, recordOverhead+fixed+guest) {
		return false, nil
	}
	return true, inner.Handle(ctx, r)
}

// Log passes r through the budget to the sink's handler, as the Logger's records
// go, and reports whether it was written (false: dropped). Writers that make many
// records use it to learn when the budget is spent, and save the Logger's work
// (it looks up the caller of every record).
func (s *Sink) Log(ctx context.Context, r slog.Record) bool {
	if !s.inner.Enabled(ctx, r.Level) {
		return true
	}
	ok, _ := s.handle(ctx, s.inner, 0, r)
	return ok
}

// shortAttr is the escaped size up to which an attribute is kept whole when a
// record is cut: the host's own (instance, stream, request_id) always are.
const shortAttr = 128

// truncate cuts r to MaxLine as escaped. Attributes that are not strings and
// short string attributes stay whole; the message, then the long attributes in
// order, get what is left (a long attribute keeps its key, cut to shortAttr, with
// what fits of its value, while there is room for them). It adds truncated_bytes: how many of the original bytes
// were left out.
func truncate(r slog.Record) (slog.Record, int) {
	room := MaxLine - 64 // the truncated_bytes attribute
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.Kind() != slog.KindString || attrLen(a) <= shortAttr {
			room -= attrLen(a)
		}
		return true
	})
	room = max(room, 0)
	msg, n := cut(r.Message, room)
	room -= n
	cutBytes := len(r.Message) - len(msg)
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == TruncatedKey && a.Value.Kind() == slog.KindInt64 {
			cutBytes += int(a.Value.Int64()) // cut before: one count in all
			return true
		}
		if a.Value.Kind() != slog.KindString || attrLen(a) <= shortAttr {
			out.AddAttrs(a)
			return true
		}
		k, kl := cut(a.Key, shortAttr)
		if room < kl+3 {
			cutBytes += len(a.Key) + len(a.Value.String()) // no room left: the whole attribute goes
			return true
		}
		v, vl := cut(a.Value.String(), room-kl-1)
		out.AddAttrs(slog.String(k, v))
		room -= kl + 1 + vl
		cutBytes += len(a.Key) - len(k) + len(a.Value.String()) - len(v)
		return true
	})
	out.AddAttrs(slog.Int(TruncatedKey, cutBytes))
	return out, recordLen(out)
}

// recordLen is the escaped size of r's message and attributes.
func recordLen(r slog.Record) int {
	n := EscapedLen(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		n += attrLen(a)
		return true
	})
	return n
}

// cut returns the longest prefix of s (whole runes) whose escaped length is at
// most max, and that length.
func cut(s string, max int) (string, int) {
	n := 2 // quotes
	for i := 0; i < len(s); {
		c, size := runeCost(s, i)
		if n+c > max {
			return s[:i], n
		}
		n += c
		i += size
	}
	return s, n
}

// cutFront returns the longest end of s (whole runes) whose escaped length is at
// most max, and that length.
func cutFront(s string, max int) (string, int) {
	n := EscapedLen(s)
	i := 0
	for n > max && i < len(s) {
		// Decoding from a point EscapedLen's decoding passed through goes the
		// same way, so the rest costs exactly n.
		c, size := runeCost(s, i)
		n -= c
		i += size
	}
	return s[i:], n
}

func attrLen(a slog.Attr) int {
	return EscapedLen(a.Key) + 2 + valueLen(a.Value) // key, '=' or ':' and a separator
}

func valueLen(v slog.Value) int {
	switch v.Kind() {
	case slog.KindString:
		return EscapedLen(v.String())
	case slog.KindInt64, slog.KindUint64, slog.KindFloat64, slog.KindBool, slog.KindDuration:
		return 24
	case slog.KindTime:
		return 40
	case slog.KindGroup:
		n := 2
		for _, a := range v.Group() {
			n += attrLen(a)
		}
		return n
	case slog.KindLogValuer:
		return valueLen(v.Resolve())
	}
	return EscapedLen(v.String())
}

// asciiCost is the escaped size of each ASCII byte: the larger of what slog's
// JSON handler ("\u0000") and its text handler (strconv.Quote: "\x00", "\a")
// write: 1, 2 for '"', '\\', '\n', '\r' and '\t', 6 for other control bytes, 4
// for DEL. (TestASCIICost derives it.)
const asciiCost = "\x06\x06\x06\x06\x06\x06\x06\x06\x06\x02\x02\x06\x06\x02\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06\x06" +
	"\x01\x01\x02\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x02\x01\x01\x01" +
	"\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x04"

// runeCost returns the escaped size of the character at s[i] and its length in s.
func runeCost(s string, i int) (int, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return int(asciiCost[b]), 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case r == utf8.RuneError && size == 1:
		return 6, 1 // "\ufffd" in JSON, "\x80" in text
	case r == '\u2028' || r == '\u2029':
		return 6, size
	case unicode.IsPrint(r):
		return size, size
	case r < 0x10000:
		return 6, size // "\u00ad"
	}
	return 10, size // "\U000e0001"
}

// EscapedLen is the size of s as a quoted string in the log, escapes included:
// the larger of slog's JSON and text forms, so a budget holds for both.
func EscapedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			n += int(asciiCost[b])
			i++
			continue
		}
		c, size := runeCost(s, i)
		n += c
		i += size
	}
	return n
}
