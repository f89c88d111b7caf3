package main

import (
	"net/http"
	"strings"
	"testing"
)

// `wasmsrv run` serves a plain WASI command CGI-style and says so; the Go sample is
// built as a command because it does not use the SDK.
func TestE2ECGI(t *testing.T) {
	for _, app := range []string{sample("c-cgi/main.wasm"), sample("cgi")} {
		t.Run(app, func(t *testing.T) {
			srv := startServer(t, app, "--workers", "2")
			if out := srv.stdout.String(); !strings.Contains(out, "(cgi mode)") {
				t.Errorf("stdout does not name CGI mode:\n%s", out)
			}
			c := httpClient(t)
			resp, body := do(t, c, mustRequest(t, http.MethodPost, srv.URL+"/a/b?status=202", strings.NewReader("hello")))
			if resp.StatusCode != http.StatusAccepted {
				t.Fatalf("status %d, want 202; body %q", resp.StatusCode, body)
			}
			for _, want := range []string{"REQUEST_METHOD=POST\n", "PATH_INFO=/a/b\n", "CONTENT_LENGTH=5\n", "body=5\nhello"} {
				if !strings.Contains(body, want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
			if resp.Header.Get("X-Cgi") != "1" {
				t.Errorf("X-Cgi header %q", resp.Header.Get("X-Cgi"))
			}
			// The command's stderr goes to the server log.
			srv.stop()
			if logs := srv.logs(); !strings.Contains(logs, "cgi: serving POST /a/b") {
				t.Errorf("command stderr not in the log:\n%s", tail(logs, 2000))
			}
		})
	}
}

// The C samples run under `wasmsrv run` in sync mode, answering like their Go twins.
func TestE2ESampleCHello(t *testing.T) {
	srv := startServer(t, sample("c-hello/main.wasm"), "--workers", "2")
	if out := srv.stdout.String(); !strings.Contains(out, "(sync mode)") {
		t.Errorf("stdout does not name sync mode:\n%s", out)
	}
	resp, body := get(t, httpClient(t), srv.URL+"/x?y")
	if resp.StatusCode != http.StatusOK || body != "Hello from wasmsrv!\n" ||
		resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.ContentLength != int64(len(body)) {
		t.Fatalf("status %d, Content-Type %q, Content-Length %d, body %q", resp.StatusCode,
			resp.Header.Get("Content-Type"), resp.ContentLength, body)
	}
}
