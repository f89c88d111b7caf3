package main

// Access logs and request ids through the real binary (issue 14): every field
// of a record, the request id from the client or made, hostile ids, the
// combined format read as goaccess reads it, the client behind a trusted
// proxy, the route/app/upstream of serve, WebSockets logged at the upgrade and
// at the close, and the id on the http plugin's outbound requests.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// logRecords returns the JSON log records whose msg is one of msgs.
func logRecords(t *testing.T, logs string, msgs ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Errorf("log line is not JSON: %q", sc.Text())
			continue
		}
		for _, m := range msgs {
			if r["msg"] == m {
				out = append(out, r)
			}
		}
	}
	return out
}

// recordFor returns the one "request" record with request_id id.
func recordFor(t *testing.T, logs, id string) map[string]any {
	t.Helper()
	var found []map[string]any
	for _, r := range logRecords(t, logs, "request") {
		if r["request_id"] == id {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d request records with request_id %q, want 1:\n%s", len(found), id, logs)
	}
	return found[0]
}

// checkFields compares the fields of rec named in want (numbers as JSON has them).
func checkFields(t *testing.T, rec map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		got, ok := rec[k]
		if n, isInt := v.(int); isInt {
			v = float64(n)
		}
		if !ok || got != v {
			t.Errorf("field %s = %v (present %v), want %v\nrecord: %v", k, got, ok, v, rec)
		}
	}
}

var generatedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// echoedHeader returns the value of header name in the echo sample's report.
func echoedHeader(t *testing.T, body, name string) []string {
	t.Helper()
	var rep struct {
		Headers [][2]string `json:"headers"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("echo report %q: %v", body, err)
	}
	var vals []string
	for _, h := range rep.Headers {
		if strings.EqualFold(h[0], name) {
			vals = append(vals, h[1])
		}
	}
	return vals
}

func TestE2EAccessLogFields(t *testing.T) {
	srv := startServer(t, sample("echo"), "--workers", "1", "--log-format", "json", "--access-log-query", "--buffer-body", "0")
	c := httpClient(t)

	// A request with its own id, a body, a query, a user agent and a referer;
	// X-Forwarded-For from a peer that is not a trusted proxy is not believed.
	req := mustRequest(t, "POST", srv.URL+"/x/y?q=1&token=abc", strings.NewReader("hello"))
	req.Header.Set("X-Request-ID", "req-123")
	req.Header.Set("User-Agent", "e2e-agent/1.0")
	req.Header.Set("Referer", "https://ref.example/page")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("POST: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "req-123" {
		t.Errorf("response X-Request-Id %q, want the client's req-123", got)
	}

	// Without an id the server makes one, the guest sees it, the client gets it.
	resp, body = get(t, c, srv.URL+"/z")
	id := resp.Header.Get("X-Request-Id")
	if !generatedID.MatchString(id) {
		t.Fatalf("generated X-Request-Id %q, want 32 hex digits", id)
	}
	if seen := echoedHeader(t, body, "x-request-id"); len(seen) != 1 || seen[0] != id {
		t.Errorf("the guest saw X-Request-ID %q, the client got %q", seen, id)
	}

	srv.stop() // flushes every record
	logs := srv.logs()
	rec := recordFor(t, logs, "req-123")
	checkFields(t, rec, map[string]any{"level": "INFO", "app": "echo", "client": "127.0.0.1", "host": srv.Addr,
		"method": "POST", "path": "/x/y", "query": "q=1&token=abc", "proto": "HTTP/1.1", "status": 200,
		"bytes_in": 5, "bytes_out": 5, "user_agent": "e2e-agent/1.0", "referer": "https://ref.example/page"})
	if took, ok := rec["took"].(float64); !ok || took <= 0 {
		t.Errorf("took = %v, want a positive duration", rec["took"])
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["time"])); err != nil {
		t.Errorf("time %v: %v", rec["time"], err)
	}
	rec = recordFor(t, logs, id)
	checkFields(t, rec, map[string]any{"method": "GET", "path": "/z", "status": 200, "bytes_in": 0})
	if _, ok := rec["query"]; ok {
		t.Errorf("a request without a query logged query %v", rec["query"])
	}
	if _, ok := rec["referer"]; ok {
		t.Errorf("a request without a referer logged one: %v", rec["referer"])
	}
}

// The query is not logged unless asked (it often carries tokens).
func TestE2EAccessLogQueryOffByDefault(t *testing.T) {
	srv := startServer(t, sample("hello"), "--workers", "1", "--log-format", "json")
	req := mustRequest(t, "GET", srv.URL+"/p?secret=hunter2", nil)
	req.Header.Set("X-Request-ID", "q-off")
	do(t, httpClient(t), req)
	srv.stop()
	rec := recordFor(t, srv.logs(), "q-off")
	if _, ok := rec["query"]; ok || strings.Contains(srv.logs(), "hunter2") {
		t.Errorf("the query reached the log without --access-log-query: %v", rec)
	}
}

// hostileIDs are X-Request-ID values a client must not get into the logs or
// back into a response: quotes and backslashes (a combined line's fields), a
// space, 10 KB, a control byte, non-ASCII, an obs-folded header (a line of its
// own after unfolding), a JSON fragment, two values.
var hostileIDs = []string{
	"a\"b", `a\b`, "a b", strings.Repeat("x", 10<<10), "a\x01b", "caf\xc3\xa9",
	"a\r\n\tX-Injected: 1", `"}` + "\n" + `{"msg":"forged"`, "ok-1\r\nX-Request-ID: ok-2",
}

// Each hostile id is replaced by a fresh one: in the response, in what the
// guest sees, and in the one log record of its request, in JSON and in the
// combined format alike.
func TestE2EAccessLogHostileRequestID(t *testing.T) {
	for _, format := range []string{"json", "combined"} {
		t.Run(format, func(t *testing.T) {
			args := []string{"--workers", "1", "--log-format", "json"}
			if format == "combined" {
				args = append(args, "--access-log-format", "combined")
			}
			srv := startServer(t, sample("echo"), args...)
			var ids []string
			sent := 0
			for _, bad := range hostileIDs {
				conn := dialRaw(t, srv.Addr)
				fmt.Fprintf(conn, "GET /h HTTP/1.1\r\nHost: %s\r\nX-Request-ID: %s\r\nConnection: close\r\n\r\n", srv.Addr, bad)
				resp, body := conn.readResponse(t, "GET")
				if resp.StatusCode == http.StatusBadRequest {
					// net/http refused the head itself (a control byte, a fold)
					// before any handler: no guest, no record, nothing injected.
					continue
				}
				sent++
				id := resp.Header.Get("X-Request-Id")
				if !generatedID.MatchString(id) {
					t.Errorf("X-Request-ID %.40q: response id %.60q, want a fresh one", bad, id)
					continue
				}
				if seen := echoedHeader(t, body, "x-request-id"); len(seen) != 1 || seen[0] != id {
					t.Errorf("X-Request-ID %.40q: the guest saw %.60q, the client got %q", bad, seen, id)
				}
				ids = append(ids, id)
			}
			srv.stop()
			if format == "json" {
				recs := logRecords(t, srv.logs(), "request")
				if len(recs) != sent {
					t.Errorf("%d request records for %d requests:\n%s", len(recs), sent, srv.logs())
				}
				for _, id := range ids {
					recordFor(t, srv.logs(), id)
				}
				if strings.Contains(srv.logs(), "forged") || strings.Contains(srv.logs(), "X-Injected") || strings.Contains(srv.logs(), "xxxxxxxxxx") {
					t.Errorf("a hostile id reached the log:\n%.2000s", srv.logs())
				}
				return
			}
			lines := combinedLines(t, srv.stdout.String())
			if len(lines) != sent {
				t.Errorf("%d combined lines for %d requests:\n%s", len(lines), sent, srv.stdout.String())
			}
			if strings.Contains(srv.stdout.String(), "forged") || strings.Contains(srv.stdout.String(), "X-Injected") {
				t.Errorf("a hostile id reached the access log:\n%s", srv.stdout.String())
			}
		})
	}
}

// combinedRE reads a combined line as goaccess's COMBINED format does
// (%h %^[%d:%t %^] "%r" %s %b "%R" "%u"), with nginx's \xHH escapes inside quotes.
var combinedRE = regexp.MustCompile(`^(\S+) - - \[(\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "((?:[^"\\]|\\x[0-9A-F]{2})*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\x[0-9A-F]{2})*)" "((?:[^"\\]|\\x[0-9A-F]{2})*)"$`)

// combinedLines returns the access-log lines of stdout (all but the serving
// line), failing on any that does not parse.
func combinedLines(t *testing.T, stdout string) [][]string {
	t.Helper()
	var out [][]string
	for _, line := range strings.Split(strings.TrimRight(stdout, "\n"), "\n") {
		if strings.HasPrefix(line, "wasmsrv: serving") || strings.HasPrefix(line, `{"`) || line == "" {
			continue
		}
		m := combinedRE.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a combined log line: %q", line)
			continue
		}
		out = append(out, m)
	}
	return out
}

