package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

func TestE2EH2CPriorKnowledge(t *testing.T) {
	srv := startServer(t, sample("echo"), "--workers", "2")
	c := h2cClient(t)

	resp, body := get(t, c, srv.URL+"/h2?x=1")
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
		t.Fatalf("status %d proto %q, want 200 over HTTP/2.0", resp.StatusCode, resp.Proto)
	}
	rep := decodeReport(t, body)
	if rep.Proto != "HTTP/2.0" || rep.Method != "GET" || rep.Path != "/h2" || rep.Query != "x=1" || rep.Host != srv.Addr {
		t.Errorf("guest saw %+v, want GET /h2?x=1 over HTTP/2.0 for host %s", rep, srv.Addr)
	}

	// A streamed body over h2c (DATA frames, no Content-Length) comes back whole.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	req := mustRequest(t, http.MethodPost, srv.URL+"/up", io.MultiReader(bytes.NewReader(payload)))
	req.ContentLength = -1
	resp, got := do(t, c, req)
	if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" || got != string(payload) || resp.Header.Get("X-Echo-Method") != "POST" {
		t.Errorf("h2c POST: status %d proto %q, %d bytes back (want %d), X-Echo-Method %q",
			resp.StatusCode, resp.Proto, len(got), len(payload), resp.Header.Get("X-Echo-Method"))
	}

	// The net/http adapter in the guest sees HTTP/2.0 too.
	mux := startServer(t, sample("mux"), "--workers", "1")
	resp, body = get(t, c, mux.URL+"/whoami")
	if resp.Proto != "HTTP/2.0" || !strings.Contains(body, `"proto":"HTTP/2.0"`) {
		t.Errorf("mux over h2c: proto %q, body %s; want HTTP/2.0 on both sides", resp.Proto, body)
	}
}

// curl runs curl with args and returns stdout; it fails the test on a non-zero exit.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	bin := needCurl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-sS", "--max-time", "20"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String()
}

// curlVersionMarker separates the body from the -w output.
const curlVersionMarker = "\n--http-version="

func splitCurl(t *testing.T, out string) (head, body, version string) {
	t.Helper()
	i := strings.LastIndex(out, curlVersionMarker)
	if i < 0 {
		t.Fatalf("curl output has no version marker: %q", out)
	}
	version = out[i+len(curlVersionMarker):]
	rest := out[:i]
	// -D - writes every response head (101 then 200 for an upgrade) before the body.
	j := strings.LastIndex(rest, "\r\n\r\n")
	if j < 0 {
		t.Fatalf("curl output has no header block: %q", out)
	}
	return rest[:j], rest[j+4:], version
}

func TestE2EH2CUpgradeCurl(t *testing.T) {
	needCurl(t)
	srv := startServer(t, sample("echo"), "--workers", "2")
	out := curl(t, "--http2", "-D", "-", "-w", curlVersionMarker+"%{http_version}", srv.URL+"/up?via=curl")
	head, body, version := splitCurl(t, out)
	if version != "2" {
		t.Errorf("curl --http2 ended on HTTP version %q, want 2 (upgraded); heads:\n%s", version, head)
	}
	if !strings.Contains(head, "101 Switching Protocols") || !strings.Contains(strings.ToLower(head), "upgrade: h2c") {
		t.Errorf("no 101 Switching Protocols to h2c in the response heads:\n%s", head)
	}
	rep := decodeReport(t, body)
	if rep.Proto != "HTTP/2.0" || rep.Path != "/up" || rep.Query != "via=curl" {
		t.Errorf("guest saw %+v, want /up?via=curl over HTTP/2.0", rep)
	}
	for _, h := range rep.Headers {
		if h[0] == "upgrade" || h[0] == "http2-settings" || h[0] == "connection" {
			t.Errorf("guest saw the upgrade header %q: %q", h[0], h[1])
		}
	}

	// With a body the upgrade is declined (h2c would buffer the whole body first):
	// the request is served over HTTP/1.1 and the body streams to the guest.
	out = curl(t, "--http2", "-D", "-", "-w", curlVersionMarker+"%{http_version}", "--data-binary", "with body", srv.URL+"/post")
	head, body, version = splitCurl(t, out)
	if version != "1.1" || body != "with body" || strings.Contains(head, " 101 ") {
		t.Errorf("upgrade with a body: version %q, body %q, heads:\n%s\nwant it served over HTTP/1.1 without 101", version, body, head)
	}
}

