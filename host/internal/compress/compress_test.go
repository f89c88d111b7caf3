package compress

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func TestCompress(t *testing.T) {
	mw, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("hello compressible world ", 200)
	mux := http.NewServeMux()
	mux.HandleFunc("/text", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, text)
	})
	mux.HandleFunc("/png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		io.WriteString(w, text)
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "tiny")
	})
	mux.HandleFunc("/pre", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Encoding", "br")
		io.WriteString(w, text)
	})
	srv := httptest.NewServer(mw(mux))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	tests := []struct {
		path, accept, wantEnc string
	}{
		{"/text", "gzip", "gzip"},
		{"/text", "zstd", "zstd"},
		{"/text", "gzip, zstd", "zstd"},
		{"/text", "", ""},
		{"/text", "br", ""},
		{"/png", "gzip", ""},
		{"/small", "gzip", ""},
		{"/pre", "gzip", "br"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.accept, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Encoding", tt.accept)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantEnc {
				t.Fatalf("Content-Encoding %q want %q", got, tt.wantEnc)
			}
			var body []byte
			switch tt.wantEnc {
			case "gzip":
				zr, err := gzip.NewReader(bytes.NewReader(raw))
				if err != nil {
					t.Fatal(err)
				}
				body, _ = io.ReadAll(zr)
			case "zstd":
				zr, _ := zstd.NewReader(bytes.NewReader(raw))
				body, _ = io.ReadAll(zr)
				zr.Close()
			default:
				body = raw
			}
			if tt.path == "/text" && string(body) != text {
				t.Errorf("round trip mismatch (%d bytes)", len(body))
			}
			if tt.wantEnc == "gzip" || tt.wantEnc == "zstd" {
				if len(raw) >= len(text)/4 {
					t.Errorf("poor compression: %d of %d", len(raw), len(text))
				}
				if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
					t.Error("no Vary: Accept-Encoding")
				}
			}
		})
	}
}

// Handlers behind the middleware that name Accept-Encoding in Vary themselves (a
// static file with precompressed siblings, an upstream or app answering with
// "Vary: Accept-Encoding", a cached answer) must not end up with it twice: the
// wrapper adds its own before the handler runs.
func TestVaryOnce(t *testing.T) {
	mw, err := New(0)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("hello compressible world ", 200)
	handler := func(vary ...string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for _, v := range vary {
				w.Header().Add("Vary", v)
			}
			if r.URL.Query().Get("small") != "" {
				io.WriteString(w, "tiny") // below the minimum size: passed through
				return
			}
			if r.URL.Query().Get("status") != "" {
				w.WriteHeader(http.StatusNotFound)
			}
			io.WriteString(w, text)
		})
	}
	tests := []struct {
		name  string
		vary  []string
		query string
		want  []string // the Vary tokens, in order
	}{
		{"none", nil, "", []string{"Accept-Encoding"}},
		{"same", []string{"Accept-Encoding"}, "", []string{"Accept-Encoding"}},
		{"lower case", []string{"accept-encoding"}, "", []string{"Accept-Encoding"}},
		{"in a list", []string{"Origin, Accept-Encoding"}, "", []string{"Accept-Encoding", "Origin"}},
		{"two lines", []string{"Accept-Encoding", "Accept-Encoding"}, "", []string{"Accept-Encoding"}},
		{"others kept", []string{"Origin", "Accept-Language"}, "", []string{"Accept-Encoding", "Origin", "Accept-Language"}},
		{"small body", []string{"Accept-Encoding"}, "small=1", []string{"Accept-Encoding"}},
		{"status first", []string{"Accept-Encoding"}, "status=1", []string{"Accept-Encoding"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(mw(handler(tt.vary...)))
			defer srv.Close()
			req, _ := http.NewRequest("GET", srv.URL+"/?"+tt.query, nil)
			req.Header.Set("Accept-Encoding", "gzip")
			resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			var got []string
			for _, v := range resp.Header.Values("Vary") {
				for tok := range strings.SplitSeq(v, ",") {
					if tok = strings.TrimSpace(tok); tok != "" {
						got = append(got, http.CanonicalHeaderKey(tok))
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Vary tokens %q (header %q), want %q", got, resp.Header.Values("Vary"), tt.want)
			}
		})
	}
}
