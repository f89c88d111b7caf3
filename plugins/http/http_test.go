package http

import (
	"errors"
	"log/slog"
	nethttp "net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func newTestApp(t *testing.T, allow ...string) *appHTTP {
	t.Helper()
	a, tr, err := newApp(Config{Allow: allow}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return a
}

// TestControlChecksTheDialledAddress: whatever name the guest asked for and
// whatever DNS answered, the transport dials only addresses the list allows for a
// resolved name: public ones, or those an entry lists (with its port).
func TestControlChecksTheDialledAddress(t *testing.T) {
	a := newTestApp(t, "api.example.com", "10.0.0.5:6379")
	for _, c := range []struct {
		addr string
		ok   bool
	}{
		{"93.184.215.14:443", true},
		{"[2606:4700::1111]:443", true},
		{"127.0.0.1:443", false},
		{"[::1]:443", false},
		{"[::ffff:127.0.0.1]:443", false},
		{"169.254.169.254:80", false},
		{"[fe80::1%eth0]:80", false},
		{"[64:ff9b::a9fe:a9fe]:80", false},
		{"10.0.0.5:6379", true},
		{"10.0.0.5:6380", false},
		{"not-an-address:80", false},
	} {
		err := a.control("tcp", c.addr, nil)
		if (err == nil) != c.ok || err != nil && !errors.Is(err, errDenied) {
			t.Errorf("control(%s) = %v, want allowed=%v", c.addr, err, c.ok)
		}
	}
}

// TestNameResolvingToLoopbackIsRefused is DNS rebinding with a real resolver: the
// operator allows a name ("localhost" here, any name an attacker controls the DNS
// of in general) and it resolves to the host's own loopback. The request fails
// with the allow list's error before a connection is made, until the operator lists
// the address itself.
func TestNameResolvingToLoopbackIsRefused(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		hits.Add(1)
		if r.URL.Path == "/redirect" {
			nethttp.Redirect(w, r, r.URL.Query().Get("to"), nethttp.StatusFound)
			return
		}
		w.Write([]byte("inside"))
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port := u.Port()

	byName := newTestApp(t, "localhost:"+port)
	if !byName.allowsURL(&url.URL{Scheme: "http", Host: "localhost:" + port}) {
		t.Fatal("the name itself is not allowed: the test tests nothing")
	}
	if resp, err := byName.client.Get("http://localhost:" + port + "/"); err == nil || !errors.Is(err, errDenied) {
		if resp != nil {
			resp.Body.Close()
		}
		t.Fatalf("a listed name resolving to loopback was reached (err %v)", err)
	}
	if hits.Load() != 0 {
		t.Fatalf("the server saw %d requests", hits.Load())
	}

	listed := newTestApp(t, "localhost:"+port, "127.0.0.1:"+port, "[::1]:"+port)
	resp, err := listed.client.Get("http://localhost:" + port + "/")
	if err != nil {
		t.Fatalf("with the address listed: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || hits.Load() != 1 {
		t.Fatalf("with the address listed: status %d, %d hits", resp.StatusCode, hits.Load())
	}

	// A redirect to a name that is not allowed is not followed.
	byIP := newTestApp(t, "127.0.0.1:"+port)
	resp, err = byIP.client.Get(srv.URL + "/redirect?to=" + url.QueryEscape("http://elsewhere.test:"+port+"/"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("followed a redirect to a host that is not allowed")
	}
	if !errors.Is(err, errDenied) || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("redirect error %v, want the allow list's", err)
	}
}