func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	return testkit.SelfSigned(t, dir)
}

func TestE2ETLS(t *testing.T) {
	certFile, keyFile, cert := writeSelfSigned(t, t.TempDir())
	srv := startServer(t, sample("echo"), "--workers", "2", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(srv.URL, "https://") {
		t.Fatalf("server URL %q, want https://", srv.URL)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)

	t.Run("HTTP/2 over TLS", func(t *testing.T) {
		var protos http.Protocols
		protos.SetHTTP2(true) // HTTP/2 only: fails rather than falling back to HTTP/1.1
		tr := &http.Transport{Protocols: &protos, TLSClientConfig: &tls.Config{RootCAs: roots}}
		t.Cleanup(tr.CloseIdleConnections)
		resp, body := get(t, &http.Client{Transport: tr, Timeout: 30 * time.Second}, srv.URL+"/tls?q=1")
		if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/2.0" {
			t.Fatalf("status %d proto %q, want 200 over HTTP/2.0", resp.StatusCode, resp.Proto)
		}
		if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" || !resp.TLS.PeerCertificates[0].Equal(cert) {
			t.Errorf("TLS state %+v: want ALPN h2 and the test's certificate", resp.TLS)
		}
		if rep := decodeReport(t, body); rep.Proto != "HTTP/2.0" || rep.Path != "/tls" || rep.Query != "q=1" {
			t.Errorf("guest saw %+v, want /tls?q=1 over HTTP/2.0", rep)
		}
	})

	t.Run("HTTP/1.1 over TLS", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: false,
			TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		t.Cleanup(tr.CloseIdleConnections)
		resp, body := get(t, &http.Client{Transport: tr, Timeout: 30 * time.Second}, srv.URL+"/one")
		if resp.StatusCode != http.StatusOK || resp.Proto != "HTTP/1.1" || decodeReport(t, body).Proto != "HTTP/1.1" {
			t.Errorf("status %d proto %q body %s, want 200 over HTTP/1.1", resp.StatusCode, resp.Proto, body)
		}
	})

	t.Run("curl --http2 over TLS", func(t *testing.T) {
		out := curl(t, "--http2", "--cacert", certFile, "-D", "-", "-w", curlVersionMarker+"%{http_version}",
			"--data-binary", "over tls", srv.URL+"/c?x=y")
		head, body, version := splitCurl(t, out)
		if version != "2" {
			t.Errorf("HTTP version %q, want 2; heads:\n%s", version, head)
		}
		if body != "over tls" || !strings.Contains(strings.ToLower(head), "x-echo-query: x=y") {
			t.Errorf("body %q, heads:\n%s\nwant the echoed body and X-Echo-Query", body, head)
		}
	})

	t.Run("plain HTTP to the TLS port is refused", func(t *testing.T) {
		c := dialRaw(t, srv.Addr)
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, _ := c.readResponse(t, http.MethodGet)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400 for plain HTTP on a TLS listener", resp.StatusCode)
		}
	})
}

