package main

// End-to-end tests: the real wasmsrv binary, built once in TestMain, runs as a
// subprocess on 127.0.0.1 and is spoken to through real sockets, with clients other
// than the server's own where it matters (raw TCP, curl, gorilla/websocket).
//
// Guests are built and compiled once into a cache shared across tests and runs
// (os.TempDir()/wasmsrv-e2e-cache). The first start of each sample is serialized
// so parallel test binaries of the same run never race on an empty cache.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	// wasmsrvBin is the binary under test, built by TestMain.
	wasmsrvBin string
	// e2eCache is the --cache-dir shared by every test (builds and compiled code).
	e2eCache string
	// samplesDir is the absolute path of the repo's samples/.
	samplesDir string
	// raceBuild builds the server with -race (set under go test -race).
	raceBuild bool
	// warmBin, with raceBuild, is wasmsrv built without -race: it does the
	// first start of each app, so the guest's wazero compile (tens of seconds
	// for a 20 MB guest, many minutes under the race detector on a loaded
	// machine) lands in the shared compile cache, which is keyed by wazero's
	// version, the module's bytes and the CPU, not by how the host was built.
	// The race-built binary then starts from the cache.
	warmBin string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wasmsrv-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	wasmsrvBin = filepath.Join(dir, "wasmsrv")
	args := []string{"build", "-o", wasmsrvBin}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building wasmsrv:", err)
		return 1
	}
	if raceBuild {
		warm := filepath.Join(dir, "wasmsrv-norace")
		build := exec.Command("go", "build", "-o", warm, ".")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: building wasmsrv without -race (first starts compile under the race detector):", err)
		} else {
			warmBin = warm
		}
	}
	e2eCache = filepath.Join(os.TempDir(), "wasmsrv-e2e-cache")
	if err := os.MkdirAll(e2eCache, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if samplesDir, err = filepath.Abs(filepath.Join("..", "..", "samples")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	return m.Run()
}

// sample returns the absolute directory of samples/<name>.
func sample(name string) string { return filepath.Join(samplesDir, name) }

// cleanEnv is the test process environment without WASMSRV_* variables, so the
// developer's settings cannot leak into a test; extra entries are appended.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WASMSRV_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// lockedBuffer is an io.Writer safe for the exec copier and the test to share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// servingLine is what `wasmsrv run` and `wasmsrv serve` print on stdout once they
// accept connections (serve lists every listener, then the admin URL).
var servingLine = regexp.MustCompile(`^wasmsrv: serving .* on (https?://[^\s,]+)`)

// servingURL is the URL of a "serving" line: the text one, or in JSON mode a
// record {"msg":"serving","url":...}; "" for any other line.
func servingURL(line string) string {
	if m := servingLine.FindStringSubmatch(line); m != nil {
		return m[1]
	}
	var rec struct{ Msg, URL string }
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" {
		return rec.URL
	}
	return ""
}

// stdoutWatcher records stdout and reports the URL of the "serving" line once.
type stdoutWatcher struct {
	lockedBuffer
	mu      sync.Mutex
	partial []byte
	url     chan string
	sent    bool
}

func (w *stdoutWatcher) Write(p []byte) (int, error) {
	_, _ = w.lockedBuffer.Write(p)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := string(w.partial[:i])
		w.partial = w.partial[i+1:]
		if u := servingURL(line); u != "" && !w.sent {
			w.sent = true
			w.url <- u
		}
	}
	return len(p), nil
}

// server is one running `wasmsrv run` subprocess.
type server struct {
	t      testing.TB
	cmd    *exec.Cmd
	URL    string // e.g. http://127.0.0.1:41234
	Addr   string // host:port
	stdout *stdoutWatcher
	stderr *lockedBuffer

	done    chan struct{} // closed when the process has exited and its output is read
	waitErr error
	stopped sync.Once
}

// firstStart serializes the first start of each app source within this test
// binary, so concurrent tests never build or compile the same guest at once.
var firstStart struct {
	sync.Mutex
	locks map[string]*sync.Mutex
	warm  map[string]bool
}

