package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/wasmsrv/wasmsrv/internal/pgcluster"
)

// A cluster left running by a test process that died is stopped and removed;
// one whose owner runs is left alone.
func TestReapPostgresStopsOrphans(t *testing.T) {
	if !pgcluster.Installed() {
		t.Skip(pgcluster.ErrNotInstalled)
	}
	tmp, err := os.MkdirTemp("", "wasmsrv-reap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil { // the server's user must reach it
		t.Fatal(err)
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	orphan := makeCluster(t, tmp, dead.Process.Pid)
	kept := makeCluster(t, tmp, os.Getpid())
	t.Cleanup(func() { _ = kept.Stop("immediate") })

	pid := postmaster(t, orphan.Dir)
	reapPostgres(tmp)
	if alive(pid) {
		t.Errorf("the orphan's postmaster %d still runs", pid)
	}
	if _, err := os.Stat(orphan.Dir); !os.IsNotExist(err) {
		t.Errorf("the orphan's directory is still there: %v", err)
	}
	if pid := postmaster(t, kept.Dir); !alive(pid) {
		t.Errorf("the cluster of a running owner was stopped")
	}
}

func makeCluster(t *testing.T, tmp string, owner int) *pgcluster.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp(tmp, pgDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, pgOwnerFile), []byte(strconv.Itoa(owner)), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := pgcluster.Init(dir, FreePort(t), "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

func postmaster(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}
