package sockets_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/apps"
	"github.com/wasmsrv/wasmsrv/internal/registry"
	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/plugins"
	plugconfig "github.com/wasmsrv/wasmsrv/plugins/config"
	pluglog "github.com/wasmsrv/wasmsrv/plugins/log"
	"github.com/wasmsrv/wasmsrv/plugins/sockets"
	"github.com/wasmsrv/wasmsrv/runtime"
)

const guest = "internal/testguest"

// The engine is shared by the test binary, and its compiled code by test runs:
// the pgx and go-redis guests are 13–20 MB of wasm, whose compilation takes tens
// of seconds (minutes under -race on a busy machine).
var (
	engineOnce sync.Once
	testEngine *runtime.Engine
)

func engine(t testing.TB) *runtime.Engine {
	engineOnce.Do(func() {
		cache := filepath.Join(os.TempDir(), "wasmsrv-test-cache", "wazero-sockets")
		e, err := runtime.NewEngine(context.Background(), runtime.EngineConfig{CacheDir: cache}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		testEngine = e
	})
	return testEngine
}

// fakeResolver answers from a table and counts lookups; names it does not know
// do not exist.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][][]string // name → one answer per lookup, the last repeats
	lookups map[string]int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lookups == nil {
		r.lookups = map[string]int{}
	}
	as, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	i := min(r.lookups[host], len(as)-1)
	r.lookups[host]++
	var out []netip.Addr
	for _, s := range as[i] {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func (r *fakeResolver) count(host string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookups[host]
}

type served struct {
	url string
	log *testkit.LogBuffer
}

type app struct {
	source  string // a guest package (default: the test guest)
	mode    string // "" (sync) or "async"
	section plugins.Section
	vars    map[string]string // the config plugin's variables, if any
	pool    runtime.PoolConfig
	res     sockets.Resolver
}

// serve opens the test guest with the sockets plugin granted and serves it until
// the test ends.
func serve(t testing.TB, a app) *served {
	t.Helper()
	if a.pool.Workers == 0 {
		a.pool.Workers = 1
	}
	if a.source == "" {
		a.source = guest
	}
	reg, err := registry.New(pluglog.New(), plugconfig.New(), sockets.New(sockets.Options{Resolver: a.res}))
	if err != nil {
		t.Fatal(err)
	}
	grants := registry.Grants{"sockets": a.section}
	if a.vars != nil {
		grants["config"] = plugins.Section{"vars": a.vars}
	}
	lb := &testkit.LogBuffer{}
	log := slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opened, err := apps.Open(context.Background(), engine(t), apps.Spec{
		Name: "sockets-test", Source: a.source, BuildCacheDir: testkit.BuildCache(), Mode: testkit.Mode(t, a.mode),
		Pool: a.pool, Plugins: reg, Grants: grants,
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(opened.Handler)
	logs.Lock()
	logs.m[srv.URL] = lb
	logs.Unlock()
	t.Cleanup(func() {
		srv.Close()
		_ = opened.Close(context.Background())
		_ = reg.Close()
	})
	return &served{url: srv.URL, log: lb}
}

var client = &http.Client{Timeout: 60 * time.Second}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func want(t testing.TB, url string, code int, body string) {
	t.Helper()
	if gotCode, got := get(t, url); gotCode != code || got != body {
		t.Fatalf("GET %s = %d %q, want %d %q%s", url, gotCode, got, code, body, logs.tail(url))
	}
}

// logs maps a served URL to its log, so a failure shows what the app said.
var logs = &logIndex{m: map[string]*testkit.LogBuffer{}}

type logIndex struct {
	sync.Mutex
	m map[string]*testkit.LogBuffer
}

func (l *logIndex) tail(url string) string {
	l.Lock()
	defer l.Unlock()
	for prefix, lb := range l.m {
		if strings.HasPrefix(url, prefix+"/") {
			s := lb.String()
			return "\napp log:\n" + s[max(0, len(s)-3000):]
		}
	}
	return ""
}

// lineServer is the peer of the test guest: a line protocol on loopback that
// counts its open connections.
type lineServer struct {
	ln      net.Listener
	addr    string // 127.0.0.1:port
	port    int
	tlsCfg  *tls.Config // for "starttls"
	nextID  atomic.Int64
	mu      sync.Mutex
	active  int
	changed chan struct{}
}

func startLineServer(t testing.TB, direct, starttls *tls.Config) *lineServer {
	t.Helper()
	ln := testkit.Listen(t)
	s := &lineServer{ln: ln, addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port, tlsCfg: starttls, changed: make(chan struct{})}
	if direct != nil {
		s.ln = tls.NewListener(ln, direct)
	}
	testkit.ServeConns(t, s.ln, func(c net.Conn) {
		s.add(1)
		defer s.add(-1)
		s.serveConn(c)
	})
	return s
}

func (s *lineServer) add(d int) {
	s.mu.Lock()
	s.active += d
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// waitActive waits until n connections are open on the server.
func (s *lineServer) waitActive(t testing.TB, n int) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		s.mu.Lock()
		active, ch := s.active, s.changed
		s.mu.Unlock()
		if active == n {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("server has %d open connections, want %d", active, n)
		}
	}
}

func (s *lineServer) serveConn(c net.Conn) {
	defer c.Close()
	id := s.nextID.Add(1)
	rd := bufio.NewReader(c)
	for {
		l, err := rd.ReadString('\n')
		if err != nil {
			return
		}
		switch strings.TrimSuffix(l, "\n") {
		case "ping":
			io.WriteString(c, "pong\n")
		case "id":
			fmt.Fprintf(c, "conn-%d\n", id)
		case "silent":
		case "half":
			rest, _ := io.ReadAll(rd) // until the guest's half-close
			fmt.Fprintf(c, "got %d more bytes, bye\n", len(rest))
			return
		case "starttls":
			io.WriteString(c, "go ahead\n")
			tc := tls.Server(c, s.tlsCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, rd = tc, bufio.NewReader(tc)
		case "echo":
			io.Copy(c, rd)
			return
		}
	}
}

// echoServer copies every connection back and half-closes after the guest does.
func echoServer(t testing.TB) string {
	t.Helper()
	ln := testkit.Listen(t)
	testkit.ServeConns(t, ln, func(c net.Conn) {
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
	})
	return ln.Addr().String()
}

func allow(entries ...string) plugins.Section { return plugins.Section{"allow": entries} }

func shapes(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			m := mode
			if m == "sync" {
				m = ""
			}
			f(t, m)
		})
	}
}

func TestConnectReadWrite(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		ls := startLineServer(t, nil, nil)
		echo := echoServer(t)
		s := serve(t, app{mode: mode, section: allow(ls.addr, echo)})
		want(t, s.url+"/ping?addr="+ls.addr, 200, "pong")
		want(t, s.url+"/addrs?addr="+ls.addr, 200, "tcp "+ls.addr)
		want(t, s.url+"/halfclose?addr="+ls.addr, 200, "got 0 more bytes, bye\n")
		// Reads and writes bigger than what the host buffers. The sync shape blocks
		// the instance in each call, so a read and a write cannot wait at once:
		// its echo stays within the kernel's socket buffers.
		n := "1048576"
		if mode == "" {
			n = "32768"
		}
		want(t, s.url+"/echo?n="+n+"&addr="+echo, 200, "ok "+n)
		want(t, s.url+"/ping?net=tcp4&addr="+ls.addr, 200, "pong")
		want(t, s.url+"/ping?net=tcp6&addr="+ls.addr, 502, "ERR_BAD_ARGUMENT")
		want(t, s.url+"/ping?net=udp&addr="+ls.addr, 502, "dial udp: unknown network udp")
		ls.waitActive(t, 0)
	})
}

