package admin

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestProfiles(t *testing.T) {
	srv := httptest.NewServer(Handler(&fake{}, Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	tests := []struct {
		path string
		code int
		body string // substring of the text answer, or "gzip" for a pprof protobuf
	}{
		{"/debug/pprof/", 200, "goroutine"},
		{"/debug/pprof/goroutine?debug=1", 200, "goroutine profile: total"},
		{"/debug/pprof/heap", 200, "gzip"},
		{"/debug/pprof/heap?gc=1", 200, "gzip"},
		{"/debug/pprof/allocs", 200, "gzip"},
		{"/debug/pprof/profile?seconds=0.2", 200, "gzip"},
		{"/debug/pprof/trace?seconds=0.1", 200, "go 1."},
		{"/debug/pprof/nosuch", 404, "no profile"},
		{"/debug/pprof/profile?seconds=x", 400, "seconds"},
		{"/debug/pprof/profile?seconds=3600", 400, "seconds"},
	}
	for _, tt := range tests {
		code, body := call(t, "GET", srv.URL+tt.path, "")
		if code != tt.code {
			t.Errorf("%s: %d, want %d (%.80q)", tt.path, code, tt.code, body)
			continue
		}
		if tt.body == "gzip" {
			if _, err := pprofData(body); err != nil {
				t.Errorf("%s: not a pprof profile: %v", tt.path, err)
			}
		} else if !strings.Contains(body, tt.body) {
			t.Errorf("%s: %.80q lacks %q", tt.path, body, tt.body)
		}
	}
}

// pprofData unzips a profile as `go tool pprof` would.
func pprofData(body string) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader([]byte(body)))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// Two CPU profiles at once: the second is refused, not interleaved.
func TestProfileConflict(t *testing.T) {
	srv := httptest.NewServer(Handler(&fake{}, Config{Addr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	codes := make([]int, 2)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			resp, err := http.Get(srv.URL + "/debug/pprof/profile?seconds=0.5")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		})
	}
	wg.Wait()
	if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
		t.Errorf("codes %v, want one 200 and one 409", codes)
	}
}

func TestProfilesNeedToken(t *testing.T) {
	srv := httptest.NewServer(Handler(&fake{}, Config{Addr: "127.0.0.1:0", Token: "s3cret"}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	if code, _ := call(t, "GET", srv.URL+"/debug/pprof/heap", ""); code != 401 {
		t.Errorf("without token: %d, want 401", code)
	}
	if code, _ := call(t, "GET", srv.URL+"/debug/pprof/heap", "s3cret"); code != 200 {
		t.Errorf("with token: %d, want 200", code)
	}
}
