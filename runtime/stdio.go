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

// Write implements io.Writer for wazero's WithStdout/WithStderr. A guest picks
// the size of a write (up to its whole memory), so nothing here copies more than
// tailSize bytes of it: lines longer than that are logged in pieces of tailSize.
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
		if end > room {
			// Longer than a piece: log one now.
			w.partial = append(w.partial, data[:room]...)
			w.emit(w.partial)
			w.partial, data = w.partial[:0], data[room:]
			continue
		}
		if i < 0 {
			// Keep an unterminated line for the next write.
			w.partial = append(w.partial, data...)
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, data[:i]...)
			w.emit(w.partial)
			w.partial = w.partial[:0]
		} else {
			w.emit(data[:i])
		}
		data = data[i+1:]
	}
	return len(p), nil
}

// reasonMax bounds the crash reason kept from a line.
const reasonMax = 512

func (w *logWriter) emit(line []byte) {
	if w.reason == "" && (bytes.HasPrefix(line, []byte("fatal error:")) || bytes.HasPrefix(line, []byte("panic:")) ||
		bytes.HasPrefix(line, []byte("runtime: out of memory"))) {
		w.reason = string(line[:min(len(line), reasonMax)])
	}
	if len(line) == 0 || !w.log.Enabled(context.Background(), w.level) || w.out.Spent(line) {
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
