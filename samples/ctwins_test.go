// The C samples must behave exactly like their Go twins: this test serves both on
// real loopback servers, sends each the same raw requests and compares status,
// headers and body (framing aside: Content-Length vs chunked is transport).
package samples_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/host"
	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/runtime"
)

func serve(t *testing.T, source string) string {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := runtime.NewEngine(ctx, runtime.EngineConfig{CacheDir: "-"}, log)
	if err != nil {
		t.Fatal(err)
	}
	app, err := apps.Open(ctx, eng, apps.Spec{
		// Shared with other packages' tests: builds are keyed by content.
		Source: source, BuildCacheDir: filepath.Join(os.TempDir(), "wasmsrv-test-cache", "builds"),
		Pool: runtime.PoolConfig{Workers: 1}, BodyLimit: 1 << 20,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := host.NewServer(host.ServerConfig{Addr: "127.0.0.1:0"}, app.Handler, log)
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
	return strings.TrimPrefix(srv.URL(), "http://")
}

// exchange sends a raw request (Host is filled in) and returns the parsed response.
func exchange(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// comparable renders what must match: status, headers but Date and framing, body.
func comparable(resp *http.Response, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", resp.StatusCode)
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		switch k {
		case "Date", "Content-Length", "Transfer-Encoding":
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %q\n", k, resp.Header[k])
	}
	fmt.Fprintf(&b, "\n%q", body)
	return b.String()
}

func TestCTwins(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the Go twins need the go command")
	}
	// net/http refuses control bytes in header values; everything else goes.
	weird := "<a&b>\"\\ \t \xff\xc0\xaf caf\xc3\xa9 \xe2\x80\xa8 \xed\xa0\x80 \xf0\x9f\x98\x80 \xf4\x90\x80\x80"
	pairs := []struct {
		name, goSrc, cSrc string
		requests          []string
	}{
		{"hello", "hello", "c-hello/main.wasm", []string{
			"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
			"POST /any?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
			"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
		}},
		{"echo", "echo", "c-echo/main.wasm", []string{
			"GET /x/caf%C3%A9?y=1&z=%20 HTTP/1.1\r\nHost: t:80\r\nX-B: 2\r\nX-A: 1\r\nX-B: 1\r\nX-Weird: " + weird + "\r\nConnection: close\r\n\r\n",
			"GET /raw/日本 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
			"POST /up?q HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello\x00\xffecho",
			"PUT /chunked HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
				"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
			"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n" + strings.Repeat("0123456789", 10000),
			"POST /too-big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
				fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 2<<20, bytes.Repeat([]byte("x"), 2<<20)),
		}},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			goAddr, cAddr := serve(t, p.goSrc), serve(t, p.cSrc)
			for i, raw := range p.requests {
				// The same request id to both twins: the host hands it to the
				// guest and returns it, so it is part of what must match.
				raw = strings.Replace(raw, "\r\n", "\r\nX-Request-ID: twin-request-"+strconv.Itoa(i)+"\r\n", 1)
				resp, body := exchange(t, goAddr, raw)
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: Go twin answered %d %q: fix the request, not the twin", i, resp.StatusCode, body)
				}
				want := comparable(resp, body)
				got := comparable(exchange(t, cAddr, raw))
				if got != want {
					t.Errorf("request %d: C answered\n%.2000s\nGo answered\n%.2000s", i, got, want)
				}
			}
		})
	}
}
