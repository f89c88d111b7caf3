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

func TestNamespacesAreDistinct(t *testing.T) {
	tenants := []string{"a", "a-b", "ab", "b", "a-b-c", "0"}
	apps := []string{"b", "b_c", "c", "b-c", "_x", "x_", "c_d_e"}
	seen := map[string]string{}
	for _, tn := range tenants {
		for _, a := range apps {
			ns, err := Namespace(tn, a)
			if err != nil {
				continue
			}
			if Check(ns) != nil {
				t.Errorf("namespace %q is not an app name", ns)
			}
			pair := tn + "/" + a
			if prev, ok := seen[ns]; ok {
				t.Errorf("%s and %s share namespace %q", prev, pair, ns)
			}
			seen[ns] = pair
		}
	}
	for _, bad := range []string{"", "A", "a_b", "a.b", "../x", "-a", strings.Repeat("a", 21)} {
		if CheckTenant(bad) == nil {
			t.Errorf("tenant name %q accepted", bad)
		}
	}
	if _, err := Namespace("abc", strings.Repeat("x", 61)); err == nil {
		t.Error("a namespace over MaxLen accepted")
	}
}