func TestE2ELimits(t *testing.T) {
	srv := startServer(t, sample("echo"), "--workers", "2",
		"--body-limit", "1KiB", "--max-header-bytes", "4KiB", "--read-header-timeout", "500ms")

	t.Run("body at the limit passes", func(t *testing.T) {
		payload := strings.Repeat("a", 1024)
		resp, body := do(t, httpClient(t), mustRequest(t, http.MethodPost, srv.URL+"/ok", strings.NewReader(payload)))
		if resp.StatusCode != http.StatusOK || body != payload {
			t.Errorf("1 KiB body: status %d, %d bytes back; want 200 and the body", resp.StatusCode, len(body))
		}
	})

	t.Run("declared Content-Length over the limit", func(t *testing.T) {
		c := dialRaw(t, srv.Addr)
		fmt.Fprintf(c, "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n%s", strings.Repeat("b", 1025))
		resp, body := c.readResponse(t, http.MethodPost)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413; body %q", resp.StatusCode, body)
		}
		if !resp.Close {
			t.Errorf("413 without Connection: close; the unread body would be parsed as the next request")
		}
	})

	t.Run("chunked body grows past the limit", func(t *testing.T) {
		c := dialRaw(t, srv.Addr)
		// No length is declared: the host can only tell while the guest reads.
		// Two chunks of 800 bytes, the second crossing the 1 KiB limit.
		chunk := strings.Repeat("c", 800)
		fmt.Fprintf(c, "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n",
			len(chunk), chunk, len(chunk), chunk)
		resp, body := c.readResponse(t, http.MethodPost)
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413; body %q", resp.StatusCode, trunc(body))
		}
	})

	t.Run("header over the limit", func(t *testing.T) {
		c := dialRaw(t, srv.Addr)
		fmt.Fprintf(c, "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("h", 16<<10))
		resp, _ := c.readResponse(t, http.MethodGet)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("16 KiB header: status %d, want 431", resp.StatusCode)
		}
	})

	t.Run("header under the limit passes", func(t *testing.T) {
		c := dialRaw(t, srv.Addr)
		fmt.Fprintf(c, "GET /hdr HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nConnection: close\r\n\r\n", strings.Repeat("h", 2<<10))
		resp, body := c.readResponse(t, http.MethodGet)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("2 KiB header: status %d, want 200", resp.StatusCode)
		}
		if got := decodeReport(t, body).values("x-big"); len(got) != 1 || len(got[0]) != 2<<10 {
			t.Errorf("guest did not get the 2 KiB header intact")
		}
	})

	t.Run("slow request head is cut off", func(t *testing.T) {
		c := dialRaw(t, srv.Addr)
		start := time.Now()
		if _, err := io.WriteString(c, "GET /slow HT"); err != nil {
			t.Fatal(err)
		}
		// The server may answer 400 before it closes; what matters is the close.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(c)
		took := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open %v after half a request line (read %q); want it closed after ~500ms", took, got)
		}
		if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 4")) {
			t.Errorf("server sent %q before closing, want nothing or a 4xx", got)
		}
		if took > 2*time.Second || took < 400*time.Millisecond {
			t.Errorf("connection closed after %v, want ~500ms (read-header-timeout)", took)
		}
	})
}

