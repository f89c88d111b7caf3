package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// loadEscape loads the escape guest (runtime/testdata/escape) with the tree's two
// mounts.
func loadEscape(t *testing.T, tree *testkit.MountTree, workers int) *CommandApp {
	t.Helper()
	bin, err := os.ReadFile(filepath.Join("..", testkit.EscapeGuest))
	if err != nil {
		t.Fatal(err)
	}
	c, err := engine(t).LoadCommand(context.Background(), AppConfig{
		Name: "escape", Wasm: bin, Env: tree.Env(),
		Mounts: []Mount{{HostDir: tree.Data, GuestDir: "/data"}, {HostDir: tree.RO, GuestDir: "/ro", ReadOnly: true}},
	}, PoolConfig{Workers: workers, RequestTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func runEscape(t *testing.T, c *CommandApp, query string) string {
	t.Helper()
	var out bytes.Buffer
	if err := c.Run(context.Background(), CommandIO{Env: []string{"QUERY_STRING=" + query}, Stdout: &out}); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestMountEscapes runs a guest that tries every way out of its mounts it can: links
// the host planted (relative, absolute, in subdirectories), links it makes itself,
// ".." straight to path_open, hard links, renames into and out of the mount and
// renames that would turn its links outward, and every change to a read-only mount.
// Nothing outside may be read or written, and the read-only mount stays as it was.
func TestMountEscapes(t *testing.T) {
	tree := testkit.NewMountTree(t)
	c := loadEscape(t, tree, 1)
	tree.CheckEscapeReport(t, runEscape(t, c, ""))
	// Nothing the guest made points outside, as seen by any host process.
	err := filepath.WalkDir(tree.Data, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Type()&os.ModeSymlink == 0 {
			return err
		}
		target, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling: leads nowhere
		}
		if rel, _ := filepath.Rel(tree.Data, target); strings.HasPrefix(rel, "..") {
			if name, _ := filepath.Rel(tree.Data, p); !strings.HasPrefix(filepath.Base(name), "pre_") {
				t.Errorf("guest-made link %s leads to %s, outside the mount", name, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMountSwapRace replaces a directory of the mount by a link out, and back, while
// two runs of the guest read through it (time of check to time of use): every read
// either finds the file inside or fails, never the canary.
func TestMountSwapRace(t *testing.T) {
	tree := testkit.NewMountTree(t)
	c := loadEscape(t, tree, 2)
	tree.SwapRace(t, func() string {
		var out bytes.Buffer
		if err := c.Run(context.Background(), CommandIO{Env: []string{"QUERY_STRING=race=3000"}, Stdout: &out}); err != nil {
			return "run: " + err.Error()
		}
		return out.String()
	})
}

// TestMountsInSyncInstances: the mounts of a sync app are one guestfs per
// directory, shared by its instances; a Go guest using the os package gets the
// same confinement as the C command.
func TestMountsInSyncInstances(t *testing.T) {
	tree := testkit.NewMountTree(t)
	app, err := engine(t).Load(context.Background(), AppConfig{
		Name: "mountguest", Wasm: buildGuest(t, "testdata/mountguest"),
		Mounts: []Mount{{HostDir: tree.Data, GuestDir: "/data"}, {HostDir: tree.RO, GuestDir: "/ro", ReadOnly: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := NewSyncPool(context.Background(), app, PoolConfig{Workers: 2, RequestTimeout: time.Minute})
	if err != nil {
		_ = app.Close(context.Background())
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = pool.Close(context.Background())
		_ = app.Close(context.Background())
	})
	for _, c := range []struct{ path, query, want string }{
		{"/read", "p=/data/file.txt", "inside\n"},
		{"/read", "p=/data/pre_in", "inside\n"},
		{"/read", "p=/data/pre_rel/canary.txt", "err: open /data/pre_rel/canary.txt: Operation not permitted"},
		{"/read", "p=/data/pre_abs/canary.txt", "err: open /data/pre_abs/canary.txt: Operation not permitted"},
		{"/read", "p=/ro/pre_rel/canary.txt", "err: open /ro/pre_rel/canary.txt: Operation not permitted"},
		{"/list", "p=/data/pre_rel", "err: open /data/pre_rel: Operation not permitted"},
		{"/symlink", "target=../outside&link=/data/mine", "err: symlink ../outside /data/mine: Operation not permitted"},
		{"/symlink", "target=file.txt&link=/data/mine", ""},
		{"/read", "p=/data/mine", "inside\n"},
		{"/rename", "from=/data/mine&to=/data/pre_rel/mine", "err: rename /data/mine /data/pre_rel/mine: Operation not permitted"},
		{"/write", "p=/ro/new.txt&data=x", "err: open /ro/new.txt: Read-only file system"},
		{"/write", "p=/data/pre_rel/new.txt&data=x", "err: open /data/pre_rel/new.txt: Operation not permitted"},
	} {
		ex, code, err := serve(t, pool, c.path, c.query)
		if err != nil || code != 0 {
			t.Fatalf("%s?%s: code %d, %v", c.path, c.query, code, err)
		}
		if got := ex.out.String(); got != c.want {
			t.Errorf("%s?%s = %q, want %q", c.path, c.query, got, c.want)
		}
	}
	tree.CheckUntouched(t)
}