func TestDeadlines(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		ls := startLineServer(t, nil, nil)
		s := serve(t, app{mode: mode, section: allow(ls.addr)})
		code, body := get(t, s.url+"/deadline?ms=200&addr="+ls.addr)
		if code != 200 || !strings.HasPrefix(body, "timeout after ") || !strings.HasSuffix(body, ", then pong") {
			t.Fatalf("deadline: %d %q", code, body)
		}
		d, err := time.ParseDuration(strings.TrimSuffix(strings.TrimPrefix(body, "timeout after "), ", then pong"))
		if err != nil || d < 190*time.Millisecond {
			t.Fatalf("the read returned after %v, before its 200ms deadline", d)
		}
	})
}

// TestRequestDeadlineReleasesBlockedRead: a guest blocked in a read without a
// deadline of its own is released when its request's deadline passes, and its
// connection is closed with the instance.
func TestRequestDeadlineReleasesBlockedRead(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		ls := startLineServer(t, nil, nil)
		s := serve(t, app{mode: mode, section: allow(ls.addr), pool: runtime.PoolConfig{RequestTimeout: time.Second}})
		t0 := time.Now()
		code, _ := get(t, s.url+"/block?addr="+ls.addr)
		if code != http.StatusGatewayTimeout {
			t.Fatalf("blocked read: status %d, want 504", code)
		}
		if el := time.Since(t0); el > 20*time.Second {
			t.Fatalf("the blocked request took %v", el)
		}
		if mode == "" {
			// The sync instance is discarded at its deadline: its connection
			// closes with it.
			ls.waitActive(t, 0)
		}
		// The app goes on serving.
		want(t, s.url+"/ping?addr="+ls.addr, 200, "pong")
	})
}