func TestE2EAccessLogCombined(t *testing.T) {
	srv := startServer(t, sample("hello"), "--workers", "1", "--access-log-format", "combined", "--access-log-query")
	c := httpClient(t)
	req := mustRequest(t, "GET", srv.URL+"/a/b?c=d", nil)
	req.Header.Set("User-Agent", `Mozilla/5.0 "quoted" \ back`)
	req.Header.Set("Referer", "https://ref.example/")
	resp, body := do(t, c, req)
	req = mustRequest(t, "DELETE", srv.URL+"/gone", nil)
	req.Header.Del("User-Agent")
	req.Header.Set("User-Agent", "")
	do(t, c, req)
	srv.stop()
	lines := combinedLines(t, srv.stdout.String())
	if len(lines) != 2 {
		t.Fatalf("%d combined lines, want 2:\n%s", len(lines), srv.stdout.String())
	}
	m := lines[0]
	if _, err := time.Parse("02/Jan/2006:15:04:05 -0700", m[2]); err != nil {
		t.Errorf("time %q: %v", m[2], err)
	}
	want := []string{"127.0.0.1", "GET /a/b?c=d HTTP/1.1", fmt.Sprint(resp.StatusCode), fmt.Sprint(len(body)), "https://ref.example/",
		`Mozilla/5.0 \x22quoted\x22 \x5C back`}
	got := []string{m[1], m[3], m[4], m[5], m[6], m[7]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("combined fields\n got %q\nwant %q", got, want)
	}
	if m := lines[1]; m[3] != "DELETE /gone HTTP/1.1" || m[6] != "-" || m[7] != "-" {
		t.Errorf("second line %q: want the request and - for no referer and no user agent", m[0])
	}
	// The server's own records stay on stderr; nothing of the access log is there.
	if strings.Contains(srv.logs(), "msg=request") {
		t.Errorf("combined format also wrote records to stderr:\n%s", srv.logs())
	}
}

// serve: on by default; the client behind a trusted proxy; the route, app,
// upstream group and server; the id reaches the upstream server.
func TestE2EAccessLogServe(t *testing.T) {
	var mu sync.Mutex
	var upstreamIDs []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamIDs = append(upstreamIDs, r.Header.Values("X-Request-Id")...)
		mu.Unlock()
		w.Header().Set("X-Request-Id", "upstream-says-otherwise")
		fmt.Fprint(w, "from upstream")
	}))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	cfg := writeSite(t, fmt.Sprintf(`
[server]
trusted_proxies = ["127.0.0.1/32"]

[admin]
addr = ""

[[listeners]]
addr = "127.0.0.1:0"

[apps.echo]
package = %q

[upstreams.back]
servers = [{ url = %q }]

[[routes]]
path = "/app/"
app = "echo"

[[routes]]
hosts = ["up.example"]
path = "/up/"
upstream = "back"
`, sample("echo"), up.URL))
	srv := startWasmsrv(t, nil, cfg, "serve", "-c", cfg, "--cache-dir", e2eCache, "--log-format", "json")
	c := httpClient(t)
	req := mustRequest(t, "GET", srv.URL+"/app/x", nil)
	req.Header.Set("X-Request-ID", "serve-app-1")
	req.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.7")
	resp, _ := do(t, c, req)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /app/x: %d", resp.StatusCode)
	}
	req = mustRequest(t, "GET", srv.URL+"/up/y", nil)
	req.Host = "up.example"
	req.Header.Set("X-Request-ID", "serve-up-1")
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 || body != "from upstream" {
		t.Fatalf("GET /up/y: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "serve-up-1" {
		t.Errorf("response X-Request-Id %q: the request's id, not the upstream's", got)
	}
	srv.stop()
	mu.Lock()
	if len(upstreamIDs) != 1 || upstreamIDs[0] != "serve-up-1" {
		t.Errorf("the upstream saw X-Request-Id %q, want serve-up-1", upstreamIDs)
	}
	mu.Unlock()
	logs := srv.logs()
	checkFields(t, recordFor(t, logs, "serve-app-1"), map[string]any{"client": "203.0.113.7", "app": "echo", "route": "/app/",
		"path": "/app/x", "status": 200})
	rec := recordFor(t, logs, "serve-up-1")
	checkFields(t, rec, map[string]any{"client": "127.0.0.1", "upstream": "back", "server": upURL.Host, "route": "up.example/up/",
		"host": "up.example", "bytes_out": len("from upstream")})
	if _, ok := rec["app"]; ok {
		t.Errorf("an upstream route logged an app: %v", rec)
	}
}

