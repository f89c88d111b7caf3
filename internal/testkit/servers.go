package testkit

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// Postgres is a throwaway PostgreSQL cluster on loopback, with password
// (SCRAM) authentication, as a real deployment has.
type Postgres struct {
	Addr     string // 127.0.0.1:port
	Port     int
	User     string
	Password string
	DB       string
	dir      string
	bin      string   // directory of initdb, pg_ctl
	runAs    []string // prefix that runs a command as the cluster's owner (root cannot)
	uid, gid int      // the owner, when root runs the tests (-1: the test's own user)
}

// URL is a pgx connection string for host (an address or a name such as
// "localhost" that resolves to the server).
func (p *Postgres) URL(host string) string { return p.urlFor(host, p.DB) }

func (p *Postgres) urlFor(host, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", p.User, p.Password, net.JoinHostPort(host, strconv.Itoa(p.Port)), db)
}

// StartPostgres creates a cluster in a temp dir with initdb and starts it with
// pg_ctl on a free loopback port, until the test ends. PostgreSQL refuses to run
// as root (CI runs as root): then the cluster belongs to the postgres user the
// Debian package creates (or nobody), and its commands run through runuser.
// extra are postgres -c settings (name=value). (Debian: apt-get install
// postgresql.)
func StartPostgres(t testing.TB, extra ...string) *Postgres {
	t.Helper()
	bin := postgresBin()
	if bin == "" {
		t.Skip("PostgreSQL not installed (apt-get install postgresql)")
	}
	p := &Postgres{Port: FreePort(t), User: "wasmsrv", Password: "s3cret-test", DB: "wasmsrv", bin: bin, uid: -1, gid: -1}
	p.Addr = fmt.Sprintf("127.0.0.1:%d", p.Port)
	// The cluster's directory is not under t.TempDir: the server's user must be
	// able to reach it, and a test's temp dirs are private to root.
	dir, err := os.MkdirTemp("", "wasmsrv-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		owner := "postgres"
		u, err := user.Lookup(owner)
		if err != nil {
			owner = "nobody"
			if u, err = user.Lookup(owner); err != nil {
				t.Skip("running as root and no postgres or nobody user to own a PostgreSQL cluster")
			}
		}
		p.uid, _ = strconv.Atoi(u.Uid)
		p.gid, _ = strconv.Atoi(u.Gid)
		if err := os.Chown(dir, p.uid, p.gid); err != nil {
			t.Fatal(err)
		}
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			t.Skip("running as root without runuser (util-linux) to start PostgreSQL as another user")
		}
		p.runAs = []string{runuser, "-u", owner, "--"}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(p.Password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // pwfile readable by the owner, the cluster's own dir is 0700
		t.Fatal(err)
	}
	if out, err := p.run("initdb", "-D", p.data(), "-U", p.User, "--pwfile", pwfile, "-A", "scram-sha-256",
		"-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	_ = os.Remove(pwfile)
	conf := []string{"listen_addresses = '127.0.0.1'", fmt.Sprintf("port = %d", p.Port),
		fmt.Sprintf("unix_socket_directories = '%s'", dir), "fsync = off", "synchronous_commit = off",
		"full_page_writes = off", "max_connections = 200"}
	for _, e := range extra {
		k, v, _ := strings.Cut(e, "=")
		conf = append(conf, fmt.Sprintf("%s = %s", k, v))
	}
	f, err := os.OpenFile(filepath.Join(p.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n" + strings.Join(conf, "\n") + "\n")
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p.Start(t)
	t.Cleanup(func() { _, _ = p.run("pg_ctl", "-D", p.data(), "-m", "immediate", "-w", "stop") })
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.urlFor("127.0.0.1", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+p.DB); err != nil {
		t.Fatal(err)
	}
	return p
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
		dst := filepath.Join(p.data(), f.to)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if p.uid >= 0 {
			if err := os.Chown(dst, p.uid, p.gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := os.OpenFile(filepath.Join(p.data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p.Stop(t)
	p.Start(t)
	return certFile
}

// Start starts the server (again) and waits until it accepts connections.
func (p *Postgres) Start(t testing.TB) {
	t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data(), "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server: fast mode ends every session at once, as an operator's
// restart does.
func (p *Postgres) Stop(t testing.TB) {
	t.Helper()
	if out, err := p.run("pg_ctl", "-D", p.data(), "-m", "fast", "-w", "stop"); err != nil {
		t.Fatalf("pg_ctl stop: %v\n%s", err, out)
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
	return p.urlFor(host, name)
}

// Conn opens a connection of the test's own (native pgx) to database db ("": the
// cluster's first).
func (p *Postgres) Conn(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	if db == "" {
		db = p.DB
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, p.urlFor("127.0.0.1", db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func (p *Postgres) data() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) run(name string, args ...string) ([]byte, error) {
	argv := append(slices.Clone(p.runAs), append([]string{filepath.Join(p.bin, name)}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// postgresBin finds the directory of initdb: on PATH, or Debian's
// /usr/lib/postgresql/<version>/bin (the newest).
func postgresBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return ""
	}
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(a))))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(b))))
		return va - vb
	})
	return filepath.Dir(dirs[len(dirs)-1])
}
