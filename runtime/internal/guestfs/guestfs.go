// Package guestfs is the filesystem a guest sees through a directory mount: a wazero
// sys.FS (experimental/sys) built on os.Root, so that every path a guest names
// resolves inside the mounted directory, symbolic links included.
//
// What a mount guarantees (docs/serve.md, "Directory mounts"):
//
//   - Every path is resolved beneath the mount's root. A ".." that climbs above it, an
//     absolute symbolic link, or a relative one that leads out (whether the guest or
//     the host made it, before or during the run) fails with EPERM. The root itself
//     is held open, so moving or replacing the host directory while the app runs
//     does not redirect the guest either.
//   - A guest cannot make a symbolic link that leads out of the mount, now or later:
//     targets must be relative, may climb ("..") only at their start and only as far
//     as the link's own directory is deep, and must not resolve outside through other
//     links. Moving a link (rename, hard link) is checked the same way at its new
//     place, and moving a directory up the tree is refused when a link inside it
//     would then climb out. Refusals are EPERM.
//   - A read-only mount refuses every change with EROFS: creating, truncating,
//     appending, writing, removing, renaming, linking, changing times or modes.
//
// Hard links made on the host to files outside the mount stay readable: a hard link
// is the file itself, and no path-based sandbox can tell it from any other. So can
// special files the operator put in the mount (FIFOs, devices); mount only
// directories meant for the guest.
package guestfs

import (
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// FS is one mounted host directory. It is safe for concurrent use by every instance
// of an app; close it after the app's instances are closed.
type FS struct {
	experimentalsys.UnimplementedFS

	root     *os.Root
	fast     *beneath // Linux: openat2 with RESOLVE_BENEATH on the root; nil elsewhere
	dir      string
	readOnly bool

	// links serializes the changes that place a symbolic link somewhere (symlink,
	// link, rename) with the checks that the link stays inside, so two instances
	// cannot race a check against a move.
	links sync.Mutex
}

// Open opens the host directory dir as a mount. readOnly mounts refuse every change.
func Open(dir string, readOnly bool) (*FS, error) {
	if err := supported(); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &FS{root: root, fast: openBeneath(root), dir: dir, readOnly: readOnly}, nil
}

// Close releases the mount's root. Files the guest still holds stay usable.
func (f *FS) Close() error {
	f.fast.close()
	return f.root.Close()
}

// String names the host directory (wazero prints it in debug output).
func (f *FS) String() string { return f.dir }

// ReadOnly reports whether the mount refuses changes.
func (f *FS) ReadOnly() bool { return f.readOnly }

// errPathEscapes is how os.Root says a path leaves the root; the error value itself
// is not exported. TestEscapeIsEPERM fails if Go changes the text.
const errPathEscapes = "path escapes from parent"

// toErrno maps an error of os or os.Root to what WASI guests see. Leaving the root
// is EPERM, as wazero answers for a ".." that climbs out of a preopen.
func toErrno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	var u error = err
	switch e := err.(type) {
	case *os.PathError:
		u = e.Err
	case *os.LinkError:
		u = e.Err
	}
	if u != nil && u.Error() == errPathEscapes {
		return experimentalsys.EPERM
	}
	return experimentalsys.UnwrapOSError(err)
}

// clean turns a name from wazero into one for os.Root: relative to the root, "." for
// the root itself (wazero passes "" for it, and "/x" for x in a directory the guest
// opened as "."). A ".." component is refused: wazero never sends one (it cleans
// guest paths and refuses those that climb), but the operations that act on a
// parent directory's descriptor must never see one.
func clean(name string) (string, experimentalsys.Errno) {
	name = strings.TrimLeft(name, "/")
	for rest := name; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		if c == ".." {
			return "", experimentalsys.EPERM
		}
	}
	if name == "" {
		return ".", 0
	}
	return name, 0
}

const writeFlags = experimentalsys.O_WRONLY | experimentalsys.O_RDWR | experimentalsys.O_CREAT |
	experimentalsys.O_TRUNC | experimentalsys.O_APPEND

// OpenFile implements sys.FS.
func (f *FS) OpenFile(name string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	name, errno := clean(name)
	if errno != 0 {
		return nil, errno
	}
	if f.readOnly && flag&writeFlags != 0 {
		if errno := f.readOnlyOpen(name, &flag); errno != 0 {
			return nil, errno
		}
	}
	osFlag := osOpenFlag(flag)
	var (
		of  *os.File
		err error
	)
	fastFlag := osFlag
	if flag&experimentalsys.O_NOFOLLOW != 0 {
		fastFlag |= noFollowFlag
	}
	if nf, errno, ok := f.fast.open(name, fastFlag, perm&fs.ModePerm); ok {
		if errno != 0 {
			return nil, errno
		}
		of = nf
	} else if flag&experimentalsys.O_NOFOLLOW != 0 {
		// os.Root follows a final symbolic link whatever the flags say; WASI's
		// path_open without LOOKUP_SYMLINK_FOLLOW must fail with ELOOP instead.
		of, err = f.openNoFollow(name, osFlag, perm&fs.ModePerm)
	} else {
		of, err = f.root.OpenFile(name, osFlag, perm&fs.ModePerm)
	}
	if err != nil {
		return nil, toErrno(err)
	}
	nf := &file{fs: f, name: name, flag: flag, f: of}
	nf.seekMethod.f = nf
	return nf, 0
}

