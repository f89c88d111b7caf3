package plugins_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/wasmsrv/wasmsrv/plugins"
	"github.com/wasmsrv/wasmsrv/plugins/pluginabi"
)

// callCounter counts a guest's calls of plugin host functions, by
// "plugin.function", and separately the calls answered ERR_WOULD_BLOCK (key
// "plugin.function WOULD_BLOCK"). Tests read it to prove HOW a guest waited (one
// look, then parked until the completion event) without timing anything.
type callCounter struct {
	mu      sync.Mutex
	n       map[string]int
	changed chan struct{} // closed and replaced on every count
}

func newCallCounter() *callCounter {
	return &callCounter{n: map[string]int{}, changed: make(chan struct{})}
}

func (c *callCounter) add(key string) {
	c.mu.Lock()
	c.n[key]++
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// get returns the count of key.
func (c *callCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// String lists every count, for failure messages.
func (c *callCounter) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.n))
	for k := range c.n {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	s := ""
	for _, k := range keys {
		s += fmt.Sprintf("%s=%d ", k, c.n[k])
	}
	return s
}

// await waits until key was counted at least n times, failing the test after
// within (a bound for a hung guest, never reached by a working one).
func (c *callCounter) await(t testing.TB, key string, n int, within time.Duration) {
	t.Helper()
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		got, ch := c.n[key], c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("%s counted %d times in %s, want %d (counts: %s)", key, got, within, n, c)
		}
	}
}

// wouldBlock is the key of key's calls answered ERR_WOULD_BLOCK.
func wouldBlock(key string) string { return key + " WOULD_BLOCK" }

// counting decorates a plugin: the host functions its Open returns count their
// calls in c. It is a plugins.Plugin like any other, so the guest and the host
// see nothing different.
type counting struct {
	plugins.Plugin
	c *callCounter
}

// countCalls returns a wrap for wrappedRegistry that counts the calls of every
// plugin in c.
func countCalls(c *callCounter) func(plugins.Plugin) plugins.Plugin {
	return func(p plugins.Plugin) plugins.Plugin { return counting{p, c} }
}

func (p counting) Open(ctx context.Context, app plugins.AppInfo) (*plugins.Binding, error) {
	b, err := p.Plugin.Open(ctx, app)
	if err != nil {
		return nil, err
	}
	funcs := slices.Clone(b.Funcs)
	for i, f := range funcs {
		key, inner := p.Name()+"."+f.Name, f.Fn
		blocked := len(f.Results) == 1
		funcs[i].Fn = func(ctx context.Context, mod api.Module, stack []uint64) {
			inner(ctx, mod, stack)
			p.c.add(key)
			if blocked && int64(stack[0]) == int64(pluginabi.ErrWouldBlock) {
				p.c.add(wouldBlock(key))
			}
		}
	}
	return &plugins.Binding{Funcs: funcs, Close: b.Close}, nil
}

// Close closes the decorated plugin if it has resources (the registry closes
// plugins that are io.Closers).
func (p counting) Close() error {
	if c, ok := p.Plugin.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
