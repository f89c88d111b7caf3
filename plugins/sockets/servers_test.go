package sockets_test

// Tests with real servers the tests start (Debian postgresql and redis-server):
// samples/todo (pgx) and samples/redis-counter (go-redis) running in guests, in
// both shapes.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
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

const (
	todoSample  = "../../samples/todo"
	redisSample = "../../samples/redis-counter"
)

func do(t testing.TB, method, url, body string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

type todo struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

func decodeJSON[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

func TestTodoOnPostgres(t *testing.T) {
	pg := testkit.StartPostgres(t)
	shapes(t, func(t *testing.T, mode string) {
		db := "todo_" + map[string]string{"": "sync", "async": "async"}[mode]
		url := pg.CreateDB(t, "127.0.0.1", db)
		const workers = 2
		s := serve(t, app{source: todoSample, mode: mode, section: allow(pg.Addr),
			vars: map[string]string{"DATABASE_URL": url}, pool: runtime.PoolConfig{Workers: workers}})
		check := pg.Conn(t, db)
		ctx := context.Background()

		// The schema was created at start.
		var exists bool
		if err := check.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_tables WHERE tablename = 'todos')").Scan(&exists); err != nil || !exists {
			t.Fatalf("no todos table after start: %v", err)
		}

		// Create, read, update, list, delete.
		code, body, h := do(t, "POST", s.url+"/todos", `{"title":"write the docs"}`)
		if code != 201 {
			t.Fatalf("create: %d %s", code, body)
		}
		created := decodeJSON[todo](t, body)
		if created.Title != "write the docs" || created.Done || h.Get("Location") != fmt.Sprintf("/todos/%d", created.ID) {
			t.Fatalf("created %+v, Location %q", created, h.Get("Location"))
		}
		item := fmt.Sprintf("%s/todos/%d", s.url, created.ID)
		if code, body, _ = do(t, "GET", item, ""); code != 200 || decodeJSON[todo](t, body) != created {
			t.Fatalf("get: %d %s", code, body)
		}
		if code, body, _ = do(t, "PATCH", item, `{"done":true}`); code != 200 || !decodeJSON[todo](t, body).Done {
			t.Fatalf("update: %d %s", code, body)
		}
		do(t, "POST", s.url+"/todos", `{"title":"second"}`)
		if code, body, _ = do(t, "GET", s.url+"/todos?done=true", ""); code != 200 || len(decodeJSON[[]todo](t, body)) != 1 {
			t.Fatalf("list done: %d %s", code, body)
		}
		if code, body, _ = do(t, "GET", s.url+"/todos", ""); code != 200 || len(decodeJSON[[]todo](t, body)) != 2 {
			t.Fatalf("list: %d %s", code, body)
		}
		if code, _, _ = do(t, "DELETE", item, ""); code != 204 {
			t.Fatalf("delete: %d", code)
		}
		for _, c := range []struct{ method, path, body string }{{"GET", "", ""}, {"DELETE", "", ""}, {"PATCH", "", `{"done":false}`}} {
			if code, body, _ = do(t, c.method, item, c.body); code != 404 || !strings.Contains(body, "no such todo") {
				t.Fatalf("%s of a deleted todo: %d %s", c.method, code, body)
			}
		}
		for _, bad := range []string{`{"title":""}`, `{}`, `{"title":"x","color":"red"}`, `not json`} {
			if code, body, _ = do(t, "POST", s.url+"/todos", bad); code != 400 {
				t.Fatalf("create %s: %d %s", bad, code, body)
			}
		}

		// A transaction: a batch with a bad item inserts none of it.
		count := func() int {
			var n int
			if err := check.QueryRow(ctx, "SELECT count(*) FROM todos").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		if code, body, _ = do(t, "POST", s.url+"/todos/batch", `[{"title":"a"},{"title":"b"},{"title":""}]`); code != 400 || count() != before {
			t.Fatalf("bad batch: %d %s, %d rows (was %d)", code, body, count(), before)
		}
		if code, body, _ = do(t, "POST", s.url+"/todos/batch", `[{"title":"a"},{"title":"b","done":true}]`); code != 201 || count() != before+2 {
			t.Fatalf("batch: %d %s, %d rows (was %d)", code, body, count(), before)
		}

		// The connections live on from request to request, many at once included:
		// the same server processes (backend pids) serve them all.
		backends := func() []int32 {
			rows, err := check.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE application_name = 'todo' AND datname = $1 ORDER BY pid", db)
			if err != nil {
				t.Fatal(err)
			}
			var pids []int32
			for rows.Next() {
				var pid int32
				if err := rows.Scan(&pid); err != nil {
					t.Fatal(err)
				}
				pids = append(pids, pid)
			}
			return pids
		}
		load(t, s.url+"/todos/"+strconv.FormatInt(created.ID+1, 10), 8, 100, func(code int, body string) bool { return code == 200 })
		first := backends()
		max := workers // one per sync instance; the async instances keep up to 8 each
		if mode == "async" {
			max = workers * 8
		}
		if len(first) == 0 || len(first) > max {
			t.Fatalf("%d backends after load, want 1..%d", len(first), max)
		}
		load(t, s.url+"/todos/"+strconv.FormatInt(created.ID+1, 10), 8, 100, func(code int, body string) bool { return code == 200 })
		if again := backends(); !slices.Equal(first, again) {
			t.Fatalf("backends changed between rounds of requests: %v then %v", first, again)
		}
	})
}

// load runs n GETs of url from c clients at once and fails on an answer ok rejects.
func load(t testing.TB, url string, c, n int, ok func(code int, body string) bool) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	jobs := make(chan struct{}, n)
	for range n {
		jobs <- struct{}{}
	}
	close(jobs)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				resp, err := client.Get(url)
				if err != nil {
					errs <- err.Error()
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !ok(resp.StatusCode, string(b)) {
					errs <- fmt.Sprintf("%d %s", resp.StatusCode, b)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatalf("GET %s: %s%s", url, e, logs.tail(url))
	}
}

// outage drives url with c clients while stop() takes the server down and
// start() brings it back: every answer must come within bound and be 200 or a
// clear 503 (with Retry-After) naming the outage; some must be 503; after the
// restart the app must answer 200 again.
func outage(t *testing.T, url string, c int, stop, start func(), unavailable string) {
	t.Helper()
	const bound = 15 * time.Second
	var (
		mu      sync.Mutex
		codes   = map[int]int{}
		bad     []string
		slowest time.Duration
	)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-quit:
					return
				default:
				}
				t0 := time.Now()
				resp, err := client.Get(url)
				el := time.Since(t0)
				mu.Lock()
				slowest = max(slowest, el)
				if err != nil {
					bad = append(bad, err.Error())
				} else {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					codes[resp.StatusCode]++
					if resp.StatusCode == 503 && (resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), unavailable)) ||
						resp.StatusCode != 200 && resp.StatusCode != 503 {
						bad = append(bad, fmt.Sprintf("%d %s", resp.StatusCode, b))
					}
				}
				mu.Unlock()
			}
		}()
	}
	waitCodes := func(code int) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			mu.Lock()
			n := codes[code]
			mu.Unlock()
			if n > 0 {
				return
			}
			if time.Now().After(deadline) {
				close(quit)
				wg.Wait()
				t.Fatalf("no %d answer within 60s; answers so far: %v, bad: %v", code, codes, bad)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitCodes(200)
	stop()
	waitCodes(503)
	start()
	mu.Lock()
	codes = map[int]int{} // from now on, 200s must come back
	mu.Unlock()
	waitCodes(200)
	close(quit)
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d bad answers during the outage, e.g. %q", len(bad), bad[0])
	}
	if slowest > bound {
		t.Fatalf("an answer took %v during the outage (bound %v)", slowest, bound)
	}
	// And it stays good.
	load(t, url, c, 4*c, func(code int, body string) bool { return code == 200 })
}

