package suggest

import "testing"

func TestDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		d    int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"pool_size", "pool_size", 0},
		{"pool_sise", "pool_size", 1}, {"queue_szie", "queue_size", 2}, {"kitten", "sitting", 3},
	} {
		if d := Distance(tt.a, tt.b); d != tt.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, d, tt.d)
		}
	}
}

func TestClosest(t *testing.T) {
	keys := []string{"pool_size", "queue_size", "mode", "module", "env"}
	for s, want := range map[string]string{
		"pool_sise": "pool_size", "queue_szie": "queue_size", "mdoe": "mode", "modul": "module",
		"zzzzzzzz": "", "x": "", "": "", "environment": "",
	} {
		if got := Closest(s, keys); got != want {
			t.Errorf("Closest(%q) = %q, want %q", s, got, want)
		}
	}
	if got := Closest("a", nil); got != "" {
		t.Errorf("no candidates: %q", got)
	}
}
