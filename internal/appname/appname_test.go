package appname

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	good := []string{"a", "api", "x613a62", "A-b_c", "0", "9lives", strings.Repeat("z", MaxLen)}
	for _, n := range good {
		if err := Check(n); err != nil {
			t.Errorf("Check(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{
		"", "a:b", "a.b", "a b", "-a", "_a", "a}", "{a", "a/b", "..", "a\x00", "a\n", "é", "a\u202e",
		"a*", "a?", "a[", "~a", "%61", strings.Repeat("z", MaxLen+1),
	}
	for _, n := range bad {
		err := Check(n)
		if err == nil {
			t.Errorf("Check(%q) = nil, want an error", n)
			continue
		}
		if !strings.Contains(err.Error(), Allowed) {
			t.Errorf("Check(%q) = %q: does not say what is allowed", n, err)
		}
	}
}