func TestTodoSurvivesPostgresRestart(t *testing.T) {
	pg := testkit.StartPostgres(t)
	shapes(t, func(t *testing.T, mode string) {
		db := "restart_" + map[string]string{"": "sync", "async": "async"}[mode]
		url := pg.CreateDB(t, "127.0.0.1", db)
		s := serve(t, app{source: todoSample, mode: mode, section: allow(pg.Addr),
			vars: map[string]string{"DATABASE_URL": url}, pool: runtime.PoolConfig{Workers: 2}})
		code, body, _ := do(t, "POST", s.url+"/todos", `{"title":"survive"}`)
		if code != 201 {
			t.Fatalf("create: %d %s", code, body)
		}
		id := decodeJSON[todo](t, body).ID
		outage(t, fmt.Sprintf("%s/todos/%d", s.url, id), 8, func() { pg.Stop(t) }, func() { pg.Start(t) }, "database unavailable")
	})
}

// redisStats reads counters of INFO.
func redisStats(t testing.TB, addr string) map[string]int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "INFO\r\n")
	rd := bufio.NewReader(c)
	head, err := rd.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		t.Fatalf("INFO: %q %v", head, err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	b := make([]byte, n)
	if _, err := io.ReadFull(rd, b); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, l := range strings.Split(string(b), "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			if n, err := strconv.Atoi(v); err == nil {
				out[k] = n
			}
		}
	}
	out["connected_clients"]-- // this connection
	return out
}

