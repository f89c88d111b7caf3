//go:build !wasip1

// The adapter is tested from the host: the test serves a guest built with it.

package wasmhttp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/runtime"
)

// The adapter runs inside a guest, so it is tested there: testdata/adapter is a
// net/http ServeMux behind wasmhttp.Handle, built for each shape and served by the
// real server (apps.Open + host.Server, as `wasmsrv run` does); the tests are
// clients on loopback (net/http's, HTTP/2 with prior knowledge, and a raw socket).

// Info mirrors testdata/adapter's report of the *http.Request it got.
type Info struct {
	Method, Path, RawPath, RawQuery, Scheme, URLHost, Host, RequestURI, Proto string
	ProtoMajor                                                                int
	Header                                                                    http.Header
	ContentLength                                                             int64
	TransferEncoding                                                          []string
	RemoteAddr, RootPath, Rest                                                string
	Body                                                                      string
}

// mount is where the tests mount the app a second time, as a site's route would.
const mount = "/mnt"

func serve(t *testing.T, mode string) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the guest needs the go command")
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		t.Fatal(err)
	}
	app, err := apps.Open(ctx, eng, apps.Spec{
		Name: "adapter", Source: "testdata/adapter", Mode: testkit.Mode(t, mode), BuildCacheDir: testkit.BuildCache(),
		Pool: runtime.PoolConfig{Workers: 2, RequestTimeout: 30 * time.Second},
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, mount+"/") {
			r = host.Mount(r, mount)
		}
		app.Handler.ServeHTTP(w, r)
	})
	srv := host.NewServer(host.ServerConfig{Addr: "127.0.0.1:0"}, h, log)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = app.Close(ctx)
		_ = eng.Close(ctx)
	})
	return srv.URL()
}

// TestAdapter serves the adapter built for each shape once (compiling a Go guest
// takes a while) and runs every check against it.
func TestAdapter(t *testing.T) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			base := serve(t, mode)
			t.Run("request", func(t *testing.T) { testRequest(t, base) })
			t.Run("response", func(t *testing.T) { testResponse(t, base) })
			t.Run("bodies", func(t *testing.T) { testBodies(t, base) })
			t.Run("streaming", func(t *testing.T) { testStreaming(t, base) })
		})
	}
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

func newReq(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func info(t *testing.T, c *http.Client, req *http.Request) Info {
	t.Helper()
	resp, body := do(t, c, req)
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, body)
	}
	var in Info
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	return in
}

// testRequest: the *http.Request a handler gets carries what the client sent:
// method, escaped path and query, host, protocol, headers (canonical keys, every
// value in order, Host only in Request.Host), the body and its length or its
// chunked framing, the mount point as RootPath and in RequestURI, ServeMux path
// values.
func testRequest(t *testing.T, base string) {
	c := client(t)
	u, _ := url.Parse(base)

	req := newReq(t, "PUT", base+"/info/a%2Fb/c?q=1&q=2&x=%20", strings.NewReader("hello"))
	req.Header.Add("X-Multi", "one")
	req.Header.Add("X-Multi", "two")
	req.Header["x-lower"] = []string{"v"}
	req.Header.Set("Content-Type", "text/plain")
	in := info(t, c, req)
	want := Info{
		Method: "PUT", Path: "/info/a/b/c", RawPath: "/info/a%2Fb/c", RawQuery: "q=1&q=2&x=%20",
		Scheme: "http", URLHost: u.Host, Host: u.Host, RequestURI: "/info/a%2Fb/c?q=1&q=2&x=%20",
		Proto: "HTTP/1.1", ProtoMajor: 1, ContentLength: 5, Rest: "a/b/c", Body: "hello",
	}
	got := in
	got.Header, got.RemoteAddr = nil, ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("request\n got %+v\nwant %+v", got, want)
	}
	if h := in.Header; !slices.Equal(h["X-Multi"], []string{"one", "two"}) || h.Get("X-Lower") != "v" ||
		h.Get("Content-Type") != "text/plain" || h["Host"] != nil {
		t.Errorf("headers %v: want X-Multi [one two], X-Lower v, Content-Type, and no Host", h)
	}
	if host, _, err := net.SplitHostPort(in.RemoteAddr); err != nil || net.ParseIP(host) == nil || !net.ParseIP(host).IsLoopback() {
		t.Errorf("RemoteAddr %q, want the client's loopback ip:port", in.RemoteAddr)
	}

	// A chunked body: no length, Transfer-Encoding set, the bytes all there.
	req = newReq(t, "POST", base+"/info/chunked", io.MultiReader(strings.NewReader("chunk"), strings.NewReader("ed")))
	in = info(t, c, req)
	if in.ContentLength != -1 || !slices.Equal(in.TransferEncoding, []string{"chunked"}) || in.Body != "chunked" {
		t.Errorf("chunked request: length %d, transfer-encoding %q, body %q", in.ContentLength, in.TransferEncoding, in.Body)
	}

	// Mounted under /mnt: the handler routes on the path below the mount, and
	// sees the mount in RootPath and RequestURI.
	in = info(t, c, newReq(t, "GET", base+mount+"/info/x?y=1", nil))
	if in.Path != "/info/x" || in.RootPath != mount || in.RequestURI != mount+"/info/x?y=1" || in.Rest != "x" {
		t.Errorf("mounted: path %q root %q uri %q rest %q", in.Path, in.RootPath, in.RequestURI, in.Rest)
	}

	// HTTP/2 (cleartext, prior knowledge): the protocol is reported as such.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protos}
	defer tr.CloseIdleConnections()
	in = info(t, &http.Client{Transport: tr, Timeout: 30 * time.Second}, newReq(t, "GET", base+"/info/h2", nil))
	if in.Proto != "HTTP/2.0" || in.ProtoMajor != 2 || in.Host != u.Host {
		t.Errorf("HTTP/2: proto %q major %d host %q", in.Proto, in.ProtoMajor, in.Host)
	}
}

