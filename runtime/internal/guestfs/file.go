package guestfs

import (
	"io"
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// file is a file or directory the guest opened in a mount. Reads and writes go to
// the descriptor; nothing is resolved by path again except reopening it to change
// the append mode, which goes through the root and checks it is the same file.
type file struct {
	seekMethod[int64]

	fs   *FS
	name string // root-relative, for reopening
	flag experimentalsys.Oflag
	f    *os.File

	// What Stat says that cannot change while the file is open.
	statted bool
	dev     uint64
	ino     sys.Inode
	isDir   bool
	closed  bool
}

var _ experimentalsys.File = (*file)(nil)

func (f *file) cache() experimentalsys.Errno {
	if f.statted {
		return 0
	}
	_, errno := f.Stat()
	return errno
}

// Dev implements sys.File.
func (f *file) Dev() (uint64, experimentalsys.Errno) {
	if errno := f.cache(); errno != 0 {
		return 0, errno
	}
	return f.dev, 0
}

// Ino implements sys.File.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) {
	if errno := f.cache(); errno != 0 {
		return 0, errno
	}
	return f.ino, 0
}

// IsDir implements sys.File.
func (f *file) IsDir() (bool, experimentalsys.Errno) {
	if errno := f.cache(); errno != 0 {
		return false, errno
	}
	return f.isDir, 0
}

// IsAppend implements sys.File.
func (f *file) IsAppend() bool { return f.flag&experimentalsys.O_APPEND != 0 }

// SetAppend implements sys.File. The append mode is fixed when a file is opened, so
// the file is opened again (inside the root) and must still be the same file.
func (f *file) SetAppend(enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if enable == f.IsAppend() {
		return 0
	}
	if enable && f.fs.readOnly {
		return experimentalsys.EROFS
	}
	if f.isDirectory() {
		return experimentalsys.EISDIR
	}
	flag := f.flag &^ (experimentalsys.O_CREAT | experimentalsys.O_TRUNC | experimentalsys.O_EXCL)
	if enable {
		flag |= experimentalsys.O_APPEND
	} else {
		flag &^= experimentalsys.O_APPEND
	}
	offset, err := f.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return toErrno(err)
	}
	nf, err := f.fs.root.OpenFile(f.name, osOpenFlag(flag), 0)
	if err != nil {
		return toErrno(err)
	}
	if errno := sameFile(f.f, nf); errno != 0 {
		_ = nf.Close()
		return errno
	}
	if _, err := nf.Seek(offset, io.SeekStart); err != nil {
		_ = nf.Close()
		return toErrno(err)
	}
	_ = f.f.Close()
	f.f, f.flag = nf, flag
	return 0
}

func (f *file) isDirectory() bool {
	isDir, _ := f.IsDir()
	return isDir
}

func sameFile(a, b *os.File) experimentalsys.Errno {
	fa, err := a.Stat()
	if err != nil {
		return toErrno(err)
	}
	fb, err := b.Stat()
	if err != nil {
		return toErrno(err)
	}
	if !os.SameFile(fa, fb) {
		return experimentalsys.ENOENT // the name now means another file
	}
	return 0
}

// Stat implements sys.File.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	fi, err := f.f.Stat()
	if err != nil {
		errno := toErrno(err)
		if errno == experimentalsys.EIO {
			errno = experimentalsys.EBADF
		}
		return sys.Stat_t{}, errno
	}
	st := sys.NewStat_t(fi)
	f.statted, f.dev, f.ino, f.isDir = true, st.Dev, st.Ino, st.Mode.IsDir()
	return st, 0
}

// fileErr turns the error of an operation on a file (not a directory) into the
// errno DirFS answers: EBADF once closed, EISDIR on a directory.
func (f *file) fileErr(err error) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if f.isDirectory() {
		return experimentalsys.EISDIR
	}
	return toErrno(err)
}

