package requestid

import (
	"net/http"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for _, s := range []string{"a", "abc-123", "f47ac10b-58cc-4372-a567-0e02b2c3d479", "Root=1-67891233-abcdef012345678912345678",
		"x_y.z:1/2+3=4@5~6", strings.Repeat("a", MaxLen)} {
		if !Valid(s) {
			t.Errorf("Valid(%q) = false", s)
		}
	}
	for _, s := range []string{"", strings.Repeat("a", MaxLen+1), strings.Repeat("a", 10<<10), "a\nb", "a\r\nX-Evil: 1", `a"b`, "a b",
		`a\b`, "a\x00", "a\x7f", "é", "a'b", "a,b", "a;b", "<script>", "a\tb", "{}"} {
		if Valid(s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
}

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := New()
		if len(id) != 32 || !Valid(id) || strings.Trim(id, "0123456789abcdef") != "" {
			t.Fatalf("New() = %q", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}

func TestOf(t *testing.T) {
	h := http.Header{}
	h.Set("X-Request-ID", "abc-1")
	if got := Of(h); got != "abc-1" {
		t.Errorf("Of(valid) = %q", got)
	}
	for _, vals := range [][]string{{"bad id"}, {"a", "b"}, {strings.Repeat("x", 10<<10)}, {"a\nb"}} {
		h := http.Header{Header: vals}
		if got := Of(h); got == vals[0] || len(got) != 32 {
			t.Errorf("Of(%q) = %q, want a new id", vals, got)
		}
	}
	if got := Of(http.Header{}); len(got) != 32 {
		t.Errorf("Of(none) = %q", got)
	}
}

func TestSet(t *testing.T) {
	h := http.Header{"X-Request-Id": {"old", "older"}}
	Set(h, "new")
	if got := h.Values("X-Request-ID"); len(got) != 1 || got[0] != "new" {
		t.Errorf("after Set: %q", got)
	}
	Set(h, "")
	if _, ok := h[Header]; ok {
		t.Error("Set(\"\") kept the header")
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = New()
	}
}