// readOnlyOpen decides an open with write flags on a read-only mount: opening a
// directory for writing is EISDIR (as on any filesystem); O_CREAT of an existing
// file without O_EXCL opens it as it is; anything else that could change the file
// system is EROFS. wazero's own read-only mount lets O_RDONLY|O_CREAT create a file
// and O_RDONLY|O_TRUNC truncate one.
func (f *FS) readOnlyOpen(name string, flag *experimentalsys.Oflag) experimentalsys.Errno {
	mode := *flag & (experimentalsys.O_WRONLY | experimentalsys.O_RDWR)
	if mode != 0 && *flag&experimentalsys.O_DIRECTORY != 0 {
		return experimentalsys.EISDIR
	}
	if mode != 0 || *flag&experimentalsys.O_TRUNC != 0 {
		return experimentalsys.EROFS
	}
	if *flag&experimentalsys.O_CREAT == 0 {
		return 0 // O_APPEND on a descriptor that cannot write: harmless
	}
	if *flag&experimentalsys.O_EXCL != 0 {
		if _, err := f.root.Lstat(name); err == nil {
			return experimentalsys.EEXIST
		}
		return experimentalsys.EROFS
	}
	if _, err := f.root.Stat(name); err != nil {
		if errno := toErrno(err); errno != experimentalsys.ENOENT {
			return errno
		}
		return experimentalsys.EROFS
	}
	*flag &^= experimentalsys.O_CREAT // exists: an ordinary read-only open
	return 0
}

// Lstat implements sys.FS.
func (f *FS) Lstat(name string) (sys.Stat_t, experimentalsys.Errno) { return f.stat(name, false) }

// Stat implements sys.FS.
func (f *FS) Stat(name string) (sys.Stat_t, experimentalsys.Errno) { return f.stat(name, true) }

