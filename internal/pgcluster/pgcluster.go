// Package pgcluster makes throwaway PostgreSQL clusters from the Debian package's
// binaries, for the tests (internal/testkit) and the benchmark (bench): initdb in a
// directory, password (SCRAM) authentication, loopback only, durability off.
// PostgreSQL refuses to run as root, and CI runs as root: then the cluster belongs
// to the postgres user the package creates (or nobody) and its commands run
// through runuser.
package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNotInstalled: no initdb on PATH or in /usr/lib/postgresql/*/bin.
var ErrNotInstalled = errors.New("PostgreSQL not installed (apt-get install postgresql)")

// Cluster is an initialised data directory and the way to run its server.
type Cluster struct {
	Dir      string // holds data/, the log and the server's socket
	User     string
	Password string
	Port     int
	bin      string   // directory of initdb, pg_ctl, postgres
	runAs    []string // prefix that runs a command as the owner ("": the caller)
	uid, gid int      // the owner when it is not the caller, else -1
}

// Init creates a cluster in dir (which must exist and be empty) listening on
// 127.0.0.1:port, with superuser user/password. Settings are postgres
// configuration lines (name = value) appended to postgresql.conf.
func Init(dir string, port int, user, password string, settings ...string) (*Cluster, error) {
	bin := binDir()
	if bin == "" {
		return nil, ErrNotInstalled
	}
	c := &Cluster{Dir: dir, User: user, Password: password, Port: port, bin: bin, uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		if err := c.ownedByServerUser(); err != nil {
			return nil, err
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
		return nil, err
	}
	defer os.Remove(pwfile)
	if out, err := c.Run("initdb", "-D", c.Data(), "-U", user, "--pwfile", pwfile, "-A", "scram-sha-256",
		"-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, out)
	}
	conf := append([]string{"listen_addresses = '127.0.0.1'", fmt.Sprintf("port = %d", port),
		fmt.Sprintf("unix_socket_directories = '%s'", dir), "fsync = off", "synchronous_commit = off",
		"full_page_writes = off", "max_connections = 200"}, settings...)
	if err := c.AppendConf(conf...); err != nil {
		return nil, err
	}
	return c, nil
}

// ownedByServerUser hands dir to the postgres user (or nobody) for a root caller.
func (c *Cluster) ownedByServerUser() error {
	owner := "postgres"
	u, err := user.Lookup(owner)
	if err != nil {
		owner = "nobody"
		if u, err = user.Lookup(owner); err != nil {
			return errors.New("running as root and no postgres or nobody user to own a PostgreSQL cluster")
		}
	}
	runuser, err := exec.LookPath("runuser")
	if err != nil {
		return errors.New("running as root without runuser (util-linux) to run PostgreSQL as another user")
	}
	c.uid, _ = strconv.Atoi(u.Uid)
	c.gid, _ = strconv.Atoi(u.Gid)
	if err := os.Chown(c.Dir, c.uid, c.gid); err != nil {
		return err
	}
	if err := os.Chmod(c.Dir, 0o755); err != nil {
		return err
	}
	c.runAs = []string{runuser, "-u", owner, "--"}
	return nil
}

// Data is the data directory.
func (c *Cluster) Data() string { return filepath.Join(c.Dir, "data") }

// AppendConf adds configuration lines to postgresql.conf (effective at the next
// start).
func (c *Cluster) AppendConf(lines ...string) error {
	f, err := os.OpenFile(filepath.Join(c.Data(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteOwned writes a file into the data directory, owned by the cluster's owner
// with mode 0600 (as server.key must be).
func (c *Cluster) WriteOwned(name string, b []byte) error {
	dst := filepath.Join(c.Data(), name)
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		return err
	}
	if c.uid >= 0 {
		return os.Chown(dst, c.uid, c.gid)
	}
	return nil
}

// Start starts the server in the background (pg_ctl) and waits until it accepts
// connections.
func (c *Cluster) Start() error {
	if out, err := c.Run("pg_ctl", "-D", c.Data(), "-l", filepath.Join(c.Dir, "log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
		return fmt.Errorf("%w\n%s\n%s", err, out, log)
	}
	return nil
}

// Stop stops the server: fast mode ends every session at once, as an operator's
// restart does; immediate mode as a crash would.
func (c *Cluster) Stop(mode string) error {
	if out, err := c.Run("pg_ctl", "-D", c.Data(), "-m", mode, "-w", "stop"); err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// Foreground is the argv that runs the server in the foreground, for a process
// supervisor that stops it with SIGTERM.
func (c *Cluster) Foreground() []string {
	return append(slices.Clone(c.runAs), filepath.Join(c.bin, "postgres"), "-D", c.Data())
}

// URL is a pgx connection string for database db on host (an address, or a name
// that resolves to the server).
func (c *Cluster) URL(host, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", c.User, c.Password, host+":"+strconv.Itoa(c.Port), db)
}

// Run runs one of the PostgreSQL programs as the cluster's owner.
func (c *Cluster) Run(name string, args ...string) ([]byte, error) {
	argv := append(slices.Clone(c.runAs), append([]string{filepath.Join(c.bin, name)}, args...)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = c.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// binDir finds the directory of initdb: on PATH, or Debian's
// /usr/lib/postgresql/<version>/bin (the newest).
func binDir() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(dirs) == 0 {
		return ""
	}
	version := func(p string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return version(a) - version(b) })
	return filepath.Dir(dirs[len(dirs)-1])
}

// Installed reports whether the PostgreSQL server programs are there.
func Installed() bool { return binDir() != "" }
