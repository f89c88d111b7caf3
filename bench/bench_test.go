package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const wrkSample = `Running 3s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.42ms    1.30ms  19.55ms   86.70%
  118212 requests in 3.00s, 16.12MB read
Requests/sec:  39404.20
WRKRESULT requests=118212 duration_us=3000000 bytes=16900000 connect=0 read=2 write=0 status=5 timeout=1 p50_us=1130 p90_us=2500 p99_us=7030 max_us=19550
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkSample)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 118212 || r.Duration != 3*time.Second || r.Status != 5 || r.SocketErrors() != 3 {
		t.Errorf("counts: %+v", r)
	}
	if r.P50 != 1130*time.Microsecond || r.P99 != 7030*time.Microsecond || r.Max != 19550*time.Microsecond {
		t.Errorf("latency: %v %v %v", r.P50, r.P99, r.Max)
	}
	if got := int(r.RPS()); got != 39404 {
		t.Errorf("rps %d", got)
	}
}

func TestParseWrkRejectsPartialLine(t *testing.T) {
	if _, err := parseWrk("WRKRESULT requests=1 duration_us=2\n"); err == nil {
		t.Error("want error for missing fields")
	}
	if _, err := parseWrk("Requests/sec: 1\n"); err == nil {
		t.Error("want error without WRKRESULT")
	}
}

func TestWrkDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Second: "10s", 1500 * time.Millisecond: "2s", 0: "1s"} {
		if got := wrkDuration(d); got != want {
			t.Errorf("wrkDuration(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestParsePPID(t *testing.T) {
	ppid, ok := parsePPID([]byte("42 (a) b (c)) S 7 42 42 0 -1"))
	if !ok || ppid != 7 {
		t.Errorf("got %d %v, want 7", ppid, ok)
	}
}

func TestParseCPUTicks(t *testing.T) {
	tests := []struct {
		stat string
		want int64
		ok   bool
	}{
		{"1234 (wasmsrv) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 8 0", 287, true},
		{"99 (a (weird) name) R 1 99 99 0 -1 0 0 0 0 0 1 2 0 0", 3, true},
		{"5 (short) S 1 2", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseCPUTicks([]byte(tt.stat))
		if got != tt.want || ok != tt.ok {
			t.Errorf("%q: %d %v, want %d %v", tt.stat, got, ok, tt.want, tt.ok)
		}
	}
}

func TestTreeCPUSelf(t *testing.T) {
	// Burn a little CPU, then our own tree must show some.
	for start := time.Now(); time.Since(start) < 60*time.Millisecond; {
	}
	d, err := TreeCPU("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Errorf("TreeCPU of this test process: %v", d)
	}
}

// TestTreeRSS builds a fake /proc: 1 → 2 → 3, and 4 unrelated.
func TestTreeRSS(t *testing.T) {
	root := t.TempDir()
	proc := func(pid, ppid string, kb string) {
		dir := filepath.Join(root, pid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := pid + " (x) S " + ppid + " 0 0\n"
		status := "Name:\tx\nVmRSS:\t  " + kb + " kB\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	proc("1", "0", "100")
	proc("2", "1", "20")
	proc("3", "2", "3")
	proc("4", "0", "5000")
	rss, n, err := TreeRSS(root, 1)
	if err != nil {
		t.Fatal(err)
	}
	if rss != 123<<10 || n != 3 {
		t.Errorf("rss %d over %d procs, want %d over 3", rss, n, 123<<10)
	}
}

func TestTreeRSSSelf(t *testing.T) {
	rss, n, err := TreeRSS("/proc", os.Getpid())
	if err != nil || rss <= 0 || n < 1 {
		t.Errorf("rss %d, procs %d, err %v", rss, n, err)
	}
}

func result(name string, rps float64, p99 time.Duration, rss int64) Result {
	return Result{
		Server: Server{Name: name},
		Wrk:    WrkResult{Requests: int64(rps * 10), Duration: 10 * time.Second, P99: p99},
		RSS:    rss, Procs: 1,
	}
}

func TestTargets(t *testing.T) {
	results := []Result{
		result("wasmsrv", 90, 12*time.Millisecond, 30<<20),
		result("native", 100, 10*time.Millisecond, 10<<20),
		result("uvicorn", 50, 5*time.Millisecond, 90<<20),
		{Server: Server{Name: "gunicorn"}, Skipped: "skipped: gunicorn not installed"},
	}
	cases := []struct {
		t           Target
		known, met  bool
		wantPrefix  string
		wantContain string
	}{
		{rpsAtLeast("native", 0.9), true, true, "rps ≥ 0.90×", "0.90× ✓"},
		{p99AtMost("native", 1.1), true, false, "p99 ≤ 1.10×", "1.20× ✗"},
		{rpsAtLeast("uvicorn", 2), false, false, "rps ≥ 2.00×", "1.80× ✗"},
		{rpsAtLeast("gunicorn", 8), false, false, "rps ≥ 8.00×", "n/a"},
		{rssAtMost("wasmsrv", 40<<20), true, true, "RSS ≤ 40.0 MiB", "30.0 MiB ✓"},
	}
	cases[2].known = true
	for _, c := range cases {
		v := c.t.Check("wasmsrv", results)
		if v.Known != c.known || v.Met != c.met {
			t.Errorf("%s: known %v met %v, want %v %v", v, v.Known, v.Met, c.known, c.met)
		}
		if s := v.String(); !strings.HasPrefix(s, c.wantPrefix) || !strings.Contains(s, c.wantContain) {
			t.Errorf("verdict %q, want prefix %q containing %q", s, c.wantPrefix, c.wantContain)
		}
	}
}

func TestReport(t *testing.T) {
	sc := helloScenario()
	sec := Section{Scenario: sc, Load: sc.Load, Results: []Result{
		result("wasmsrv", 90000, 2*time.Millisecond, 30<<20),
		result("native", 100000, 2*time.Millisecond, 10<<20),
		{Server: Server{Name: "uvicorn"}, Skipped: "skipped: uvicorn not installed"},
		{Server: Server{Name: "gunicorn"}, Err: errors.New("wrong response: status 500 | boom")},
	}}
	var b strings.Builder
	if err := writeMarkdown(&b, Machine{}, []Section{sec}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| wasmsrv ", "90,000", "rps ≥ 0.90×: 0.90× ✓", "30.0 MiB (1)", "skipped: uvicorn not installed",
		"FAILED: wrong response: status 500 / boom", "Targets for wasmsrv met: 3 of 5.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	var width int
	for _, l := range lines {
		if strings.HasPrefix(l, "|") {
			if width == 0 {
				width = len([]rune(l))
			} else if len([]rune(l)) != width {
				t.Errorf("table rows not aligned: %q", l)
			}
		}
	}
}

func TestCatalogRejectsDuplicates(t *testing.T) {
	if _, err := catalog([]scenarioFunc{helloScenario, helloScenario}); err == nil {
		t.Error("want duplicate error")
	}
	all, err := catalog(registry())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := selectScenarios(all, []string{"nope"}); err == nil {
		t.Error("want unknown scenario error")
	}
}

func TestMergeLoad(t *testing.T) {
	base := Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second}
	got := mergeLoad(base, Load{Conns: 128, Duration: 3 * time.Second})
	want := Load{Threads: 1, Conns: 128, Duration: 3 * time.Second, Warmup: 2 * time.Second}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestFormatCount(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999.6: "1,000", 74213.2: "74,213", 1234567: "1,234,567"} {
		if got := formatCount(v); got != want {
			t.Errorf("formatCount(%v) = %s, want %s", v, got, want)
		}
	}
}

func TestMedian(t *testing.T) {
	runs := []Result{result("a", 300, 0, 1), result("a", 100, 0, 2), result("a", 200, 0, 3), result("a", 400, 0, 4)}
	if got := median(runs); got.RSS != 3 {
		t.Errorf("median picked rps %.0f, want 200", got.Wrk.RPS())
	}
	runs[1].Err = errors.New("boom")
	if got := median(runs); got.Err == nil {
		t.Error("a failed run must make the server fail")
	}
}

func TestCheckServerNames(t *testing.T) {
	scs := []Scenario{helloScenario()}
	if err := checkServerNames(scs, nameSet("wasmsrv, native")); err != nil {
		t.Error(err)
	}
	if err := checkServerNames(scs, nameSet("wasmsrv,ngnix")); err == nil {
		t.Error("want error for unknown server")
	}
}

func TestValidate(t *testing.T) {
	for _, f := range registry() {
		if sc := f(); validate(sc) != nil {
			t.Errorf("registered scenario %s: %v", sc.Name, validate(sc))
		}
	}
	dup := helloScenario()
	dup.Servers = append(dup.Servers, nativeServer())
	if validate(dup) == nil {
		t.Error("want error for duplicate server names")
	}
	badRef := helloScenario()
	badRef.Targets = append(badRef.Targets, rpsAtLeast("nginx", 1))
	if validate(badRef) == nil {
		t.Error("want error for a target on a server the scenario does not run")
	}
}
