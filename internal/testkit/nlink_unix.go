//go:build unix

package testkit

import (
	"io/fs"
	"strconv"
	"syscall"
)

func nlink(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return strconv.FormatUint(uint64(st.Nlink), 10)
	}
	return "?"
}
