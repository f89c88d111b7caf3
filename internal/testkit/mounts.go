package testkit

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// EscapeGuest is the hostile WASI command that tries to leave its mounts, relative
// to the repository root (source: runtime/testdata/escape/main.c).
const EscapeGuest = "runtime/testdata/escape/main.wasm"

// MountTree is the host side of the escape guest's world: a writable mount (Data,
// at /data), a read-only one (RO, at /ro) and, beside them, a directory the guest
// must never reach (Outside) holding a canary file. Links out are planted in both
// mounts the way an operator or a previous run might have left them.
type MountTree struct {
	Base, Data, RO, Outside string
	// Canary is the canary file's content: it must never appear in guest output.
	Canary string

	snapshot map[string]string // Outside and RO as they were
}

// NewMountTree lays the tree out under a fresh temporary directory.
func NewMountTree(t testing.TB) *MountTree {
	t.Helper()
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var nonce [8]byte
	_, _ = rand.Read(nonce[:])
	m := &MountTree{
		Base: base, Data: filepath.Join(base, "data"), RO: filepath.Join(base, "ro"),
		Outside: filepath.Join(base, "outside"), Canary: "CANARY-" + hex.EncodeToString(nonce[:]),
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{m.Outside, filepath.Join(m.Outside, "dir"), m.Data, filepath.Join(m.Data, "sub"), m.RO, filepath.Join(m.RO, "sub")} {
		must(os.MkdirAll(d, 0o755))
	}
	must(os.WriteFile(filepath.Join(m.Outside, "canary.txt"), []byte(m.Canary+"\n"), 0o644))
	must(os.WriteFile(filepath.Join(m.Data, "file.txt"), []byte("inside\n"), 0o644))
	must(os.WriteFile(filepath.Join(m.RO, "file.txt"), []byte("ro-inside\n"), 0o644))
	for _, l := range []struct{ target, link string }{
		{"../outside", "data/pre_rel"},
		{m.Outside, "data/pre_abs"},
		{"../outside/canary.txt", "data/pre_file"},
		{"file.txt", "data/pre_in"},
		{"../outside/created.txt", "data/pre_dangle"},
		{"../../outside/canary.txt", "data/sub/pre_up"},
		{"../file.txt", "data/sub/pre_ok"},
		{"../outside", "ro/pre_rel"},
		{m.Outside, "ro/pre_abs"},
		{"file.txt", "ro/pre_in"},
	} {
		must(os.Symlink(l.target, filepath.Join(base, l.link)))
	}
	// Old times, so that a change shows whatever the filesystem's granularity.
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, f := range []string{filepath.Join(m.Outside, "canary.txt"), filepath.Join(m.RO, "file.txt")} {
		must(os.Chtimes(f, old, old))
	}
	m.snapshot = m.state(t)
	return m
}

// state describes every entry under Outside and RO: type, size, mode, times,
// links and content (or link target).
func (m *MountTree) state(t testing.TB) map[string]string {
	t.Helper()
	s := map[string]string{}
	for _, top := range []string{m.Outside, m.RO} {
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			desc := fi.Mode().String() + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				desc += " -> " + target
			case fi.Mode().IsRegular():
				b, _ := os.ReadFile(p)
				desc += " " + string(b)
				desc += " nlink=" + nlink(fi)
			}
			s[p] = desc
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// CheckUntouched fails the test if anything under Outside or RO changed.
func (m *MountTree) CheckUntouched(t testing.TB) {
	t.Helper()
	now := m.state(t)
	var keys []string
	for k := range m.snapshot {
		keys = append(keys, k)
	}
	for k := range now {
		if _, ok := m.snapshot[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		if m.snapshot[k] != now[k] {
			t.Errorf("host file changed: %s\n  was: %q\n  now: %q", k, m.snapshot[k], now[k])
		}
	}
}

// Env is the environment the escape guest needs.
func (m *MountTree) Env() []string { return []string{"OUTSIDE=" + m.Outside} }

// EscapeWant is what the escape guest must report for each attempt: "ok",
// "ok:<content>", "err:<ERRNO>", or "err:" for any error.
func EscapeWant() map[string]string {
	w := map[string]string{
		"readlink-pre-rel":  "ok:../outside",
		"read-pre-in":       "ok:inside",
		"read-sub-pre-ok":   "ok:inside",
		"raw-nofollow-link": "err:ELOOP",
		"raw-nofollow-file": "ok:inside",
		"libc-dotdot":       "err:",
		"read-g-etc":        "err:ENOENT",
		"read-g-rel":        "err:ENOENT",
		"symlink-dot":       "ok",
		"symlink-in":        "ok",
		"read-g-in":         "ok:inside",
		"symlink-sub-in":    "ok",
		"read-sub-g-in":     "ok:inside",
		"link-file":         "ok",
		"symlink-deep":      "ok",
		"read-deep":         "ok:inside",
		"read-b-l":          "err:ENOENT",
		"rename-link-down":  "ok",
		"read-link-down":    "err:ENOENT",
		"rename-dir-down":   "ok",
		"rename-dir-same":   "ok",
		"read-deep-moved":   "err:ENOENT",
		"ro-read":           "ok:ro-inside",
		"ro-read-pre-in":    "ok:ro-inside",
		"ro-raw-excl":       "err:EEXIST",
		"ro-ftruncate":      "err:",
		"ro-write":          "err:EBADF",
		"ro-read-after":     "ok:ro-inside",
	}
	// Every way out is EPERM, WASI's answer for a path outside the capability.
	for _, name := range []string{
		"read-pre-rel", "read-pre-abs", "read-pre-file", "read-sub-pre-up", "stat-pre-rel",
		"list-pre-rel", "dirfd-pre-rel", "raw-dotdot", "raw-sub-dotdot", "raw-abs",
		"raw-dotdot-dir", "raw-dirfd-dotdot", "create-via-link", "raw-create-dotdot",
		"create-via-dangling-link", "mkdir-via-link", "trunc-via-link", "append-via-link", "unlink-via-link",
		"utimes-via-link", "symlink-etc", "symlink-abs", "symlink-abs-etc", "symlink-rel",
		"symlink-mid", "symlink-sub-up", "symlink-chain", "symlink-dot-dotdot",
		"raw-symlink-dotdot", "link-escaping-link", "link-moves-link-up",
		"link-outside-file", "rename-out", "rename-in", "rename-link-up",
		"rename-escaping-link", "rename-dir-up", "ro-read-pre-rel", "ro-read-pre-abs",
	} {
		w[name] = "err:EPERM"
	}
	// A read-only mount refuses every change.
	for _, name := range []string{
		"ro-create", "ro-raw-create", "ro-raw-trunc", "ro-mkdir", "ro-unlink", "ro-rmdir",
		"ro-rename", "ro-symlink", "ro-link", "ro-utimes", "ro-futimes", "ro-setappend",
	} {
		w[name] = "err:EROFS"
	}
	return w
}

// CheckEscapeReport checks the escape guest's output line by line against
// EscapeWant, that it ran to the end, and that the canary never shows.
func (m *MountTree) CheckEscapeReport(t testing.TB, report string) {
	t.Helper()
	if strings.Contains(report, m.Canary) {
		t.Errorf("the guest read the canary outside its mount")
	}
	want := EscapeWant()
	seen := map[string]bool{}
	done := false
	sc := bufio.NewScanner(strings.NewReader(report))
	for sc.Scan() {
		line := sc.Text()
		if line == "done" {
			done = true
			continue
		}
		name, got, ok := strings.Cut(line, " ")
		w, known := want[name]
		if !ok || !known {
			continue // CGI head, blank line
		}
		seen[name] = true
		if got != w && !(strings.HasSuffix(w, ":") && strings.HasPrefix(got, w)) {
			t.Errorf("%s: got %q, want %q", name, got, w)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s: not reported", name)
		}
	}
	if !done {
		t.Errorf("the guest did not finish")
	}
	if t.Failed() {
		t.Logf("guest report:\n%s", report)
	}
	m.CheckUntouched(t)
}

// SwapLink keeps replacing the symbolic link at path by links to each of targets in
// turn, each replacement an atomic rename, until stop is called; stop returns the
// number of rounds made.
func SwapLink(t testing.TB, path string, targets ...string) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	rounds := make(chan int, 1)
	tmp := path + ".swap"
	go func() {
		n := 0
		defer func() { rounds <- n }()
		for {
			for _, target := range targets {
				select {
				case <-done:
					return
				default:
				}
				_ = os.Symlink(target, tmp)
				_ = os.Rename(tmp, path)
			}
			n++
		}
	}()
	return func() int {
		close(done)
		return <-rounds
	}
}

// raceCounts reads the counts of the escape guest's race report.
func (m *MountTree) raceCounts(t testing.TB, r string) (inside, canary, refused int) {
	t.Helper()
	i := strings.Index(r, "race ")
	if i < 0 {
		t.Fatalf("no counts in the report: %q", r)
	}
	if _, err := fmt.Sscanf(r[i:], "race inside=%d canary=%d errors=%d", &inside, &canary, &refused); err != nil {
		t.Fatalf("report %q: %v", r, err)
	}
	return inside, canary, refused
}

// SwapRace has the host replace /data/swap, a link to a directory inside the mount
// holding canary.txt ("INSIDE"), by links out of the mount (relative and absolute)
// and back, as fast as it can, while two calls of read at once run the escape
// guest's "race=N" mode (each returning its report). No read may reach the canary
// outside; then, with the link left inside, every read must reach the file there.
func (m *MountTree) SwapRace(t testing.TB, read func() string) {
	t.Helper()
	real := filepath.Join(m.Data, "swap.real")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(real, "canary.txt"), []byte("INSIDE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	swap := filepath.Join(m.Data, "swap")
	if err := os.Symlink("swap.real", swap); err != nil {
		t.Fatal(err)
	}
	stop := SwapLink(t, swap, "../outside", m.Outside, "swap.real")
	reports := make([]string, 2)
	var wg sync.WaitGroup
	for i := range reports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i] = read()
		}()
	}
	wg.Wait()
	rounds := stop()
	reads := 0
	for _, r := range reports {
		inside, canary, refused := m.raceCounts(t, r)
		t.Logf("reads: %d inside, %d canary, %d refused (%d rounds of host swaps)", inside, canary, refused, rounds)
		if canary != 0 || strings.Contains(r, m.Canary) {
			t.Errorf("read the canary %d times through a swapped link", canary)
		}
		reads += inside + refused
	}
	if reads == 0 {
		t.Errorf("no read was made while the host swapped the link: the race exercised nothing")
	}
	// How many reads land inside while the link flips depends on the scheduler;
	// that the guest's reads do follow the link inside must not: with the link
	// left pointing inside, the same guest reads the file there, every time.
	tmp := swap + ".swap"
	if err := os.Symlink("swap.real", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, swap); err != nil {
		t.Fatal(err)
	}
	if inside, canary, refused := m.raceCounts(t, read()); inside == 0 || canary != 0 || refused != 0 {
		t.Errorf("with the link pointing inside: %d inside, %d canary, %d refused; want every read inside", inside, canary, refused)
	}
	m.CheckUntouched(t)
}
