package guestlog

import (
	"log/slog"
	"testing"
)

func TestLevel(t *testing.T) {
	const none = slog.Level(-100)
	for _, tc := range []struct {
		line string
		lv   slog.Level
		msg  string // the message when a level was found
	}{
		{"ERROR db down", slog.LevelError, "db down"},
		{"error: db down", slog.LevelError, "db down"},
		{"Error: x", slog.LevelError, "x"},
		{"ERR x", slog.LevelError, "x"},
		{"FATAL x", slog.LevelError, "x"},
		{"CRITICAL:root:x", slog.LevelError, "root:x"},
		{"WARNING:root:disk low", slog.LevelWarn, "root:disk low"},
		{"WARN slow", slog.LevelWarn, "slow"},
		{"[WARN] slow", slog.LevelWarn, "slow"},
		{"[info] started", slog.LevelInfo, "started"},
		{"INFO", slog.LevelInfo, ""},
		{"NOTICE x", slog.LevelInfo, "x"},
		{"DEBUG\tx", slog.LevelDebug, "x"},
		{"trace: x", slog.LevelDebug, "x"},
		{"2026/12/07 10:00:00 INFO hello count=3", slog.LevelInfo, "hello count=3"},
		{"2026-12-07T10:00:00.123Z WARN hm", slog.LevelWarn, "hm"},
		{"2026-12-07 10:00:00,123 ERROR boom", slog.LevelError, "boom"},
		{`time=2026-12-07T10:00:00.000Z level=WARN msg="slow query" ms=300`, slog.LevelWarn, `time=2026-12-07T10:00:00.000Z level=WARN msg="slow query" ms=300`},
		{`level=error msg=x`, slog.LevelError, `level=error msg=x`},
		{`ts=1 level="info" msg=x`, slog.LevelInfo, `ts=1 level="info" msg=x`},
		{`{"time":"2026-12-07T10:00:00Z","level":"ERROR","msg":"boom"}`, slog.LevelError, `{"time":"2026-12-07T10:00:00Z","level":"ERROR","msg":"boom"}`},
		{`{"level": "debug", "msg":"x"}`, slog.LevelDebug, `{"level": "debug", "msg":"x"}`},
		// No level named.
		{"hello", none, ""},
		{"Errors happen", none, ""},
		{"Information", none, ""},
		{"[WARN slow", none, ""},
		{"information: x", none, ""},
		{"sublevel=error x", none, ""},
		{`{"msg":"level=info"}`, none, ""},
		{`{"level":"verbose"}`, none, ""},
		{`{"level":3}`, none, ""},
		{"2026/12/07 10:00:00 hello", none, ""},
		{"panic: boom", none, ""},
		{"", none, ""},
		{"[", none, ""},
		{"level=", none, ""},
	} {
		lv, msg, ok := Level([]byte(tc.line))
		if tc.lv == none {
			if ok {
				t.Errorf("Level(%q) = %v, want none", tc.line, lv)
			}
			continue
		}
		if !ok || lv != tc.lv || string(msg) != tc.msg {
			t.Errorf("Level(%q) = %v %q %v, want %v %q", tc.line, lv, msg, ok, tc.lv, tc.msg)
		}
	}
}

// BenchmarkLevel: the cost of looking for a level on a line that names none
// (the most common case: every plain line pays it).
func BenchmarkLevel(b *testing.B) {
	lines := [][]byte{
		[]byte("GET /books/42 200 1.2ms from 10.0.0.7"),
		[]byte(`time=2026-12-07T10:00:00.000Z level=INFO msg="served" path=/books/42`),
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		Level(lines[i&1])
	}
}
