// Package log is the guest binding of the wasmsrv `log` plugin
// (plugins/log/ABI.md): levelled, structured records that land in the host's log
// tagged with the app, the instance and the request id. Every app is granted log.
//
//	log.Info("order placed", "order", id, "items", n)
//
// Attribute values are formatted with fmt.Sprint. Slog users can use Handler.
package log

import (
	"context"
	"fmt"
	"log/slog"
	"unsafe"

	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Levels, as slog numbers them (the ABI uses the same numbers).
const (
	LevelDebug = int32(slog.LevelDebug)
	LevelInfo  = int32(slog.LevelInfo)
	LevelWarn  = int32(slog.LevelWarn)
	LevelError = int32(slog.LevelError)
)

// attrs is the reused attribute block: an instance runs one call at a time.
var attrs []byte

// Enabled reports whether the host would keep a record at level, so callers can
// skip building expensive messages.
func Enabled(level int32) bool { return enabled(level) == 1 }

// Log writes one record. args are alternating keys and values.
func Log(level int32, msg string, args ...any) {
	if len(args) > 0 && !Enabled(level) {
		return
	}
	attrs = attrs[:0]
	for i := 0; i < len(args); i += 2 {
		k := fmt.Sprint(args[i])
		v := "!MISSING"
		if i+1 < len(args) {
			v = fmt.Sprint(args[i+1])
		}
		attrs = pluginabi.AppendItem(pluginabi.AppendItem(attrs, k), v)
	}
	var ap unsafe.Pointer
	if len(attrs) > 0 {
		ap = unsafe.Pointer(&attrs[0])
	}
	write(level, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)), ap, uint32(len(attrs)))
}

// Debug logs at debug level.
func Debug(msg string, args ...any) { Log(LevelDebug, msg, args...) }

// Info logs at info level.
func Info(msg string, args ...any) { Log(LevelInfo, msg, args...) }

// Warn logs at warn level.
func Warn(msg string, args ...any) { Log(LevelWarn, msg, args...) }

// Error logs at error level.
func Error(msg string, args ...any) { Log(LevelError, msg, args...) }

// Handler is a slog.Handler writing to the host log: slog.New(log.Handler{}).
// Groups are flattened into dotted keys.
type Handler struct {
	prefix string
	pre    []any
}

// Enabled implements slog.Handler.
func (h Handler) Enabled(_ context.Context, l slog.Level) bool { return Enabled(int32(l)) }

// Handle implements slog.Handler.
func (h Handler) Handle(_ context.Context, r slog.Record) error {
	args := append([]any(nil), h.pre...)
	r.Attrs(func(a slog.Attr) bool {
		args = append(args, h.prefix+a.Key, a.Value.String())
		return true
	})
	Log(int32(r.Level), r.Message, args...)
	return nil
}

// WithAttrs implements slog.Handler.
func (h Handler) WithAttrs(as []slog.Attr) slog.Handler {
	pre := append([]any(nil), h.pre...)
	for _, a := range as {
		pre = append(pre, h.prefix+a.Key, a.Value.String())
	}
	return Handler{prefix: h.prefix, pre: pre}
}

// WithGroup implements slog.Handler.
func (h Handler) WithGroup(name string) slog.Handler {
	return Handler{prefix: h.prefix + name + ".", pre: h.pre}
}
