package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A route's middleware: the module resolved against the config file, its
// config a string as given or a table as JSON, in TOML and YAML alike.
func TestMiddleware(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mw.wasm"), []byte("\x00asm"), 0o644); err != nil {
		t.Fatal(err)
	}
	toml := `
[[listeners]]
addr = "127.0.0.1:0"
[[routes]]
path = "/"
static = "."
[[routes.middleware]]
module = "mw.wasm"
config = { headers = { X-Foo = "Bar" }, n = 1, list = ["a"] }
[[routes.middleware]]
module = "mw.wasm"
config = 'raw {not json'
`
	yaml := `
listeners:
  - addr: 127.0.0.1:0
routes:
  - path: /
    static: .
    middleware:
      - module: mw.wasm
        config:
          headers:
            X-Foo: Bar
          n: 1
          list: [a]
      - module: mw.wasm
        config: 'raw {not json'
`
	for name, body := range map[string]string{"site.toml": toml, "site.yaml": yaml} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, noEnv)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ms := c.Routes[0].Middleware
		if len(ms) != 2 || ms[0].Module != filepath.Join(dir, "mw.wasm") {
			t.Fatalf("%s: middleware %+v", name, ms)
		}
		b, err := ms[0].ConfigBytes()
		if err != nil {
			t.Fatal(err)
		}
		var got any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%s: config %q is not JSON: %v", name, b, err)
		}
		want := map[string]any{"headers": map[string]any{"X-Foo": "Bar"}, "n": float64(1), "list": []any{"a"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: config %s", name, b)
		}
		if b, _ := ms[1].ConfigBytes(); string(b) != "raw {not json" {
			t.Errorf("%s: string config %q", name, b)
		}
	}
}

func TestMiddlewareErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"[[routes.middleware]]\npool_size = 1\n", "routes[0].middleware[0].module"},
		{"[[routes.middleware]]\nmodule = \"missing.wasm\"\n", "routes[0].middleware[0].module"},
		{"[[routes.middleware]]\nmodule = \".\"\n", "is a directory"},
		{"[[routes.middleware]]\nmodule = \"mw.wasm\"\npool_size = -1\n", "routes[0].middleware[0].pool_size"},
		{"[[routes.middleware]]\nmodule = \"mw.wasm\"\nmemory_limit = \"1KiB\"\n", "routes[0].middleware[0].memory_limit"},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "mw.wasm"), []byte("\x00asm"), 0o644); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, "site.toml")
		body := "[[listeners]]\naddr = \"127.0.0.1:0\"\n[[routes]]\npath = \"/\"\nstatic = \".\"\n" + tc.body
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, noEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want it to name %s", tc.body, err, tc.want)
		}
	}
}