// testResponse: status codes, headers and bodies reach the client as net/http
// would send them, and misuse is answered the way net/http answers it.
func testResponse(t *testing.T, base string) {
	c := client(t)
	for _, tc := range []struct {
		path   string
		status int
		body   string
		header map[string]string
	}{
		{"/status/201", 201, "body of 201", map[string]string{"X-Code": "201"}},
		{"/status/404", 404, "body of 404", nil},
		{"/status/599", 599, "body of 599", nil},
		{"/status/204", 204, "", nil}, // a 204 has no body, whatever was written
		{"/sniff", 200, "<!DOCTYPE html><html><body>hi</body></html>", map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{"/typed", 200, "<html>", map[string]string{"Content-Type": "application/x-mine"}},
		{"/twice", 201, "created", map[string]string{"X-Late": ""}},
		{"/early-hints", 202, "", map[string]string{"Link": "</style.css>; rel=preload"}},
		{"/error", 418, "no tea here\n", map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}},
		{"/redirect", 302, "<a href=\"/target?x=1\">Found</a>.\n\n", map[string]string{"Location": "/target?x=1"}},
		{"/empty", 200, "", nil},
		{"/panic", 500, "", nil},
		{"/bad-code", 500, "", nil},
		{"/nowhere", 404, "404 page not found\n", nil},
		{"/status/abc", 500, "", nil}, // WriteHeader(0) is an invalid code, as in net/http
	} {
		resp, body := do(t, c, newReq(t, "GET", base+tc.path, nil))
		if resp.StatusCode != tc.status || (tc.status != 500 && body != tc.body) {
			t.Errorf("GET %s: %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
		for k, v := range tc.header {
			if got := resp.Header.Get(k); got != v {
				t.Errorf("GET %s: header %s = %q, want %q", tc.path, k, got, v)
			}
		}
	}
	resp, _ := do(t, c, newReq(t, "GET", base+"/multi", nil))
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Errorf("Set-Cookie %q, want both in order", got)
	}
	if got := resp.Header.Values("X-List"); !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("X-List %q", got)
	}
	if got := resp.Header.Get("X-Lower-Case"); got != "kept" {
		t.Errorf("a header set with a lower-case key: %q", got)
	}

	// A panic after the response started cannot turn into a 500: the client
	// must see the body cut, not a complete response.
	resp, err := c.Do(newReq(t, "GET", base+"/panic-after-write", nil))
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("panic after a write: a complete %d response %q", resp.StatusCode, b)
		}
	}
}

// testBodies: a large binary body goes through the adapter and back unchanged,
// with and without a declared length.
func testBodies(t *testing.T, base string) {
	c := client(t)
	payload := make([]byte, 3<<20+17)
	rand.Read(payload)
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(payload)
		if chunked {
			body = io.MultiReader(body)
		}
		resp, got := do(t, c, newReq(t, "POST", base+"/echo", body))
		if resp.StatusCode != 200 || got != string(payload) {
			t.Errorf("echo (chunked %v): %d, %d bytes back of %d", chunked, resp.StatusCode, len(got), len(payload))
		}
	}
}

// testStreaming: a handler that flushes through http.ResponseController reaches
// the client before it returns, and reads the request body while it writes: over
// a raw socket, each answer line arrives before the client sends the next body
// chunk, so nothing here depends on timing.
func testStreaming(t *testing.T, base string) {
	u, _ := url.Parse(base)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	io.WriteString(conn, "POST /pingpong HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
	br := bufio.NewReader(conn)
	var resp *http.Response
	for i, line := range []string{"one", "two", "three"} {
		chunk := line + "\n"
		io.WriteString(conn, strconv.FormatInt(int64(len(chunk)), 16)+"\r\n"+chunk+"\r\n")
		if i == 0 {
			resp, err = http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.TransferEncoding == nil {
				t.Fatalf("status %d, transfer-encoding %v: want a streamed 200", resp.StatusCode, resp.TransferEncoding)
			}
		}
		got, err := bufio.NewReader(&oneByte{resp.Body}).ReadString('\n')
		if err != nil || got != "got "+line+"\n" {
			t.Fatalf("answer to %q: %q, %v", line, got, err)
		}
	}
	io.WriteString(conn, "0\r\n\r\n")
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "end\n" {
		t.Fatalf("after the body ended: %q, %v", rest, err)
	}
}

// oneByte reads one byte at a time, so a bufio.Reader over it never reads ahead
// past the line it returns.
type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }
