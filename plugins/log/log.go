// Package log is the `log` plugin (import module wasmsrv_log, ABI.md): levelled,
// structured guest logs into the host's slog, tagged with the app, the instance and
// the request id. It is granted to every app by default.
package log

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/time/rate"

	"github.com/wasmsrv/wasmsrv/internal/guestlog"
	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// Version is the plugin ABI version (ABI.md).
const Version = "1.0"

// Limits that keep a chatty or hostile guest from flooding the host log. Besides
// these, every record counts against the app's byte budget (guestlog: shared with
// the guest's stdout and stderr, escapes included) and is cut to guestlog.MaxLine
// as written.
const (
	// MaxMessage truncates longer messages (and attribute values) as received.
	MaxMessage = 16 << 10
	// MaxAttrs drops attributes past this many per record.
	MaxAttrs = 64
	// DefaultRate is records per second per app (burst: twice as many).
	DefaultRate = 1000
)

// Config is the per-app section.
type Config struct {
	// Level is the lowest level logged: debug, info, warn or error (default: debug,
	// so the host logger's own level decides).
	Level string `json:"level"`
	// Rate is records per second the app may log before records are dropped
	// (default DefaultRate; dropped records are counted in the app's periodic
	// warning about its log budget).
	Rate float64 `json:"rate"`
}

// Plugin is the log plugin. The zero value is ready.
type Plugin struct{}

// New returns the log plugin.
func New() *Plugin { return &Plugin{} }

// Name implements plugins.Plugin.
func (*Plugin) Name() string { return "log" }

// Version implements plugins.Plugin.
func (*Plugin) Version() string { return Version }

// appLog is one app's logging state.
type appLog struct {
	log     *slog.Logger // the app's guest output: through its byte budget
	out     plugins.Output
	min     slog.Level
	limiter *rate.Limiter
}

// Open implements plugins.Plugin.
func (*Plugin) Open(_ context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	var cfg Config
	if err := app.Config.Decode(&cfg); err != nil {
		return nil, err
	}
	a := &appLog{log: app.Output.Logger(), out: app.Output, min: slog.LevelDebug}
	if cfg.Level != "" {
		if err := a.min.UnmarshalText([]byte(cfg.Level)); err != nil {
			return nil, fmt.Errorf("level: %w", err)
		}
	}
	r := cfg.Rate
	if r <= 0 {
		r = DefaultRate
	}
	a.limiter = rate.NewLimiter(rate.Limit(r), int(2*r)+1)
	return &plugins.Binding{
		Funcs: []plugins.HostFunc{
			{Name: "write", Params: plugins.Sig(plugins.I32, plugins.I32, plugins.I32, plugins.I32, plugins.I32), Results: plugins.Sig(plugins.I32), Fn: a.write},
			{Name: "enabled", Params: plugins.Sig(plugins.I32), Results: plugins.Sig(plugins.I32), Fn: a.enabled},
		},
	}, nil
}

func (a *appLog) enabledAt(ctx context.Context, lv slog.Level) bool {
	return lv >= a.min && a.log.Enabled(ctx, lv)
}

// enabled(level i32) -> i32
func (a *appLog) enabled(ctx context.Context, _ api.Module, stack []uint64) {
	if a.enabledAt(ctx, slog.Level(int32(stack[0]))) {
		stack[0] = 1
	} else {
		stack[0] = 0
	}
}

// reserved attribute keys belong to the host; a guest's attribute of the same name is
// renamed so a record cannot pretend to come from another app or request.
func reserved(k string) bool {
	switch k {
	case "app", "instance", "request_id", "plugin", "time", "level", "msg", guestlog.TruncatedKey:
		return true
	}
	return false
}

// write(level i32, msg i32, msg_len i32, attrs i32, attrs_len i32) -> i32
func (a *appLog) write(ctx context.Context, mod api.Module, stack []uint64) {
	const fn = "wasmsrv_log.write"
	lv := slog.Level(int32(stack[0]))
	msg := plugins.Region(fn, mod, stack[1], stack[2])
	attrs := plugins.Region(fn, mod, stack[3], stack[4])
	if !a.enabledAt(ctx, lv) {
		stack[0] = 0
		return
	}
	if !a.limiter.Allow() {
		a.out.Drop(1)
		stack[0] = 0
		return
	}
	if a.out.Spent(clip(msg)) { // not even the message fits the byte budget now
		stack[0] = 0
		return
	}
	// What is copied is bounded by what the log can show of the record
	// (guestlog.MaxLine as written, at least as many bytes as received), so a
	// record of 64 attributes of 16 KiB each costs no more than one line.
	room := guestlog.MaxLine
	m := clipTo(msg, room)
	room -= len(m)
	cut := len(msg) - len(m)
	rec := slog.NewRecord(time.Now(), lv, string(m), 0)
	if in := plugins.InstanceFrom(ctx); in != nil {
		rec.AddAttrs(slog.Uint64("instance", in.ID()))
		if id := in.RequestID(); id != "" {
			rec.AddAttrs(slog.String("request_id", id))
		}
	}
	status := pluginabi.OK
	for n := 0; len(attrs) > 0; n++ {
		k, rest, ok1 := pluginabi.NextItem(attrs)
		v, rest, ok2 := pluginabi.NextItem(rest)
		if !ok1 || !ok2 {
			status = pluginabi.ErrBadArgument
			break
		}
		attrs = rest
		if n >= MaxAttrs || room == 0 {
			cut += len(k) + len(v)
			continue
		}
		kc := clipTo(k, room)
		vc := clipTo(v, room-len(kc))
		room -= len(kc) + len(vc)
		cut += len(k) - len(kc) + len(v) - len(vc)
		key := string(kc)
		if reserved(key) {
			key = "guest_" + key
		}
		rec.AddAttrs(slog.String(key, string(vc)))
	}
	if cut > 0 {
		rec.AddAttrs(slog.Int(guestlog.TruncatedKey, cut))
	}
	_ = a.log.Handler().Handle(ctx, rec)
	stack[0] = uint64(uint32(status))
}

func clip(b []byte) []byte { return clipTo(b, MaxMessage) }

// clipTo cuts b to at most n bytes, and to MaxMessage.
func clipTo(b []byte, n int) []byte {
	return b[:min(len(b), n, MaxMessage)]
}