func TestRedisCounter(t *testing.T) {
	rs := testkit.StartRedis(t)
	shapes(t, func(t *testing.T, mode string) {
		s := serve(t, app{source: redisSample, mode: mode, section: allow(rs.Addr),
			vars: map[string]string{"REDIS_ADDR": rs.Addr}, pool: runtime.PoolConfig{Workers: 2}})
		key := "k" + mode
		for i := 1; i <= 3; i++ {
			want(t, s.url+"/hits/"+key, 200, fmt.Sprintf(`{"hits":%d,"key":"%s"}`+"\n", i, key))
		}
		if code, _, _ := do(t, "DELETE", s.url+"/hits/"+key, ""); code != 204 {
			t.Fatalf("delete: %d", code)
		}
		want(t, s.url+"/hits/"+key, 200, fmt.Sprintf(`{"hits":1,"key":"%s"}`+"\n", key))

		// The pool is reused: many requests, few connections.
		load(t, s.url+"/hits/"+key, 8, 50, func(code int, _ string) bool { return code == 200 })
		before := redisStats(t, rs.Addr)
		load(t, s.url+"/hits/"+key, 8, 200, func(code int, _ string) bool { return code == 200 })
		after := redisStats(t, rs.Addr)
		if d := after["total_connections_received"] - before["total_connections_received"]; d > 2*8 {
			t.Fatalf("%d new connections for 200 requests: the pool is not reused", d)
		}
		if want := 2 + 8*2; after["connected_clients"] > want {
			t.Fatalf("%d clients connected, want at most %d", after["connected_clients"], want)
		}
		want(t, s.url+"/hits/"+key, 200, fmt.Sprintf(`{"hits":252,"key":"%s"}`+"\n", key))
	})
}

// TestRedisCounterSurvivesRestart: one instance, so the first 200 after the
// restart proves THE instance recovered. go-redis stops dialling after PoolSize
// failed dials and answers every request with the last dial error until a probe
// goroutine of its own dials again (every second); in the sync shape the guest's
// goroutines run only while it serves a request, so with two instances the first
// 200 came from one of them while the other could still fail fast for a while,
// and "it stays good" depended on the scheduler.
func TestRedisCounterSurvivesRestart(t *testing.T) {
	rs := testkit.StartRedis(t)
	shapes(t, func(t *testing.T, mode string) {
		s := serve(t, app{source: redisSample, mode: mode, section: allow(rs.Addr),
			vars: map[string]string{"REDIS_ADDR": rs.Addr}, pool: runtime.PoolConfig{Workers: 1}})
		outage(t, s.url+"/hits/restart", 8, func() { rs.Stop(t) }, func() { rs.Start(t) }, "redis unavailable")
	})
}

