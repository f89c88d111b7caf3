// Command todonative is the todo benchmark's reference: the handler of
// samples/todo (package samples/todo/api) on native net/http, with pgx dialling
// PostgreSQL itself, run as its own process like every other peer.
//
//	todonative -listen 127.0.0.1:8081 -database postgres://u:p@127.0.0.1:5432/db -pool 8
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasmsrv/wasmsrv/samples/todo/api"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address to listen on")
	dsn := flag.String("database", os.Getenv("DATABASE_URL"), "pgx connection string (default $DATABASE_URL)")
	size := flag.Int("pool", 8, "connections in the pool")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *listen, *dsn, *size); err != nil {
		slog.Error("todonative", "err", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, addr, dsn string, size int) error {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	cfg.MaxConns = int32(size)
	cfg.ConnConfig.RuntimeParams["application_name"] = "todonative"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := api.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("creating the schema: %w", err)
	}
	srv := &http.Server{Addr: addr, Handler: api.New(pool, nil).Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return fmt.Errorf("listen %s: %w", addr, err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
