package guestfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	wazerosys "github.com/tetratelabs/wazero/sys"

	"github.com/wasmsrv/wasmsrv/internal/testkit"
)

// runProbe runs the probe command with fs mounted at /m and returns its output;
// cache spares compiling it for every run.
func runProbe(t *testing.T, bin []byte, cache wazero.CompilationCache, mount experimentalsys.FS) string {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCompilationCache(cache))
	defer rt.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	var out bytes.Buffer
	cfg := wazero.NewModuleConfig().WithStdout(&out).WithStderr(&out).WithArgs("probe").
		WithSysWalltime().WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(mount, "/m"))
	_, err := rt.InstantiateWithConfig(ctx, bin, cfg)
	var exit *wazerosys.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 0) {
		t.Fatalf("probe: %v\n%s", err, out.String())
	}
	return out.String()
}

// TestSameAsDirFS: for everything a well-behaved guest does in its mount (files,
// directories, renames, links that stay inside, times, errors), guestfs answers
// exactly what wazero's DirFS answered, errno included.
func TestSameAsDirFS(t *testing.T) {
	bin := testkit.Guest(t, "testdata/probe")
	cache := wazero.NewCompilationCache()
	defer cache.Close(context.Background())
	want := runProbe(t, bin, cache, sysfs.DirFS(t.TempDir()))
	for _, resolver := range resolvers {
		t.Run(resolver, func(t *testing.T) {
			got := runProbe(t, bin, cache, openFS(t, t.TempDir(), false, resolver))
			sameOutput(t, want, got)
		})
	}
}

func sameOutput(t *testing.T, want, got string) {
	t.Helper()
	if got != want {
		wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
		for i := 0; i < len(wl) || i < len(gl); i++ {
			var w, g string
			if i < len(wl) {
				w = wl[i]
			}
			if i < len(gl) {
				g = gl[i]
			}
			if w != g {
				t.Errorf("line %d:\n  DirFS:   %s\n  guestfs: %s", i+1, w, g)
			}
		}
	}
	if !strings.Contains(got, "final-listing:") {
		t.Fatalf("the probe did not finish:\n%s", got)
	}
}

// resolvers are the two ways paths are resolved: openat2 (Linux's fast path, where
// the kernel has it) and os.Root alone. Every behaviour test runs on both.
var resolvers = []string{"openat2", "os.Root"}

// openFS opens dir as a mount resolving paths the given way.
func openFS(t *testing.T, dir string, readOnly bool, resolver string) *FS {
	t.Helper()
	fsys, err := Open(dir, readOnly)
	if err != nil {
		t.Fatal(err)
	}
	if resolver == "os.Root" {
		fsys.fast.close()
		fsys.fast = nil
	} else if fsys.fast == nil {
		t.Skip("no openat2 here")
	}
	t.Cleanup(func() { _ = fsys.Close() })
	return fsys
}

