package plugins_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/plugins"
)

func TestHTTPAllowListTimeoutAndSize(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "/big":
			w.Write([]byte(strings.Repeat("x", 2000)))
		default:
			w.Write([]byte("upstream says hi"))
		}
	}))
	defer up.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("secret")) }))
	defer other.Close()
	upHost := strings.TrimPrefix(up.URL, "http://")
	port := upHost[strings.LastIndexByte(upHost, ':')+1:]

	reg := testRegistry(t, "", "")
	defer reg.Close()
	grants := allGrants()
	grants["http"] = plugins.Section{"allow": []string{upHost, "localhost"}, "timeout": "300ms", "max_response": 1000}
	s := serve(t, reg, "out", guest, grants, 1)
	q := func(u string) string { return s.url + "/fetch?url=" + url.QueryEscape(u) }

	want(t, q(up.URL+"/"), "200 upstream says hi")
	// Same address, another port: not listed.
	want(t, q(other.URL+"/"), "ERR_DENIED")
	// A listed name that resolves to loopback: private addresses need an IP entry
	// (the upstream's port has one, the other server's does not).
	want(t, q("http://localhost:"+port+"/"), "200 upstream says hi")
	want(t, q("http://localhost:"+other.URL[strings.LastIndexByte(other.URL, ':')+1:]+"/"), "ERR_DENIED")
	// Not http(s), or credentials in the URL.
	want(t, q("file:///etc/passwd"), "ERR_BAD_ARGUMENT")
	start := time.Now()
	want(t, q(up.URL+"/slow"), "ERR_TIMEOUT")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %s", d)
	}
	want(t, q(up.URL+"/big"), "ERR_TOO_LARGE")

	// An app without the allow list reaches nothing.
	bare := serve(t, reg, "bare", guest, allGrants(), 1)
	want(t, bare.url+"/fetch?url="+url.QueryEscape(up.URL+"/"), "ERR_DENIED")
}

// subscriber opens a streaming /sub request and returns its lines as they arrive,
// after the guest reported it subscribed.
func subscriber(t *testing.T, base, topic string, n int) <-chan string {
	t.Helper()
	resp, err := http.Get(base + "/sub?t=" + url.QueryEscape(topic) + "&n=" + itoa(n))
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() || sc.Text() != "subscribed" {
		t.Fatalf("subscriber: %q %v", sc.Text(), sc.Err())
	}
	go func() {
		defer resp.Body.Close()
		defer close(lines)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

func itoa(n int) string { return strconv.Itoa(n) }

func next(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("subscriber ended")
		}
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no message within 5s")
	}
	return ""
}

func TestPubSubBetweenInstancesAndTenants(t *testing.T) {
	reg := testRegistry(t, "", "")
	defer reg.Close()
	a := serve(t, reg, "chat-a", guest, allGrants(), 3)
	b := serve(t, reg, "chat-b", guest, allGrants(), 2)

	subA := subscriber(t, a.url, "room", 2) // holds one instance of A
	subB := subscriber(t, b.url, "room", 1)
	// Published from another instance of A: A's subscriber gets it, B's does not.
	want(t, a.url+"/pub?t=room&m=hello", "ok")
	if got := next(t, subA); got != "hello" {
		t.Fatalf("A got %q", got)
	}
	want(t, b.url+"/pub?t=room&m=for-b", "ok")
	if got := next(t, subB); got != "for-b" {
		t.Fatalf("B got %q (A's message leaked?)", got)
	}
	want(t, a.url+"/pub?t=room&m=again", "ok")
	if got := next(t, subA); got != "again" {
		t.Fatalf("A got %q", got)
	}
}