// A WebSocket is logged at the upgrade (101) and once more at its close, with
// its duration and the bytes it carried.
func TestE2EAccessLogWebSocket(t *testing.T) {
	srv := startServer(t, sample("ws"), "--log-format", "json")
	hdr := http.Header{"X-Request-Id": {"ws-1"}}
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr+"/echo", hdr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "ws-1" {
		t.Errorf("101 X-Request-Id %q", got)
	}
	// The upgrade's record is out before the connection ends.
	waitLogUntil(t, srv, func(logs string) bool { return len(logRecords(t, logs, "request")) == 1 })
	msg := strings.Repeat("m", 1000)
	for range 3 {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := conn.ReadMessage(); err != nil || string(got) != msg {
			t.Fatalf("echo: %v %d bytes", err, len(got))
		}
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
	_, _, _ = conn.ReadMessage() // the server's close
	conn.Close()
	waitLogUntil(t, srv, func(logs string) bool { return len(logRecords(t, logs, "websocket closed")) == 1 })
	srv.stop()
	opened := logRecords(t, srv.logs(), "request")
	closed := logRecords(t, srv.logs(), "websocket closed")
	if len(opened) != 1 || len(closed) != 1 {
		t.Fatalf("%d request and %d close records, want 1 and 1:\n%s", len(opened), len(closed), srv.logs())
	}
	checkFields(t, opened[0], map[string]any{"status": 101, "path": "/echo", "request_id": "ws-1", "method": "GET"})
	checkFields(t, closed[0], map[string]any{"status": 101, "path": "/echo", "request_id": "ws-1"})
	// 3 frames of 1000 bytes each way, plus the handshake and the close frames.
	if in, _ := closed[0]["bytes_in"].(float64); in < 3000 {
		t.Errorf("bytes_in %v at close, want >= 3000", closed[0]["bytes_in"])
	}
	if out, _ := closed[0]["bytes_out"].(float64); out < 3000 {
		t.Errorf("bytes_out %v at close, want >= 3000", closed[0]["bytes_out"])
	}
	if a, b := opened[0]["took"].(float64), closed[0]["took"].(float64); b <= a {
		t.Errorf("took %v at close, not past the upgrade's %v", b, a)
	}
}

// waitLogUntil polls the server's log until ok (bounded).
func waitLogUntil(t *testing.T, srv *server, ok func(string) bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(srv.logs()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never got there:\n%s", srv.logs())
		}
	}
}

// The http plugin's outbound request carries the id of the request it serves.
func TestE2EFetchCarriesRequestID(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Values("X-Request-Id")...)
		mu.Unlock()
		fmt.Fprint(w, "upstream ok")
	}))
	defer up.Close()
	srv := startServer(t, sample("fetch"), "--workers", "1", "--grant", "http,config", "--var", "UPSTREAM="+up.URL+"/x",
		"--http-allow", "127.0.0.1")
	c := httpClient(t)
	req := mustRequest(t, "GET", srv.URL+"/", nil)
	req.Header.Set("X-Request-ID", "fetch-1")
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 || !strings.Contains(body, "upstream ok") {
		t.Fatalf("GET: %d %q\n%s", resp.StatusCode, body, srv.logs())
	}
	resp, _ = get(t, c, srv.URL+"/")
	made := resp.Header.Get("X-Request-Id")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "fetch-1" || seen[1] != made {
		t.Errorf("outbound X-Request-Id %q, want [fetch-1 %s]", seen, made)
	}
}

