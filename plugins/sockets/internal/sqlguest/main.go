// Command sqlguest uses database/sql with pgx's driver (pgx/v5/stdlib), dialling
// through the sockets plugin, for the plugin's tests: a driver that takes a
// dialer plugs in like pgx itself. DATABASE_URL comes from the config plugin.
//
//	GET /pid   the server process serving this instance's connection
//	GET /tx    a transaction rolled back: the rows it inserted are gone
//	GET /pgx?n=N  N queries of one row on a pgx.Conn (BenchmarkQuery)
//	GET /handler?n=N  N GETs of one todo through samples/todo's handler, called
//	              directly (BenchmarkTodoHandler)
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/config"
	"github.com/wasmsrv/wasmsrv/sdk/go/sockets"

	"github.com/wasmsrv/wasmsrv/samples/todo/api"
)

var (
	db   *sql.DB
	cfg  *pgx.ConnConfig
	pgc  *pgx.Conn    // /pgx's own connection
	todo http.Handler // /handler's
	gate = wasmsrv.NewSemaphore(2)
)

func init() {
	wasmsrv.OnStart(func() error {
		url, ok := config.Lookup("DATABASE_URL")
		if !ok {
			return errors.New("no DATABASE_URL")
		}
		var err error
		if cfg, err = pgx.ParseConfig(url); err != nil {
			return err
		}
		cfg.DialFunc = sockets.Dial
		cfg.LookupFunc = sockets.LookupHost
		db = stdlib.OpenDB(*cfg)
		db.SetMaxOpenConns(2) // as wide as gate
		_, err = db.Exec("CREATE TABLE IF NOT EXISTS notes (body text)")
		return err
	})
	wasmsrv.HandleFunc(func(w *wasmsrv.ResponseWriter, r *wasmsrv.Request) {
		gate.Acquire()
		defer gate.Release()
		out, err := route(context.Background(), r.Path, r.RawQuery)
		if err != nil {
			w.WriteHeader(502)
			out = err.Error()
		}
		w.WriteString(out)
	})
}

func route(ctx context.Context, path, query string) (string, error) {
	switch path {
	case "/handler":
		n, _ := strconv.Atoi(strings.TrimPrefix(query, "n="))
		if todo == nil {
			pcfg, err := pgxpool.ParseConfig(cfg.ConnString())
			if err != nil {
				return "", err
			}
			pcfg.ConnConfig.DialFunc, pcfg.ConnConfig.LookupFunc = sockets.Dial, sockets.LookupHost
			pcfg.MaxConns = 1
			pool, err := pgxpool.NewWithConfig(ctx, pcfg)
			if err != nil {
				return "", err
			}
			if err := api.Migrate(ctx, pool); err != nil {
				return "", err
			}
			if _, err := pool.Exec(ctx, "INSERT INTO todos (id, title) VALUES (1, 'x') ON CONFLICT DO NOTHING"); err != nil {
				return "", err
			}
			todo = api.New(pool, nil).Handler()
		}
		return api.Serve(todo, "/todos/1", n)

	case "/pgx":
		n, _ := strconv.Atoi(strings.TrimPrefix(query, "n="))
		if pgc == nil {
			var err error
			if pgc, err = pgx.ConnectConfig(ctx, cfg.Copy()); err != nil {
				return "", err
			}
			if _, err := pgc.Exec(ctx, "INSERT INTO notes VALUES ('x')"); err != nil {
				return "", err
			}
		}
		var body string
		for range n {
			if err := pgc.QueryRow(ctx, "SELECT body FROM notes WHERE body = $1 LIMIT 1", "x").Scan(&body); err != nil {
				return "", err
			}
		}
		return body, nil
	case "/pid":
		var pid int
		err := db.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid)
		return fmt.Sprint(pid), err
	case "/tx":
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return "", err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO notes VALUES ('draft'), ('draft')"); err != nil {
			tx.Rollback()
			return "", err
		}
		var inside int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM notes").Scan(&inside); err != nil {
			tx.Rollback()
			return "", err
		}
		if err := tx.Rollback(); err != nil {
			return "", err
		}
		var after int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM notes").Scan(&after)
		return fmt.Sprintf("%d inside, %d after rollback", inside, after), err
	}
	return "", errors.New("no such path")
}

func main() {}
