package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

func TestCheck(t *testing.T) {
	// check builds the sample's package: in the tests' shared cache, not the user's.
	t.Setenv("WASMSRV_CACHE_DIR", filepath.Dir(testkit.BuildCache()))
	dir := t.TempDir()
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[[listeners]]\naddr = \"127.0.0.1:0\"\n[[routes]]\nredirect = \"https://example.com{uri}\"\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listeners:\n  - addr: 127.0.0.1:0\nroutes:\n  - path: /x\n    upstream: nowhere\n"), 0o644)
	tests := []struct {
		name, file string
		ok         bool
		out        string
	}{
		{"good", good, true, "good.toml: ok (1 listeners, 0 apps, 0 upstream groups, 1 routes)"},
		{"bad", bad, false, `bad.yaml:5: routes[0].upstream: unknown upstream "nowhere"`},
		{"sample", "../../samples/site/site.toml", true, "ok (1 listeners, 1 apps, 1 upstream groups, 3 routes)"},
		{"sample yaml", "../../samples/site/site.yaml", true, "ok (1 listeners, 1 apps, 1 upstream groups, 3 routes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := cmdCheck(context.Background(), &Options{}, []string{"-c", tt.file}, &stdout, &stderr)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, stderr %s", err, stderr.String())
			}
			if out := stdout.String() + stderr.String(); !strings.Contains(out, tt.out) {
				t.Errorf("output %q lacks %q", out, tt.out)
			}
		})
	}
	if err := cmdCheck(context.Background(), &Options{}, nil, io.Discard, io.Discard); err == nil {
		t.Error("check without -c accepted")
	}
}

// syncBuffer lets the test read what the server prints while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// `wasmsrv serve` re-reads its config on SIGHUP, keeps the old one when the
// new one is bad, and stops cleanly when its context ends.
func TestServeSIGHUP(t *testing.T) {
	mk := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		t.Cleanup(s.Close)
		return s
	}
	a, b := mk("a"), mk("b")
	cfg := filepath.Join(t.TempDir(), "site.toml")
	write := func(body string) {
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := func(u string) string {
		return fmt.Sprintf("[admin]\naddr = \"127.0.0.1:0\"\n[[listeners]]\naddr = \"127.0.0.1:0\"\n[upstreams.u]\nservers = [{ url = %q }]\n[[routes]]\nupstream = \"u\"\n", u)
	}
	write(conf(a.URL))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() { done <- cmdServe(ctx, &Options{}, []string{"-c", cfg}, &stdout, &stderr) }()

	var url string
	re := regexp.MustCompile(`serving .* on (http://[0-9.:]+)`)
	for deadline := time.Now().Add(10 * time.Second); url == ""; {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no serving line; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	body := func() string {
		resp, err := http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := body(); got != "a" {
		t.Fatalf("before reload: %q", got)
	}
	write(conf(a.URL) + "bogus = 1\n")
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(stderr.String(), "reload rejected"); {
		if time.Now().After(deadline) {
			t.Fatalf("bad config not reported; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "routes[0].bogus") && !strings.Contains(stderr.String(), "bogus") {
		t.Errorf("rejection does not name the key: %s", stderr.String())
	}
	if got := body(); got != "a" {
		t.Errorf("after a bad reload: %q", got)
	}
	write(conf(b.URL))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); body() != "b"; {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP did not switch to b; stderr: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve returned %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}
}
