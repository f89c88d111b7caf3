package host

import (
	"net/http/httptest"
	"slices"
	"testing"
)

func TestCGIArgv(t *testing.T) {
	for _, tc := range []struct {
		template, target string
		want             []string
	}{
		{"", "/env?greet=matt&foo=bar", []string{"/env", "greet=matt", "foo=bar"}},
		{"", "/env", []string{"/env"}},
		{"", "/p?&&a=1&", []string{"/p", "a=1"}},
		{"", "/a%20b?x=%26y", []string{"/a%20b", "x=%26y"}}, // as sent: not decoded
		{"prog --flag ${ARGS}", "/x?a=1", []string{"prog", "--flag", "a=1"}},
		{"prog", "/x?a=1", []string{"prog"}},
		{"${SCRIPT_NAME}:${ARGS}", "/x?a=1&b=2", []string{"/x:a=1", "b=2"}},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		if got := CGIArgv(tc.template, r); !slices.Equal(got, tc.want) {
			t.Errorf("CGIArgv(%q, %s) = %q, want %q", tc.template, tc.target, got, tc.want)
		}
	}
}
