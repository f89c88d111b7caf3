package runtime

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/wasmsrv/wasmsrv/runtime/guestlog"
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
}

func newLogWriter(out *guestlog.Sink, stream string, level slog.Level, idKey string, id uint64) *logWriter {
	return &logWriter{out: out, log: out.Logger(), stream: stream, level: level, idKey: idKey, id: id}
}

// Write implements io.Writer for wazero's WithStdout/WithStderr.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail = append(w.tail, p...)
	if len(w.tail) > tailSize {
		w.tail = append(w.tail[:0], w.tail[len(w.tail)-tailSize:]...)
	}
	data := p
	if len(w.partial) > 0 {
		w.partial = append(w.partial, p...)
		data = w.partial
	}
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		w.emit(data[:i])
		data = data[i+1:]
	}
	// Keep an unterminated line for the next write, bounded so a guest cannot
	// grow host memory by never writing a newline.
	if len(data) > tailSize {
		w.emit(data)
		data = nil
	}
	w.partial = append(w.partial[:0], data...)
	return len(p), nil
}

func (w *logWriter) emit(line []byte) {
	if w.reason == "" && (bytes.HasPrefix(line, []byte("fatal error:")) || bytes.HasPrefix(line, []byte("panic:")) ||
		bytes.HasPrefix(line, []byte("runtime: out of memory"))) {
		w.reason = string(line)
	}
	if len(line) == 0 || !w.log.Enabled(context.Background(), w.level) {
		return
	}
	w.log.Log(context.Background(), w.level, string(line), w.idKey, w.id, "stream", w.stream)
}

// reset readies the writer for CGI run number run, dropping the previous run's
// tail and reason.
func (w *logWriter) reset(run uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial, w.tail, w.reason = w.partial[:0], w.tail[:0], ""
	w.id = run
}

// flushLine logs an unfinished last line (a command that exits without a final
// newline).
func (w *logWriter) flushLine() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(w.partial)
		w.partial = w.partial[:0]
	}
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
