package plugins_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/plugins"
)

// TestCBindings builds testdata/c-counter.c against sdk/c/wasmsrv_plugins.h with
// Debian's clang and wasi-libc and runs it with the kv and log plugins.
func TestCBindings(t *testing.T) {
	cc, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not installed (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32)")
	}
	wasm := filepath.Join(t.TempDir(), "c-counter.wasm")
	out, err := exec.Command(cc, "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wextra", "-Werror",
		"-o", wasm, "testdata/c-counter.c").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "wasi") && strings.Contains(string(out), "not found") {
			t.Skipf("no wasi-libc for clang: %s", out)
		}
		t.Fatalf("clang: %v\n%s", err, out)
	}
	reg := registry(t, "", "")
	defer reg.Close()
	s := serve(t, reg, "c-counter", wasm, plugins.Grants{"kv": nil}, 2)
	for _, n := range []string{"1\n", "2\n", "3\n"} {
		want(t, s.url+"/", n)
	}
	if l := s.log.String(); !strings.Contains(l, `msg="c hit"`) || !strings.Contains(l, "count=3") {
		t.Fatalf("log lacks the guest's records:\n%s", l)
	}
}