func TestPoolSurvivesRequests(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		ls := startLineServer(t, nil, nil)
		s := serve(t, app{mode: mode, section: allow(ls.addr)})
		_, first := get(t, s.url+"/pool?addr="+ls.addr)
		if !strings.HasPrefix(first, "conn-") {
			t.Fatalf("pool: %q", first)
		}
		for range 5 {
			want(t, s.url+"/pool?addr="+ls.addr, 200, first)
		}
		ls.waitActive(t, 1)
	})
}

// TestBackgroundGoroutine: a goroutine of a plain go statement (a pool dialling
// in the background) connects and talks while the handler waits for it.
func TestBackgroundGoroutine(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		ls := startLineServer(t, nil, nil)
		s := serve(t, app{mode: mode, section: allow(ls.addr)})
		want(t, s.url+"/background?addr="+ls.addr, 200, "background pong")
		want(t, s.url+"/background?addr=127.0.0.1:1", 200, "background ERR_DENIED")
	})
}

func TestCloseWakesReader(t *testing.T) {
	ls := startLineServer(t, nil, nil)
	s := serve(t, app{mode: "async", section: allow(ls.addr)})
	want(t, s.url+"/close-while-reading?addr="+ls.addr, 200, "reader got closed")
	ls.waitActive(t, 0)
}

