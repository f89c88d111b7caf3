package main

// Hostile guests of the CPU and memory classes through the real binary: guests
// that recurse without a loop, start functions that spin (always, or once the
// tenant arms them), table bombs, and shutdown while any of them runs. The
// guests are raw WAT from abi/SPEC.md (runtime/testdata/{recurse,startspin,tables}).

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileWasm is the path of a raw WAT test guest under runtime/testdata.
func hostileWasm(name string) string {
	return filepath.Join(samplesDir, "..", "runtime", "testdata", name, name+".wasm")
}

// adminSite is one running `wasmsrv serve` subprocess.
type adminSite struct {
	*server
	Admin string // admin listener URL
}

// adminSiteLine is what `wasmsrv serve` prints on stdout once it serves.
var adminSiteLine = regexp.MustCompile(`^wasmsrv: serving .* on (http://\S+) \(admin (http://\S+)\)$`)

// startAdminSite writes conf as site.toml in dir and runs `wasmsrv serve` on it.
func startAdminSite(t *testing.T, dir, conf string) *adminSite {
	t.Helper()
	path := filepath.Join(dir, "site.toml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startWasmsrv(t, nil, path, "serve", "-c", path, "--cache-dir", e2eCache)
	for _, line := range strings.Split(s.stdout.String(), "\n") {
		if m := adminSiteLine.FindStringSubmatch(line); m != nil {
			return &adminSite{server: s, Admin: m[2]}
		}
	}
	t.Fatalf("no admin URL in the serving line:\n%s", s.stdout.String())
	return nil
}

// exitsAfterSIGTERM sends SIGTERM to s and expects it to exit with status 0
// within the grace period plus a generous bound.
func exitsAfterSIGTERM(t *testing.T, s *server, grace time.Duration) {
	t.Helper()
	sig := time.Now()
	s.signal(syscall.SIGTERM)
	code, exited := s.wait(grace + 10*time.Second)
	if !exited {
		t.Fatalf("still running %v after SIGTERM (grace %v)\n%s", time.Since(sig), grace, s.logs())
	}
	if code != 0 {
		t.Errorf("exit code %d\n%s", code, s.logs())
	}
	t.Logf("exited %v after SIGTERM (grace %v)", time.Since(sig).Round(time.Millisecond), grace)
}

// rssKiB is the resident set of process pid (Linux).
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// outcome is how one request ended.
type outcome struct {
	status int
	body   string
	err    error
	took   time.Duration
}

func getAsync(c *http.Client, url string) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		start := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			ch <- outcome{err: err, took: time.Since(start)}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- outcome{status: resp.StatusCode, body: string(b), err: err, took: time.Since(start)}
	}()
	return ch
}

