package reqtmpl

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/host/internal/route"
)

func TestRender(t *testing.T) {
	r := httptest.NewRequest("HEAD", "http://Example.COM/api/x%20y?b=2", nil)
	r.RemoteAddr = "10.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	r.Header.Set("Accept-Language", "de")
	r.AddCookie(&http.Cookie{Name: "sid", Value: "s1"})
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		tmpl string
		v    Vars
		want string
	}{
		{"{scheme}://{host}{uri}", Vars{}, "http://example.com/api/x%20y?b=2"},
		{"{method} {path} ? {query}", Vars{}, "HEAD /api/x%20y ? b=2"},
		{"{method}", Vars{HeadAsGet: true}, "GET"},
		{"{client_ip}", Vars{}, "10.0.0.1"},
		{"{client_ip}", Vars{Trusted: trusted}, "203.0.113.7"},
		{"lang={header:Accept-Language};sid={cookie:sid};none={cookie:nope}", Vars{}, "lang=de;sid=s1;none="},
		{`{{"group":"{host}"}}`, Vars{}, `{"group":"example.com"}`},
		{"plain", Vars{}, "plain"},
		{"", Vars{}, ""},
	}
	for _, tt := range tests {
		tm, err := Compile(tt.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", tt.tmpl, err)
		}
		if got := tm.String(r, tt.v); got != tt.want {
			t.Errorf("%q = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
	r.TLS = &tls.ConnectionState{}
	if tm, _ := Compile("{scheme}"); tm.String(r, Vars{}) != "https" {
		t.Error("scheme over TLS")
	}
}

// {path} and {uri} are what the client sent, before a route stripped its
// prefix: /a/x and /b/x must not render alike.
func TestPathBeforeStripping(t *testing.T) {
	var got []string
	tm, _ := Compile("{path}|{uri}")
	h := route.New([]route.Route{
		{Prefix: "/a", Strip: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, tm.String(r, Vars{})) })},
		{Prefix: "/b", Strip: true, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = append(got, tm.String(r, Vars{})) })},
	})
	for _, p := range []string{"/a/x?q=1", "/b/x?q=1"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	if strings.Join(got, " ") != "/a/x|/a/x?q=1 /b/x|/b/x?q=1" {
		t.Errorf("got %q", got)
	}
}

func TestCompileErrors(t *testing.T) {
	for tmpl, want := range map[string]string{
		"{nope}":     "unknown variable {nope}",
		"{host:x}":   "unknown variable {host:x}",
		"{header}":   "needs a name",
		"{header:}":  "needs a name",
		"{host":      "unclosed {",
		"a}b":        "unbalanced }",
		`{"json":1}`: `unknown variable {"json"`,
	} {
		if _, err := Compile(tmpl); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err %v, want %q", tmpl, err, want)
		}
	}
}

func TestLiteral(t *testing.T) {
	for tmpl, want := range map[string]bool{"max-age=60": true, "": true, "{{x}}": true, "{host}": false, "a{host}": false} {
		tm, err := Compile(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := tm.Literal(); ok != want {
			t.Errorf("%q literal = %v", tmpl, ok)
		}
	}
}
