package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary TOML and YAML to the loader (parse, defaults,
// validation): it never panics, and every problem it reports is one *Error of the
// file, with a line, on one line of its own — the FILE:LINE: key: message form
// `wasmsrv check` prints. The seed corpus is testdata/fuzz/FuzzParse plus the
// samples and the error table's inputs.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../../samples/site/site.toml", "../../../samples/site/site.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b, strings.HasSuffix(p, ".yaml"))
		}
	}
	f.Add([]byte(goodTOML), false)
	for _, c := range errorCases() {
		f.Add([]byte(c.body), c.file != "a.toml")
	}
	// Relative paths in the config resolve against a directory of its own.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		path := filepath.Join(dir, "fuzz.toml")
		if isYAML {
			path = filepath.Join(dir, "fuzz.yaml")
		}
		cfg, err := Parse(path, data, nil)
		if err == nil {
			if cfg == nil {
				t.Fatal("no config and no error")
			}
			return
		}
		for _, e := range leaves(err) {
			var ce *Error
			if !errors.As(e, &ce) {
				t.Fatalf("%T %q is not a config *Error", e, e)
			}
			if ce.File != path || ce.Line < 1 || ce.Msg == "" {
				t.Errorf("error without file, line or message: %+v", ce)
			}
			if s := ce.Error(); strings.ContainsAny(s, "\r\n") {
				t.Errorf("error spans lines: %q", s)
			} else if !strings.HasPrefix(s, path+":") {
				t.Errorf("error not in FILE:LINE: form: %q", s)
			}
		}
	})
}

// leaves flattens errors.Join trees.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
