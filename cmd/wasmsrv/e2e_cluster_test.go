package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// The cluster's timings. The front probes each node's /readyz every
// healthInterval on the node's app listener (health_path, as a cloud load
// balancer probes the traffic port); a stopping node serves on for drainDelay
// with /readyz at 503, several probe intervals plus the probe's timeout, so
// the front takes it out before its listener closes.
const (
	healthInterval = 500 * time.Millisecond
	healthTimeout  = time.Second
	drainDelay     = 3 * time.Second
	// deployWithin is issue 17's bound for a deploy to reach every node.
	deployWithin = 2 * time.Second
)

// cluster is Redis, three `wasmsrv serve` nodes with one site file on fixed
// ports, and a `wasmsrv serve` front balancing over them (issue 17 part 3).
// The nodes share kv, pub/sub and the hosting store in Redis.
type cluster struct {
	t          *testing.T
	redis      *testkit.Redis
	sites      []string // each node's copy of the one site file: its directory holds the node's hosting data_dir, as a machine's disk would
	ports      []int
	nodes      []*server
	front      *server
	frontAdmin string
	client     *http.Client
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, redis: testkit.StartRedis(t), client: httpClient(t)}
	site := fmt.Sprintf(`[admin]
addr = "127.0.0.1:0" # the deploy API and /metrics
token = %q

[server]
shutdown_timeout = "20s"
drain_delay = %q
trusted_proxies = ["127.0.0.1"] # the front

[[listeners]]
addr = "127.0.0.1:0" # WASMSRV_LISTEN gives each node its port
health_path = "/_wasmsrv/" # /_wasmsrv/readyz for the front's health check

[plugins]
redis_url = %q

[hosting]
data_dir = "data" # this node's copies of the modules; the store is in Redis
redis_url = %q

[tenants.alpha]
tokens = [%q]

[apps.hello]
module = %q

[apps.counter]
package = %q
grants = ["kv"]

[apps.chat]
package = %q
grants = ["pubsub"]

[[routes]]
path = "/hello"
app = "hello"

[[routes]]
path = "/counter"
app = "counter"

[[routes]]
path = "/chat"
app = "chat"
`, opToken, drainDelay, c.redis.URL, c.redis.URL, alphaHash, sample("c-hello/main.wasm"), sample("counter"), sample("chat"))
	var members []string
	for range 3 {
		p := testkit.FreePort(t)
		c.ports = append(c.ports, p)
		members = append(members, fmt.Sprintf("{ url = %q }", c.nodeURL(len(c.ports)-1)))
		path := filepath.Join(t.TempDir(), "site.toml")
		writeFile(t, path, site)
		c.sites = append(c.sites, path)
	}
	for i := range 3 {
		c.nodes = append(c.nodes, c.startNode(i))
	}
	front := writeSite(t, fmt.Sprintf(`[admin]
addr = "127.0.0.1:0" # /metrics: the upstream counters

[[listeners]]
addr = "127.0.0.1:0"

[upstreams.nodes]
policy = "round_robin"
servers = [%s]
connect_timeout = "1s"
retries = 2
max_fails = 1
fail_timeout = "2s"

[upstreams.nodes.health]
path = "/_wasmsrv/readyz"
interval = %q
timeout = %q
passes = 1
fails = 1

[[routes]]
path = "/"
upstream = "nodes"
strip_prefix = false
`, strings.Join(members, ", "), healthInterval, healthTimeout))
	c.front = startServe(t, front)
	c.frontAdmin = adminURL(t, c.front)
	return c
}

