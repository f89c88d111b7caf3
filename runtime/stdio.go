package runtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/guestlog"
)

// tailSize is how much of a guest's stderr is kept to explain a crash.
const tailSize = 4096

// guestOutput is the budget of an app's guest output: out, or a budget of its own
// around log (the app's logger).
func guestOutput(out *guestlog.Sink, log *slog.Logger) *guestlog.Sink {
	if out == nil {
		out = guestlog.New(log.Handler(), guestlog.Config{})
	}
	return out
}

// logWriter turns a guest's stdout or stderr into host log records, one per line,
// and keeps the last tailSize bytes so a crash report can quote them. Records go
// through the app's guest output budget (guestOutput) and are dropped beyond it,
// while tail and reason still see every byte.
type logWriter struct {
	out    *guestlog.Sink
	log    *slog.Logger // out's
	level  slog.Level
	stream string

	mu      sync.Mutex
	partial []byte
	tail    []byte // trimmed from the front when over tailSize
	// reason is the first line that explains a crash (Go's "fatal error:",
	// "panic:"): the stack dump that follows can push it out of tail.
	reason string
	// idKey and id tag each record ("instance" 7, or a CGI run's "run" 1234). They
	// are added per record, not with Logger.With per writer: an instance or run is
	// created far more often than it logs, and With formats its attributes at once.
	idKey string
	id    uint64

	// crash collects a crash report (a Go panic or fatal error with its
	// goroutine stacks, a C assertion), from its first line to the end of the
	// guest call, so that it is logged as one record and not one per line.
	// Only stderr has them.
	crashes bool
	crash   crashReport
}

// crashReport is a crash report being collected.
type crashReport struct {
	head  string // its first line ("panic: boom"); "" when there is none
	stack []byte // the lines after it, up to crashMax bytes
	cut   int    // bytes left out past crashMax
}

// crashMax bounds the stack kept of one crash report: what one record may carry.
const crashMax = guestlog.MaxLine

// crashHeads start a crash report: Go's panics and fatal errors (its
// out-of-memory report comes first), the Go SDK's report of a handler's
// recovered panic, and C's failed assert.
var crashHeads = [...]string{"panic: ", "fatal error: ", "runtime: out of memory", "wasmsrv: panic serving ", "Assertion failed: "}

func isCrashHead(line []byte) bool {
	for _, h := range crashHeads {
		if bytes.HasPrefix(line, []byte(h)) {
			return true
		}
	}
	return false
}

func newLogWriter(out *guestlog.Sink, stream string, level slog.Level, idKey string, id uint64) *logWriter {
	return &logWriter{out: out, log: out.Logger(), stream: stream, level: level, idKey: idKey, id: id, crashes: stream == "stderr"}
}

// Write implements io.Writer for wazero's WithStdout/WithStderr. A guest picks
// the size of a write (up to its whole memory) and how many lines it holds, so
// nothing here copies more than tailSize bytes of it (lines longer than that are
// logged in pieces of tailSize), and once the app's budget refuses a line the
// rest of the write is counted as dropped in one scan, not line by line.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(p) >= tailSize {
		w.tail = append(w.tail[:0], p[len(p)-tailSize:]...)
	} else {
		w.tail = append(w.tail, p...)
		if len(w.tail) > tailSize {
			w.tail = append(w.tail[:0], w.tail[len(w.tail)-tailSize:]...)
		}
	}
	for data := p; len(data) > 0; {
		room := tailSize - len(w.partial)
		// Look no further than a piece ahead: a long write is scanned once.
		i := bytes.IndexByte(data[:min(len(data), room+1)], '\n')
		end := i
		if i < 0 {
			end = len(data)
		}
		logged := true
		switch {
		case end > room: // longer than a piece: log one now
			w.partial = append(w.partial, data[:room]...)
			logged = w.emit(w.partial)
			w.partial, data = w.partial[:0], data[room:]
		case i < 0: // keep an unterminated line for the next write
			w.partial = append(w.partial, data...)
			data = nil
		case len(w.partial) > 0:
			w.partial = append(w.partial, data[:i]...)
			logged = w.emit(w.partial)
			w.partial, data = w.partial[:0], data[i+1:]
		default:
			logged = w.emit(data[:i])
			data = data[i+1:]
		}
		if !logged && len(data) > 0 {
			// The budget refused this line: the rest of the write goes too.
			w.dropRest(data)
			break
		}
	}
	return len(p), nil
}

// dropRest counts the rest of a write as dropped lines, the budget being spent,
// and keeps what follows its last newline as the start of the next line.
func (w *logWriter) dropRest(data []byte) {
	last := bytes.LastIndexByte(data, '\n')
	rest := data[last+1:]
	lines := bytes.Count(data[:last+1], []byte{'\n'}) + len(rest)/tailSize
	if lines > 0 {
		w.out.Drop(lines)
	}
	w.partial = append(w.partial[:0], rest[len(rest)-len(rest)%tailSize:]...)
}

// reasonMax bounds the crash reason kept from a line.
const reasonMax = 512

