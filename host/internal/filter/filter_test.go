package filter

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

func TestFilter(t *testing.T) {
	rules := []Rule{
		{Name: "no-trace", Methods: []string{"TRACE"}},
		{Name: "no-dotfiles", Path: `/\.(git|env)`},
		{Name: "bad-bots", Header: "User-Agent", HeaderPattern: `(?i)sqlmap|nikto`},
		{Name: "intranet-admin", Path: `^/admin`, CIDRs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Status: 404},
		{Name: "post-upload-from-x", Methods: []string{"POST"}, Path: `^/upload`, Header: "X-Blocked"},
	}
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tests := []struct {
		method, path string
		hdr          []string
		code         int
	}{
		{"GET", "/", nil, 200},
		{"TRACE", "/", nil, 403},
		{"GET", "/.git/config", nil, 403},
		{"GET", "/x", []string{"User-Agent", "SQLMap/1.0"}, 403},
		{"GET", "/x", []string{"User-Agent", "curl/8"}, 200},
		{"GET", "/admin", []string{"X-Forwarded-For", "198.51.100.7"}, 404},
		{"GET", "/admin", []string{"X-Forwarded-For", "203.0.113.1"}, 200},
		{"POST", "/upload", []string{"X-Blocked", "1"}, 403},
		{"POST", "/upload", nil, 200},
		{"GET", "/upload", []string{"X-Blocked", "1"}, 200},
	}
	for _, dry := range []bool{false, true} {
		var logs bytes.Buffer
		f, err := New(rules, dry, trusted, nil, ok, slog.New(slog.NewTextHandler(&logs, nil)))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(f)
		for _, tt := range tests {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			for i := 0; i+1 < len(tt.hdr); i += 2 {
				req.Header.Set(tt.hdr[i], tt.hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			want := tt.code
			if dry {
				want = 200
			}
			if resp.StatusCode != want {
				t.Errorf("dry=%v %s %s %v: %d want %d", dry, tt.method, tt.path, tt.hdr, resp.StatusCode, want)
			}
		}
		srv.Close()
		if dry && !strings.Contains(logs.String(), "filter would deny") {
			t.Error("dry run logged nothing")
		}
	}
	if _, err := New([]Rule{{Name: "bad", Path: "("}}, false, nil, nil, ok, slog.Default()); err == nil || !strings.Contains(err.Error(), "bad") {
		t.Errorf("bad pattern: %v", err)
	}
}