func warmLock(src string) (unlock func()) {
	firstStart.Lock()
	if firstStart.locks == nil {
		firstStart.locks, firstStart.warm = map[string]*sync.Mutex{}, map[string]bool{}
	}
	if firstStart.warm[src] {
		firstStart.Unlock()
		return func() {}
	}
	mu := firstStart.locks[src]
	if mu == nil {
		mu = new(sync.Mutex)
		firstStart.locks[src] = mu
	}
	firstStart.Unlock()
	mu.Lock()
	return func() {
		firstStart.Lock()
		firstStart.warm[src] = true
		firstStart.Unlock()
		mu.Unlock()
	}
}

// A start is bounded by the server's progress, not by a wall clock: a cold
// cache means a go build and a wazero compile, which for a large Go guest under
// -race on a loaded 2-core machine has taken more than 3 minutes, and while that
// work lasts the binary logs a progress line every 10 s (internal/progress:
// "building guest", "compiling module"). So a wait gives up when the process has
// written nothing for startTimeout (hung: it missed six heartbeats), or has not
// got there after startLimit (making "progress" forever).
const (
	startTimeout = time.Minute
	startLimit   = 15 * time.Minute
)

// activityWriter is w that signals c (without blocking) after each write: the
// process printed something.
type activityWriter struct {
	w io.Writer
	c chan struct{}
}

func (a activityWriter) Write(p []byte) (int, error) {
	n, err := a.w.Write(p)
	select {
	case a.c <- struct{}{}:
	default:
	}
	return n, err
}

// awaitProgress waits for ready or done for as long as the process makes
// progress (activity) within quiet of its last output, and at most startLimit.
// It returns ready's value, or what ended the wait: "exited" (done), else why it
// gave up.
func awaitProgress[T any](ready <-chan T, done <-chan struct{}, activity <-chan struct{}, quiet time.Duration) (v T, outcome string) {
	start := time.Now()
	idle := time.NewTimer(quiet)
	defer idle.Stop()
	limit := time.NewTimer(startLimit)
	defer limit.Stop()
	for {
		select {
		case v = <-ready:
			return v, ""
		case <-done:
			return v, "exited"
		case <-activity:
			idle.Reset(quiet)
		case <-idle.C:
			return v, fmt.Sprintf("no output for %v (hung), %v after the start", quiet, time.Since(start).Round(time.Second))
		case <-limit.C:
			return v, fmt.Sprintf("still working after %v", startLimit)
		}
	}
}

// startServer runs `wasmsrv run --listen 127.0.0.1:0 --cache-dir <shared> args... app`
// and waits for the "serving ... on URL" line. The server is stopped (SIGTERM, then
// wait) when the test ends.
func startServer(t testing.TB, app string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, nil, app, args...)
}