// nodeURL is node i's app listener, as the front's upstream group names it.
func (c *cluster) nodeURL(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", c.ports[i]) }

func (c *cluster) startNode(i int) *server {
	c.t.Helper()
	env := []string{fmt.Sprintf("WASMSRV_LISTEN=127.0.0.1:%d", c.ports[i])}
	// One warm-up key for the three copies: they build the same guests.
	return startWasmsrv(c.t, env, c.sites[0], "serve", "-c", c.sites[i], "--cache-dir", e2eCache)
}

// frontCounters are the front's counters of its upstream group "nodes"
// (docs/metrics.md), summed over the three servers.
type frontCounters struct {
	attempts, failedAttempts, retries, ejections float64
}

func (c *cluster) counters(t *testing.T) frontCounters {
	t.Helper()
	fams := scrapeWith(t, c.client, c.frontAdmin, "")
	sum := func(name string) float64 {
		v := 0.0
		if f := fams[name]; f != nil {
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if l.GetName() == "group" && l.GetValue() == "nodes" {
						v += m.GetCounter().GetValue()
					}
				}
			}
		}
		return v
	}
	return frontCounters{
		attempts:       sum("wasmsrv_upstream_requests_total"),
		failedAttempts: sum("wasmsrv_upstream_errors_total"),
		retries:        sum("wasmsrv_upstream_retries_total"),
		ejections:      sum("wasmsrv_upstream_ejections_total"),
	}
}

func (a frontCounters) since(b frontCounters) frontCounters {
	return frontCounters{a.attempts - b.attempts, a.failedAttempts - b.failedAttempts, a.retries - b.retries, a.ejections - b.ejections}
}

func (a frontCounters) String() string {
	return fmt.Sprintf("%.0f retried; the front made %.0f attempts on the nodes, %.0f of them failed, and ejected a node %.0f times",
		a.retries, a.attempts, a.failedAttempts, a.ejections)
}

// waitInRotation waits until the front's wasmsrv_upstream_up says node i may
// (up) or may not get requests, and returns how long that took. It gives up
// (false) after a minute, or when stop is closed first.
func (c *cluster) waitInRotation(t *testing.T, i int, up bool, stop <-chan struct{}) (time.Duration, bool) {
	t.Helper()
	want := 0.0
	if up {
		want = 1
	}
	start := time.Now()
	for deadline := start.Add(time.Minute); time.Now().Before(deadline); {
		if sampleOf(scrapeWith(t, c.client, c.frontAdmin, ""), "wasmsrv_upstream_up", "group", "nodes", "server", c.nodeURL(i)) == want {
			return time.Since(start), true
		}
		select {
		case <-stop:
			return time.Since(start), false
		case <-time.After(25 * time.Millisecond):
		}
	}
	return time.Since(start), false
}

