//go:build unix

package guestfs

import (
	"io/fs"
	"os"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

const (
	dirFlag      = unix.O_DIRECTORY
	noFollowFlag = unix.O_NOFOLLOW
)

func supported() error { return nil }

// osOpenFlag converts wazero's open flags to the host's. O_NONBLOCK is dropped:
// mounted files are regular files and directories, read and written blocking.
func osOpenFlag(flag experimentalsys.Oflag) int {
	var o int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDWR:
		o = os.O_RDWR
	case experimentalsys.O_WRONLY:
		o = os.O_WRONLY
	default:
		o = os.O_RDONLY
	}
	for _, m := range [...]struct {
		from experimentalsys.Oflag
		to   int
	}{
		{experimentalsys.O_APPEND, os.O_APPEND},
		{experimentalsys.O_CREAT, os.O_CREATE},
		{experimentalsys.O_EXCL, os.O_EXCL},
		{experimentalsys.O_TRUNC, os.O_TRUNC},
		{experimentalsys.O_SYNC, os.O_SYNC},
		{experimentalsys.O_RSYNC, os.O_SYNC}, // O_RSYNC is O_SYNC on Linux; not everywhere defined
		{experimentalsys.O_DSYNC, unix.O_DSYNC},
		{experimentalsys.O_DIRECTORY, unix.O_DIRECTORY},
	} {
		if flag&m.from != 0 {
			o |= m.to
		}
	}
	return o
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); err != syscall.EINTR {
			return err
		}
	}
}

// openat opens base in the directory dir; name is what the *os.File is called.
func openat(dir int, base string, flag int, perm fs.FileMode, name string) (*os.File, error) {
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat(dir, base, flag|unix.O_CLOEXEC, uint32(perm))
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

func unlinkat(dir int, base string) experimentalsys.Errno {
	return experimentalsys.UnwrapOSError(ignoringEINTR(func() error { return unix.Unlinkat(dir, base, 0) }))
}

func rmdirat(dir int, base string) experimentalsys.Errno {
	return experimentalsys.UnwrapOSError(ignoringEINTR(func() error { return unix.Unlinkat(dir, base, unix.AT_REMOVEDIR) }))
}

func renameat(oldDir int, oldBase string, newDir int, newBase string) experimentalsys.Errno {
	return experimentalsys.UnwrapOSError(ignoringEINTR(func() error { return unix.Renameat(oldDir, oldBase, newDir, newBase) }))
}
