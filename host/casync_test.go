package host

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/runtime"
)

// The C SDK's async callbacks (sdk/c/wasmsrv.h, WASMSRV_ASYNC) end to end: the
// guest host/testdata/casync/main.c on one instance behind a real gateway and
// loopback sockets.

// startCAsync serves the C async test guest (testdata/casync) on a loopback server.
func startCAsync(t *testing.T, pc runtime.PoolConfig) *asyncSetup {
	t.Helper()
	bin, err := os.ReadFile("testdata/casync/main.wasm")
	if err != nil {
		t.Fatal(err)
	}
	return serveAsync(t, "casync", bin, 0, pc, runtime.AsyncConfig{}, GatewayConfig{App: "casync", BodyLimit: 8 << 20})
}

func (s *asyncSetup) stats(t *testing.T) string {
	t.Helper()
	resp, body := get(t, s.srv.URL+"/stats")
	if resp.StatusCode != 200 {
		t.Fatalf("/stats: %d %q", resp.StatusCode, body)
	}
	return strings.TrimSpace(body)
}

func fnv32a(b []byte) uint32 {
	h := fnv.New32a()
	h.Write(b)
	return h.Sum32()
}

// field returns the value of key=value in a guest's space-separated answer.
func field(t *testing.T, answer, key string) int {
	t.Helper()
	for _, f := range strings.Fields(answer) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			n, err := strconv.ParseInt(v, 0, 64)
			if err != nil {
				t.Fatalf("%s in %q: %v", key, answer, err)
			}
			return int(n)
		}
	}
	t.Fatalf("no %s in %q", key, answer)
	return 0
}

