package main

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// adminLine finds the admin listener's URL on a serving line ("(admin URL)").
var adminLine = regexp.MustCompile(`\(admin (https?://[^)\s]+)\)`)

// adminURL is the admin listener's URL from the server's serving line.
func adminURL(t testing.TB, s *server) string {
	t.Helper()
	m := adminLine.FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("no admin URL on the serving line: %q", s.stdout.String())
	}
	return m[1]
}

// adminGet sends GET path to the admin listener with the token ("" for none).
func adminGet(t testing.TB, base, token, path string) (*http.Response, string) {
	t.Helper()
	req := mustRequest(t, http.MethodGet, base+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, httpClient(t), req)
}

// `wasmsrv run --admin` serves the admin API beside the app: behind its token,
// with the app's pool in /status; without --admin the serving line says nothing
// of an admin and nothing more listens.
func TestE2ERunAdmin(t *testing.T) {
	srv := startServer(t, sample("hello"), "--admin", "127.0.0.1:0", "--admin-token", "s3cret", "--workers", "1")
	base := adminURL(t, srv)
	if resp, _ := adminGet(t, base, "", "/health"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", resp.StatusCode)
	}
	if resp, _ := adminGet(t, base, "wrong", "/health"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", resp.StatusCode)
	}
	if resp, body := adminGet(t, base, "s3cret", "/health"); resp.StatusCode != http.StatusOK {
		t.Errorf("/health: %d %s", resp.StatusCode, body)
	}
	if resp, body := get(t, httpClient(t), srv.URL+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("app: %d %s", resp.StatusCode, body)
	}
	resp, body := adminGet(t, base, "s3cret", "/status")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"hello"`) || !strings.Contains(body, `"served": 1`) {
		t.Errorf("/status: %d %s", resp.StatusCode, body)
	}
	req := mustRequest(t, http.MethodPost, base+"/reload", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	req.Header.Set("Wasmsrv-Admin", "1")
	if resp, body := do(t, httpClient(t), req); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "no config file") {
		t.Errorf("/reload: %d %s", resp.StatusCode, body)
	}

	plain := startServer(t, sample("hello"), "--workers", "1")
	if strings.Contains(plain.stdout.String(), "admin") {
		t.Errorf("run without --admin mentions an admin: %q", plain.stdout.String())
	}
}

// A non-loopback admin address without a token is refused before anything starts,
// naming the flag.
func TestE2ERunAdminNeedsToken(t *testing.T) {
	r := runWasmsrv(t, startTimeout, nil, "run", "--admin", "0.0.0.0:0", sample("hello"))
	if r.code == 0 || !strings.Contains(r.stderr, "admin-token") {
		t.Errorf("exit %d, stderr %q: want a usage error naming admin-token", r.code, r.stderr)
	}
}