// pollVersion GETs / with Host host on every node and through the front until
// each answers with Wasmsrv-Version want, and returns how long after since each
// did (nodes first, the front last); -1 for one that did not within limit.
func (c *cluster) pollVersion(host, want string, since time.Time, limit time.Duration) []time.Duration {
	targets := []string{}
	for i := range c.ports {
		targets = append(targets, c.nodeURL(i))
	}
	targets = append(targets, c.front.URL)
	took := make([]time.Duration, len(targets))
	var wg sync.WaitGroup
	for i, base := range targets {
		wg.Go(func() {
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			took[i] = -1
			for time.Since(since) < limit {
				req, _ := http.NewRequest(http.MethodGet, base+"/", nil)
				req.Host = host
				if resp, err := client.Do(req); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK && resp.Header.Get("Wasmsrv-Version") == want {
						took[i] = time.Since(since)
						return
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	return took
}

// load sends GETs to path through the front from two clients until stop is
// closed; failed counts answers other than 200 and transport errors.
type load struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	firstErr     string
	stop         chan struct{}
	wg           sync.WaitGroup
}

func (c *cluster) startLoad(path string) *load {
	l := &load{stop: make(chan struct{})}
	for range 2 {
		l.wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				l.sent.Add(1)
				resp, err := client.Get(c.front.URL + path)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != http.StatusOK {
					l.failed.Add(1)
					l.mu.Lock()
					if l.firstErr == "" {
						if err != nil {
							l.firstErr = err.Error()
						} else {
							l.firstErr = resp.Status
						}
					}
					l.mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) finish() (sent, failed int64, first string) {
	close(l.stop)
	l.wg.Wait()
	return l.sent.Load(), l.failed.Load(), l.firstErr
}

// chatClient is a WebSocket client of the chat room "cluster-k9" through the
// front, its messages read by a goroutine.
type chatClient struct {
	conn   *websocket.Conn
	msgs   chan string
	closed chan struct{}
}

func (c *cluster) dialChat(t *testing.T) *chatClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(c.front.URL, "http") + "/chat/ws?room=cluster-k9"
	var conn *websocket.Conn
	for attempt := 0; ; attempt++ {
		d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
		var err error
		if conn, _, err = d.Dial(url, nil); err == nil {
			break
		}
		if attempt == 10 {
			t.Fatalf("chat through the front: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Cleanup(func() { conn.Close() })
	cl := &chatClient{conn: conn, msgs: make(chan string, 16), closed: make(chan struct{})}
	go func() {
		defer close(cl.closed)
		for {
			_, b, err := conn.ReadMessage()
			if err != nil {
				return
			}
			cl.msgs <- string(b)
		}
	}()
	return cl
}

func (cl *chatClient) send(t *testing.T, msg string) {
	t.Helper()
	_ = cl.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := cl.conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func (cl *chatClient) receive(t *testing.T) string {
	t.Helper()
	select {
	case m := <-cl.msgs:
		return m
	case <-cl.closed:
		t.Fatal("the chat connection closed")
	case <-time.After(10 * time.Second):
		t.Fatal("no chat message within 10s")
	}
	return ""
}

// waitAllServe waits (bounded) until every node answers path directly.
func (c *cluster) waitAllServe(path string) {
	c.t.Helper()
	for i, p := range c.ports {
		deadline := time.Now().Add(time.Minute)
		for {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p, path))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("node %d does not serve %s", i, path)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestE2ECluster runs the cluster's points one after the other on one cluster:
// a deploy through any node served by all three, chat across nodes, kill -9
// under load, a rolling restart under load, Redis restarted under load. Each
// prints its figures.
func TestE2ECluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster test starts five processes and builds two Go guests")
	}
	c := startCluster(t)
	defer func() {
		// Stop the nodes together: each drains for drainDelay.
		for _, n := range c.nodes {
			n.signal(syscall.SIGTERM)
		}
		for _, n := range c.nodes {
			n.stop()
		}
	}()

	t.Run("a deploy through any node is served by all three within 2 s", func(t *testing.T) {
		hello, err := os.ReadFile(sample("c-hello/main.wasm"))
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		// v1 through node 2, then v2 (the same code, another hash) through node 0.
		for v, d := range []struct {
			via  int
			wasm []byte
		}{{2, hello}, {0, withCustomSection(hello, "v", "2")}} {
			file := filepath.Join(dir, fmt.Sprintf("v%d.wasm", v+1))
			writeFile(t, file, string(d.wasm))
			sum := sha256.Sum256(d.wasm)
			want := hex.EncodeToString(sum[:])[:12]
			began := time.Now()
			r := runWasmsrv(t, 5*time.Minute, []string{"WASMSRV_SERVER=" + adminURL(t, c.nodes[d.via]), "WASMSRV_TOKEN=" + alphaToken},
				"deploy", "--app", "web", "--host", "web.cluster.test", file)
			if r.code != 0 {
				t.Fatalf("deploy v%d through node %d: exit %d\n%s%s", v+1, d.via, r.code, r.stdout, r.stderr)
			}
			deployed := time.Now()
			// Measured up to 30 s, so a slow node shows its real time.
			took := c.pollVersion("web.cluster.test", want, deployed, 30*time.Second)
			var figures []string
			for i, after := range took {
				who := fmt.Sprintf("node %d", i)
				if i == len(c.nodes) {
					who = "the front"
				}
				figures = append(figures, fmt.Sprintf("%s %v", who, after.Round(time.Millisecond)))
				if after < 0 || after > deployWithin {
					t.Errorf("v%d (%s) deployed through node %d: %s served it %v after the deploy returned (-1: not within 30 s), want ≤ %v",
						v+1, want, d.via, who, after.Round(time.Millisecond), deployWithin)
				}
			}
			t.Logf("v%d (%s) deployed through node %d (the CLI took %v): served after the deploy returned by %s",
				v+1, want, d.via, deployed.Sub(began).Round(time.Millisecond), strings.Join(figures, ", "))
		}
	})

	t.Run("chat across nodes", func(t *testing.T) {
		var conns []*websocket.Conn
		for _, p := range c.ports {
			conns = append(conns, wsDial(t, fmt.Sprintf("ws://127.0.0.1:%d/chat/ws?room=cluster", p)))
		}
		// Subscriptions are made before the upgrade answers; send from each node
		// in turn and read it on every node.
		for i, from := range conns {
			msg := fmt.Sprintf("hello from node %d", i)
			_ = from.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := from.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			for j, to := range conns {
				_ = to.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, got, err := to.ReadMessage()
				if err != nil || string(got) != msg {
					t.Fatalf("node %d's client got %q %v, want %q from node %d", j, got, err, msg, i)
				}
			}
		}
		t.Logf("3 clients on 3 nodes: every message reached all of them")
	})

	t.Run("kill -9 under load", func(t *testing.T) {
		// Three chat clients through the front: round robin puts one on each node.
		var clients []*chatClient
		for range 3 {
			clients = append(clients, c.dialChat(t))
		}
		before := c.counters(t)
		l := c.startLoad("/hello")
		time.Sleep(time.Second) // steady load before the kill (a figure, not a synchronisation)
		_ = c.nodes[1].cmd.Process.Signal(syscall.SIGKILL)
		<-c.nodes[1].done
		// The front takes the dead node out (a failed attempt ejects it, the
		// health check keeps it out); the load goes on a second after that.
		out, ok := c.waitInRotation(t, 1, false, nil)
		if !ok {
			t.Fatal("the front still sends to the killed node after a minute")
		}
		time.Sleep(time.Second)
		sent, failed, first := l.finish()
		d := c.counters(t).since(before)

		// The killed node's client is cut off; it reconnects through the front
		// to a survivor, and the room works again for all three.
		reconnected := 0
		for i, cl := range clients {
			select {
			case <-cl.closed:
			case <-time.After(100 * time.Millisecond):
				continue
			}
			clients[i] = c.dialChat(t)
			reconnected++
		}
		if reconnected == 0 {
			select {
			case <-time.After(10 * time.Second):
				t.Fatal("no chat client was cut off by the kill (round robin should have put one on the killed node)")
			case <-clients[0].closed:
			case <-clients[1].closed:
			case <-clients[2].closed:
			}
			for i, cl := range clients {
				select {
				case <-cl.closed:
					clients[i] = c.dialChat(t)
					reconnected++
				default:
				}
			}
		}
		for i, from := range clients {
			msg := fmt.Sprintf("after the kill, from client %d", i)
			from.send(t, msg)
			for j, to := range clients {
				if got := to.receive(t); got != msg {
					t.Fatalf("client %d got %q, want %q", j, got, msg)
				}
			}
		}
		t.Logf("WebSocket: %d of 3 chat clients cut off by the kill reconnected through the front; all 3 talk again", reconnected)
		t.Logf("kill -9 of node 1: %d requests sent, %d failed, %s; out of rotation %v after the kill",
			sent, failed, d, out.Round(time.Millisecond))
		if failed != 0 {
			t.Errorf("%d of %d idempotent requests failed at the front (first: %s)", failed, sent, first)
		}
		c.nodes[1] = c.startNode(1)
		c.waitAllServe("/hello")
		if _, ok := c.waitInRotation(t, 1, true, nil); !ok {
			t.Fatal("the front does not send to the restarted node 1 after a minute")
		}
	})

	t.Run("rolling restart under load", func(t *testing.T) {
		// Each node in turn: SIGTERM, wait for it to exit, start it, wait until
		// the front sends to it again. On SIGTERM the node's /readyz says 503
		// and it serves on for drain_delay: the front's health check takes it out
		// before the listener closes, so no attempt fails and nothing is retried.
		before := c.counters(t)
		l := c.startLoad("/hello")
		var steps []string
		for i := range c.nodes {
			began := time.Now()
			c.nodes[i].signal(syscall.SIGTERM)
			out, ok := c.waitInRotation(t, i, false, c.nodes[i].done)
			if !ok {
				t.Errorf("node %d: the front still had it in rotation when it exited, %v after SIGTERM", i, out.Round(time.Millisecond))
			}
			if code, ok := c.nodes[i].wait(time.Minute); !ok || code != 0 {
				t.Fatalf("node %d: exit %d (exited %v)", i, code, ok)
			}
			exited := time.Since(began)
			c.nodes[i] = c.startNode(i)
			if _, ok := c.waitInRotation(t, i, true, nil); !ok {
				t.Fatalf("the front does not send to the restarted node %d after a minute", i)
			}
			steps = append(steps, fmt.Sprintf("node %d out of rotation %v after SIGTERM, exited at %v, back at %v",
				i, out.Round(time.Millisecond), exited.Round(time.Millisecond), time.Since(began).Round(time.Millisecond)))
		}
		time.Sleep(time.Second) // load on the three restarted nodes (a figure)
		sent, failed, first := l.finish()
		d := c.counters(t).since(before)
		t.Logf("rolling restart of 3 nodes (drain_delay %v, health check every %v): %s", drainDelay, healthInterval, strings.Join(steps, "; "))
		t.Logf("rolling restart of 3 nodes: %d requests sent, %d failed, %s", sent, failed, d)
		if failed != 0 {
			t.Errorf("%d of %d requests failed during the rolling restart (first: %s)", failed, sent, first)
		}
		if d.failedAttempts != 0 || d.retries != 0 {
			t.Errorf("the front sent %.0f attempts to a node that was going away (%.0f retried): readiness and drain should have taken each node out first", d.failedAttempts, d.retries)
		}
	})

	t.Run("redis restarted under load", func(t *testing.T) {
		var ok, unavailable, wrong atomic.Int64
		var last atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			client := &http.Client{Timeout: 30 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get(c.front.URL + "/counter/")
				if err != nil {
					wrong.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
					if err != nil || n == 0 {
						wrong.Add(1)
					} else {
						ok.Add(1)
						last.Store(n)
					}
				case http.StatusServiceUnavailable:
					unavailable.Add(1)
				default:
					wrong.Add(1)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
		waitFor := func(what string, cond func() bool) {
			deadline := time.Now().Add(time.Minute)
			for !cond() {
				if time.Now().After(deadline) {
					t.Fatalf("%s: not within a minute", what)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitFor("counting", func() bool { return ok.Load() >= 5 })
		c.redis.Stop(t)
		waitFor("a 503 while Redis is down", func() bool { return unavailable.Load() >= 3 })
		okDown := ok.Load()
		c.redis.Start(t)
		waitFor("counting again without a node restart", func() bool { return ok.Load() >= okDown+5 })
		close(stop)
		wg.Wait()
		t.Logf("Redis restarted: %d counted, %d answered 503 during the gap, %d wrong answers or errors", ok.Load(), unavailable.Load(), wrong.Load())
		if wrong.Load() != 0 {
			t.Errorf("%d answers were neither a count nor a 503", wrong.Load())
		}
	})

}