func TestE2EQueue(t *testing.T) {
	srv := startServer(t, sample("sse"), "--workers", "1", "--queue-size", "1", "--queue-wait", "200ms")
	c := httpClient(t)

	// A holds the only instance: its first event proves the guest is running it.
	resp, err := c.Get(srv.URL + "/events?n=3&interval=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make(chan struct{})
	type streamResult struct {
		evs []sseEvent
		err error
	}
	streamDone := make(chan streamResult, 1)
	go func() {
		var once sync.Once
		evs, err := readSSE(resp.Body, time.Now(), func(sseEvent) { once.Do(func() { close(first) }) })
		streamDone <- streamResult{evs, err}
	}()
	select {
	case <-first:
	case r := <-streamDone:
		t.Fatalf("stream ended before its first event: %v", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("no first event within 10s")
	}

	// B and C arrive together: one takes the single queue slot and waits out the
	// 200ms queue-wait, the other finds the queue full and is refused at once.
	type outcome struct {
		status     int
		retryAfter string
		body       string
		took       time.Duration
	}
	outs := make([]outcome, 2)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			r, err := c.Get(srv.URL + "/events?n=1")
			if err != nil {
				outs[i].body = err.Error()
				return
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			outs[i] = outcome{r.StatusCode, r.Header.Get("Retry-After"), string(b), time.Since(start)}
		}()
	}
	wg.Wait()
	if outs[0].took > outs[1].took {
		outs[0], outs[1] = outs[1], outs[0]
	}
	full, waited := outs[0], outs[1]
	for name, o := range map[string]outcome{"queue full": full, "queue wait": waited} {
		if o.status != http.StatusServiceUnavailable || o.retryAfter == "" {
			t.Errorf("%s: status %d Retry-After %q body %q, want 503 with Retry-After", name, o.status, o.retryAfter, o.body)
		}
	}
	if !strings.Contains(full.body, "queue") {
		t.Errorf("immediate 503 body %q does not say the queue is full", full.body)
	}
	if waited.took < 180*time.Millisecond {
		t.Errorf("queued request answered after %v, want it to wait the 200ms queue-wait", waited.took)
	}
	if full.took > 150*time.Millisecond {
		t.Errorf("request over the queue size answered after %v, want an immediate 503", full.took)
	}

	// A is unharmed, and the instance serves again once it is free.
	select {
	case r := <-streamDone:
		if r.err != io.EOF || len(r.evs) != 3 {
			t.Errorf("holding stream: %d events, end %v; want 3 and a clean end", len(r.evs), r.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("holding stream did not end")
	}
	r, body := get(t, c, srv.URL+"/events?n=1")
	if r.StatusCode != http.StatusOK || !strings.Contains(body, "id: 1") {
		t.Errorf("after the stream: status %d body %q, want 200 with one event", r.StatusCode, body)
	}
}

// TestE2EMaxConnsPerIP: --max-conns-per-ip counts open connections, idle
// keep-alive ones included; one over the cap is closed unanswered, and a
// closed one frees its slot.
func TestE2EMaxConnsPerIP(t *testing.T) {
	srv := startServer(t, sample("hello"), "--workers", "1", "--max-conns-per-ip", "2")
	get := func(c *rawConn) (*http.Response, error) {
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return nil, err
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(c.r, nil)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	held := []*rawConn{dialRaw(t, srv.Addr), dialRaw(t, srv.Addr)}
	for i, c := range held {
		if resp, err := get(c); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: %v %v", i+1, resp, err)
		}
	}
	if resp, err := get(dialRaw(t, srv.Addr)); err == nil {
		t.Fatalf("a third connection was served (%s) while two are held", resp.Status)
	}
	held[0].Close()
	deadline := time.Now().Add(3 * time.Second)
	for {
		resp, err := get(dialRaw(t, srv.Addr))
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after closing a connection: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, err := get(held[1]); err != nil || resp.StatusCode != 200 {
		t.Errorf("the held connection: %v %v", resp, err)
	}
}

// A slow upload must not hold a sync app's only instance: by default the
// body is read ahead, so another client is served meanwhile; with
// --buffer-body 0 (the control) the instance waits for the upload and the
// other client's queue wait runs out (503).
func TestE2ESlowUploadBuffering(t *testing.T) {
	for _, tt := range []struct {
		name  string
		args  []string
		other int
	}{
		{"default: read ahead", nil, 200},
		{"--buffer-body 0: streamed", []string{"--buffer-body", "0"}, 503},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := startServer(t, sample("echo"), append([]string{"--workers", "1", "--queue-wait", "300ms"}, tt.args...)...)
			up := dialRaw(t, srv.Addr)
			if _, err := io.WriteString(up, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			c := &http.Client{Timeout: 5 * time.Second}
			resp, err := c.Get(srv.URL + "/other")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.other {
				t.Errorf("another request during the upload: %d, want %d", resp.StatusCode, tt.other)
			}
			if _, err := io.WriteString(up, "defghij"); err != nil {
				t.Fatal(err)
			}
			_ = up.SetReadDeadline(time.Now().Add(5 * time.Second))
			uresp, err := http.ReadResponse(up.r, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(uresp.Body)
			if uresp.StatusCode != 200 || string(b) != "abcdefghij" {
				t.Errorf("upload: %d %q", uresp.StatusCode, b)
			}
		})
	}
}
