package sockets_test

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
	"github.com/wasmsrv/wasmsrv/samples/todo/api"
)

// BenchmarkRoundTrip is one line sent and one read back on an open connection:
// a guest through the plugin (both shapes) against the same loop in native Go, to
// the same in-process line server. b.N round trips run inside one request, so
// the request is amortised away; cpu-ns/op is the test process's CPU (server
// side included, the same for every variant). Run with -benchtime=20000x.
func BenchmarkRoundTrip(b *testing.B) {
	ls := startLineServer(b, nil, nil)
	for _, mode := range []string{"sync", "async"} {
		s := serve(b, app{mode: map[string]string{"sync": ""}[mode], section: allow(ls.addr)})
		b.Run("guest-"+mode, func(b *testing.B) {
			want(b, s.url+"/rtt?n=100&addr="+ls.addr, 200, "ok")
			cpu0 := testkit.CPUTime(b)
			b.ResetTimer()
			want(b, s.url+"/rtt?n="+strconv.Itoa(b.N)+"&addr="+ls.addr, 200, "ok")
			testkit.ReportCPU(b, cpu0)
		})
	}
	b.Run("native", func(b *testing.B) {
		c, err := net.Dial("tcp", ls.addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		rd := bufio.NewReader(c)
		cpu0 := testkit.CPUTime(b)
		b.ResetTimer()
		for range b.N {
			if _, err := c.Write([]byte("ping\n")); err != nil {
				b.Fatal(err)
			}
			if _, err := rd.ReadString('\n'); err != nil {
				b.Fatal(err)
			}
		}
		testkit.ReportCPU(b, cpu0)
	})
}

// BenchmarkQuery is one pgx QueryRow of one row on an open connection to a real
// PostgreSQL: in a guest (pgx compiled to wasm, its connection through the
// plugin) against native pgx. cpu-ns/op is the test process's CPU: the database
// is another process. Run with -benchtime=5000x.
func BenchmarkQuery(b *testing.B) {
	pg := testkit.StartPostgres(b)
	url := pg.CreateDB(b, "127.0.0.1", "bench")
	for _, mode := range []string{"sync", "async"} {
		s := serve(b, app{source: "internal/sqlguest", mode: map[string]string{"sync": ""}[mode], section: allow(pg.Addr),
			vars: map[string]string{"DATABASE_URL": url}})
		b.Run("guest-"+mode, func(b *testing.B) {
			want(b, s.url+"/pgx?n=100", 200, "x")
			cpu0 := testkit.CPUTime(b)
			b.ResetTimer()
			want(b, s.url+"/pgx?n="+strconv.Itoa(b.N), 200, "x")
			testkit.ReportCPU(b, cpu0)
		})
	}
	b.Run("native", func(b *testing.B) {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		var body string
		if err := c.QueryRow(ctx, "SELECT body FROM notes WHERE body = $1 LIMIT 1", "x").Scan(&body); err != nil {
			b.Fatal(err)
		}
		cpu0 := testkit.CPUTime(b)
		b.ResetTimer()
		for range b.N {
			if err := c.QueryRow(ctx, "SELECT body FROM notes WHERE body = $1 LIMIT 1", "x").Scan(&body); err != nil {
				b.Fatal(err)
			}
		}
		testkit.ReportCPU(b, cpu0)
	})
}

// BenchmarkTodoHandler is one GET /todos/1 through samples/todo's handler (mux,
// pgxpool, one query, encoding/json), called directly — no HTTP server, no
// adapter — in a guest and natively, on a real PostgreSQL. Run with
// -benchtime=3000x.
func BenchmarkTodoHandler(b *testing.B) {
	pg := testkit.StartPostgres(b)
	url := pg.CreateDB(b, "127.0.0.1", "bench")
	for _, mode := range []string{"sync", "async"} {
		s := serve(b, app{source: "internal/sqlguest", mode: map[string]string{"sync": ""}[mode], section: allow(pg.Addr),
			vars: map[string]string{"DATABASE_URL": url}})
		b.Run("guest-"+mode, func(b *testing.B) {
			code, body := get(b, s.url+"/handler?n=100")
			if code != 200 {
				b.Fatal(body)
			}
			cpu0 := testkit.CPUTime(b)
			b.ResetTimer()
			get(b, s.url+"/handler?n="+strconv.Itoa(b.N))
			testkit.ReportCPU(b, cpu0)
		})
	}
	b.Run("native", func(b *testing.B) {
		ctx := context.Background()
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			b.Fatal(err)
		}
		cfg.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		h := api.New(pool, nil).Handler()
		if _, err := api.Serve(h, "/todos/1", 100); err != nil {
			b.Fatal(err)
		}
		cpu0 := testkit.CPUTime(b)
		b.ResetTimer()
		if _, err := api.Serve(h, "/todos/1", b.N); err != nil {
			b.Fatal(err)
		}
		testkit.ReportCPU(b, cpu0)
	})
}
