package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a running server, started in its own process group so stopping it also
// stops its workers.
type Process struct {
	cmd    *exec.Cmd
	output *tailBuffer
	done   chan struct{}
	err    error // valid after done is closed
}

// Start launches c. The process dies with the harness (Pdeathsig) even on a crash.
func Start(ctx context.Context, c Command) (*Process, error) {
	if len(c.Argv) == 0 {
		return nil, errors.New("empty command")
	}
	cmd := exec.Command(c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(cleanEnv(os.Environ()), c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Argv[0], err)
	}
	p := &Process{cmd: cmd, output: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the root process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is the tail of what the process printed.
func (p *Process) Output() string { return p.output.String() }

// Stop sends SIGTERM to the whole group, then SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) error {
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("did not stop within %s: killed", grace)
	}
	// Workers may outlive a master that exited first.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
	return nil
}

// WaitReady polls url until the server answers anything over HTTP, the process exits,
// or the timeout passes.
func (p *Process) WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	return p.WaitFor(ctx, func(ctx context.Context) error { return probe(ctx, client, url) }, timeout)
}

// WaitFor polls ready until it succeeds, the process exits or timeout passes.
func (p *Process) WaitFor(ctx context.Context, ready func(context.Context) error, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before serving (%v): %s", p.err, p.Output())
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s (%v): %s", timeout, err, p.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// cleanEnv drops WASMSRV_* variables so a developer's shell settings cannot change
// the configuration being measured; servers get settings only through their argv.
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "WASMSRV_") {
			out = append(out, kv)
		}
	}
	return out
}

// freeAddr asks the kernel for a free loopback port. Another process could take it
// before the server binds; on loopback in a benchmark run that risk is accepted.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func splitAddr(addr string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("split %q: %w", addr, err)
	}
	return host, port, nil
}

// tailBuffer keeps the last max bytes written to it; safe for the two writers
// (stdout, stderr) exec.Cmd may use concurrently.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(b)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(t.buf.String())
}