// emit logs one line and reports whether it went to the log; false means the
// budget refused it, or it was empty or below the log level. A line that names
// its level (guestlog.Level: "ERROR ...", level=warn, a JSON "level") is logged
// at that level, else at the stream's. Lines of a crash report are collected
// instead (endCall or takeCrash logs them).
func (w *logWriter) emit(line []byte) bool {
	if w.reason == "" && (bytes.HasPrefix(line, []byte("fatal error:")) || bytes.HasPrefix(line, []byte("panic:")) ||
		bytes.HasPrefix(line, []byte("runtime: out of memory"))) {
		w.reason = string(line[:min(len(line), reasonMax)])
	}
	if w.crashes {
		if w.crash.head != "" {
			w.crash.add(line)
			return true
		}
		if isCrashHead(line) {
			w.crash.head = string(line)
			return true
		}
	}
	if len(line) == 0 {
		return true
	}
	level, msg := w.level, line
	if lv, m, ok := guestlog.Level(line); ok {
		level, msg = lv, m
	}
	if !w.log.Enabled(context.Background(), level) {
		return true // nothing the budget said no to
	}
	if len(line) > spentCheck && w.out.Spent(line) {
		return false // no record made for a line that would be dropped
	}
	r := slog.NewRecord(time.Now(), level, string(msg), 0)
	r.AddAttrs(slog.Uint64(w.idKey, w.id), slog.String("stream", w.stream))
	return w.out.Log(context.Background(), r)
}

// add appends a line to the report's stack, or counts it as left out.
func (c *crashReport) add(line []byte) {
	if len(c.stack)+len(line)+1 > crashMax {
		c.cut += len(line) + 1
		return
	}
	c.stack = append(append(c.stack, line...), '\n')
}

// stackText is the stack as one text: blank lines at either end trimmed, and a
// note of what was left out.
func (c *crashReport) stackText() string {
	s := string(bytes.Trim(c.stack, "\n"))
	if c.cut > 0 {
		s += fmt.Sprintf("\n… (%d more bytes)", c.cut)
	}
	return s
}

// takeCrashLocked returns the crash report being collected (with an unfinished
// last line) and starts afresh.
func (w *logWriter) takeCrashLocked() crashReport {
	c := w.crash
	if c.head != "" && len(w.partial) > 0 {
		c.add(w.partial)
		w.partial = w.partial[:0]
	}
	w.crash = crashReport{}
	return c
}

// endCall ends a guest call that returned (or ran out of time): a crash report
// it wrote (a panic the guest recovered from, as the Go SDK does for a
// handler) is logged now, as one error record with the stack in one
// attribute. It goes through the budget like any line: its first line is the
// message, which a cut to the line limit keeps; the stack is cut from its end.
func (w *logWriter) endCall() {
	if !w.crashes {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.crash.head == "" {
		return
	}
	c := w.takeCrashLocked()
	r := slog.NewRecord(time.Now(), slog.LevelError, c.head, 0)
	r.AddAttrs(slog.Uint64(w.idKey, w.id), slog.String("stream", w.stream))
	if st := c.stackText(); st != "" {
		r.AddAttrs(slog.String("stack", st))
	}
	w.out.Log(context.Background(), r)
}

// Crash returns the crash report of the guest call that just failed — its first
// line and its stack, charged to the app's log budget (the failure's record
// quotes them), the stack replaced by a note once the budget is spent — and
// starts afresh. head is "" when the call wrote none.
func (w *logWriter) Crash() (head, stack string) {
	if !w.crashes {
		return "", ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.takeCrashLocked()
	if c.head == "" {
		return "", ""
	}
	st := c.stackText()
	if st == "" {
		return c.head, ""
	}
	if quoted, ok := w.out.AdmitHead(st); ok {
		return c.head, quoted
	}
	return c.head, fmt.Sprintf("(%d bytes left out: over the app's log budget)", len(st))
}

// spentCheck is the length from which a line is measured against the budget
// before its record is made (shorter records are cheaper to make than to check
// twice).
const spentCheck = 256

// reset readies the writer for CGI run number run, dropping the previous run's
// tail and reason.
func (w *logWriter) reset(run uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial, w.tail, w.reason = w.partial[:0], w.tail[:0], ""
	w.crash = crashReport{}
	w.id = run
}

// flushLine logs an unfinished last line (a command that exits without a final
// newline), and a crash report the run wrote and survived.
func (w *logWriter) flushLine() {
	w.mu.Lock()
	if len(w.partial) > 0 {
		w.emit(w.partial)
		w.partial = w.partial[:0]
	}
	w.mu.Unlock()
	w.endCall()
}

// Reason returns the first crash-explaining line seen, or "".
func (w *logWriter) Reason() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reason
}

// Tail returns the last bytes written, for crash reports. A crash report puts them
// into the log, so they count against the app's budget and are cut to its line
// length (from the front); beyond the budget a note saying how many bytes were
// left out stands in for them.
func (w *logWriter) Tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := string(bytes.TrimSpace(w.tail))
	if t == "" {
		return t
	}
	if quoted, ok := w.out.Admit(t); ok {
		return quoted
	}
	return fmt.Sprintf("(%d bytes left out: over the app's log budget)", len(t))
}

// mentions reports whether the kept tail contains s.
func (w *logWriter) mentions(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Contains(w.tail, []byte(s))
}
