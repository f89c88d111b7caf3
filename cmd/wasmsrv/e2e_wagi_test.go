package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

var wagiModule = filepath.Join("..", "..", "host", "testdata", "cgi", "wagi.wasm")

// A module written for WAGI runs unchanged: its argv is WAGI's (the request
// path, then the query's pairs), its environment has WAGI's and Spin's
// variables; --argv sets another template.
func TestE2EWAGIRun(t *testing.T) {
	srv := startServer(t, wagiModule, "--workers", "1")
	c := httpClient(t)
	_, body := get(t, c, srv.URL+"/env?greet=matt&foo=bar")
	for _, want := range []string{
		"arg: /env\narg: greet=matt\narg: foo=bar\n",
		"\nX_MATCHED_ROUTE=/...\n", "\nX_COMPONENT_ROUTE=/\n", "\nX_BASE_PATH=/\n",
		"\nX_FULL_URL=" + srv.URL + "/env?greet=matt&foo=bar\n",
		"\nX_RAW_PATH_INFO=/env\n", "\nPATH_INFO=/env\n", "\nQUERY_STRING=greet=matt&foo=bar\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if strings.Count(body, "arg: ") != 3 {
		t.Errorf("argv is not 3 arguments:\n%s", body)
	}

	srv = startServer(t, wagiModule, "--workers", "1", "--argv", "ruby -v /lib/hello.rb ${SCRIPT_NAME} ${ARGS}")
	_, body = get(t, c, srv.URL+"/a%20b?x=1")
	if !strings.HasPrefix(body, "arg: ruby\narg: -v\narg: /lib/hello.rb\narg: /a%20b\narg: x=1\n") {
		t.Errorf("--argv template: body:\n%s", body)
	}
}

// Under serve, the route's prefix is the matched route, the app's argv its own.
func TestE2EWAGIServe(t *testing.T) {
	mod, err := filepath.Abs(wagiModule)
	if err != nil {
		t.Fatal(err)
	}
	cfg := writeSite(t, fmt.Sprintf(`
[admin]
addr = ""
[[listeners]]
addr = "127.0.0.1:0"
[apps.wagi]
module = %q
pool_size = 1
argv = "wagi ${ARGS}"
[[routes]]
path = "/wagi"
app = "wagi"
`, mod))
	s := startServe(t, cfg)
	resp, body := get(t, httpClient(t), s.URL+"/wagi/x/y?a=1&b=2")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	for _, want := range []string{
		"arg: wagi\narg: a=1\narg: b=2\n",
		"\nX_MATCHED_ROUTE=/wagi/...\n", "\nX_RAW_COMPONENT_ROUTE=/wagi/...\n", "\nX_COMPONENT_ROUTE=/wagi\n",
		"\nX_FULL_URL=" + s.URL + "/wagi/x/y?a=1&b=2\n", "\nSCRIPT_NAME=/wagi\n", "\nPATH_INFO=/x/y\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
}
