// Package progress shows long work while it runs — a guest's build, a module's
// first compile. On a terminal a Meter keeps one live line at the bottom, redrawn in
// place with what is being done, the latest step and the time so far; log records
// written meanwhile go above it. Without a terminal (a nil *Meter) the same work is
// reported as ordinary log records: one when it starts and one every few seconds
// while it lasts, so a pipe or a JSON log gets whole lines and nothing else.
package progress

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Timings of the display.
const (
	// redraw is how often a live line is drawn again (its clock moves).
	redraw = 100 * time.Millisecond
	// heartbeat is how often a task without a terminal logs that it still runs.
	heartbeat = 10 * time.Second
)

// Meter draws the live line of running tasks on a terminal. Write it as the log's
// output so records do not tear the line. A nil *Meter logs progress instead.
type Meter struct {
	mu    sync.Mutex
	out   io.Writer
	width func() int
	tasks []*Task // running and shown; the last one is on the line
	drawn bool    // the line holds a task's text now
	tail  []byte  // a log write's last, unterminated line
}

// NewTerminal returns a Meter drawing on out, a terminal; width reports its
// columns (≤ 0 or a nil func: 80).
func NewTerminal(out io.Writer, width func() int) *Meter {
	return &Meter{out: out, width: width}
}

// Write writes p (log output) above the live line.
func (m *Meter) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clear()
	// Only whole lines go out while a task is shown: the line is drawn again
	// after them, and a partial line would be glued to it.
	m.tail = append(m.tail, p...)
	n := bytes.LastIndexByte(m.tail, '\n') + 1
	if len(m.tasks) == 0 {
		n = len(m.tail)
	}
	var err error
	if n > 0 {
		_, err = m.out.Write(m.tail[:n])
		m.tail = append(m.tail[:0], m.tail[n:]...)
	}
	m.draw()
	return len(p), err
}

// clear blanks the live line. m.mu is held.
func (m *Meter) clear() {
	if m.drawn {
		io.WriteString(m.out, "\r\x1b[K")
		m.drawn = false
	}
}

// draw puts the current task on the line. m.mu is held.
func (m *Meter) draw() {
	if len(m.tasks) == 0 || len(m.tail) > 0 {
		return
	}
	text, clock := m.tasks[len(m.tasks)-1].line(time.Now())
	w := 80
	if m.width != nil {
		if c := m.width(); c > 0 {
			w = c
		}
	}
	// One column short of the width: a full line would wrap on some terminals,
	// and \r would then redraw only its second half. The clock stays; the text
	// before it is cut.
	if room := w - 1 - utf8.RuneCountInString(clock); utf8.RuneCountInString(text) > room {
		r := []rune(text)
		text = string(r[:max(room-1, 0)]) + "…"
	}
	line := text + clock
	if utf8.RuneCountInString(line) > w-1 {
		line = string([]rune(line)[:max(w-1, 0)])
	}
	io.WriteString(m.out, "\r"+line+"\x1b[K")
	m.drawn = true
}

func (m *Meter) show(t *Task) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clear()
	m.tasks = append(m.tasks, t)
	m.draw()
}

func (m *Meter) tick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.draw()
}

func (m *Meter) hide(t *Task) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, x := range m.tasks {
		if x == t {
			m.tasks = append(m.tasks[:i], m.tasks[i+1:]...)
			break
		}
	}
	m.clear()
	m.draw()
}

// Task is one piece of work being shown.
type Task struct {
	m     *Meter
	log   *slog.Logger
	msg   string
	attrs []any
	start time.Time

	mu     sync.Mutex
	step   string
	shown  bool
	ended  bool
	stop   chan struct{}
	exited chan struct{}
}

// Start begins a task: msg and attrs are as for slog (msg "building guest", attrs
// "app", "hello"). Work that ends within delay shows nothing, so cached work stays
// quiet. After that, on a terminal the task is the live line; without one it is
// logged at Info, then again every 10 s with its latest step and the time so far.
func (m *Meter) Start(log *slog.Logger, delay time.Duration, msg string, attrs ...any) *Task {
	every := heartbeat
	if m != nil {
		every = redraw
	}
	return m.start(log, delay, every, msg, attrs...)
}

// start is Start with the interval of redraws or heartbeats given.
func (m *Meter) start(log *slog.Logger, delay, every time.Duration, msg string, attrs ...any) *Task {
	if log == nil {
		log = slog.Default()
	}
	t := &Task{m: m, log: log, msg: msg, attrs: attrs, start: time.Now(),
		stop: make(chan struct{}), exited: make(chan struct{})}
	go t.run(delay, every)
	return t
}

func (t *Task) run(delay, every time.Duration) {
	defer close(t.exited)
	select {
	case <-t.stop:
		return
	case <-time.After(delay):
	}
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.shown = true
	t.mu.Unlock()
	if t.m != nil {
		t.m.show(t)
	} else {
		t.log.Info(t.msg, t.attrs...)
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			if t.m != nil {
				t.m.hide(t)
			}
			return
		case now := <-tick.C:
			if t.m != nil {
				t.m.tick()
				continue
			}
			args := append(append([]any(nil), t.attrs...), "elapsed", now.Sub(t.start).Round(time.Second).String())
			if step := t.Step(); step != "" {
				args = append(args, "step", step)
			}
			t.log.Info(t.msg, args...)
		}
	}
}

// SetStep records what the task is doing now ("compiling net/http").
func (t *Task) SetStep(step string) {
	t.mu.Lock()
	t.step = step
	t.mu.Unlock()
}

// Step is what the task was last doing.
func (t *Task) Step() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.step
}

// End stops the task and takes its line away. It reports whether the task was
// shown (so the caller may log how long it took). Calling it again does nothing.
func (t *Task) End() bool {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return t.shown
	}
	t.ended = true
	t.mu.Unlock()
	close(t.stop)
	<-t.exited
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.shown
}

// line is the task's live line at now, as its text ("building guest app=hello ·
// compiling net/http") and its clock (" · 12.3s").
func (t *Task) line(now time.Time) (text, clock string) {
	var b strings.Builder
	b.WriteString(t.msg)
	for i := 0; i+1 < len(t.attrs); i += 2 {
		fmt.Fprintf(&b, " %v=%v", t.attrs[i], t.attrs[i+1])
	}
	if step := t.Step(); step != "" {
		b.WriteString(" · ")
		b.WriteString(step)
	}
	return b.String(), fmt.Sprintf(" · %.1fs", now.Sub(t.start).Seconds())
}
