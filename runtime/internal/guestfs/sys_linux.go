//go:build linux

package guestfs

import (
	"unsafe"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// futimens sets a descriptor's times, UTIME_OMIT keeping one: utimensat(fd, NULL,
// times, 0), which x/sys/unix does not wrap.
func futimens(fd uintptr, atim, mtim int64) experimentalsys.Errno {
	ts := [2]unix.Timespec{timespec(atim), timespec(mtim)}
	err := ignoringEINTR(func() error {
		_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
	return experimentalsys.UnwrapOSError(err)
}

func timespec(ns int64) unix.Timespec {
	if ns == experimentalsys.UTIME_OMIT {
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(ns)
}
