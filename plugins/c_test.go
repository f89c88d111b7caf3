package plugins_test

import (
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// buildC compiles a C guest from testdata with Debian's clang and wasi-libc, or
// skips the test when they are absent.
func buildC(t *testing.T, src string) string { return testkit.BuildC(t, src) }

// TestCBindings builds testdata/c-counter.c against sdk/c/wasmsrv_plugins.h with
// Debian's clang and wasi-libc and runs it with the kv and log plugins.
func TestCBindings(t *testing.T) {
	wasm := buildC(t, "testdata/c-counter.c")
	reg := testRegistry(t, "", "")
	defer reg.Close()
	s := serve(t, reg, "c-counter", wasm, registry.Grants{"kv": nil}, 2)
	for _, n := range []string{"1\n", "2\n", "3\n"} {
		want(t, s.url+"/", n)
	}
	if l := s.log.String(); !strings.Contains(l, `msg="c hit"`) || !strings.Contains(l, "count=3") {
		t.Fatalf("log lacks the guest's records:\n%s", l)
	}
}

// TestHostileGuest has a guest break every plugin ABI on purpose: bad regions and
// handles trap the guest (its request gets 500, its instance is replaced), bad values
// get status codes, and the host and the app's other requests carry on.
func TestHostileGuest(t *testing.T) {
	wasm := buildC(t, "testdata/c-hostile.c")
	reg := testRegistry(t, "", "")
	defer reg.Close()
	s := serve(t, reg, "hostile", wasm, registry.Grants{"kv": nil, "pubsub": nil, "http": nil, "config": nil}, 2)
	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/kv-key-oob", 500, ""},
		{"/kv-buf-oob", 500, ""},
		{"/kv-huge-len", 500, ""},
		{"/ps-bad-handle", 500, ""},
		{"/ps-notify-bad-handle", 500, ""},
		{"/ps-notify-sync", 200, "-4"}, // ERR_UNSUPPORTED
		{"/http-bad-handle", 500, ""},
		{"/config-oob", 500, ""},
		{"/kv-bad-flags", 200, "-3"}, // ERR_BAD_ARGUMENT
		{"/kv-neg-ttl", 200, "-3"},   // ERR_BAD_ARGUMENT
		{"/http-garbage", 200, "-3"}, // ERR_BAD_ARGUMENT
		{"/log-garbage", 200, "-3"},  // ERR_BAD_ARGUMENT, record still logged
	} {
		code, body := get(t, s.url+c.path)
		if code != c.code || (c.body != "" && body != c.body) {
			t.Errorf("%s = %d %q, want %d %q", c.path, code, body, c.code, c.body)
		}
		// The app keeps serving after every one of them.
		want(t, s.url+"/ok", "0")
	}
	if l := s.log.String(); !strings.Contains(l, "region outside guest memory") || !strings.Contains(l, "unknown subscription 999") {
		t.Errorf("the traps are not explained in the log:\n%s", l)
	}
}
