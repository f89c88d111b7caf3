//go:build !linux

package guestfs

import experimentalsys "github.com/tetratelabs/wazero/experimental/sys"

// futimens is not offered: wazero then sets the times by path (FS.Utimens).
func futimens(uintptr, int64, int64) experimentalsys.Errno { return experimentalsys.ENOSYS }
