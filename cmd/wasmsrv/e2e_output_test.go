package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestE2EGuestOutputBudget floods the host log through the real server from every
// path a guest has into it (stdout and stderr of a sync guest, the log plugin with
// NUL-heavy records and attributes, the stderr of CGI commands and the stderr tail
// a failed command's report quotes), from two instances at once. What the server
// logs stays within the app's budget (--log-rate) plus its burst, no line is longer
// than the line cap, one warning per window says how much was dropped, and the
// server keeps serving.
func TestE2EGuestOutputBudget(t *testing.T) {
	const (
		rate   = 64 << 10
		burst  = 2 * rate // guestlog: max(2×rate, 2×MaxLine)
		window = 10 * time.Second
		maxLen = 16<<10 + 512 // guestlog.MaxLine plus the host's part of a record
	)
	testdata := filepath.Join(samplesDir, "..", "runtime", "testdata", "flood")
	tests := []struct {
		name, module, path, format string
		status                     int
	}{
		{"stdio", "flood.wasm", "/stdio", "text", 200},
		{"log-plugin", "flood.wasm", "/log", "json", 200},
		{"cgi-stderr", "cgi-flood.wasm", "/", "text", 200},
		{"cgi-failure-tail", "cgi-fail.wasm", "/", "json", 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, filepath.Join(testdata, tc.module), "--log-rate", strconv.Itoa(rate),
				"--access-log=false", "--workers", "2", "--log-format", tc.format, "--timeout", "60s")
			c := httpClient(t)
			before := len(srv.logs())
			start := time.Now()
			var wg sync.WaitGroup
			var mu sync.Mutex
			requests := 0
			for range 2 { // two instances (or two CGI runs) share the budget
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 200 && time.Since(start) < 2*time.Second; i++ {
						resp, body := get(t, c, srv.URL+tc.path)
						if resp.StatusCode != tc.status {
							t.Errorf("%s: %d %q", tc.path, resp.StatusCode, body)
							return
						}
						mu.Lock()
						requests++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			took := time.Since(start)
			logged := len(srv.logs()) - before
			limit := burst + int(float64(rate)*(took.Seconds()+1))
			if tc.status == 500 {
				// The host's own report of each failed request (like an access log
				// line) is not guest output; only the stderr it quotes is.
				limit += requests * 400
			}
			if logged > limit {
				t.Errorf("%d requests in %s put %d bytes into the log; the budget allows %d", requests, took, logged, limit)
			}
			t.Logf("%d requests in %s: %d bytes logged (budget %d bytes/s)", requests, took.Round(time.Millisecond), logged, rate)
			if tc.module == "flood.wasm" {
				// Still serving, promptly.
				okStart := time.Now()
				if resp, _ := get(t, c, srv.URL+"/ok"); resp.StatusCode != 200 {
					t.Errorf("/ok after the flood: %d", resp.StatusCode)
				}
				if d := time.Since(okStart); d > 5*time.Second {
					t.Errorf("/ok after the flood took %s", d)
				}
			}
			if code := srv.stop(); code != 0 {
				t.Errorf("exit code %d", code)
			}
			total := time.Since(start)
			logs := srv.logs()
			for _, line := range strings.Split(logs, "\n") {
				if len(line) > maxLen {
					t.Errorf("a log line of %d bytes: %.200q…", len(line), line)
					break
				}
			}
			reports := dropReport.FindAllStringSubmatch(logs, -1)
			if len(reports) == 0 || len(reports) > int(total/window)+1 {
				t.Fatalf("%d drop reports in %s (one per %s window wanted)\n%s", len(reports), total, window, tail(logs, 2000))
			}
			if n, _ := strconv.Atoi(reports[0][1]); n == 0 {
				t.Errorf("report without drops: %s", reports[0][0])
			}
			if tc.name == "cgi-failure-tail" && !strings.Contains(logs, "left out: over the app's log budget") {
				t.Errorf("no failure report had its stderr tail left out:\n%s", tail(logs, 2000))
			}
		})
	}
}

var dropReport = regexp.MustCompile(`guest output over the app's log budget: lines dropped.*?dropped_lines"?[=:](\d+)`)

// TestServeOutputBudgetIsPerApp: in one `wasmsrv serve` site, an app that spends
// its budget (apps.NAME.log_rate) takes nothing from another app's: the quiet app's
// lines still reach the log while the first one floods.
func TestServeOutputBudgetIsPerApp(t *testing.T) {
	wasm := filepath.Join(samplesDir, "..", "runtime", "testdata", "flood", "flood.wasm")
	cfg := filepath.Join(t.TempDir(), "site.toml")
	site := fmt.Sprintf(`[admin]
addr = "127.0.0.1:0"
[[listeners]]
addr = "127.0.0.1:0"
[apps.loud]
module = %[1]q
pool_size = 2
log_rate = "16KiB"
[apps.quiet]
module = %[1]q
pool_size = 1
[[routes]]
path = "/loud"
app = "loud"
[[routes]]
path = "/quiet"
app = "quiet"
`, wasm)
	if err := os.WriteFile(cfg, []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServe(t, cfg)
	url := srv.URL
	c := httpClient(t)
	for range 4 {
		if resp, _ := get(t, c, url+"/loud/stdio"); resp.StatusCode != 200 {
			t.Fatalf("/loud/stdio: %d", resp.StatusCode)
		}
	}
	before := len(srv.logs())
	if resp, _ := get(t, c, url+"/quiet/stdio"); resp.StatusCode != 200 {
		t.Fatalf("/quiet/stdio: %d", resp.StatusCode)
	}
	if got := srv.logs()[before:]; !regexp.MustCompile(`app=quiet instance=\d+ stream=std(err|out) truncated_bytes`).MatchString(got) {
		t.Errorf("the quiet app's lines did not reach the log after the loud one spent its budget:\n%s", tail(got, 1000))
	}
	if code := srv.stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !regexp.MustCompile(`lines dropped" app=loud`).MatchString(srv.logs()) {
		t.Errorf("no drop report for the loud app:\n%s", tail(srv.logs(), 2000))
	}
}
