package route

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func named(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s path=%s root=%s", name, r.URL.Path, RootPath(r.Context()))
	})
}

func TestRouting(t *testing.T) {
	rt := New([]Route{
		{Prefix: "/", Handler: named("default")},
		{Prefix: "/api", Strip: true, Handler: named("api")},
		{Prefix: "/api/v2/", Strip: true, Handler: named("v2")},
		{Hosts: []string{"*.example.com"}, Prefix: "/", Handler: named("wild")},
		{Hosts: []string{"shop.example.com"}, Prefix: "/", Handler: named("shop")},
		{Prefix: "/admin", Methods: []string{"GET"}, Handler: named("admin")},
		{Prefix: "/raw", Handler: named("raw")},
	})
	srv := httptest.NewServer(rt)
	defer srv.Close()
	tests := []struct {
		method, host, path string
		code               int
		body               string
	}{
		{"GET", "localhost", "/", 200, "default path=/ root="},
		{"GET", "localhost", "/api", 200, "api path=/ root=/api"},
		{"GET", "localhost", "/api/users?x=1", 200, "api path=/users root=/api"},
		{"GET", "localhost", "/apix", 200, "default path=/apix root="},
		{"GET", "localhost", "/api/v2/x", 200, "v2 path=/x root=/api/v2"},
		{"GET", "a.b.example.com", "/api", 200, "wild path=/api root="},
		{"GET", "example.com", "/", 200, "default path=/ root="},
		{"GET", "SHOP.example.com:8080", "/", 200, "shop path=/ root="},
		{"GET", "localhost", "/admin/x", 200, "admin path=/admin/x root="},
		{"POST", "localhost", "/admin/x", 405, "405 method not allowed"}, // not to "/": the most specific route decides
		{"HEAD", "localhost", "/admin/x", 200, ""},                       // GET allows HEAD
		{"GET", "localhost", "/raw/a", 200, "raw path=/raw/a root="},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.host+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			req.Host = tt.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.code || string(b)[:min(len(b), len(tt.body))] != tt.body {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, b, tt.code, tt.body)
			}
		})
	}
}

func TestMethodNotAllowedAndNotFound(t *testing.T) {
	rt := New([]Route{
		{Hosts: []string{"a.test"}, Prefix: "/w", Methods: []string{"GET", "HEAD"}, Handler: named("w")},
		{Prefix: "/", Handler: named("catch-all")},
		{Prefix: "/api", Methods: []string{"GET"}, Handler: named("api-read")},
		{Prefix: "/api", Methods: []string{"POST", "PUT"}, Handler: named("api-write")},
		{Prefix: "/api/admin", Methods: []string{"DELETE"}, Handler: named("admin")},
		{Hosts: []string{"*.b.test"}, Prefix: "/", Methods: []string{"OPTIONS"}, Handler: named("wild")},
	})
	for _, tt := range []struct {
		method, host, path string
		code               int
		body, allow        string
	}{
		{"POST", "a.test", "/w", 405, "", "GET, HEAD"},
		{"GET", "b.test", "/w", 200, "catch-all", ""},
		{"GET", "a.test", "/x", 200, "catch-all", ""},
		{"HEAD", "a.test", "/w/1", 200, "", ""},
		{"GET", "c.test", "/api/x", 200, "api-read", ""},
		{"HEAD", "c.test", "/api/x", 200, "", ""},
		{"PUT", "c.test", "/api/x", 200, "api-write", ""},
		{"PATCH", "c.test", "/api/x", 405, "", "GET, HEAD, POST, PUT"},
		{"GET", "c.test", "/api/admin/1", 405, "", "DELETE"},
		{"DELETE", "c.test", "/api/admin/1", 200, "admin", ""},
		{"GET", "x.b.test", "/api", 405, "", "OPTIONS"}, // the wildcard host outranks the any-host prefix
	} {
		req := httptest.NewRequest(tt.method, "http://"+tt.host+tt.path, nil)
		rec := httptest.NewRecorder()
		rt.ServeHTTP(rec, req)
		if rec.Code != tt.code || tt.method != "HEAD" && !strings.HasPrefix(rec.Body.String(), tt.body) {
			t.Errorf("%s %s%s: %d %q, want %d %q", tt.method, tt.host, tt.path, rec.Code, rec.Body.String(), tt.code, tt.body)
		}
		if got := rec.Header().Get("Allow"); got != tt.allow {
			t.Errorf("%s %s%s: Allow %q, want %q", tt.method, tt.host, tt.path, got, tt.allow)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	rt := New([]Route{
		{Prefix: "/", Handler: named("d")},
		{Prefix: "/api", Handler: named("a")},
		{Hosts: []string{"*.example.com"}, Prefix: "/static", Handler: named("s")},
	})
	req := httptest.NewRequest("GET", "http://x.example.com/api/users", nil)
	b.ReportAllocs()
	for b.Loop() {
		if r, _ := rt.Match(req); r == nil {
			b.Fatal("no match")
		}
	}
}

func TestHostOf(t *testing.T) {
	for _, host := range []string{"example.com", "Example.COM:8080", "example.com.", "127.0.0.1:80", "[::1]:8080", "[::1]", "::1", "", "a:b:c"} {
		want := host
		if h, _, err := net.SplitHostPort(host); err == nil {
			want = h
		}
		want = strings.ToLower(strings.TrimSuffix(want, "."))
		if got := HostOf(&http.Request{Host: host}); got != want {
			t.Errorf("HostOf(%q) = %q, want %q (as net.SplitHostPort)", host, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { HostOf(&http.Request{Host: "example.com"}) }); n != 0 {
		t.Errorf("HostOf allocates %v times for a Host without port", n)
	}
}