func startServerEnv(t testing.TB, env []string, app string, args ...string) *server {
	t.Helper()
	full := append([]string{"run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache}, args...)
	return startWasmsrv(t, env, app, append(full, app)...)
}

// startServe runs `wasmsrv serve -c config` (the site's first listener is
// the server's URL) and waits for it to serve.
func startServe(t testing.TB, config string) *server {
	t.Helper()
	return startWasmsrv(t, nil, config, "serve", "-c", config, "--cache-dir", e2eCache)
}

// startWasmsrv runs the binary with args (a `run` or a `serve`) and waits for its
// "serving ... on URL" line; warm names what it builds, for warmLock.
func startWasmsrv(t testing.TB, env []string, warm string, full ...string) *server {
	t.Helper()
	unlock := warmLock(warm)
	defer unlock()
	if warmBin != "" && full[0] == "run" && firstWarmUp(warm, full) {
		warmUp(t, env, full...)
	}
	return launch(t, "", env, full...)
}

// warmedUp is the set of app and mode pairs warmUp ran for (a mode builds a
// guest of its own).
var warmedUp struct {
	sync.Mutex
	done map[string]bool
}

// firstWarmUp reports whether app in the mode full asks for was not warmed up
// yet, and marks it.
func firstWarmUp(app string, full []string) bool {
	key := app
	if i := slices.Index(full, "--mode"); i >= 0 && i+1 < len(full) {
		key += " " + full[i+1]
	}
	warmedUp.Lock()
	defer warmedUp.Unlock()
	if warmedUp.done == nil {
		warmedUp.done = map[string]bool{}
	}
	first := !warmedUp.done[key]
	warmedUp.done[key] = true
	return first
}

// warmUp starts the app with warmBin (the same arguments, no request) until it
// serves, then stops it: the build and the compile are then in the caches. It
// fails nothing: the binary under test does whatever the warm-up did not.
func warmUp(t testing.TB, env []string, full ...string) {
	t.Helper()
	cmd := exec.Command(warmBin, full...)
	cmd.Env = cleanEnv(env...)
	stdout := &stdoutWatcher{url: make(chan string, 1)}
	var stderr lockedBuffer
	activity := make(chan struct{}, 1)
	cmd.Stdout, cmd.Stderr = activityWriter{stdout, activity}, activityWriter{&stderr, activity}
	if err := cmd.Start(); err != nil {
		t.Logf("warm-up: %v", err)
		return
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	start := time.Now()
	if _, outcome := awaitProgress(stdout.url, done, activity, startTimeout); outcome != "" {
		t.Logf("warm-up of %s did not serve (%s): the binary under test builds and compiles itself\n%s", strings.Join(full, " "), outcome, stderr.String())
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(40 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	t.Logf("warm-up of %s without -race: %v", strings.Join(full, " "), time.Since(start).Round(time.Millisecond))
}

// launch starts wasmsrv with args in dir ("" for the test's own) and waits for its
// "serving ... on URL" line.
func launch(t testing.TB, dir string, env []string, full ...string) *server {
	t.Helper()
	return launchBinary(t, wasmsrvBin, dir, env, full...)
}

// launchBinary is launch with a wasmsrv binary of the test's own (a custom build).
func launchBinary(t testing.TB, bin, dir string, env []string, full ...string) *server {
	t.Helper()
	s := &server{
		t:      t,
		cmd:    exec.Command(bin, full...),
		stdout: &stdoutWatcher{url: make(chan string, 1)},
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	s.cmd.Dir = dir
	if raceBuild {
		// The race runtime sleeps 1s at exit by default: that would blur the
		// shutdown timings. A race still shows in stderr and the exit code (66).
		env = append(slices.Clip(env), "GORACE=atexit_sleep_ms=0")
	}
	s.cmd.Env = cleanEnv(env...)
	activity := make(chan struct{}, 1)
	s.cmd.Stdout, s.cmd.Stderr = activityWriter{s.stdout, activity}, activityWriter{s.stderr, activity}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start wasmsrv: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.stop() })
	url, outcome := awaitProgress(s.stdout.url, s.done, activity, startTimeout)
	switch outcome {
	case "":
		s.URL = url
	case "exited":
		t.Fatalf("wasmsrv %s exited before serving (%v)\nstdout:\n%s\nstderr:\n%s", strings.Join(full, " "), s.waitErr, s.stdout.String(), s.stderr.String())
	default:
		t.Fatalf("wasmsrv %s not serving: %s\nstderr:\n%s", strings.Join(full, " "), outcome, s.stderr.String())
	}
	s.Addr = strings.TrimPrefix(strings.TrimPrefix(s.URL, "http://"), "https://")
	// The serving line comes on stdout after the server logged, on stderr,
	// that it serves (run: "serving"; serve: "listener started"); the two
	// pipes are copied independently, so wait for that record: then every
	// record before it (the app's start, notices) is in s.logs() too.
	for deadline := time.Now().Add(time.Minute); !servedRecord.MatchString(s.stderr.String()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("wasmsrv %s: a serving line on stdout but no serving record on stderr:\n%s", strings.Join(full, " "), s.stderr.String())
		}
	}
	return s
}

// servedRecord is the log record a server writes just before its serving line.
var servedRecord = regexp.MustCompile(`msg=serving|msg="listener started"|"msg":"(serving|listener started)"`)

// signal sends sig to the server process.
func (s *server) signal(sig os.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("signal %v: %v", sig, err)
	}
}

// wait waits up to d for the process to exit and returns its exit code, or -1 and
// false if it is still running.
func (s *server) wait(d time.Duration) (code int, exited bool) {
	select {
	case <-s.done:
		return s.cmd.ProcessState.ExitCode(), true
	case <-time.After(d):
		return -1, false
	}
}

// stop sends SIGTERM and waits for the process to exit (killing it after 40 s, past
// the default 30 s grace); it returns the exit code. Safe to call more than once.
func (s *server) stop() int {
	s.stopped.Do(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			if _, ok := s.wait(40 * time.Second); !ok {
				s.t.Errorf("wasmsrv did not exit 40s after SIGTERM; killing it\nstderr:\n%s", s.stderr.String())
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
		if strings.Contains(s.stderr.String(), "WARNING: DATA RACE") {
			s.t.Errorf("the race detector fired in wasmsrv:\n%s", s.stderr.String())
		}
	})
	<-s.done
	return s.cmd.ProcessState.ExitCode()
}

// logs returns everything the server wrote to stderr so far.
func (s *server) logs() string { return s.stderr.String() }

// result is the outcome of a wasmsrv command that is expected to end by itself.
type result struct {
	code           int
	stdout, stderr string
}

// runWasmsrv runs the binary with args and env (on top of the scrubbed
// environment) and waits for it to exit as long as it makes progress: it fails
// the test when the process wrote nothing for timeout (or ran past startLimit).
func runWasmsrv(t *testing.T, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	return runWasmsrvIn(t, "", timeout, env, args...)
}

// runWasmsrvIn is runWasmsrv in the working directory dir.
func runWasmsrvIn(t *testing.T, dir string, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	return runBinaryIn(t, wasmsrvBin, dir, timeout, env, args...)
}

// runBinaryIn is runWasmsrvIn with a wasmsrv binary of the test's own.
func runBinaryIn(t *testing.T, bin, dir string, timeout time.Duration, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv(env...)
	var stdout, stderr lockedBuffer
	activity := make(chan struct{}, 1)
	cmd.Stdout, cmd.Stderr = activityWriter{&stdout, activity}, activityWriter{&stderr, activity}
	if err := cmd.Start(); err != nil {
		t.Fatalf("wasmsrv %s: %v", strings.Join(args, " "), err)
	}
	done := make(chan struct{})
	var err error
	go func() {
		err = cmd.Wait()
		close(done)
	}()
	if _, outcome := awaitProgress[struct{}](nil, done, activity, timeout); outcome != "exited" {
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("wasmsrv %s: still running: %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), outcome, stdout.String(), stderr.String())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wasmsrv %s: %v", strings.Join(args, " "), err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// httpClient is a plain HTTP/1.1 client with its own transport, so one test's idle
// connections never leak into another's server.
func httpClient(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// h2cClient speaks HTTP/2 over cleartext TCP with prior knowledge.
func h2cClient(t testing.TB) *http.Client {
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true) // prior knowledge: no Upgrade, no TLS
	tr := &http.Transport{Protocols: &protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// get does a GET and returns the response with its body read.
func get(t testing.TB, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	return do(t, c, mustRequest(t, http.MethodGet, url, nil))
}

func mustRequest(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

// rawConn is a hand-driven TCP connection to the server.
type rawConn struct {
	net.Conn
	r *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, r: bufio.NewReader(c)}
}

// readResponse reads one HTTP/1.1 response from the connection.
func (c *rawConn) readResponse(t testing.TB, method string) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(c.r, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response body: %v", err)
	}
	return resp, string(b)
}

// needCurl returns the path of curl or skips the test.
func needCurl(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl not found in PATH: this test drives the h2c Upgrade and TLS+h2 paths with curl (install curl to run it)")
	}
	return p
}