func (f *FS) stat(name string, follow bool) (sys.Stat_t, experimentalsys.Errno) {
	name, errno := clean(name)
	if errno != 0 {
		return sys.Stat_t{}, errno
	}
	if strings.Contains(name, "/") { // at the top os.Root needs a single fstatat
		if st, errno, ok := f.fast.stat(name, follow); ok {
			return st, errno
		}
	}
	var (
		fi  fs.FileInfo
		err error
	)
	if follow {
		fi, err = f.root.Stat(name)
	} else {
		fi, err = f.root.Lstat(name)
	}
	if err != nil {
		return sys.Stat_t{}, toErrno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Readlink implements sys.FS.
func (f *FS) Readlink(name string) (string, experimentalsys.Errno) {
	name, errno := clean(name)
	if errno != 0 {
		return "", errno
	}
	target, err := f.root.Readlink(name)
	if err != nil {
		return "", toErrno(err)
	}
	return target, 0
}

// Mkdir implements sys.FS.
func (f *FS) Mkdir(name string, perm fs.FileMode) experimentalsys.Errno {
	name, errno := f.writable(name)
	if errno != 0 {
		return errno
	}
	errno = toErrno(f.root.Mkdir(name, perm&fs.ModePerm))
	if errno == experimentalsys.ENOTDIR {
		errno = experimentalsys.ENOENT // as wazero's DirFS answers
	}
	return errno
}

// Chmod implements sys.FS.
func (f *FS) Chmod(name string, perm fs.FileMode) experimentalsys.Errno {
	name, errno := f.writable(name)
	if errno != 0 {
		return errno
	}
	return toErrno(f.root.Chmod(name, perm&fs.ModePerm))
}

// Utimens implements sys.FS: the times of name's target (symbolic links followed).
func (f *FS) Utimens(name string, atim, mtim int64) experimentalsys.Errno {
	name, errno := f.writable(name)
	if errno != 0 {
		return errno
	}
	return toErrno(f.root.Chtimes(name, utime(atim), utime(mtim)))
}

// utime turns a sys.FS timestamp into what os.Chtimes takes: the zero time leaves
// the time as it is.
func utime(ns int64) time.Time {
	if ns == experimentalsys.UTIME_OMIT {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Unlink implements sys.FS: removes a file or symbolic link, never a directory.
func (f *FS) Unlink(name string) experimentalsys.Errno {
	name, errno := f.writable(name)
	if errno != 0 {
		return errno
	}
	return f.inParent(name, func(dir int, base string) experimentalsys.Errno {
		errno := unlinkat(dir, base)
		if errno == experimentalsys.EPERM {
			errno = experimentalsys.EISDIR // Linux says EISDIR, POSIX EPERM: as DirFS
		}
		return errno
	})
}

// Rmdir implements sys.FS.
func (f *FS) Rmdir(name string) experimentalsys.Errno {
	name, errno := f.writable(name)
	if errno != 0 {
		return errno
	}
	return f.inParent(name, rmdirat)
}

// Symlink implements sys.FS: creates link pointing to target, if target cannot lead
// out of the mount (see the package documentation).
func (f *FS) Symlink(target, link string) experimentalsys.Errno {
	link, errno := f.writable(link)
	if errno != 0 {
		return errno
	}
	if target == "" {
		return experimentalsys.ENOENT
	}
	f.links.Lock()
	defer f.links.Unlock()
	if errno := f.checkLink(target, link); errno != 0 {
		return errno
	}
	return toErrno(f.root.Symlink(target, link))
}

// Link implements sys.FS: a hard link. A hard link to a symbolic link is a second
// symbolic link, so it is checked like one at its new place.
func (f *FS) Link(oldName, newName string) experimentalsys.Errno {
	oldName, newName, errno := f.writable2(oldName, newName)
	if errno != 0 {
		return errno
	}
	f.links.Lock()
	defer f.links.Unlock()
	if _, errno := f.checkMove(oldName, newName); errno != 0 {
		return errno
	}
	return toErrno(f.root.Link(oldName, newName))
}

// Rename implements sys.FS with rename(2)'s semantics (a directory may replace an
// empty one), checking that no symbolic link it moves would lead out of the mount.
func (f *FS) Rename(from, to string) experimentalsys.Errno {
	from, to, errno := f.writable2(from, to)
	if errno != 0 {
		return errno
	}
	if from == to {
		return 0
	}
	f.links.Lock()
	defer f.links.Unlock()
	isDir, errno := f.checkMove(from, to)
	if errno != 0 {
		return errno
	}
	if isDir {
		if errno := f.checkDirMove(from, to); errno != 0 {
			return errno
		}
	}
	return f.inParent(from, func(oldDir int, oldBase string) experimentalsys.Errno {
		return f.inParent(to, func(newDir int, newBase string) experimentalsys.Errno {
			return renameat(oldDir, oldBase, newDir, newBase)
		})
	})
}

// checkMove checks that from, when it is a symbolic link, may be placed at to, and
// says whether from is a directory. The caller holds f.links.
func (f *FS) checkMove(from, to string) (isDir bool, errno experimentalsys.Errno) {
	fi, err := f.root.Lstat(from)
	if err != nil {
		return false, toErrno(err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return fi.IsDir(), 0
	}
	target, err := f.root.Readlink(from)
	if err != nil {
		return false, toErrno(err)
	}
	return false, f.checkLink(target, to)
}

// writable2 is writable for the two names of a link or rename.
func (f *FS) writable2(a, b string) (string, string, experimentalsys.Errno) {
	a, errno := f.writable(a)
	if errno != 0 {
		return "", "", errno
	}
	b, errno = clean(b)
	return a, b, errno
}

// writable refuses changes to a read-only mount, and cleans name.
func (f *FS) writable(name string) (string, experimentalsys.Errno) {
	if f.readOnly {
		return "", experimentalsys.EROFS
	}
	return clean(name)
}

// inParent opens the directory holding name's last component (resolved inside the
// root) and calls fn with its descriptor and that component, trailing slashes kept
// (they mean "must be a directory" to the kernel).
func (f *FS) inParent(name string, fn func(dir int, base string) experimentalsys.Errno) experimentalsys.Errno {
	dir, base := splitParent(name)
	if base == "" {
		return experimentalsys.EINVAL // the mount's root itself
	}
	if strings.TrimRight(base, "/") == ".." {
		return experimentalsys.EPERM
	}
	d, err := f.root.OpenFile(dir, os.O_RDONLY|dirFlag, 0)
	if err != nil {
		return toErrno(err)
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return toErrno(err)
	}
	var errno experimentalsys.Errno
	if err := rc.Control(func(fd uintptr) { errno = fn(int(fd), base) }); err != nil {
		return toErrno(err)
	}
	return errno
}

// splitParent splits a root-relative name into the directory that holds its last
// component ("." for the root) and that component with any trailing slashes.
func splitParent(name string) (dir, base string) {
	trimmed := strings.TrimRight(name, "/")
	if trimmed == "" || trimmed == "." {
		return ".", ""
	}
	i := strings.LastIndexByte(trimmed, '/')
	if i < 0 {
		return ".", name
	}
	dir = path.Clean(trimmed[:i])
	return dir, name[i+1:]
}

// openNoFollow opens name without following a symbolic link in its last component
// (ELOOP if it is one); links in the directories above are followed inside the root.
func (f *FS) openNoFollow(name string, flag int, perm fs.FileMode) (*os.File, error) {
	if _, base := splitParent(name); base == "" {
		return f.root.OpenFile(".", flag, perm) // the root is no link
	}
	var (
		of    *os.File
		opErr error
	)
	errno := f.inParent(name, func(dir int, base string) experimentalsys.Errno {
		of, opErr = openat(dir, base, flag|noFollowFlag, perm, name)
		return 0
	})
	if errno != 0 {
		return nil, errno
	}
	return of, opErr
}