// TestLeakedConnectionsToRedis: a guest that leaks connections is capped, and
// recycling its instance closes them, as Redis itself counts them.
func TestLeakedConnectionsToRedis(t *testing.T) {
	rs := testkit.StartRedis(t)
	shapes(t, func(t *testing.T, mode string) {
		base := redisStats(t, rs.Addr)["connected_clients"]
		s := serve(t, app{mode: mode, section: map[string]any{"allow": []string{rs.Addr}, "max_instance_conns": 4},
			pool: runtime.PoolConfig{Workers: 1, MaxRequests: 10}})
		for i := range 6 {
			code, body := get(t, s.url+"/leak?addr="+rs.Addr)
			if i < 4 && code != 200 || i >= 4 && body != "ERR_QUOTA" {
				t.Fatalf("leak %d: %d %q", i+1, code, body)
			}
		}
		if n := redisStats(t, rs.Addr)["connected_clients"] - base; n != 4 {
			t.Fatalf("redis counts %d leaked connections, want 4", n)
		}
		for range 4 { // the tenth request recycles the instance
			get(t, s.url+"/ping?addr=127.0.0.1:1")
		}
		deadline := time.Now().Add(30 * time.Second)
		for redisStats(t, rs.Addr)["connected_clients"] != base {
			if time.Now().After(deadline) {
				t.Fatalf("redis still counts %d leaked connections after the recycle", redisStats(t, rs.Addr)["connected_clients"]-base)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestDatabaseSQL: database/sql with pgx's driver, given the SDK's dialer, keeps
// its connections between requests and runs transactions.
func TestDatabaseSQL(t *testing.T) {
	pg := testkit.StartPostgres(t)
	shapes(t, func(t *testing.T, mode string) {
		url := pg.CreateDB(t, "127.0.0.1", "sql_"+map[string]string{"": "sync", "async": "async"}[mode])
		s := serve(t, app{source: "internal/sqlguest", mode: mode, section: allow(pg.Addr),
			vars: map[string]string{"DATABASE_URL": url}})
		want(t, s.url+"/tx", 200, "2 inside, 0 after rollback")
		_, pid := get(t, s.url+"/pid")
		if _, err := strconv.Atoi(pid); err != nil {
			t.Fatalf("pid: %q", pid)
		}
		for range 5 {
			want(t, s.url+"/pid", 200, pid)
		}
	})
}

// TestTodoOverHostTLS: with PG_TLS=1 the todo sample negotiates TLS the
// PostgreSQL way (SSLRequest) and the host does the handshake (StartTLS),
// verified against the app's tls_ca; without that CA the certificate is
// refused; an sslmode that demands TLS from pgx itself is refused at start.
func TestTodoOverHostTLS(t *testing.T) {
	pg := testkit.StartPostgres(t)
	ca := pg.EnableTLS(t)
	url := pg.CreateDB(t, "127.0.0.1", "tls")
	vars := map[string]string{"DATABASE_URL": url, "PG_TLS": "1"}
	s := serve(t, app{source: todoSample, section: plugins.Section{"allow": []string{pg.Addr}, "tls_ca": ca}, vars: vars})
	if code, body, _ := do(t, "POST", s.url+"/todos", `{"title":"encrypted"}`); code != 201 {
		t.Fatalf("create over TLS: %d %s%s", code, body, logs.tail(s.url+"/"))
	}
	var encrypted int
	if err := pg.Conn(t, "tls").QueryRow(context.Background(),
		"SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE application_name = 'todo' AND ssl").Scan(&encrypted); err != nil || encrypted == 0 {
		t.Fatalf("no TLS connection of the app on the server (%v)", err)
	}

	untrusted := serve(t, app{source: todoSample, section: allow(pg.Addr), vars: vars})
	if code, body, _ := do(t, "GET", untrusted.url+"/todos", ""); code != 503 || !strings.Contains(body, "ERR_UNAVAILABLE") {
		t.Fatalf("an unknown CA: %d %s", code, body)
	}
	if !strings.Contains(untrusted.log.String(), "TLS certificate of an outbound connection not accepted") {
		t.Errorf("the refused certificate is not logged:\n%s", untrusted.log.String())
	}

	reg, err := registry.New(pluglog.New(), plugconfig.New(), sockets.New(sockets.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	_, err = apps.Open(context.Background(), engine(t), apps.Spec{Name: "require", Source: todoSample, BuildCacheDir: testkit.BuildCache(),
		Pool: runtime.PoolConfig{Workers: 1}, Plugins: reg, Grants: registry.Grants{"sockets": allow(pg.Addr),
			"config": plugins.Section{"vars": map[string]string{"DATABASE_URL": strings.Replace(url, "sslmode=disable", "sslmode=require", 1)}}}},
		slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "set PG_TLS=1") {
		t.Fatalf("sslmode=require without PG_TLS: %v", err)
	}
}
