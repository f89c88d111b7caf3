package apps

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultName(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ src, want string }{
		{"samples/hello", "hello"},
		{"samples/c-hello/", "c-hello"},
		{"samples/c-hello/main.wasm", "c-hello"}, // every C sample's module is main.wasm
		{"/srv/apps/shop/main.wasm", "shop"},
		{"build/todo.wasm", "todo"},
		{"app.wasm", "app"},
		{"main.wasm", filepath.Base(wd)},
		{".", filepath.Base(wd)},
		{"/main.wasm", "main"},
		{"/", "app"},
	} {
		if got := DefaultName(tc.src); got != tc.want {
			t.Errorf("DefaultName(%q) = %q, want %q", tc.src, got, tc.want)
		}
	}
}
