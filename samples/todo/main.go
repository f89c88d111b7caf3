// Command todo is a small JSON API on PostgreSQL (package api has the routes),
// with pgx running inside the guest and its connections made by the host through
// the sockets plugin. The schema is created at start.
//
//	wasmsrv run --grant sockets,config --sockets-allow 127.0.0.1:5432 \
//	    --secret DATABASE_URL=env:DATABASE_URL ./samples/todo
//	curl -d '{"title":"write docs"}' localhost:8080/todos
//	curl localhost:8080/todos/1
//	curl -X PATCH -d '{"done":true}' localhost:8080/todos/1
//
// DATABASE_URL is a config variable or secret, a pgx connection string
// (postgres://user:pass@host:5432/db). POOL_SIZE sets the connections each
// instance keeps (default 1 in the sync shape, where an instance serves one
// request at a time, 8 in the async shape). TLS is the host's, not the guest's:
// with PG_TLS=1 the connection is encrypted by the host and verified against the
// system roots or the app's tls_ca (PostgreSQL's SSLRequest, then the sockets
// plugin's StartTLS). Without it the connection is plain text: sslmode prefer and
// allow (pgx's default is prefer) fall back to that, require and verify-* are
// refused at start rather than downgraded.
//
// Each instance keeps its pool in a package variable, so connections live from
// request to request; the pool's dials run on its own goroutines, which the host
// serves by blocking that instance for the connect. In the async shape a
// wasmsrv.Semaphore as wide as the pool lets requests queue for a connection the
// SDK's way.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	wasmsrv "github.com/wasmsrv/wasmsrv/sdk/go"
	"github.com/wasmsrv/wasmsrv/sdk/go/config"
	"github.com/wasmsrv/wasmsrv/sdk/go/log"
	"github.com/wasmsrv/wasmsrv/sdk/go/sockets"
	"github.com/wasmsrv/wasmsrv/sdk/go/wasmhttp"

	"github.com/wasmsrv/wasmsrv/samples/todo/api"
)

// Per instance: the pool and the handler over it, set by the start hook.
var (
	pool     *pgxpool.Pool
	handler  http.Handler
	migrated bool
	// migrating lets one request at a time create the schema; a sync.Mutex
	// held across a query would deadlock an async instance.
	migrating = wasmsrv.NewSemaphore(1)
)

func init() {
	wasmsrv.OnStart(start)
	wasmsrv.OnStop(func() error {
		if pool != nil {
			pool.Close()
		}
		return nil
	})
	wasmhttp.HandleFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) })
}

func start() error {
	url, ok := config.Lookup("DATABASE_URL")
	if !ok {
		return errors.New("no DATABASE_URL: grant config and set it (--var or --secret DATABASE_URL=...)")
	}
	size := 1
	if wasmsrv.Async {
		size = 8
	}
	if s, ok := config.Lookup("POOL_SIZE"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return fmt.Errorf("POOL_SIZE %q: want a whole number ≥ 1", s)
		}
		size = n
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	cfg.MaxConns = int32(size)
	cc := cfg.ConnConfig
	// The host resolves names and connects; pgx must not look names up itself.
	cc.DialFunc = sockets.Dial
	cc.LookupFunc = sockets.LookupHost
	hostTLS, _ := config.Lookup("PG_TLS")
	if err := plainText(cc, hostTLS == "1"); err != nil {
		return err
	}
	if hostTLS == "1" {
		cc.DialFunc = dialTLS
	}
	cc.RuntimeParams["application_name"] = "todo"
	pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return err
	}
	a := api.New(pool, nil)
	if wasmsrv.Async {
		a = api.New(pool, wasmsrv.NewSemaphore(size))
	}
	a.Ready = ready
	handler = a.Handler()
	// Create the schema now; if the database is down, the first request tries again
	// (and gets 503 until it is up), so the app starts without it.
	if err := ready(context.Background()); err != nil {
		log.Warn("database not ready at start; retrying on requests", "err", err)
	}
	return nil
}

// plainText makes pgx speak plain text to each host (the host's TLS, if any,
// is below it), refusing an sslmode that demands TLS unless the host does it.
func plainText(cc *pgx.ConnConfig, hostTLS bool) error {
	targets := append([]*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}, cc.Fallbacks...)
	plain := false
	for _, t := range targets {
		plain = plain || t.TLSConfig == nil
	}
	if !plain && !hostTLS {
		return errors.New("DATABASE_URL asks for TLS (sslmode require or verify-*): set PG_TLS=1, the host does TLS for the guest")
	}
	seen := map[string]bool{}
	cc.Fallbacks = nil
	for i, t := range targets {
		key := net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port)))
		if seen[key] {
			continue
		}
		seen[key] = true
		if i > 0 {
			cc.Fallbacks = append(cc.Fallbacks, &pgconn.FallbackConfig{Host: t.Host, Port: t.Port})
		}
	}
	cc.TLSConfig = nil
	return nil
}

// ready creates the schema once per instance.
func ready(ctx context.Context) error {
	if migrated {
		return nil
	}
	migrating.Acquire()
	defer migrating.Release()
	if migrated {
		return nil
	}
	if err := api.Migrate(ctx, pool); err != nil {
		return err
	}
	migrated = true
	return nil
}

// dialTLS connects with PostgreSQL's own negotiation: an SSLRequest in plain text,
// and on 'S' a TLS handshake, done and verified by the host.
func dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := sockets.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	sslRequest := []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}
	var answer [1]byte
	if _, err = c.Write(sslRequest); err == nil {
		_, err = io.ReadFull(c, answer[:])
	}
	if err == nil && answer[0] != 'S' {
		err = errors.New("the server does not offer TLS")
	}
	if err == nil {
		host, _, _ := net.SplitHostPort(addr)
		err = c.(*sockets.Conn).StartTLS(ctx, host)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func main() {}