func TestDenied(t *testing.T) {
	ls := startLineServer(t, nil, nil)
	port := fmt.Sprint(ls.port)
	shapes(t, func(t *testing.T, mode string) {
		res := &fakeResolver{answers: map[string][][]string{
			"db.test":     {{"127.0.0.1"}},
			"meta.test":   {{"169.254.169.254"}},
			"meta6.test":  {{"fd00:ec2::254"}},
			"mixed.test":  {{"169.254.169.254", "10.1.2.3", "::1"}},
			"nat64.test":  {{"64:ff9b::7f00:1"}},
			"mapped.test": {{"::ffff:127.0.0.1"}},
			"zero.test":   {{"0.0.0.0"}},
			"rebind.test": {{"203.0.113.9"}, {"127.0.0.1"}},
		}}
		names := []string{"db.test:" + port, "meta.test", "meta6.test", "mixed.test", "nat64.test", "mapped.test",
			"zero.test", "rebind.test:" + port, "nxdomain.test", "198.51.100.0/24"}
		s := serve(t, app{mode: mode, res: res, section: plugins.Section{"allow": names, "connect_timeout": "2s"}})
		for _, c := range []struct{ addr, want string }{
			// Loopback and metadata addresses the guest names itself, not listed.
			{"127.0.0.1:" + port, "ERR_DENIED"},
			{"127.0.0.2:" + port, "ERR_DENIED"},
			{"[::1]:" + port, "ERR_DENIED"},
			{"[::ffff:127.0.0.1]:" + port, "ERR_DENIED"},
			{"169.254.169.254:80", "ERR_DENIED"},
			{"[fd00:ec2::254]:80", "ERR_DENIED"},
			{"[64:ff9b::a9fe:a9fe]:80", "ERR_DENIED"},
			{"0.0.0.0:" + port, "ERR_DENIED"},
			{"10.0.0.1:5432", "ERR_DENIED"},
			// Names on the list whose addresses are not: DNS cannot open the
			// host's own networks (only an IP or CIDR entry does).
			{"db.test:" + port, "ERR_DENIED"},
			{"meta.test:80", "ERR_DENIED"},
			{"meta6.test:80", "ERR_DENIED"},
			{"mixed.test:80", "ERR_DENIED"},
			{"nat64.test:" + port, "ERR_DENIED"},
			{"mapped.test:" + port, "ERR_DENIED"},
			{"zero.test:" + port, "ERR_DENIED"},
			// Names not on the list are refused before any lookup.
			{"other.test:" + port, "ERR_DENIED"},
			{"db.test:1", "ERR_DENIED"},
			// A name that does not resolve.
			{"nxdomain.test:80", "ERR_UNAVAILABLE"},
			// Malformed addresses.
			{"127.0.0.1", "ERR_BAD_ARGUMENT"},
			{"127.0.0.1:0", "ERR_BAD_ARGUMENT"},
			{"127.0.0.1:65536", "ERR_BAD_ARGUMENT"},
			{"127.0.0.1:+80", "ERR_BAD_ARGUMENT"},
			{":" + port, "ERR_BAD_ARGUMENT"},
			{"127.0.0.1:postgres", "ERR_BAD_ARGUMENT"},
			{"db%00.test:" + port, "ERR_BAD_ARGUMENT"},
		} {
			code, body := get(t, s.url+"/ping?addr="+c.addr)
			if body != c.want || code != 502 {
				t.Errorf("connect %s = %d %q, want %q", c.addr, code, body, c.want)
			}
		}
		if res.count("other.test") != 0 || res.count("db.test") != 1 {
			t.Errorf("lookups: other.test %d (want 0: not listed), db.test %d (want 1: db.test:1 is not listed)", res.count("other.test"), res.count("db.test"))
		}
		// DNS rebinding: the name is resolved once per connect, and the address
		// checked is the address dialled. Its first answer is public (and
		// unreachable here), the second would be loopback: the guest never gets
		// there.
		code, body := get(t, s.url+"/ping?addr=rebind.test:"+port)
		if code == 200 || res.count("rebind.test") != 1 {
			t.Fatalf("rebinding: %d %q after %d lookups", code, body, res.count("rebind.test"))
		}
		if !strings.Contains(s.log.String(), "connect denied") {
			t.Errorf("denials are not logged:\n%s", s.log.String())
		}

		// An IP or CIDR entry opens an address, whether the guest names it or a
		// listed name resolves to it, in either IPv4 form.
		s = serve(t, app{mode: mode, res: res, section: allow("127.0.0.1:"+port, "db.test")})
		for _, addr := range []string{ls.addr, "[::ffff:127.0.0.1]:" + port, "db.test:" + port} {
			want(t, s.url+"/ping?addr="+addr, 200, "pong")
		}
		want(t, s.url+"/ping?addr=127.0.0.1:1", 502, "ERR_DENIED")
	})
	// No allow list: nothing at all, not even the test's server.
	s := serve(t, app{})
	want(t, s.url+"/ping?addr="+ls.addr, 502, "ERR_DENIED")
	// The system resolver: localhost is listed by name, but resolves to loopback.
	s = serve(t, app{section: allow("localhost:" + port)})
	want(t, s.url+"/ping?addr=localhost:"+port, 502, "ERR_DENIED")
	ls.waitActive(t, 0)
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := testkit.SelfSigned(t, dir)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srvCfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	direct := startLineServer(t, srvCfg, nil)
	plain := startLineServer(t, nil, srvCfg)
	port := fmt.Sprint(direct.port)
	res := &fakeResolver{answers: map[string][][]string{"db.test": {{"127.0.0.1"}}}}
	shapes(t, func(t *testing.T, mode string) {
		list := []string{direct.addr, plain.addr, "db.test:" + port, "127.0.0.1/32"}
		trusted := serve(t, app{mode: mode, res: res, section: plugins.Section{"allow": list, "tls_ca": certFile}})
		system := serve(t, app{mode: mode, res: res, section: plugins.Section{"allow": list}})
		insecure := serve(t, app{mode: mode, res: res, section: plugins.Section{"allow": list, "tls_insecure_skip_verify": true}})

		want(t, trusted.url+"/ping?tls=1&addr="+direct.addr, 200, "pong")
		want(t, trusted.url+"/ping?tls=1&name=localhost&addr="+direct.addr, 200, "pong")
		// The certificate does not name db.test, whatever the address.
		want(t, trusted.url+"/ping?tls=1&addr=db.test:"+port, 502, "ERR_UNAVAILABLE")
		want(t, trusted.url+"/ping?tls=1&name=db.test&addr="+direct.addr, 502, "ERR_UNAVAILABLE")
		// Without the CA the system roots do not know it.
		want(t, system.url+"/ping?tls=1&addr="+direct.addr, 502, "ERR_UNAVAILABLE")
		if !strings.Contains(system.log.String(), "TLS certificate of an outbound connection not accepted") {
			t.Errorf("a rejected certificate is not logged:\n%s", system.log.String())
		}
		// The app's tls_server_name is verified when the guest names none.
		named := serve(t, app{mode: mode, res: res, section: plugins.Section{"allow": list, "tls_ca": certFile, "tls_server_name": "localhost"}})
		want(t, named.url+"/ping?tls=1&addr=db.test:"+port, 200, "pong")
		want(t, named.url+"/ping?tls=1&name=db.test&addr=db.test:"+port, 502, "ERR_UNAVAILABLE")
		// Only explicit config turns verification off.
		want(t, insecure.url+"/ping?tls=1&name=db.test&addr="+direct.addr, 200, "pong")
		// A plain connection upgraded after the protocol's own STARTTLS.
		want(t, trusted.url+"/starttls?addr="+plain.addr, 200, "pong")
		want(t, system.url+"/starttls?addr="+plain.addr, 502, "ERR_UNAVAILABLE")
		// A server name without TLS is a mistake of the guest.
		want(t, trusted.url+"/ping?name=x&addr="+direct.addr, 502, "ERR_BAD_ARGUMENT")
	})
}