// A request body reaches on_body as the client sends it: a body written in pauses
// arrives over several callbacks, and a body far over the host's 64 KiB read-ahead
// arrives whole (the host stops reading while its buffer is full and resumes as the
// guest drains it).
func TestCAsyncBody(t *testing.T) {
	s := startCAsync(t, runtime.PoolConfig{Workers: 1})
	t.Run("chunks with pauses", func(t *testing.T) {
		const chunks, size = 5, 10000
		pr, pw := io.Pipe()
		var sent []byte
		for i := range chunks {
			sent = append(sent, strings.Repeat(string(rune('a'+i)), size)...)
		}
		go func() {
			for i := range chunks {
				if i > 0 {
					time.Sleep(50 * time.Millisecond)
				}
				if _, err := pw.Write(sent[i*size : (i+1)*size]); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
			pw.Close()
		}()
		resp, err := http.Post(s.srv.URL+"/body", "application/octet-stream", pr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer := string(b)
		if resp.StatusCode != 200 || field(t, answer, "bytes") != chunks*size || uint32(field(t, answer, "fnv")) != fnv32a(sent) {
			t.Fatalf("status %d, answer %q; want bytes=%d fnv=%08x", resp.StatusCode, answer, chunks*size, fnv32a(sent))
		}
		// Each pause ends a BODY event's worth of bytes; a little coalescing is fine.
		if n := field(t, answer, "chunks"); n < 3 {
			t.Errorf("%d callbacks found bytes, want the paused writes spread over several on_body calls", n)
		}
	})
	t.Run("large body", func(t *testing.T) {
		body := make([]byte, 3<<20)
		for i := range body {
			body[i] = byte(i * 7 >> 3)
		}
		resp, err := http.Post(s.srv.URL+"/body", "application/octet-stream", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer := string(b)
		if resp.StatusCode != 200 || field(t, answer, "bytes") != len(body) || uint32(field(t, answer, "fnv")) != fnv32a(body) {
			t.Fatalf("status %d, answer %q; want bytes=%d fnv=%08x", resp.StatusCode, answer, len(body), fnv32a(body))
		}
	})
}

// The request deadline reaches the guest as on_cancel (the client gets 504 and the
// guest's late write is refused with ERR_TIMEOUT); a client that leaves reaches it as
// on_disconnect. Both end the connection and the instance keeps serving.
func TestCAsyncCancelAndDisconnect(t *testing.T) {
	s := startCAsync(t, runtime.PoolConfig{Workers: 1, RequestTimeout: 300 * time.Millisecond})
	// The guest never answers /hang by itself: only the deadline ends it (the
	// client's own timeout only catches a host that ignores it).
	c := &http.Client{Timeout: 60 * time.Second}
	resp, err := c.Get(s.srv.URL + "/hang")
	if err != nil {
		t.Fatalf("/hang: %v (deadline 300 ms)", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("/hang: %d, want 504", resp.StatusCode)
	}
	waitUntil(t, "on_cancel", 30*time.Second, func() bool { return field(t, s.stats(t), "cancels") == 1 })
	if st := s.stats(t); field(t, st, "cancel_write") != -7 || field(t, st, "disconnects") != 0 {
		t.Fatalf("stats %q: want the write after CANCEL refused with ERR_TIMEOUT (-7), no disconnect", st)
	}

	if got := s.pool.Stats().Live; got != 1 {
		t.Fatalf("%d live instances after a cancel, want the one instance kept", got)
	}

	// A client that leaves, with a deadline that cannot come first however slow
	// the machine (with 300 ms it would turn into a cancel).
	s = startCAsync(t, runtime.PoolConfig{Workers: 1, RequestTimeout: 10 * time.Minute})
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
	// The request reached the guest before the client leaves: otherwise the host
	// may drop it before REQUEST_START.
	waitUntil(t, "the request in the guest", 30*time.Second, func() bool { return field(t, s.stats(t), "hanging") == 1 })
	conn.Close()
	waitUntil(t, "on_disconnect", 30*time.Second, func() bool { return field(t, s.stats(t), "disconnects") == 1 })
	if st := s.stats(t); field(t, st, "cancels") != 0 || field(t, st, "hanging") != 0 {
		t.Fatalf("stats %q: a disconnect is not a cancel, and it ends the request", st)
	}
	if got := s.pool.Stats().Live; got != 1 {
		t.Fatalf("%d live instances after a disconnect, want the one instance kept", got)
	}
}

// hold starts a /hold request: once it returns, the instance holding it is in
// backpressure. It returns that instance's id, a writer for the request body and
// a function that ends the body and returns the rest of the answer.
func (s *asyncSetup) hold(t *testing.T) (id int, body io.Writer, release func() string) {
	t.Helper()
	pr, pw := io.Pipe()
	type result struct {
		resp *http.Response
		err  error
	}
	started := make(chan result, 1)
	go func() {
		resp, err := http.Post(s.srv.URL+"/hold", "text/plain", pr)
		started <- result{resp, err}
	}()
	r := <-started
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.resp.Body.Close() })
	br := bufio.NewReader(r.resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "holding ") {
		t.Fatalf("/hold: %d %q %v", r.resp.StatusCode, line, err)
	}
	return field(t, line, "id"), pw, func() string {
		pw.Close()
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("/hold after release: %v", err)
		}
		return string(rest)
	}
}

// A guest in backpressure gets no new requests: with one instance they are refused
// with 503 and Retry-After until it turns backpressure off, while its own request
// keeps getting events.
func TestCAsyncBackpressure(t *testing.T) {
	s := startCAsync(t, runtime.PoolConfig{Workers: 1})
	_, body, release := s.hold(t)
	for i, chunk := range []string{"x", "yz"} {
		resp, _ := get(t, s.srv.URL+"/")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("request %d while held: %d (Retry-After %q), want 503 with Retry-After", i, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		// The held request's own body events keep flowing meanwhile.
		if _, err := body.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	// The body ends: the guest turns backpressure off and answers.
	if rest := release(); rest != "released bytes=3\n" {
		t.Fatalf("held request ended with %q", rest)
	}
	if resp, body := get(t, s.srv.URL+"/"); resp.StatusCode != 200 || body != "hello\n" {
		t.Fatalf("after release: %d %q", resp.StatusCode, body)
	}
}

// With two instances, the one in backpressure gets no new connections even when
// it carries fewer than the other: they all go to the other one.
func TestCAsyncBackpressurePlacement(t *testing.T) {
	s := startCAsync(t, runtime.PoolConfig{Workers: 2, RequestTimeout: 30 * time.Second})
	holder, _, release := s.hold(t)
	// Three open requests: without backpressure the least loaded instance would
	// take each, ending two and two, and the next request would go to the holder.
	for n := 2; n <= 4; n++ {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.srv.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /hang HTTP/1.1\r\nHost: t\r\n\r\n")
		waitUntil(t, "the request placed", 5*time.Second, func() bool {
			total := 0
			for _, c := range s.pool.Stats().Conns {
				total += c
			}
			return total == n
		})
	}
	if conns := s.pool.Stats().Conns; !(len(conns) == 2 && (conns[0] == 1 && conns[1] == 3 || conns[0] == 3 && conns[1] == 1)) {
		t.Fatalf("connections per instance %v, want the holder's one and the other three", conns)
	}
	for i := range 10 {
		resp, body := get(t, s.srv.URL+"/whoami")
		if resp.StatusCode != 200 || field(t, body, "id") == holder {
			t.Fatalf("request %d: %d %q, want it served by the instance not holding (%d)", i, resp.StatusCode, body, holder)
		}
	}
	if rest := release(); rest != "released bytes=0\n" {
		t.Fatalf("held request ended with %q", rest)
	}
}

// A guest that returns WASMSRV_YIELD keeps getting on_poll until it is done, and
// requests arriving meanwhile are served in between rather than after it; their
// callbacks returning IDLE do not cancel the pending poll. The yield is done only
// once the instance answered five other requests: a host that ran the polls to
// the end before serving anything else, or stopped polling after an IDLE, never
// answers it (or the five), whatever the machine's speed.
func TestCAsyncYield(t *testing.T) {
	s := startCAsync(t, runtime.PoolConfig{Workers: 1, RequestTimeout: 60 * time.Second})
	const others = 5
	type result struct {
		body string
		code int
	}
	yielded := make(chan result, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/yield?served=%d", s.srv.URL, others))
		if err != nil {
			yielded <- result{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		yielded <- result{string(b), resp.StatusCode}
	}()
	waitUntil(t, "the guest yielding", 30*time.Second, func() bool { return field(t, s.stats(t), "yielding") == 1 })
	c := &http.Client{Timeout: 30 * time.Second}
	for i := range others {
		select {
		case r := <-yielded:
			t.Fatalf("/yield answered %d %q before the %d requests it waits for were served (%d were)", r.code, r.body, others, i)
		default:
		}
		resp, err := c.Get(s.srv.URL + "/")
		if err != nil {
			t.Fatalf("request %d during the yield: %v: not served while the guest yields", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "hello\n" {
			t.Fatalf("request %d during the yield: %d %q", i, resp.StatusCode, b)
		}
	}
	var r result
	select {
	case r = <-yielded:
	case <-time.After(30 * time.Second):
		t.Fatalf("/yield not answered 30 s after the requests it waits for were served: the POLLs stopped\nlog:\n%s", s.logs.String())
	}
	if r.code != 200 || field(t, r.body, "polls") < 2 {
		t.Fatalf("/yield: %d %q", r.code, r.body)
	}
}

// On shutdown the guest gets CANCEL for a request it holds and may still answer
// it: the client gets that answer, and Close returns once the guest ended it.
func TestCAsyncDrain(t *testing.T) {
	s := startCAsync(t, runtime.PoolConfig{Workers: 1})
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(s.srv.URL + "/hang")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp.StatusCode, string(b), err}
	}()
	waitUntil(t, "the request in the guest", 5*time.Second, func() bool { return field(t, s.stats(t), "hanging") == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.pool.Close(ctx); err != nil {
		t.Fatalf("close: %v (the guest did not end its connection on CANCEL)", err)
	}
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "late" {
		t.Fatalf("held request at shutdown: %d %q %v, want the guest's answer from on_cancel", r.status, r.body, r.err)
	}
}

// A client that reads slowly fills the host's queue for its response: the guest's
// write gets WASMSRV_ERR_WOULD_BLOCK, it retries in on_writable, and the client
// still receives every byte in order.
func TestCAsyncWriteBackpressure(t *testing.T) {
	s := startCAsync(t, runtime.PoolConfig{Workers: 1})
	const size = 8 << 20
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /big?kb=%d HTTP/1.1\r\nHost: t\r\n\r\n", size>>10)
	// Not reading at first, then slowly: the socket buffers fill, then the host's
	// queue. (A tiny SO_RCVBUF would be slower still, but on loopback's 64 KiB MTU it
	// stalls TCP itself in zero-window probes.)
	time.Sleep(300 * time.Millisecond)
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 4096), &http.Request{Method: "GET"})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body []byte
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v; guest stats %q\nlog:\n%s", len(body), err, s.stats(t), s.logs.String())
		}
		time.Sleep(200 * time.Microsecond)
	}
	if resp.StatusCode != 200 || len(body) != size {
		t.Fatalf("status %d, %d bytes, want %d", resp.StatusCode, len(body), size)
	}
	for i, b := range body {
		if want := byte(i * 7 >> 3); b != want {
			t.Fatalf("byte %d is %#x, want %#x: a retried write was lost or doubled", i, b, want)
		}
	}
	if st := s.stats(t); field(t, st, "blocked") < 1 {
		t.Fatalf("stats %q: no write was refused, so on_writable was not exercised", st)
	}
}
