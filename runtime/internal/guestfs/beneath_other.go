//go:build !linux

package guestfs

import (
	"io/fs"
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// beneath is Linux's openat2 fast path; elsewhere os.Root does everything.
type beneath struct{}

func openBeneath(*os.Root) *beneath { return nil }

func (*beneath) close() {}

func (*beneath) open(string, int, fs.FileMode) (*os.File, experimentalsys.Errno, bool) {
	return nil, 0, false
}

func (*beneath) stat(string, bool) (sys.Stat_t, experimentalsys.Errno, bool) {
	return sys.Stat_t{}, 0, false
}
