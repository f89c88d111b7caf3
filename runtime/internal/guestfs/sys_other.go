//go:build !unix

package guestfs

import (
	"errors"
	"io/fs"
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// Without the *at system calls the exact semantics of unlink, rmdir, rename and
// no-follow opens cannot be had inside a root: Open refuses.

const (
	dirFlag      = 0
	noFollowFlag = 0
)

// errUnsupported is returned by Open on hosts without the *at system calls.
var errUnsupported = errors.New("directory mounts need a Unix host")

func supported() error { return errUnsupported }

func osOpenFlag(experimentalsys.Oflag) int { return 0 }

func openat(int, string, int, fs.FileMode, string) (*os.File, error) { return nil, errUnsupported }

func unlinkat(int, string) experimentalsys.Errno { return experimentalsys.ENOSYS }

func rmdirat(int, string) experimentalsys.Errno { return experimentalsys.ENOSYS }

func renameat(int, string, int, string) experimentalsys.Errno { return experimentalsys.ENOSYS }
