package testkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/wasmsrv/wasmsrv/internal/pgcluster"
)

// Real servers the tests start for themselves, from Debian packages (.ci/run
// installs them); each helper skips its test when the package is missing.

// FreePort returns a loopback TCP port that was free a moment ago, for servers
// that cannot listen on port 0 and report it.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Redis is a private redis-server on loopback.
type Redis struct {
	Addr string // 127.0.0.1:port
	URL  string // redis://127.0.0.1:port/0
	bin  string
	port int
	dir  string
	cmd  *exec.Cmd
}

// StartRedis runs a private redis-server (no persistence) on a free loopback port
// until the test ends. (Debian: apt-get install redis-server.)
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (apt-get install redis-server)")
	}
	port := FreePort(t)
	r := &Redis{Addr: fmt.Sprintf("127.0.0.1:%d", port), URL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), bin: bin, port: port, dir: t.TempDir()}
	r.Start(t)
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Start starts the server (again) on its port and waits until it answers.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	r.cmd = exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", r.dir)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitTCP(t, "redis-server", r.Addr, func(c net.Conn) bool {
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return false
		}
		b := make([]byte, 7)
		n, _ := c.Read(b)
		return string(b[:n]) == "+PONG\r\n"
	})
}

// Stop kills the server (as a crash would) and waits for it to exit.
func (r *Redis) Stop(t testing.TB) {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// waitTCP waits up to 30 s until a connection to addr passes ok.
func waitTCP(t testing.TB, what, addr string, ok func(net.Conn) bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			good := ok(c)
			_ = c.Close()
			if good {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come up on %s", what, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Postgres is a throwaway PostgreSQL cluster on loopback (package pgcluster),
// with password (SCRAM) authentication, as a real deployment has.
type Postgres struct {
	Addr     string // 127.0.0.1:port
	Port     int
	User     string
	Password string
	DB       string
	c        *pgcluster.Cluster
}

// URL is a pgx connection string for host (an address or a name such as
// "localhost" that resolves to the server).
func (p *Postgres) URL(host string) string { return p.c.URL(host, p.DB) }

// StartPostgres creates a cluster in a temp dir with initdb and starts it with
// pg_ctl on a free loopback port, until the test ends. (Debian: apt-get install
// postgresql.)
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	if !pgcluster.Installed() {
		t.Skip(pgcluster.ErrNotInstalled)
	}
	// Not under t.TempDir: when root runs the tests, the server's own user must
	// be able to reach the directory, and a test's temp dirs are private to root.
	reapPostgres(os.TempDir())
	dir, err := os.MkdirTemp("", pgDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, pgOwnerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &Postgres{Port: FreePort(t), User: "wasmsrv", Password: "s3cret-test", DB: "wasmsrv"}
	p.Addr = fmt.Sprintf("127.0.0.1:%d", p.Port)
	if p.c, err = pgcluster.Init(dir, p.Port, p.User, p.Password); err != nil {
		t.Fatal(err)
	}
	p.Start(t)
	t.Cleanup(func() { _ = p.c.Stop("immediate") })
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.c.URL("127.0.0.1", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+p.DB); err != nil {
		t.Fatal(err)
	}
	return p
}

const (
	pgDirPrefix = "wasmsrv-pg-"
	pgOwnerFile = "owner.pid" // the test process that made the cluster
)

// reapPostgres stops and removes the clusters of test processes that died
// without their cleanup (a test binary killed by its timeout or by hand):
// pg_ctl starts a daemon, which outlives the process that started it. A
// cluster whose owner is still running is left alone, so parallel test
// binaries don't stop each other's servers.
func reapPostgres(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, pgDirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, pgOwnerFile))
		if err != nil {
			continue // being made right now, or from before owners were recorded
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || owner <= 0 || alive(owner) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
				// SIGQUIT is PostgreSQL's immediate shutdown; its backends
				// follow the postmaster out.
				_ = syscall.Kill(pid, syscall.SIGQUIT)
				for i := 0; i < 100 && alive(pid); i++ {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// alive reports whether a process with that id exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// EnableTLS turns TLS on (a fresh self-signed certificate for 127.0.0.1 and
// localhost, which is its own CA), restarts the server and returns the
// certificate's PEM file, for clients to trust.
func (p *Postgres) EnableTLS(t testing.TB) (caFile string) {
	t.Helper()
	certFile, keyFile, _ := SelfSigned(t, t.TempDir())
	for _, f := range []struct{ from, to string }{{certFile, "server.crt"}, {keyFile, "server.key"}} {
		b, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.c.WriteOwned(f.to, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.c.AppendConf("ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"); err != nil {
		t.Fatal(err)
	}
	p.Stop(t)
	p.Start(t)
	return certFile
}

// Start starts the server (again) and waits until it accepts connections.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	if err := p.c.Start(); err != nil {
		t.Fatalf("starting PostgreSQL: %v", err)
	}
}

// Stop stops the server: fast mode ends every session at once, as an operator's
// restart does.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if err := p.c.Stop("fast"); err != nil {
		t.Fatalf("stopping PostgreSQL: %v", err)
	}
}

// CreateDB creates another database of the cluster and returns its pgx
// connection string for host, so tests sharing a cluster do not share tables.
func (p *Postgres) CreateDB(t testing.TB, host, name string) string {
	t.Helper()
	c := p.Conn(t, "")
	if _, err := c.Exec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return p.c.URL(host, name)
}

// Conn opens a connection of the test's own (native pgx) to database db ("": the
// cluster's first).
func (p *Postgres) Conn(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	if db == "" {
		db = p.DB
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.c.URL("127.0.0.1", db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}