func newFS(t *testing.T, readOnly bool, resolver string) (*FS, string) {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "mnt")
	for _, d := range []string{dir, filepath.Join(dir, "sub"), filepath.Join(base, "outside")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"mnt/file.txt": "inside", "outside/secret": "secret"} {
		if err := os.WriteFile(filepath.Join(base, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return openFS(t, dir, readOnly, resolver), dir
}

// TestEscapeIsEPERM pins the errno of every path that leaves the root through a
// link (os.Root's error has no exported value: this fails if its text changes).
func TestEscapeIsEPERM(t *testing.T) {
	for _, resolver := range resolvers {
		t.Run(resolver, func(t *testing.T) {
			fsys, dir := newFS(t, false, resolver)
			for target, link := range map[string]string{"../outside": "rel", filepath.Join(filepath.Dir(dir), "outside"): "abs", "../../outside/secret": "sub/up"} {
				if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range []string{"rel/secret", "abs/secret", "sub/up", "rel", "abs", "sub/../rel/secret"} {
				if _, errno := fsys.Stat(name); errno != experimentalsys.EPERM {
					t.Errorf("Stat(%s) = %v, want EPERM", name, errno)
				}
				if f, errno := fsys.OpenFile(name, experimentalsys.O_RDONLY, 0); errno != experimentalsys.EPERM {
					if f != nil {
						f.Close()
					}
					t.Errorf("OpenFile(%s) = %v, want EPERM", name, errno)
				}
			}
			// Creating through a dangling link out creates nothing out there.
			if err := os.Symlink("../outside/created", filepath.Join(dir, "dangle")); err != nil {
				t.Fatal(err)
			}
			if _, errno := fsys.OpenFile("dangle", experimentalsys.O_WRONLY|experimentalsys.O_CREAT, 0o644); errno != experimentalsys.EPERM {
				t.Errorf("O_CREAT through a dangling link out = %v, want EPERM", errno)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dir), "outside", "created")); err == nil {
				t.Errorf("a file was created outside the mount")
			}
			// The links themselves are in the mount: lstat and readlink see them.
			if st, errno := fsys.Lstat("rel"); errno != 0 || st.Mode&fs.ModeSymlink == 0 {
				t.Errorf("Lstat(rel) = %v, %v", st.Mode, errno)
			}
			// ".." components never reach the descriptor-based operations.
			for _, name := range []string{"..", "../outside/secret", "sub/../../outside"} {
				if errno := fsys.Unlink(name); errno != experimentalsys.EPERM {
					t.Errorf("Unlink(%s) = %v, want EPERM", name, errno)
				}
				if errno := fsys.Rename("file.txt", name); errno != experimentalsys.EPERM {
					t.Errorf("Rename(file.txt, %s) = %v, want EPERM", name, errno)
				}
				if _, errno := fsys.OpenFile(name, experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0); errno != experimentalsys.EPERM {
					t.Errorf("OpenFile(%s, O_NOFOLLOW) = %v, want EPERM", name, errno)
				}
			}
		})
	}
}

func TestClimb(t *testing.T) {
	for _, c := range []struct {
		target string
		ups    int
		ok     bool
	}{
		{"file", 0, true}, {"a/b/c", 0, true}, {"./a", 0, true}, {"..", 1, true},
		{"../..", 2, true}, {"../../lib/x", 2, true}, {"..//../x/", 2, true},
		{"/etc", 0, false}, {"a/..", 0, false}, {"a/../..", 0, false}, {"../a/../b", 0, false},
		{"./../x", 1, true},
	} {
		ups, ok := climb(c.target)
		if ups != c.ups || ok != c.ok {
			t.Errorf("climb(%q) = %d, %v; want %d, %v", c.target, ups, ok, c.ups, c.ok)
		}
	}
}

// TestSymlinkRules tries links at several depths, through other links, and the
// moves that would turn allowed links outward.
func TestSymlinkRules(t *testing.T) {
	for _, resolver := range resolvers {
		t.Run(resolver, func(t *testing.T) {
			fsys, dir := newFS(t, false, resolver)
			mk := func(p string) {
				if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			mk("a/b/c")
			if err := os.Symlink("a/b/c", filepath.Join(dir, "deep")); err != nil { // host-made, inside
				t.Fatal(err)
			}
			if err := os.Symlink("../outside", filepath.Join(dir, "out")); err != nil { // host-made, out
				t.Fatal(err)
			}
			for _, c := range []struct {
				target, link string
				want         experimentalsys.Errno
			}{
				{"file.txt", "l1", 0},
				{"../file.txt", "sub/l2", 0},
				{"../../../file.txt", "a/b/c/l3", 0},
				{"../../../../file.txt", "a/b/c/l4", experimentalsys.EPERM},
				// The link's real directory counts, not the name it was made through:
				// deep is a/b/c, three levels down.
				{"../../../file.txt", "deep/l5", 0},
				{"../../../../x", "deep/l6", experimentalsys.EPERM},
				{"missing/x/y", "l7", 0}, // dangling, inside
				{"file.txt/x", "l8", 0},  // dangling through a file
				{"out/secret", "l9", experimentalsys.EPERM},
				{"deep/../../../..", "l10", experimentalsys.EPERM}, // ".." after a name
				{"/tmp", "l11", experimentalsys.EPERM},
				{"sub", "out/l12", experimentalsys.EPERM}, // placed through a link out
				{"", "l13", experimentalsys.ENOENT},
			} {
				if errno := fsys.Symlink(c.target, c.link); errno != c.want {
					t.Errorf("Symlink(%q, %q) = %v, want %v", c.target, c.link, errno, c.want)
				}
			}
			// Moves of links are checked at their new place.
			for _, c := range []struct {
				op       string
				from, to string
				want     experimentalsys.Errno
			}{
				{"rename", "sub/l2", "l2", experimentalsys.EPERM}, // ../file.txt at the root
				{"link", "sub/l2", "l2", experimentalsys.EPERM},
				{"rename", "sub/l2", "a/l2", 0}, // same depth
				{"link", "a/l2", "a/b/l2", 0},   // deeper
				{"rename", "out", "out2", experimentalsys.EPERM},
				{"rename", "file.txt", "out/stolen", experimentalsys.EPERM},
				{"rename", "out/secret", "stolen", experimentalsys.EPERM},
				{"link", "out/secret", "stolen", experimentalsys.EPERM},
			} {
				var errno experimentalsys.Errno
				if c.op == "rename" {
					errno = fsys.Rename(c.from, c.to)
				} else {
					errno = fsys.Link(c.from, c.to)
				}
				if errno != c.want {
					t.Errorf("%s(%s, %s) = %v, want %v", c.op, c.from, c.to, errno, c.want)
				}
			}
			// Directory moves: a/b/c/l3 climbs three levels.
			if errno := fsys.Rename("a/b", "b"); errno != experimentalsys.EPERM {
				t.Errorf("moving a/b (holding a three-level link) to the root = %v, want EPERM", errno)
			}
			if errno := fsys.Rename("a/b", "sub/b"); errno != 0 { // same depth
				t.Errorf("moving a/b to sub/b = %v", errno)
			}
			if errno := fsys.Rename("sub/b", "a/b/"); errno != 0 { // trailing slash, back
				t.Errorf("moving sub/b back = %v", errno)
			}
			mk("x")
			if errno := fsys.Rename("x", "a/b/c/x"); errno != 0 { // deeper: no scan needed
				t.Errorf("moving x down = %v", errno)
			}
			if _, errno := fsys.Stat("out/secret"); errno != experimentalsys.EPERM {
				t.Errorf("stat through the planted link = %v", errno)
			}
			outside := filepath.Join(filepath.Dir(dir), "outside")
			if ents, _ := os.ReadDir(outside); len(ents) != 1 {
				t.Errorf("outside now holds %d entries", len(ents))
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "a/b/c/l3")); string(b) != "inside" {
				t.Errorf("an allowed link does not work: %q", b)
			}
		})
	}
}

// TestDirMoveScanBound: moving a directory up the tree examines at most
// maxMoveScan entries below it; a larger tree is refused, a smaller one moves.
func TestDirMoveScanBound(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 files")
	}
	fsys, dir := newFS(t, false, "os.Root") // the scan reads with os.Root either way
	big := filepath.Join(dir, "sub", "big")
	if err := os.MkdirAll(filepath.Join(big, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range maxMoveScan {
		f, err := os.Create(filepath.Join(big, "inner", "f"+itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if errno := fsys.Rename("sub/big", "big"); errno != experimentalsys.EPERM {
		t.Fatalf("moving %d entries up = %v, want EPERM", maxMoveScan+1, errno)
	}
	if err := os.Remove(filepath.Join(big, "inner", "f0")); err != nil {
		t.Fatal(err)
	}
	if errno := fsys.Rename("sub/big", "big"); errno != 0 {
		t.Fatalf("moving %d entries up = %v", maxMoveScan, errno)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		if i /= 10; i == 0 {
			return string(b[n:])
		}
	}
}

// TestReadOnly: every change fails with EROFS (EISDIR for a directory opened for
// writing, EEXIST for O_EXCL on an existing file), reads work, nothing changes.
func TestReadOnly(t *testing.T) {
	for _, resolver := range resolvers {
		t.Run(resolver, func(t *testing.T) {
			fsys, dir := newFS(t, true, resolver)
			before, _ := os.Stat(filepath.Join(dir, "file.txt"))
			O := experimentalsys.O_RDONLY
			for _, c := range []struct {
				flag experimentalsys.Oflag
				name string
				want experimentalsys.Errno
			}{
				{O | experimentalsys.O_CREAT, "new", experimentalsys.EROFS},
				{O | experimentalsys.O_TRUNC, "file.txt", experimentalsys.EROFS},
				{O | experimentalsys.O_APPEND, "file.txt", 0}, // cannot write anyway
				{experimentalsys.O_WRONLY, "file.txt", experimentalsys.EROFS},
				{experimentalsys.O_RDWR, "file.txt", experimentalsys.EROFS},
				{experimentalsys.O_RDWR | experimentalsys.O_DIRECTORY, "sub", experimentalsys.EISDIR},
				{O | experimentalsys.O_CREAT | experimentalsys.O_EXCL, "file.txt", experimentalsys.EEXIST},
				{O | experimentalsys.O_CREAT | experimentalsys.O_EXCL, "new", experimentalsys.EROFS},
				{O | experimentalsys.O_CREAT, "file.txt", 0}, // exists: an ordinary read
				{O, "file.txt", 0},
			} {
				f, errno := fsys.OpenFile(c.name, c.flag, 0o644)
				if errno != c.want {
					t.Errorf("OpenFile(%s, %#x) = %v, want %v", c.name, c.flag, errno, c.want)
				}
				if f != nil {
					f.Close()
				}
			}
			for name, errno := range map[string]experimentalsys.Errno{
				"mkdir":    fsys.Mkdir("d", 0o755),
				"chmod":    fsys.Chmod("file.txt", 0o777),
				"rename":   fsys.Rename("file.txt", "x"),
				"rmdir":    fsys.Rmdir("sub"),
				"unlink":   fsys.Unlink("file.txt"),
				"link":     fsys.Link("file.txt", "h"),
				"symlink":  fsys.Symlink("file.txt", "l"),
				"utimens":  fsys.Utimens("file.txt", 0, 0),
				"sub-link": fsys.Symlink("../file.txt", "sub/l"),
			} {
				if errno != experimentalsys.EROFS {
					t.Errorf("%s = %v, want EROFS", name, errno)
				}
			}
			f, errno := fsys.OpenFile("file.txt", O, 0)
			if errno != 0 {
				t.Fatal(errno)
			}
			defer f.Close()
			if errno := f.Utimens(0, 0); errno != experimentalsys.EROFS {
				t.Errorf("File.Utimens = %v, want EROFS", errno)
			}
			if errno := f.SetAppend(true); errno != experimentalsys.EROFS {
				t.Errorf("SetAppend(true) = %v, want EROFS", errno)
			}
			if errno := f.SetAppend(false); errno != 0 {
				t.Errorf("SetAppend(false) = %v", errno)
			}
			if _, errno := f.Write([]byte("x")); errno != experimentalsys.EBADF {
				t.Errorf("Write = %v, want EBADF", errno)
			}
			if errno := f.Truncate(0); errno != experimentalsys.EBADF {
				t.Errorf("Truncate = %v, want EBADF", errno)
			}
			buf := make([]byte, 16)
			if n, errno := f.Read(buf); errno != 0 || string(buf[:n]) != "inside" {
				t.Errorf("Read = %q, %v", buf[:n], errno)
			}
			after, _ := os.Stat(filepath.Join(dir, "file.txt"))
			if after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) || after.Mode() != before.Mode() {
				t.Errorf("the read-only file changed: %v %v %v", after.Size(), after.ModTime(), after.Mode())
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("the read-only mount holds %d entries, want 2", len(ents))
			}
		})
	}
}

// TestFileOps covers what the probe cannot reach through Go's os package: O_NOFOLLOW,
// SetAppend's reopening, Utimens with UTIME_OMIT, directory rewinds, closed files.
func TestFileOps(t *testing.T) {
	for _, resolver := range resolvers {
		t.Run(resolver, func(t *testing.T) {
			fsys, dir := newFS(t, false, resolver)
			if err := os.Symlink("file.txt", filepath.Join(dir, "l")); err != nil {
				t.Fatal(err)
			}
			if _, errno := fsys.OpenFile("l", experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0); errno != experimentalsys.ELOOP {
				t.Errorf("O_NOFOLLOW on a link = %v, want ELOOP", errno)
			}
			for _, name := range []string{"file.txt", "", ".", "sub", "sub/"} {
				f, errno := fsys.OpenFile(name, experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0)
				if errno != 0 {
					t.Errorf("O_NOFOLLOW on %q = %v", name, errno)
					continue
				}
				f.Close()
			}
			f, errno := fsys.OpenFile("file.txt", experimentalsys.O_RDWR, 0)
			if errno != 0 {
				t.Fatal(errno)
			}
			if _, errno := f.Seek(2, io.SeekStart); errno != 0 {
				t.Fatal(errno)
			}
			if errno := f.SetAppend(true); errno != 0 || !f.IsAppend() {
				t.Fatalf("SetAppend = %v", errno)
			}
			if _, errno := f.Write([]byte("!")); errno != 0 {
				t.Fatal(errno)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "file.txt")); string(b) != "inside!" {
				t.Errorf("append after SetAppend wrote %q", b)
			}
			// Replaced under the guest: reopening must not pick up the other file.
			if err := os.Rename(filepath.Join(dir, "sub"), filepath.Join(dir, "sub2")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "file.txt"), filepath.Join(dir, "sub2", "moved")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "file.txt"), []byte("other"), 0o644); err != nil {
				t.Fatal(err)
			}
			if errno := f.SetAppend(false); errno != experimentalsys.ENOENT {
				t.Errorf("SetAppend on a replaced file = %v, want ENOENT", errno)
			}
			when := time.Date(2022, 1, 1, 0, 0, 0, 5, time.UTC).UnixNano()
			if errno := f.Utimens(experimentalsys.UTIME_OMIT, when); errno != 0 {
				t.Errorf("Utimens = %v", errno)
			}
			if st, _ := f.Stat(); st.Mtim != when {
				t.Errorf("mtime %d, want %d", st.Mtim, when)
			}
			if errno := fsys.Utimens("file.txt", when, experimentalsys.UTIME_OMIT); errno != 0 {
				t.Errorf("FS.Utimens = %v", errno)
			}
			f.Close()
			if _, errno := f.Stat(); errno != experimentalsys.EBADF {
				t.Errorf("Stat after Close = %v, want EBADF", errno)
			}
			if _, errno := f.Read(make([]byte, 1)); errno != experimentalsys.EBADF {
				t.Errorf("Read after Close = %v, want EBADF", errno)
			}

			d, errno := fsys.OpenFile("sub2", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
			if errno != 0 {
				t.Fatal(errno)
			}
			defer d.Close()
			ents, errno := d.Readdir(-1)
			if errno != 0 || len(ents) != 1 || ents[0].Name != "moved" || ents[0].Ino == 0 {
				t.Fatalf("Readdir = %+v, %v", ents, errno)
			}
			if err := os.WriteFile(filepath.Join(dir, "sub2", "new"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, errno := d.Seek(0, io.SeekStart); errno != 0 {
				t.Fatal(errno)
			}
			if ents, _ := d.Readdir(-1); len(ents) != 2 {
				t.Errorf("after rewind Readdir sees %d entries, want 2", len(ents))
			}
			if _, errno := d.Seek(1, io.SeekStart); errno != experimentalsys.EISDIR {
				t.Errorf("Seek(1) on a directory = %v, want EISDIR", errno)
			}
			if _, errno := d.Read(make([]byte, 1)); errno != experimentalsys.EISDIR {
				t.Errorf("Read on a directory = %v, want EISDIR", errno)
			}
			if errno := fsys.Unlink("sub2"); errno != experimentalsys.EISDIR {
				t.Errorf("Unlink(dir) = %v, want EISDIR", errno)
			}
			if errno := fsys.Rmdir("file.txt"); errno != experimentalsys.ENOTDIR {
				t.Errorf("Rmdir(file) = %v, want ENOTDIR", errno)
			}
			if errno := fsys.Rmdir(""); errno != experimentalsys.EINVAL {
				t.Errorf("Rmdir(root) = %v, want EINVAL", errno)
			}
		})
	}
}

// TestConcurrentSwaps: many goroutines resolve paths through a directory that
// another keeps replacing by links out; nothing outside is ever opened.
func TestConcurrentSwaps(t *testing.T) {
	for _, resolver := range resolvers {
		t.Run(resolver, func(t *testing.T) {
			fsys, dir := newFS(t, false, resolver)
			real := filepath.Join(dir, "real")
			if err := os.Mkdir(real, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(real, "secret"), []byte("inside"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("real", filepath.Join(dir, "swap")); err != nil {
				t.Fatal(err)
			}
			stop := testkit.SwapLink(t, filepath.Join(dir, "swap"),
				"../outside", filepath.Join(filepath.Dir(dir), "outside"), "real", "sub/../../outside")
			var readers sync.WaitGroup
			var mu sync.Mutex
			inside, leaked := 0, 0
			for range 4 {
				readers.Add(1)
				go func() {
					defer readers.Done()
					buf := make([]byte, 16)
					for range 2000 {
						f, errno := fsys.OpenFile("swap/secret", experimentalsys.O_RDONLY, 0)
						if errno != 0 {
							continue
						}
						n, _ := f.Read(buf)
						f.Close()
						mu.Lock()
						if string(buf[:n]) == "inside" {
							inside++
						} else {
							leaked++
						}
						mu.Unlock()
					}
				}()
			}
			readers.Wait()
			stop()
			if leaked != 0 {
				t.Errorf("read %d files outside the mount", leaked)
			}
			if inside == 0 {
				t.Errorf("no read succeeded: the test exercised nothing")
			}
		})
	}
}