// TestE2ELoopFreeRecursion: in `wasmsrv serve` with two apps, requests to an app
// that recurses exponentially without any loop (directly and through
// call_indirect) end at their deadline with 504, while the other app keeps
// answering and a forced GC (the admin's heap profile with gc=1, a
// stop-the-world) completes. Before the fix a GC waited for the guest, and no
// request of any app was served meanwhile.
func TestE2ELoopFreeRecursion(t *testing.T) {
	dir := t.TempDir()
	srv := startAdminSite(t, dir, fmt.Sprintf(`
[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[apps.recurse]
module = %q
pool_size = 2
request_timeout = "2s"
[apps.hello]
module = %q
pool_size = 2
[[routes]]
path = "/r"
app = "recurse"
[[routes]]
path = "/"
app = "hello"
`, hostileWasm("recurse"), filepath.Join(samplesDir, "c-hello", "main.wasm")))
	c := httpClient(t)
	if resp, body := get(t, c, srv.URL+"/r/fib?20"); resp.StatusCode != 200 || body != "fib(20) = 6765\n" {
		t.Fatalf("/r/fib?20: %d %q", resp.StatusCode, body)
	}
	fib, indirect := getAsync(c, srv.URL+"/r/fib?90"), getAsync(c, srv.URL+"/r/indirect?90")
	time.Sleep(200 * time.Millisecond) // both guests are recursing by now, or soon
	// A stop-the-world while they recurse.
	gc := getAsync(c, srv.Admin+"/debug/pprof/heap?gc=1")
	// The neighbour app answers throughout, each request well within a second
	// on an idle machine (5 s here: a loaded CI box).
	var worst time.Duration
	for i := 0; i < 40; i++ {
		start := time.Now()
		resp, body := get(t, c, srv.URL+"/")
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "Hello") {
			t.Fatalf("hello during the recursion: %d %q", resp.StatusCode, body)
		}
		worst = max(worst, time.Since(start))
		time.Sleep(25 * time.Millisecond)
	}
	if worst > 5*time.Second {
		t.Errorf("a hello request took %v while the other app recursed", worst)
	}
	select {
	case o := <-gc:
		if o.err != nil || o.status != 200 {
			t.Errorf("forced GC: %d %v", o.status, o.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("a forced GC did not complete within 15 s: it waits for the recursing guests")
	}
	for name, ch := range map[string]<-chan outcome{"fib": fib, "indirect": indirect} {
		select {
		case o := <-ch:
			if o.err != nil || o.status != http.StatusGatewayTimeout {
				t.Errorf("%s: %d %v, want 504", name, o.status, o.err)
			}
			if o.took > 2*time.Second+4*time.Second {
				t.Errorf("%s ended %v after it started; the deadline is 2 s", name, o.took)
			}
			t.Logf("%s: 504 after %v (deadline 2s); slowest hello meanwhile %v", name, o.took.Round(time.Millisecond), worst.Round(time.Millisecond))
		case <-time.After(20 * time.Second):
			t.Fatalf("%s still running 20 s after it started (deadline 2 s)", name)
		}
	}
}

// TestE2EStartFunctionAlwaysSpins: a module whose start function never ends
// fails to start within --start-timeout, with a message saying so, and a
// SIGTERM during such a start ends the process at once.
func TestE2EStartFunctionAlwaysSpins(t *testing.T) {
	kv := filepath.Join(t.TempDir(), "kv.db")
	args := []string{"--grant", "kv", "--kv-path", kv, "--workers", "1", "--access-log=false"}
	// Arm the module through its own API, then stop that server: the key stays.
	srv := startServer(t, hostileWasm("startspin"), args...)
	if resp, body := get(t, httpClient(t), srv.URL+"/arm"); resp.StatusCode != 200 || body != "armed\n" {
		t.Fatalf("/arm: %d %q", resp.StatusCode, body)
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("exit code %d\n%s", code, srv.logs())
	}

	start := time.Now()
	res := runWasmsrv(t, time.Minute, nil, append([]string{"run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache,
		"--start-timeout", "1s"}, append(args, hostileWasm("startspin"))...)...)
	if res.code == 0 || !strings.Contains(res.stderr, "the module's start function did not finish within the start timeout (1s)") {
		t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("took %v to give up with a 1 s start timeout", took)
	}

	// SIGTERM while the start function spins, with an hour to go.
	cmd := exec.Command(wasmsrvBin, append([]string{"run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache,
		"--start-timeout", "1h"}, append(args, hostileWasm("startspin"))...)...)
	cmd.Env = cleanEnv()
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(500 * time.Millisecond) // starting (or about to): either way it must stop
	sig := time.Now()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		t.Logf("exited %v after SIGTERM during a spinning start; code %d", time.Since(sig).Round(time.Millisecond), cmd.ProcessState.ExitCode())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("still running 10 s after SIGTERM during a spinning start\n%s", stderr.String())
	}
}