// run's --trusted-proxies: behind a trusted peer the client is the right-most
// untrusted X-Forwarded-For address; what the client wrote left of it is not
// believed, and a malformed entry falls back to the peer.
func TestE2EAccessLogRunTrustedProxy(t *testing.T) {
	srv := startServer(t, sample("hello"), "--workers", "1", "--log-format", "json", "--trusted-proxies", "127.0.0.1",
		"--trusted-proxies", "10.0.0.0/8")
	c := httpClient(t)
	for id, xff := range map[string]string{
		"tp-1": "203.0.113.9",
		"tp-2": "198.51.100.1, 203.0.113.7, 10.1.2.3", // a forged left-most entry, then a trusted hop
		"tp-3": "not-an-ip",
	} {
		req := mustRequest(t, "GET", srv.URL+"/", nil)
		req.Header.Set("X-Request-ID", id)
		req.Header.Set("X-Forwarded-For", xff)
		do(t, c, req)
	}
	srv.stop()
	for id, want := range map[string]string{"tp-1": "203.0.113.9", "tp-2": "203.0.113.7", "tp-3": "127.0.0.1"} {
		checkFields(t, recordFor(t, srv.logs(), id), map[string]any{"client": want})
	}
}

// A WebSocket proxied to an upstream server is logged as one of the apps': 101
// at the upgrade, again at the close with its bytes, with the upstream and
// server named; the upstream and the client both see the request's id.
func TestE2EAccessLogProxiedWebSocket(t *testing.T) {
	upgrader := websocket.Upgrader{}
	var mu sync.Mutex
	var upstreamID string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		upstreamID = r.Header.Get("X-Request-Id")
		mu.Unlock()
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, p, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, p); err != nil {
				return
			}
		}
	}))
	defer up.Close()
	upURL, _ := url.Parse(up.URL)
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = ""

[[listeners]]
addr = "127.0.0.1:0"

[upstreams.wsback]
servers = [{ url = %q }]

[[routes]]
path = "/"
upstream = "wsback"
`, up.URL))
	srv := startWasmsrv(t, nil, cfg, "serve", "-c", cfg, "--cache-dir", e2eCache, "--log-format", "json")
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+srv.Addr+"/sock", http.Header{"X-Request-Id": {"pws-1"}})
	if err != nil {
		t.Fatalf("dial through the proxy: %v\n%s", err, srv.logs())
	}
	if got := resp.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "pws-1" {
		t.Errorf("proxied 101 X-Request-Id %q", got)
	}
	msg := strings.Repeat("p", 2000)
	if err := conn.WriteMessage(websocket.BinaryMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := conn.ReadMessage(); err != nil || string(got) != msg {
		t.Fatalf("echo through the proxy: %v", err)
	}
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(5*time.Second))
	_, _, _ = conn.ReadMessage()
	conn.Close()
	waitLogUntil(t, srv, func(logs string) bool { return len(logRecords(t, logs, "websocket closed")) == 1 })
	srv.stop()
	mu.Lock()
	if upstreamID != "pws-1" {
		t.Errorf("the upstream saw X-Request-Id %q", upstreamID)
	}
	mu.Unlock()
	opened := logRecords(t, srv.logs(), "request")
	closed := logRecords(t, srv.logs(), "websocket closed")
	if len(opened) != 1 || len(closed) != 1 {
		t.Fatalf("%d request and %d close records:\n%s", len(opened), len(closed), srv.logs())
	}
	want := map[string]any{"status": 101, "request_id": "pws-1", "upstream": "wsback", "server": upURL.Host, "route": "/"}
	checkFields(t, opened[0], want)
	checkFields(t, closed[0], want)
	if in, _ := closed[0]["bytes_in"].(float64); in < 2000 {
		t.Errorf("bytes_in %v at close", closed[0]["bytes_in"])
	}
	if out, _ := closed[0]["bytes_out"].(float64); out < 2000 {
		t.Errorf("bytes_out %v at close", closed[0]["bytes_out"])
	}
}
