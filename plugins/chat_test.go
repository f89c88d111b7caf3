package plugins_test

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wasmsrv/wasmsrv/internal/builder"
)

// TestChatInChromium runs samples/chat on a two-instance async pool and has two
// headless Chromium pages talk to each other through it (Debian: chromium).
func TestChatInChromium(t *testing.T) {
	chrome := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chrome = p
			break
		}
	}
	if chrome == "" {
		t.Skip("no Chromium installed (apt-get install chromium): skipping the browser test")
	}
	bin := wasmsrvBinary(t)
	wasm, _, err := builder.Build(context.Background(), "../samples/chat", builder.Options{CacheDir: buildCache(), Tags: []string{"wasmsrv_async"}})
	if err != nil {
		t.Fatal(err)
	}
	base := startNode(t, bin, wasm, "--grant", "pubsub", "--workers", "2")

	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU)...)
	defer cancel()
	// No timeout on the browser's own context (it would stop the browser); each
	// wait below has its own.
	alice, cancelA := chromedp.NewContext(alloc)
	defer cancelA()
	if err := chromedp.Do(alice, chromedp.Navigate(base+"/?room=test&name=alice")); err != nil {
		t.Fatalf("alice: %v", err)
	}
	bob, cancelB := chromedp.NewContext(alice) // a second tab of the same browser
	defer cancelB()
	if err := chromedp.Do(bob, chromedp.Navigate(base+"/?room=test&name=bob")); err != nil {
		t.Fatalf("bob: %v", err)
	}
	poll := func(ctx context.Context, expr string) error {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second)))
		return err
	}
	for name, tab := range map[string]context.Context{"alice": alice, "bob": bob} {
		if err := poll(tab, `document.getElementById("status").textContent === "connected"`); err != nil {
			t.Fatalf("%s never connected: %v", name, err)
		}
	}
	say := func(tab context.Context, text string) {
		t.Helper()
		if err := chromedp.Do(tab, chromedp.SetValue(chromedp.CSS("#text"), text), chromedp.Click(chromedp.CSS("button"))); err != nil {
			t.Fatal(err)
		}
	}
	sees := func(tab context.Context, line string) error {
		return poll(tab, `[...document.querySelectorAll("#log li")].some(li => li.textContent === `+quoteJS(line)+`)`)
	}
	say(alice, "hello bob")
	if err := sees(bob, "alice: hello bob"); err != nil {
		t.Fatalf("bob did not see alice's message: %v", err)
	}
	say(bob, "hi alice")
	for _, line := range []string{"alice: hello bob", "bob: hi alice"} {
		if err := sees(alice, line); err != nil {
			t.Fatalf("alice did not see %q: %v", line, err)
		}
	}
}

func quoteJS(s string) string {
	out := []byte{'"'}
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(append(out, '"'))
}
