package main

import (
	"fmt"
	"io"
	"net/http"
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

// cluster is Redis, three `wasmsrv serve` nodes with one site file on fixed
// ports, and a `wasmsrv serve` front balancing over them (issue 17 part 3).
type cluster struct {
	t      *testing.T
	redis  *testkit.Redis
	site   string
	ports  []int
	nodes  []*server
	front  *server
	client *http.Client
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{t: t, redis: testkit.StartRedis(t), client: httpClient(t)}
	c.site = writeSite(t, fmt.Sprintf(`[admin]
addr = ""

[server]
shutdown_timeout = "20s"

[[listeners]]
addr = "127.0.0.1:0" # WASMSRV_LISTEN gives each node its port

[plugins]
redis_url = %q

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
`, c.redis.URL, sample("c-hello/main.wasm"), sample("counter"), sample("chat")))
	var members []string
	for range 3 {
		p := testkit.FreePort(t)
		c.ports = append(c.ports, p)
		members = append(members, fmt.Sprintf("{ url = \"http://127.0.0.1:%d\" }", p))
	}
	for i := range 3 {
		c.nodes = append(c.nodes, c.startNode(i))
	}
	front := writeSite(t, fmt.Sprintf(`[admin]
addr = ""

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
path = "/hello/health" # not counted as /hello in the nodes' logs
interval = "500ms"
timeout = "1s"
passes = 1
fails = 1

[[routes]]
path = "/"
upstream = "nodes"
strip_prefix = false
`, strings.Join(members, ", ")))
	c.front = startServe(t, front)
	return c
}

func (c *cluster) startNode(i int) *server {
	c.t.Helper()
	env := []string{fmt.Sprintf("WASMSRV_LISTEN=127.0.0.1:%d", c.ports[i])}
	return startWasmsrv(c.t, env, c.site, "serve", "-c", c.site, "--cache-dir", e2eCache)
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

// attempts counts the requests to path the nodes' access logs show (the
// front's retries make them more than the requests sent).
func (c *cluster) attempts(path string) int {
	n := 0
	for _, s := range c.nodes {
		n += strings.Count(s.logs(), "path="+path+" ")
	}
	return n
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
// chat across nodes, kill -9 under load, a rolling restart under load, Redis
// restarted under load. Each prints its figures.
func TestE2ECluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster test starts five processes and builds two Go guests")
	}
	c := startCluster(t)

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
		before := c.attempts("/hello")
		l := c.startLoad("/hello")
		time.Sleep(time.Second) // steady load before the kill (a figure, not a synchronisation)
		_ = c.nodes[1].cmd.Process.Signal(syscall.SIGKILL)
		<-c.nodes[1].done
		time.Sleep(2 * time.Second)
		sent, failed, first := l.finish()

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
		served := c.attempts("/hello") - before
		t.Logf("kill -9 of node 1: %d requests sent, %d failed, %d answered by the nodes' logs (the killed node's in-flight ones and the front's failed attempts leave no line); the front ejected a server %d times",
			sent, failed, served, strings.Count(c.front.logs(), "upstream server ejected"))
		if failed != 0 {
			t.Errorf("%d of %d idempotent requests failed at the front (first: %s)", failed, sent, first)
		}
		c.nodes[1] = c.startNode(1)
		c.waitAllServe("/hello")
	})

	t.Run("rolling restart under load", func(t *testing.T) {
		l := c.startLoad("/hello")
		for i := range c.nodes {
			c.nodes[i].signal(syscall.SIGTERM)
			if code, ok := c.nodes[i].wait(time.Minute); !ok || code != 0 {
				t.Fatalf("node %d: exit %d (exited %v)", i, code, ok)
			}
			c.nodes[i] = c.startNode(i)
		}
		c.waitAllServe("/hello")
		time.Sleep(time.Second)
		sent, failed, first := l.finish()
		t.Logf("rolling restart of 3 nodes: %d requests sent, %d failed", sent, failed)
		if failed != 0 {
			t.Errorf("%d of %d requests failed during the rolling restart (first: %s)", failed, sent, first)
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

	for _, n := range c.nodes {
		n.stop()
	}
}
