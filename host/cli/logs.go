package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/wasmsrv/wasmsrv/internal/guestlog"
)

// newLogger returns the process's logger: text (logfmt) or JSON records on w, at
// level and up.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// routeLibraryLogs sends what libraries log on their own through log, so that
// every line is a record of the chosen format (in JSON mode, JSON): the standard
// library's log package (net/http's server errors, anything that calls
// log.Printf) and go-redis's logger (dial failures of the kv and pubsub
// plugins' Redis). Both are process-wide settings, so the serving command sets
// them once, when its logger exists; nothing sets them from a package's init.
func routeLibraryLogs(log *slog.Logger) {
	slog.SetDefault(log)
	redis.SetLogger(redisLogger{log.With("lib", "go-redis")})
}

// redisLogger is go-redis's Logging interface on a slog.Logger. go-redis says no
// level: its lines are warnings (a failed dial, a connection dropped), unless one
// names its own level first (guestlog.Level).
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	level := slog.LevelWarn
	if lv, m, ok := guestlog.Level([]byte(msg)); ok {
		level, msg = lv, string(m)
	}
	l.log.Log(ctx, level, msg)
}

// appHandler gives every record of `wasmsrv run`, which serves one app, that
// app's name (app=NAME) unless the record has it already: the access log, the
// shutdown, the server's own records, as well as the app's. A logger derived with
// an "app" attribute (the app's own, in apps and runtime) is left alone.
type appHandler struct {
	inner slog.Handler
	name  string
	has   bool // an "app" attribute is on the handler already (or a group is open)
}

func withAppName(log *slog.Logger, name string) *slog.Logger {
	return slog.New(&appHandler{inner: log.Handler(), name: name})
}

func (h *appHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return h.inner.Enabled(ctx, lv)
}

func (h *appHandler) WithAttrs(as []slog.Attr) slog.Handler {
	has := h.has
	for _, a := range as {
		has = has || a.Key == "app"
	}
	return &appHandler{inner: h.inner.WithAttrs(as), name: h.name, has: has}
}

func (h *appHandler) WithGroup(g string) slog.Handler {
	// Attributes added now would land in the group: a record of a grouped
	// logger goes as it is.
	return &appHandler{inner: h.inner.WithGroup(g), name: h.name, has: true}
}

func (h *appHandler) Handle(ctx context.Context, r slog.Record) error {
	if !h.has {
		found := false
		r.Attrs(func(a slog.Attr) bool {
			found = a.Key == "app"
			return !found
		})
		if !found {
			r = r.Clone()
			r.AddAttrs(slog.String("app", h.name))
		}
	}
	return h.inner.Handle(ctx, r)
}

// reportedError is a command's error that the command logged itself (as a JSON
// record, in JSON mode): main only exits with its code.
type reportedError struct{ err error }

func (e *reportedError) Error() string { return e.err.Error() }
func (e *reportedError) Unwrap() error { return e.err }

// reportJSON, deferred by a serving command once it knows its log format,
// writes the command's error as a JSON record on stderr when the format is
// JSON, so that every line the process writes is JSON; main then prints
// nothing more. In text mode the error stays main's plain "wasmsrv: ..." line.
func reportJSON(stderr io.Writer, format string, err *error) {
	if *err == nil || format != "json" {
		return
	}
	var re *reportedError
	if errors.As(*err, &re) {
		return
	}
	slog.New(slog.NewJSONHandler(stderr, nil)).Error((*err).Error(), "exit_code", exitCode(*err))
	*err = &reportedError{*err}
}

// announce writes the line that says the server is up on stdout: in text mode
// "wasmsrv: serving ...", which scripts and tests look for; in JSON mode a JSON
// record with msg "serving" and the same attributes as the log's (url first), so
// stdout too holds only JSON.
func announce(stdout io.Writer, format, text string, attrs ...any) {
	if format == "json" {
		slog.New(slog.NewJSONHandler(stdout, nil)).Info("serving", attrs...)
		return
	}
	fmt.Fprintln(stdout, text)
}
