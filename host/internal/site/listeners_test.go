package site

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestReloadAppliesListenerChanges: a reload adds and removes listeners and
// applies changed listener settings on the same socket, under load, with no
// failed request; a port that cannot be bound rejects the whole reload.
func TestReloadAppliesListenerChanges(t *testing.T) {
	a := backend(t, "a")
	routes := fmt.Sprintf("[upstreams.back]\nservers = [{ url = %q }]\n[[routes]]\nupstream = \"back\"\n", a.URL)
	f := start(t, head+routes, nil)

	// New connections all the while on the first listener.
	var total, failed atomic.Int64
	var lastErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
			for ctx.Err() == nil {
				resp, err := client.Get(f.url + "/x")
				total.Add(1)
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
					t.Logf("%s fail: %v", time.Now().Format("05.000"), err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "a ") {
					failed.Add(1)
					lastErr.Store(fmt.Sprintf("%d %q", resp.StatusCode, b))
				}
			}
		})
	}
	stopLoad := func() {
		cancel()
		wg.Wait()
	}
	defer stopLoad()
	// busy waits until the load has sent a few more requests, so each phase
	// below is crossed by requests however slow the machine is.
	busy := func() {
		n := total.Load()
		waitFor(t, "requests during the change", func() bool { return total.Load() >= n+4 })
	}

	bigHeader := strings.Repeat("x", 8000) // net/http allows 4 KiB over MaxHeaderBytes
	if c, _, _ := get(t, f.url+"/x", "X-Big", bigHeader); c != 200 {
		t.Fatalf("8 KB header before the change: %d", c)
	}

	// Add a second listener and lower the header limit of the first.
	second := freePort(t)
	withSecond := head + fmt.Sprintf("\n[[listeners]]\naddr = %q\n\n[limits]\nmax_header = \"2KiB\"\n\n", second) + routes
	if code, body := f.reload(t, withSecond); code != 200 {
		t.Fatalf("reload adding a listener: %d %s", code, body)
	}
	busy()
	if c, _, b := get(t, "http://"+second+"/x"); c != 200 || !strings.HasPrefix(b, "a ") {
		t.Errorf("new listener: %d %q", c, b)
	}
	// The limit applies on the same address, without a restart (old idle
	// keep-alive connections are closed by the old server as they go idle).
	waitFor(t, "the new header limit on the first listener", func() bool {
		c, _, _ := getFresh(t, f.url+"/x", "X-Big", bigHeader)
		return c == http.StatusRequestHeaderFieldsTooLarge
	})
	if got := f.site.URLs(); len(got) != 2 || got[0] != f.url {
		t.Errorf("URLs after reload: %v (first was %s)", got, f.url)
	}

	// A port already taken fails the reload and keeps everything running.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := head + fmt.Sprintf("\n[[listeners]]\naddr = %q\n", taken.Addr().String()) + routes
	if code, body := f.reload(t, bad); code != 422 || !strings.Contains(body, taken.Addr().String()) {
		t.Errorf("reload onto a taken port: %d %s", code, body)
	}
	busy()
	if c, _, _ := get(t, "http://"+second+"/x"); c != 200 {
		t.Errorf("second listener after the rejected reload: %d", c)
	}

	// Remove the second listener: it stops accepting.
	if code, body := f.reload(t, head+routes); code != 200 {
		t.Fatalf("reload removing a listener: %d %s", code, body)
	}
	busy()
	waitFor(t, "the removed listener to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", second, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})

	stopLoad()
	if failed.Load() != 0 || total.Load() < 12 {
		t.Errorf("%d of %d requests failed during the listener changes (last: %v)", failed.Load(), total.Load(), lastErr.Load())
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// getFresh is get on a new connection (no reuse of an idle one).
func getFresh(t *testing.T, url string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	return getWith(t, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}, url, hdr...)
}

func TestSiteMaxConnsPerIP(t *testing.T) {
	f := start(t, head+"[limits]\nmax_conns_per_ip = 1\n\n[[routes]]\nstatic = \"www\"\n", nil)
	addr := strings.TrimPrefix(f.url, "http://")
	get := func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.WriteString(c, "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if err := get(); err == nil {
		t.Fatal("second open connection from the same IP was served with max_conns_per_ip = 1")
	}
}

// TestTLSListenerAndCertRenewal: a TLS listener speaks HTTP/2 by ALPN; a
// certificate renewed in place (same paths) is served after a reload, on the
// same socket.
func TestTLSListenerAndCertRenewal(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert1 := testkit.SelfSigned(t, dir)
	cfg := fmt.Sprintf("[admin]\naddr = \"127.0.0.1:0\"\n\n[[listeners]]\naddr = %q\ntls_cert = %q\ntls_key = %q\n\n[[routes]]\nstatic = \"www\"\n",
		freePort(t), certFile, keyFile)
	f := start(t, cfg, nil)
	if !strings.HasPrefix(f.url, "https://") {
		t.Fatalf("URL %s, want https", f.url)
	}
	peerCert := func() (*x509.Certificate, string) {
		t.Helper()
		tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(f.url + "/hello.txt")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello file" {
			t.Fatalf("body %q", b)
		}
		return resp.TLS.PeerCertificates[0], resp.Proto
	}
	if c, proto := peerCert(); !c.Equal(cert1) || proto != "HTTP/2.0" {
		t.Fatalf("served %v over %s, want the first certificate over HTTP/2.0", c.Subject, proto)
	}
	_, _, cert2 := testkit.SelfSigned(t, dir) // renewed in place
	if code, body := f.reload(t, cfg); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	if c, _ := peerCert(); !c.Equal(cert2) {
		t.Error("after the reload the old certificate is still served")
	}
	// A broken key rejects the reload and keeps serving.
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	if code, body := f.reload(t, cfg); code != 422 || !strings.Contains(body, "TLS") {
		t.Errorf("reload with a broken key: %d %s", code, body)
	}
	if c, _ := peerCert(); !c.Equal(cert2) {
		t.Error("a rejected reload changed the certificate")
	}
}

// admin.addr = "" means no admin listener: a reload turns it off (the old socket
// stops accepting) and back on.
func TestAdminListenerOff(t *testing.T) {
	routes := "\n[[routes]]\nstatic = \"www\"\n"
	off := "[admin]\naddr = \"\"\n\n[[listeners]]\naddr = \"127.0.0.1:0\"\n" + routes
	f := start(t, head+routes, nil)
	adminAddr := strings.TrimPrefix(f.admin, "http://")
	if code, body := f.reload(t, off); code != 200 {
		t.Fatalf("reload turning the admin listener off: %d %s", code, body)
	}
	if got := f.site.AdminURL(); got != "" {
		t.Errorf("AdminURL with the admin off: %q", got)
	}
	waitFor(t, "the admin listener to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", adminAddr, time.Second)
		if err == nil {
			c.Close()
			return false
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
	if c, _, b := get(t, f.url+"/hello.txt"); c != 200 || b != "hello file" {
		t.Errorf("site with the admin off: %d %q", c, b)
	}
	writeConfig(t, f.cfgPath, head+routes)
	if err := f.site.Reload(context.Background()); err != nil {
		t.Fatalf("reload turning the admin listener on: %v", err)
	}
	if c, _, b := get(t, f.site.AdminURL()+"/health"); c != 200 || !strings.Contains(b, "ok") {
		t.Errorf("admin back on: %d %q", c, b)
	}
}