func TestLimits(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		// A guest that leaks its connections fills its instance's share or the
		// app's, whichever is smaller; recycling the instance closes them on the
		// server's side too.
		for _, c := range []struct {
			inst, app, want int
		}{{inst: 2, app: 10, want: 2}, {inst: 10, app: 3, want: 3}} {
			ls := startLineServer(t, nil, nil)
			s := serve(t, app{mode: mode, section: plugins.Section{"allow": []string{ls.addr},
				"max_instance_conns": c.inst, "max_conns": c.app},
				pool: runtime.PoolConfig{Workers: 1, MaxRequests: 10}})
			for i := range 6 {
				code, body := get(t, s.url+"/leak?addr="+ls.addr)
				if i < c.want && code != 200 || i >= c.want && body != "ERR_QUOTA" {
					t.Fatalf("leak %d with max_instance_conns %d, max_conns %d: %d %q", i+1, c.inst, c.app, code, body)
				}
			}
			ls.waitActive(t, c.want)
			// The tenth request recycles the instance.
			for range 4 {
				get(t, s.url+"/ping?addr=127.0.0.1:1")
			}
			ls.waitActive(t, 0)
			// The replacement starts with the app's whole allowance.
			want(t, s.url+"/leak?addr="+ls.addr, 200, "1")
		}
	})
}

// TestGroupConnects: group_per_minute bounds the connects of the app's group
// (a hosting tenant's outbound quota): beyond it connect answers ERR_QUOTA,
// before anything is dialled.
func TestGroupConnects(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		ls := startLineServer(t, nil, nil)
		s := serve(t, app{mode: mode, section: plugins.Section{"allow": []string{ls.addr}, "group": "sockets-", "group_per_minute": 2}})
		want(t, s.url+"/ping?addr="+ls.addr, 200, "pong")
		want(t, s.url+"/ping?addr="+ls.addr, 200, "pong")
		want(t, s.url+"/ping?addr="+ls.addr, 502, "ERR_QUOTA")
	})
}

func TestByteQuota(t *testing.T) {
	shapes(t, func(t *testing.T, mode string) {
		ls := startLineServer(t, nil, nil)
		s := serve(t, app{mode: mode, section: plugins.Section{"allow": []string{ls.addr}, "max_bytes_out": 1000, "bytes_window": "1h"}})
		want(t, s.url+"/write?n=600&addr="+ls.addr, 200, "600")
		want(t, s.url+"/write?n=600&addr="+ls.addr, 200, "400 ERR_QUOTA")
		want(t, s.url+"/write?n=1&addr="+ls.addr, 200, "0 ERR_QUOTA")
	})
}

