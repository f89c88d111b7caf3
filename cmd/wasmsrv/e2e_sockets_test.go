package main

// The sockets plugin through the real binary: samples/todo (pgx) against a real
// PostgreSQL and samples/redis-counter (go-redis) against a real Redis, both
// started by the test, and the destinations the allow list refuses.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

type todoItem struct {
	ID    int64  `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

func TestE2ESocketsTodoOnPostgres(t *testing.T) {
	pg := testkit.StartPostgres(t)
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			url := pg.CreateDB(t, "127.0.0.1", "e2e_"+mode)
			srv := startServerEnv(t, []string{"DATABASE_URL=" + url}, sample("todo"), "--mode", mode, "--workers", "2",
				"--grant", "sockets,config", "--sockets-allow", pg.Addr, "--secret", "DATABASE_URL=env:DATABASE_URL")
			c := httpClient(t)
			resp, body := do(t, c, mustRequest(t, "POST", srv.URL+"/todos", strings.NewReader(`{"title":"ship it"}`)))
			if resp.StatusCode != http.StatusCreated || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("create: %d %s\n%s", resp.StatusCode, body, srv.logs())
			}
			var created todoItem
			if err := json.Unmarshal([]byte(body), &created); err != nil || created.Title != "ship it" {
				t.Fatalf("create: %q (%v)", body, err)
			}
			item := fmt.Sprintf("%s/todos/%d", srv.URL, created.ID)
			if resp, body = get(t, c, item); resp.StatusCode != 200 || !strings.Contains(body, `"title":"ship it"`) {
				t.Fatalf("get: %d %s", resp.StatusCode, body)
			}
			if resp, body = do(t, c, mustRequest(t, "PATCH", item, strings.NewReader(`{"done":true}`))); resp.StatusCode != 200 || !strings.Contains(body, `"done":true`) {
				t.Fatalf("update: %d %s", resp.StatusCode, body)
			}
			if resp, body = get(t, c, srv.URL+"/todos?done=true"); resp.StatusCode != 200 || !strings.HasPrefix(body, "[{") {
				t.Fatalf("list: %d %s", resp.StatusCode, body)
			}
			if resp, _ = do(t, c, mustRequest(t, "DELETE", item, nil)); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("delete: %d", resp.StatusCode)
			}
			if resp, body = get(t, c, item); resp.StatusCode != http.StatusNotFound {
				t.Fatalf("get after delete: %d %s", resp.StatusCode, body)
			}
			// The row is really in PostgreSQL, seen by another client.
			var n int
			if err := pg.Conn(t, "e2e_"+mode).QueryRow(t.Context(), "SELECT count(*) FROM todos WHERE title = 'ship it'").Scan(&n); err != nil || n != 0 {
				t.Fatalf("rows left after delete: %d (%v)", n, err)
			}
		})
	}
}

// TestE2ESocketsDenied: the destinations the allow list refuses, as an app sees
// them (503 from the todo sample, naming the refusal) and as the operator sees
// them (the server does not stop).
func TestE2ESocketsDenied(t *testing.T) {
	pg := testkit.StartPostgres(t)
	port := fmt.Sprint(pg.Port)
	for _, c := range []struct {
		name, host string
		env        []string
		args       []string
	}{
		// Granted, but nothing allowed.
		{name: "no allow list", host: "127.0.0.1"},
		// Listed by name, but the name resolves to loopback: only an IP or CIDR
		// entry opens the host's own addresses.
		{name: "name resolving to loopback", host: "localhost", args: []string{"--sockets-allow", "localhost:" + port}},
		// The cloud metadata address, not listed (the database's address is).
		{name: "metadata address", host: "169.254.169.254", env: []string{"WASMSRV_SOCKETS_ALLOW=" + pg.Addr}},
		// Another port of an allowed address.
		{name: "other port", host: "127.0.0.1", args: []string{"--sockets-allow", "127.0.0.1:1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			env := append([]string{"DATABASE_URL=" + pg.URL(c.host)}, c.env...)
			args := append([]string{"--workers", "1", "--grant", "sockets,config", "--secret", "DATABASE_URL=env:DATABASE_URL",
				"--sockets-connect-timeout", "3s"}, c.args...)
			srv := startServerEnv(t, env, sample("todo"), args...)
			resp, body := get(t, httpClient(t), srv.URL+"/todos")
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "ERR_DENIED") {
				t.Fatalf("GET /todos = %d %s, want 503 naming ERR_DENIED\n%s", resp.StatusCode, body, srv.logs())
			}
			if !strings.Contains(srv.logs(), "database not ready at start") {
				t.Errorf("the start hook's warning is not logged:\n%s", srv.logs())
			}
		})
	}
	// Not granted at all: the app does not load, and the error says why.
	r := runWasmsrv(t, startTimeout, nil, "run", "--listen", "127.0.0.1:0", "--cache-dir", e2eCache, "--grant", "config", sample("todo"))
	if r.code == 0 || !strings.Contains(r.stderr, `imports plugin "sockets"`) || !strings.Contains(r.stderr, "--grant sockets") {
		t.Fatalf("todo without the sockets grant: exit %d\n%s", r.code, r.stderr)
	}
}

func TestE2ESocketsRedisCounter(t *testing.T) {
	rs := testkit.StartRedis(t)
	srv := startServer(t, sample("redis-counter"), "--mode", "async", "--workers", "1",
		"--grant", "sockets,config", "--sockets-allow", rs.Addr, "--var", "REDIS_ADDR="+rs.Addr)
	c := httpClient(t)
	for i := 1; i <= 3; i++ {
		resp, body := get(t, c, srv.URL+"/hits/e2e")
		if want := fmt.Sprintf(`{"hits":%d,"key":"e2e"}`+"\n", i); resp.StatusCode != 200 || body != want {
			t.Fatalf("GET /hits/e2e = %d %q, want %q\n%s", resp.StatusCode, body, want, srv.logs())
		}
	}
}
