package guestfs

import (
	"io/fs"
	"os"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
	"golang.org/x/sys/unix"
)

// beneath resolves a whole path inside the root in one openat2(2) call with
// RESOLVE_BENEATH: the kernel refuses any step out of the directory (a "..", an
// absolute link, a relative link that climbs out) with EXDEV, race-free. os.Root
// walks a path in user space instead, an openat and a close per directory: for a
// file three directories down that made an open twice and a stat five times as
// slow as wazero's DirFS (docs/rationale.md). os.Root remains the fallback, and
// the only way on kernels before 5.6 or under seccomp filters that refuse openat2.
type beneath struct {
	dir *os.File // the root directory, held open for its descriptor
	fd  int
}

// openBeneath returns nil when openat2 is not available.
func openBeneath(root *os.Root) *beneath {
	dir, err := root.OpenFile(".", os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil
	}
	b := &beneath{dir: dir, fd: int(dir.Fd())}
	fd, err := b.openat2(".", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		_ = dir.Close()
		return nil
	}
	_ = unix.Close(fd)
	return b
}

func (b *beneath) close() {
	if b != nil {
		_ = b.dir.Close()
	}
}

// maxBeneathTries bounds the retries of an openat2 that a concurrent rename made
// fail with EAGAIN (which RESOLVE_BENEATH answers when ".." meets a rename).
const maxBeneathTries = 4

func (b *beneath) openat2(name string, flag int, perm fs.FileMode) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flag | unix.O_CLOEXEC),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	if flag&unix.O_CREAT != 0 {
		how.Mode = uint64(perm) // openat2 refuses a mode without O_CREAT
	}
	var (
		fd  int
		err error
	)
	for range maxBeneathTries {
		fd, err = unix.Openat2(b.fd, name, &how)
		if err != syscall.EINTR && err != syscall.EAGAIN {
			break
		}
	}
	return fd, err
}

// errno maps openat2's errors: EXDEV is a step out of the root.
func beneathErrno(err error) experimentalsys.Errno {
	if err == syscall.EXDEV {
		return experimentalsys.EPERM
	}
	return experimentalsys.UnwrapOSError(err)
}

// open opens name (flags as for os.OpenFile; O_NOFOLLOW refuses a final link).
// ok is false when the caller must fall back to os.Root.
func (b *beneath) open(name string, flag int, perm fs.FileMode) (f *os.File, errno experimentalsys.Errno, ok bool) {
	if b == nil {
		return nil, 0, false
	}
	fd, err := b.openat2(name, flag, perm)
	if err == syscall.EAGAIN {
		return nil, 0, false
	}
	if err != nil {
		return nil, beneathErrno(err), true
	}
	return os.NewFile(uintptr(fd), name), 0, true
}

// stat is fstatat inside the root: open with O_PATH, fstat, close.
func (b *beneath) stat(name string, follow bool) (st sys.Stat_t, errno experimentalsys.Errno, ok bool) {
	if b == nil {
		return st, 0, false
	}
	flag := unix.O_PATH
	if !follow {
		flag |= unix.O_NOFOLLOW
	}
	fd, err := b.openat2(name, flag, 0)
	if err == syscall.EAGAIN {
		return st, 0, false
	}
	if err != nil {
		return st, beneathErrno(err), true
	}
	var ust unix.Stat_t
	err = unix.Fstat(fd, &ust)
	_ = unix.Close(fd)
	if err != nil {
		return st, experimentalsys.UnwrapOSError(err), true
	}
	return statT(&ust), 0, true
}

// statT converts as os.Stat and wazero do.
func statT(u *unix.Stat_t) sys.Stat_t {
	mode := fs.FileMode(u.Mode & 0o777)
	switch u.Mode & unix.S_IFMT {
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if u.Mode&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if u.Mode&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if u.Mode&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return sys.Stat_t{
		Dev: uint64(u.Dev), Ino: u.Ino, Mode: mode, Nlink: uint64(u.Nlink), Size: u.Size,
		Atim: u.Atim.Nano(), Mtim: u.Mtim.Nano(), Ctim: u.Ctim.Nano(),
	}
}