func TestConfigErrors(t *testing.T) {
	p := sockets.New(sockets.Options{})
	for _, c := range []struct {
		sec  plugins.Section
		want string
	}{
		{plugins.Section{"allow": []string{"db:0"}}, "bad port"},
		{plugins.Section{"max_conns": -1}, "max_conns"},
		{plugins.Section{"tls_ca": "/nonexistent.pem"}, "tls_ca"},
		{plugins.Section{"alow": []string{"x"}}, "alow"},
		{plugins.Section{"connect_timeout": "soon"}, "soon"},
		{plugins.Section{"group": "other_", "group_per_minute": 5}, "group"},
		{plugins.Section{"group_per_minute": 5}, "group"},
	} {
		_, err := p.Open(context.Background(), plugins.AppInfo{Name: "a", Config: c.sec, Logger: slog.New(slog.DiscardHandler)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %v: err %v, want it to name %q", c.sec, err, c.want)
		}
	}
}

// TestCGuest drives the plugin from C (sdk/c/wasmsrv_plugins.h), and breaks its
// ABI the ways a guest written from ABI.md alone can: regions outside memory,
// unknown handles and lengths that would size host allocations trap the guest
// (500, its instance replaced); bad values get statuses; the host and the app's
// other requests carry on.
func TestCGuest(t *testing.T) {
	wasm := testkit.BuildC(t, "testdata/c-sockets.c")
	ls := startLineServer(t, nil, nil)
	s := serve(t, app{source: wasm, section: allow(ls.addr), pool: runtime.PoolConfig{Workers: 2}})
	q := "?addr=" + ls.addr
	want(t, s.url+"/ping"+q, 200, "pong")
	for _, c := range []struct {
		path string
		code int
		body string
	}{
		{"/long-addr", 200, "-3"},
		{"/long-name" + q, 200, "-3"},
		{"/bad-flags" + q, 200, "-3"},
		{"/both-families" + q, 200, "-3"},
		{"/name-without-tls" + q, 200, "-3"},
		{"/garbage-addr", 200, "-3"},
		{"/ping?addr=127.0.0.1:1", 200, "-18"}, // ERR_DENIED
		// set_deadline, notify with bad directions; notify in sync mode; wait in
		// sync mode; addr with a bad which; a zero-length read; shutdown; write
		// and starttls after it.
		{"/calls-on-open" + q, 200, "-3 -3 -4 0 -3 0 0 -1 -5"},
		{"/connect-addr-oob", 500, ""},
		{"/connect-name-oob" + q, 500, ""},
		{"/connect-huge-len", 500, ""},
		{"/read-bad-handle", 500, ""},
		{"/write-zero-handle", 500, ""},
		{"/close-twice" + q, 500, ""},
		{"/read-oob" + q, 500, ""},
		{"/write-oob" + q, 500, ""},
		{"/addr-oob" + q, 500, ""},
		{"/read-huge" + q, 500, ""},
	} {
		code, body := get(t, s.url+c.path)
		if code != c.code || (c.body != "" && body != c.body) {
			t.Errorf("%s = %d %q, want %d %q", c.path, code, body, c.code, c.body)
		}
		want(t, s.url+"/ok", 200, "0")
	}
	if l := s.log.String(); !strings.Contains(l, "region outside guest memory") || !strings.Contains(l, "unknown socket handle 999") {
		t.Errorf("the traps are not explained in the log:\n%s", l)
	}
	// The trapped instances' connections were closed with them.
	ls.waitActive(t, 0)
}

// smtpServer is the least SMTP server net/smtp talks to; it keeps the messages.
func smtpServer(t testing.TB) (addr string, msgs chan string) {
	t.Helper()
	ln := testkit.Listen(t)
	msgs = make(chan string, 4)
	testkit.ServeConns(t, ln, func(c net.Conn) {
		rd := bufio.NewReader(c)
		io.WriteString(c, "220 test ESMTP\r\n")
		var from, to string
		for {
			l, err := rd.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(l)); {
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
				io.WriteString(c, "250 test\r\n")
			case strings.HasPrefix(cmd, "MAIL FROM:"):
				from = strings.TrimSpace(l[10:])
				io.WriteString(c, "250 OK\r\n")
			case strings.HasPrefix(cmd, "RCPT TO:"):
				to = strings.TrimSpace(l[8:])
				io.WriteString(c, "250 OK\r\n")
			case cmd == "DATA":
				io.WriteString(c, "354 go ahead\r\n")
				var body strings.Builder
				for {
					l, err := rd.ReadString('\n')
					if err != nil {
						return
					}
					if l == ".\r\n" {
						break
					}
					body.WriteString(l)
				}
				msgs <- from + " -> " + to + ": " + body.String()
				io.WriteString(c, "250 queued\r\n")
			case cmd == "QUIT":
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "502 no\r\n")
			}
		}
	})
	return ln.Addr().String(), msgs
}

func TestNetSMTP(t *testing.T) {
	addr, msgs := smtpServer(t)
	shapes(t, func(t *testing.T, mode string) {
		s := serve(t, app{mode: mode, section: allow(addr)})
		want(t, s.url+"/smtp?addr="+addr, 200, "sent")
		if got, want := <-msgs, "<app@example.com> -> <ops@example.com>: Subject: hello\r\n\r\nsent from a guest\r\n"; got != want {
			t.Fatalf("the server got %q, want %q", got, want)
		}
	})
}
