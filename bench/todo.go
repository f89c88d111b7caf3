package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/wasmsrv/wasmsrv/internal/pgcluster"
	"github.com/wasmsrv/wasmsrv/samples/todo/api"
)

// The todo scenario: one row of samples/todo (pgx inside the guest, connections
// through the sockets plugin) against the same handler (package
// samples/todo/api) on native net/http with pgx, both on the same PostgreSQL
// cluster. Every server gets the same number of database connections.

const (
	todoPath   = "/todos/1"
	todoDBUser = "bench"
	todoDBPass = "bench-secret"
	todoDB     = "postgres"
	// todoConns is the database connections of every server: one per instance
	// of the default sync pool (2×CPU+1 on the 2-core machine), the same in the
	// native pool.
	todoConns = 5
)

func todoScenario() Scenario {
	db := postgresServer()
	return Scenario{
		Name:        "todo",
		Description: "samples/todo GET of one row (pgx in the guest, connections through the sockets plugin) vs the same handler on native net/http with pgx, same PostgreSQL",
		Path:        todoPath,
		Expect:      Expect{Status: 200, ContentType: "application/json", BodyPrefix: `{"id":1,"title":"benchmark","done":false,`},
		Load:        Load{Threads: 1, Conns: 64, Duration: 10 * time.Second, Warmup: 2 * time.Second},
		Baseline:    "native",
		Subject:     "wasmsrv",
		Servers: []Server{
			withUpstream(todoWasmsrv("wasmsrv", "sync shape, default pool (2×CPU+1 instances), POOL_SIZE 1 each", false), db),
			withUpstream(todoWasmsrv("wasmsrv-async", "async shape, default pool (CPU instances), POOL_SIZE 8 each", true), db),
			withUpstream(todoNative(), db),
		},
		Targets: []Target{rpsAtLeast("native", 0.7)},
	}
}

// todoWasmsrv serves samples/todo with the sockets plugin allowed to reach the
// upstream database only.
func todoWasmsrv(name, note string, async bool) Server {
	return Server{
		Name: name,
		Note: note,
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			bin, err := env.WS.GoBinary(ctx, "./cmd/wasmsrv")
			if err != nil {
				return Command{}, err
			}
			src := goGuest("./samples/todo")
			if async {
				src = asyncGuest("./samples/todo")
			}
			wasm, err := src(ctx, env.WS)
			if err != nil {
				return Command{}, err
			}
			db := env.Upstreams[0]
			argv := []string{bin, "run", "--listen", env.Addr, "--access-log=false",
				"--grant", "sockets,config", "--sockets-allow", db, "--secret", "DATABASE_URL=env:DATABASE_URL"}
			return Command{Argv: append(argv, wasm), Env: []string{"DATABASE_URL=" + todoURL(db)}}, nil
		},
	}
}

func todoNative() Server {
	return Server{
		Name: "native",
		Note: fmt.Sprintf("Go net/http + pgxpool (%d connections), same handler", todoConns),
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			bin, err := env.WS.GoBinary(ctx, "./bench/todonative")
			if err != nil {
				return Command{}, err
			}
			return Command{Argv: []string{bin, "-listen", env.Addr, "-database", todoURL(env.Upstreams[0]),
				"-pool", strconv.Itoa(todoConns)}}, nil
		},
	}
}

func todoURL(addr string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", todoDBUser, todoDBPass, addr, todoDB)
}

// postgresServer runs the Debian package's PostgreSQL in the foreground on one
// cluster made once per run in the workspace, so every server of the scenario
// meets the same database (one server runs at a time); durability off as in the
// tests; ready once the schema and the benchmark's row are in.
func postgresServer() Server {
	return Server{
		Name: "postgresql",
		Note: "Debian postgresql, fsync off",
		Requires: []Tool{{Name: "postgresql", Packages: []string{"postgresql"},
			Present: func(context.Context) bool { return pgcluster.Installed() }}},
		Launch: func(ctx context.Context, env LaunchEnv) (Command, error) {
			_, port, err := splitAddr(env.Addr)
			if err != nil {
				return Command{}, err
			}
			c, err := env.WS.postgres()
			if err != nil {
				return Command{}, err
			}
			return Command{Argv: append(c.Foreground(), "-p", port)}, nil
		},
		Ready: func(ctx context.Context, addr string) error {
			pool, err := pgxpool.New(ctx, todoURL(addr))
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := api.Migrate(ctx, pool); err != nil {
				return err
			}
			_, err = pool.Exec(ctx, "INSERT INTO todos (id, title) VALUES (1, 'benchmark') ON CONFLICT DO NOTHING")
			return err
		},
	}
}

// postgres returns the run's PostgreSQL cluster, made at the first call.
func (w *Workspace) postgres() (*pgcluster.Cluster, error) {
	if w.pg != nil {
		return w.pg, nil
	}
	// The server's own user (not root) must reach the cluster in the workspace.
	if err := os.Chmod(w.Dir, 0o711); err != nil {
		return nil, err
	}
	dir := filepath.Join(w.Dir, "postgresql")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c, err := pgcluster.Init(dir, 5432, todoDBUser, todoDBPass, "shared_buffers = '64MB'")
	if err != nil {
		return nil, fmt.Errorf("initdb: %w", err)
	}
	w.pg = c
	return c, nil
}