// TestE2EStartFunctionSpinsLate: the tenant arms its start function, then crashes
// its instance. The replacement spins: it is stopped at the start timeout, the
// failure is logged with its reason, clients get 503 saying why instead of
// waiting, and SIGTERM still ends the process within the grace period plus a
// bound (before: 503 for good, a core busy, SIGTERM never completing).
func TestE2EStartFunctionSpinsLate(t *testing.T) {
	kv := filepath.Join(t.TempDir(), "kv.db")
	srv := startServer(t, hostileWasm("startspin"), "--grant", "kv", "--kv-path", kv, "--workers", "1",
		"--start-timeout", "500ms", "--shutdown-timeout", "1s", "--queue-wait", "2s", "--access-log=false")
	c := httpClient(t)
	if resp, body := get(t, c, srv.URL+"/arm"); resp.StatusCode != 200 || body != "armed\n" {
		t.Fatalf("/arm: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, srv.URL+"/crash"); resp.StatusCode != 500 {
		t.Fatalf("/crash: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(srv.logs(), "cannot start replacement instance") {
		if time.Now().After(deadline) {
			t.Fatalf("no start failure logged:\n%s", srv.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(srv.logs(), "start function did not finish within the start timeout (500ms)") {
		t.Errorf("the log does not say why:\n%s", srv.logs())
	}
	resp, body := get(t, c, srv.URL+"/")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "start function") {
		t.Errorf("request while no instance can start: %d %q, want 503 with the reason", resp.StatusCode, body)
	}
	exitsAfterSIGTERM(t, srv, time.Second)
}

// TestE2EStartFailuresInStatus: in `wasmsrv serve`, an app whose instances keep
// failing to start shows it in the admin /status: start failures, the last
// reason and when.
func TestE2EStartFailuresInStatus(t *testing.T) {
	dir := t.TempDir()
	srv := startAdminSite(t, dir, fmt.Sprintf(`
[admin]
addr = "127.0.0.1:0"
[plugins]
kv_path = "kv.db"
[[listeners]]
addr = "127.0.0.1:0"
[apps.spinner]
module = %q
pool_size = 1
start_timeout = "300ms"
grants = ["kv"]
[[routes]]
app = "spinner"
`, hostileWasm("startspin")))
	c := httpClient(t)
	if resp, body := get(t, c, srv.URL+"/arm"); resp.StatusCode != 200 || body != "armed\n" {
		t.Fatalf("/arm: %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, srv.URL+"/crash"); resp.StatusCode != 500 {
		t.Fatalf("/crash: %d", resp.StatusCode)
	}
	var st struct {
		Pools map[string]struct {
			Workers, Live    int
			StartFailures    int64     `json:"start_failures"`
			LastStartError   string    `json:"last_start_error"`
			LastStartErrorAt time.Time `json:"last_start_error_at"`
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := get(t, c, srv.Admin+"/status")
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("status %q: %v", body, err)
		}
		if st.Pools["spinner"].StartFailures > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status shows no start failure: %s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := st.Pools["spinner"]
	if p.Workers != 1 || p.Live != 0 || !strings.Contains(p.LastStartError, "start function did not finish") || p.LastStartErrorAt.IsZero() {
		t.Errorf("status of the app: %+v", p)
	}
}

// TestE2EShutdownInterruptsGuests: SIGTERM while guests recurse with an hour
// left before their deadline: once the grace period is over they are
// interrupted and the process exits (0), in run and in serve.
func TestE2EShutdownInterruptsGuests(t *testing.T) {
	check := func(t *testing.T, s *server, url string) {
		t.Helper()
		c := httpClient(t)
		reqs := []<-chan outcome{getAsync(c, url+"/fib?90"), getAsync(c, url+"/indirect?90")}
		time.Sleep(300 * time.Millisecond) // recursing by now, or soon
		exitsAfterSIGTERM(t, s, 500*time.Millisecond)
		for _, r := range reqs {
			if o := <-r; o.err == nil && o.status == 200 {
				t.Errorf("a recursion finished: %q", o.body)
			}
		}
	}
	t.Run("run", func(t *testing.T) {
		s := startServer(t, hostileWasm("recurse"), "--workers", "2", "--timeout", "1h", "--shutdown-timeout", "500ms")
		check(t, s, s.URL)
	})
	t.Run("serve", func(t *testing.T) {
		s := startAdminSite(t, t.TempDir(), fmt.Sprintf(`
[server]
shutdown_timeout = "500ms"
[[listeners]]
addr = "127.0.0.1:0"
[apps.recurse]
module = %q
pool_size = 2
request_timeout = "1h"
[[routes]]
app = "recurse"
`, hostileWasm("recurse")))
		check(t, s.server, s.URL)
	})
}

// TestE2ETableBomb: with --memory-limit 16MiB, a guest that grows three funcref
// tables by 100 M entries each (and one that grows every table until it fails)
// stays within its limit: table.grow fails, the process's resident set grows by
// far less than 2.4 GB. A module whose initial tables exceed the limit is
// refused, naming the table.
func TestE2ETableBomb(t *testing.T) {
	srv := startServer(t, hostileWasm("tables"), "--memory-limit", "16MiB", "--workers", "2", "--access-log=false")
	c := httpClient(t)
	before := rssKiB(t, srv.cmd.Process.Pid)
	for range 3 {
		if resp, body := get(t, c, srv.URL+"/bomb"); resp.StatusCode != 200 || body != "entries 4\n" {
			t.Fatalf("/bomb: %d %q; want every table.grow to fail", resp.StatusCode, body)
		}
	}
	resp, body := get(t, c, srv.URL+"/creep")
	var entries int64
	if _, err := fmt.Sscanf(body, "entries %d\n", &entries); err != nil || resp.StatusCode != 200 {
		t.Fatalf("/creep: %d %q", resp.StatusCode, body)
	}
	if entries*8 > 16<<20 {
		t.Errorf("/creep grew the tables to %d entries (%d bytes), over the 16 MiB limit", entries, entries*8)
	}
	after := rssKiB(t, srv.cmd.Process.Pid)
	t.Logf("RSS %d KiB before, %d KiB after; tables grew to %d entries", before, after, entries)
	if after-before > 2*16<<10 {
		t.Errorf("RSS grew by %d KiB with a 16 MiB limit per instance", after-before)
	}

	res := runWasmsrv(t, time.Minute, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache,
		"--memory-limit", "16MiB", filepath.Join(filepath.Dir(hostileWasm("tables")), "bigtable.wasm"))
	if res.code == 0 || !strings.Contains(res.stderr, "table 1 (funcref) has 100000000 initial entries") ||
		!strings.Contains(res.stderr, "over the memory limit of 16MiB") {
		t.Fatalf("exit %d, stderr:\n%s", res.code, res.stderr)
	}
}

// TestE2EAsyncYieldForever: an async guest that answers every POLL with YIELD.
// What it wrote reaches the client at once, another request is served
// meanwhile, the streak ends at the event timeout (instance replaced, response
// cut), and with an hour-long event timeout SIGTERM still ends the process
// within the grace period plus a bound.
func TestE2EAsyncYieldForever(t *testing.T) {
	t.Run("event timeout", func(t *testing.T) {
		srv := startServer(t, hostileWasm("yield"), "--workers", "1", "--event-timeout", "1s", "--access-log=false")
		c := httpClient(t)
		start := time.Now()
		resp, err := c.Get(srv.URL + "/yield")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 8)
		if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "partial\n" {
			t.Fatalf("first bytes %q, %v", buf, err)
		}
		first := time.Since(start)
		if r, body := get(t, c, srv.URL+"/"); r.StatusCode != 200 || body != "ok\n" {
			t.Errorf("request beside the yield: %d %q", r.StatusCode, body)
		}
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Error("the yielding response completed cleanly; want it cut")
		}
		ended := time.Since(start)
		if first > 3*time.Second || ended > 1*time.Second+5*time.Second {
			t.Errorf("first bytes after %v, cut after %v (event timeout 1s)", first, ended)
		}
		// The connections fail first, then the discard is logged.
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(srv.logs(), "kept answering YIELD"); {
			if time.Now().After(deadline) {
				t.Fatalf("log does not say why:\n%s", srv.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("first bytes after %v, cut after %v", first.Round(time.Millisecond), ended.Round(time.Millisecond))
	})
	t.Run("shutdown", func(t *testing.T) {
		srv := startServer(t, hostileWasm("yield"), "--workers", "1", "--event-timeout", "1h", "--timeout", "1h",
			"--shutdown-timeout", "500ms", "--access-log=false")
		c := httpClient(t)
		resp, err := c.Get(srv.URL + "/yield")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 8)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			t.Fatal(err)
		}
		exitsAfterSIGTERM(t, srv, 500*time.Millisecond)
	})
}
