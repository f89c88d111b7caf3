// Command sqlguest uses database/sql with pgx's driver (pgx/v5/stdlib), dialling
// through the sockets plugin, for the plugin's tests: a driver that takes a
// dialer plugs in like pgx itself. DATABASE_URL comes from the config plugin.
//
//	GET /pid   the server process serving this instance's connection
//	GET /tx    a transaction rolled back: the rows it inserted are gone
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/config"
	"github.com/wasmsrv/wasmsrv/sdk/go/sockets"
)

var (
	db   *sql.DB
	gate = wasmsrv.NewSemaphore(2)
)

func init() {
	wasmsrv.OnStart(func() error {
		url, ok := config.Lookup("DATABASE_URL")
		if !ok {
			return errors.New("no DATABASE_URL")
		}
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
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
		out, err := route(context.Background(), r.Path)
		if err != nil {
			w.WriteHeader(502)
			out = err.Error()
		}
		w.WriteString(out)
	})
}

func route(ctx context.Context, path string) (string, error) {
	switch path {
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