// Read implements sys.File.
func (f *file) Read(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.Read(buf)
	if err != nil && err != io.EOF {
		return n, f.fileErr(err)
	}
	return n, 0
}

// Pread implements sys.File.
func (f *file) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return n, f.fileErr(err)
	}
	return n, 0
}

// seekMethod gives file its Seek method (sys.File's, which returns an Errno). It is
// generic in the offset type only because go vet's stdmethods check wants io.Seeker's
// signature from any method called Seek, and skips methods on type parameters.
type seekMethod[Off ~int64] struct{ f *file }

// Seek implements sys.File.
func (s seekMethod[Off]) Seek(offset Off, whence int) (Off, experimentalsys.Errno) {
	n, errno := s.f.seek(int64(offset), whence)
	return Off(n), errno
}

// seek is sys.File's Seek. Seeking a directory to 0 rewinds it for Readdir.
func (f *file) seek(offset int64, whence int) (int64, experimentalsys.Errno) {
	if f.closed {
		return 0, experimentalsys.EBADF
	}
	if uint(whence) > io.SeekEnd {
		return 0, experimentalsys.EINVAL
	}
	if f.isDirectory() {
		if offset != 0 || whence != io.SeekStart {
			return 0, experimentalsys.EISDIR
		}
	}
	n, err := f.f.Seek(offset, whence)
	if err != nil {
		return 0, f.fileErr(err)
	}
	return n, 0
}

// Readdir implements sys.File. Entries are read from the open directory; their
// types come from lstat relative to it, never by path.
func (f *file) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if f.closed {
		return nil, experimentalsys.EBADF
	}
	if !f.isDirectory() {
		return nil, experimentalsys.EBADF
	}
	fis, err := f.f.Readdir(n)
	if err != nil && err != io.EOF {
		errno := toErrno(err)
		switch errno {
		case experimentalsys.EINVAL, experimentalsys.ENOTDIR:
			errno = experimentalsys.EBADF
		}
		return nil, errno
	}
	dirents := make([]experimentalsys.Dirent, 0, len(fis))
	for _, fi := range fis {
		dirents = append(dirents, experimentalsys.Dirent{Name: fi.Name(), Ino: sys.NewStat_t(fi).Ino, Type: fi.Mode().Type()})
	}
	return dirents, 0
}

// Write implements sys.File.
func (f *file) Write(buf []byte) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.Write(buf)
	if err != nil {
		return n, f.fileErr(err)
	}
	return n, 0
}

// Pwrite implements sys.File.
func (f *file) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	if len(buf) == 0 {
		return 0, 0
	}
	n, err := f.f.WriteAt(buf, off)
	if err != nil {
		return n, f.fileErr(err)
	}
	return n, 0
}

// Truncate implements sys.File.
func (f *file) Truncate(size int64) experimentalsys.Errno {
	if size < 0 {
		return experimentalsys.EINVAL
	}
	if f.fs.readOnly {
		return f.fileErr(experimentalsys.EBADF) // opened for reading only
	}
	if err := f.f.Truncate(size); err != nil {
		return f.fileErr(err)
	}
	return 0
}

// Sync implements sys.File.
func (f *file) Sync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return toErrno(f.f.Sync())
}

// Datasync implements sys.File (fsync: Go has no fdatasync on every Unix).
func (f *file) Datasync() experimentalsys.Errno { return f.Sync() }

// Utimens implements sys.File. A read-only mount refuses: the owner of a file may
// set its times through a descriptor opened only for reading.
func (f *file) Utimens(atim, mtim int64) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if f.fs.readOnly {
		return experimentalsys.EROFS
	}
	rc, err := f.f.SyscallConn()
	if err != nil {
		return toErrno(err)
	}
	var errno experimentalsys.Errno
	if err := rc.Control(func(fd uintptr) { errno = futimens(fd, atim, mtim) }); err != nil {
		return toErrno(err)
	}
	return errno
}

// Close implements sys.File.
func (f *file) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	return toErrno(f.f.Close())
}
