package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func loadCommand(t testing.TB, file string, pool PoolConfig) (*CommandApp, *testLog) {
	t.Helper()
	bin, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	log := &testLog{}
	eng, err := NewEngine(context.Background(), EngineConfig{CacheDir: "-"}, log.logger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(context.Background()) })
	c, err := eng.LoadCommand(context.Background(), AppConfig{Name: "cmd", Wasm: bin, MemoryLimit: 8 << 20, Env: []string{"QUERY_STRING=operator"}}, pool)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c, log
}

func TestLoadCommandRefusesNonCommands(t *testing.T) {
	eng, err := NewEngine(context.Background(), EngineConfig{CacheDir: "-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close(context.Background())
	reactor, err := os.ReadFile("../samples/c-hello/main.wasm")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  AppConfig
		want string
	}{
		{"reactor", AppConfig{Wasm: reactor}, "not a WASI command: missing export _start"},
		{"garbage", AppConfig{Wasm: []byte("\x00asm\x01\x00\x00\x00\xff")}, "malformed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := eng.LoadCommand(context.Background(), c.cfg, PoolConfig{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to say %q", err, c.want)
			}
		})
	}
}

func TestCommandRun(t *testing.T) {
	c, log := loadCommand(t, "../samples/c-cgi/main.wasm", PoolConfig{Workers: 1})
	var out bytes.Buffer
	err := c.Run(context.Background(), CommandIO{
		Env:    []string{"REQUEST_METHOD=PUT", "QUERY_STRING=status=201"},
		Stdin:  strings.NewReader("payload"),
		Stdout: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Status: 201 Custom\n", "REQUEST_METHOD=PUT\n", "QUERY_STRING=status=201\n", "body=7\npayload"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(log.String(), "cgi: serving PUT") {
		t.Errorf("stderr did not reach the log:\n%s", log.String())
	}
	// Nothing leaks from one run into the next: each is a fresh instance.
	out.Reset()
	if err := c.Run(context.Background(), CommandIO{Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "QUERY_STRING=operator\n") || !strings.Contains(out.String(), "body=0\n") {
		t.Errorf("second run:\n%s", out.String())
	}
}

func TestCommandFailures(t *testing.T) {
	t.Run("exit status", func(t *testing.T) {
		c, _ := loadCommand(t, "../host/testdata/cgi/exit3.wasm", PoolConfig{})
		var ge *GuestError
		if err := c.Run(context.Background(), CommandIO{}); !errors.As(err, &ge) || ge.Kind != FailExit {
			t.Fatalf("err = %v, want a GuestError of kind %q", err, FailExit)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		c, _ := loadCommand(t, "../host/testdata/cgi/loop.wasm", PoolConfig{RequestTimeout: 100 * time.Millisecond})
		start := time.Now()
		if err := c.Run(context.Background(), CommandIO{}); !errors.Is(err, ErrDeadline) {
			t.Fatalf("err = %v, want ErrDeadline", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("stopped after %v", d)
		}
	})
	t.Run("caller cancels", func(t *testing.T) {
		c, _ := loadCommand(t, "../host/testdata/cgi/loop.wasm", PoolConfig{RequestTimeout: time.Minute})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := c.Run(ctx, CommandIO{}); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrDeadline) {
			t.Fatalf("err = %v, want the caller's context error", err)
		}
	})
	t.Run("trap", func(t *testing.T) {
		c, _ := loadCommand(t, "../host/testdata/cgi/trap.wasm", PoolConfig{})
		var out bytes.Buffer
		var ge *GuestError
		if err := c.Run(context.Background(), CommandIO{Stdout: &out}); !errors.As(err, &ge) || ge.Kind != FailTrap {
			t.Fatalf("err = %v, want a trap", err)
		}
		if !strings.Contains(out.String(), "body before the trap") {
			t.Fatalf("stdout before the trap lost: %q", out.String())
		}
	})
	t.Run("closed", func(t *testing.T) {
		c, _ := loadCommand(t, "../host/testdata/cgi/silent.wasm", PoolConfig{})
		if err := c.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := c.Run(context.Background(), CommandIO{}); !errors.Is(err, ErrPoolClosed) {
			t.Fatalf("err = %v, want ErrPoolClosed", err)
		}
	})
}

// Linear memories are recycled between runs: each run must still start zeroed,
// including pages a previous run grew, in the slot's pooled buffer and (past
// 1 MiB) in the engine's allocator.
func TestCommandMemoryIsClean(t *testing.T) {
	for _, file := range []string{"memcheck.wasm", "bigmemcheck.wasm"} {
		t.Run(file, func(t *testing.T) {
			c, _ := loadCommand(t, "../host/testdata/cgi/"+file, PoolConfig{Workers: 1})
			for i := range 5 {
				var out bytes.Buffer
				if err := c.Run(context.Background(), CommandIO{Stdout: &out}); err != nil {
					t.Fatalf("run %d: %v (memory not clean?)", i, err)
				}
				if !strings.HasSuffix(out.String(), "clean\n") {
					t.Fatalf("run %d: stdout %q", i, out.String())
				}
			}
		})
	}
}

// A run slot is reused: what stopped one run (its deadline, its caller leaving) and
// what it wrote to stderr must not reach the next run on the same slot.
func TestCommandSlotReuse(t *testing.T) {
	c, log := loadCommand(t, "../samples/c-cgi/main.wasm", PoolConfig{Workers: 1, RequestTimeout: 200 * time.Millisecond})
	ok := func(i int) {
		t.Helper()
		var out bytes.Buffer
		if err := c.Run(context.Background(), CommandIO{Stdout: &out, Env: []string{"REQUEST_METHOD=GET"}}); err != nil {
			t.Fatalf("run %d after a stopped one: %v", i, err)
		}
		if !strings.Contains(out.String(), "body=0\n") {
			t.Fatalf("run %d: stdout %q", i, out.String())
		}
	}
	// A stdin read that never returns until Abort cuts it off.
	blocked := func() (io.Reader, func()) {
		pr, pw := io.Pipe()
		return pr, func() { pw.CloseWithError(errors.New("cut off")) }
	}

	stdin, abort := blocked()
	if err := c.Run(context.Background(), CommandIO{Stdin: stdin, Abort: abort}); !errors.Is(err, ErrDeadline) {
		t.Fatalf("blocked run: %v, want ErrDeadline", err)
	}
	ok(1)
	// The next run lasts past where the old deadline's timer would have fired.
	time.Sleep(250 * time.Millisecond)
	ok(2)

	ctx, cancel := context.WithCancel(context.Background())
	stdin, abort = blocked()
	time.AfterFunc(50*time.Millisecond, cancel)
	if err := c.Run(ctx, CommandIO{Stdin: stdin, Abort: abort}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: %v, want context.Canceled", err)
	}
	ok(3)

	// Each run's stderr is tagged with its own run number (the stopped runs 1
	// and 4 may be stopped before they write anything).
	if n := strings.Count(log.String(), "cgi: serving GET"); n != 3 {
		t.Errorf("%d stderr lines of the successful runs, want 3:\n%s", n, log.String())
	}
	for _, run := range []string{"run=2", "run=3", "run=5"} {
		if !strings.Contains(log.String(), run) {
			t.Errorf("log lacks %s:\n%s", run, log.String())
		}
	}
}

// flushCounter is a Stdout that records, at each Flush, how many bytes had been
// written so far.
type flushCounter struct {
	bytes.Buffer
	flushedAt []int
}

func (f *flushCounter) Flush() error {
	f.flushedAt = append(f.flushedAt, f.Len())
	return nil
}

// A Stdout that can flush is flushed whenever the guest sleeps, so what the
// command printed before a pause goes out without waiting for its next write.
func TestCommandFlushesStdoutWhenSleeping(t *testing.T) {
	// Three events 20 ms apart, each written (fflush) before the next sleep.
	c, _ := loadCommand(t, "../host/testdata/cgi/stream.wasm", PoolConfig{Workers: 1})
	var out flushCounter
	if err := c.Run(context.Background(), CommandIO{Stdout: &out, Env: []string{"QUERY_STRING=n=3&gap=20"}}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "data: 1\n\ndata: 2\n\ndata: 3\n\n") {
		t.Fatalf("stdout %q", out.String())
	}
	// Before each of the two sleeps, everything up to that event was flushed.
	var after []string
	for _, n := range out.flushedAt {
		after = append(after, out.String()[:n])
	}
	for _, event := range []string{"data: 1\n\n", "data: 2\n\n"} {
		found := false
		for _, s := range after {
			found = found || strings.HasSuffix(s, event)
		}
		if !found {
			t.Errorf("no flush right after %q; flushes came after %q", event, after)
		}
	}
}
