// Command probe exercises the ordinary filesystem operations a Go guest makes in a
// writable mount at /m and prints what each returned: content, sizes, modes, and
// errors by errno. The guestfs tests run it on wazero's DirFS and on guestfs and
// require the same output, so that confining paths changes nothing a well-behaved
// guest sees. Nothing here leaves the mount.
package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"
)

func show(op string, v any, err error) {
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			fmt.Printf("%s: err %d %v\n", op, int(errno), errno)
		} else {
			fmt.Printf("%s: err %v\n", op, err)
		}
		return
	}
	fmt.Printf("%s: %v\n", op, v)
}

func stat(op, name string, lstat bool) {
	var (
		fi  fs.FileInfo
		err error
	)
	if lstat {
		fi, err = os.Lstat(name)
	} else {
		fi, err = os.Stat(name)
	}
	if err != nil {
		show(op, nil, err)
		return
	}
	nlink := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		nlink = st.Nlink
	}
	show(op, fmt.Sprintf("%s size=%d type=%v nlink=%d", fi.Name(), fi.Size(), fi.Mode().Type(), nlink), nil)
}

func read(op, name string) {
	b, err := os.ReadFile(name)
	show(op, fmt.Sprintf("%q", b), err)
}

func list(op, name string) {
	es, err := os.ReadDir(name)
	var names []string
	for _, e := range es {
		names = append(names, e.Name()+":"+e.Type().String())
	}
	show(op, strings.Join(names, " "), err)
}

func main() {
	show("write", nil, os.WriteFile("/m/a.txt", []byte("hello"), 0o644))
	read("read", "/m/a.txt")
	stat("stat", "/m/a.txt", false)
	stat("stat-dir", "/m", false)
	stat("stat-missing", "/m/nope", false)
	stat("stat-trailing-slash", "/m/a.txt/", false)
	read("read-missing", "/m/nope")

	f, err := os.OpenFile("/m/a.txt", os.O_WRONLY|os.O_APPEND, 0)
	show("open-append", nil, err)
	if err == nil {
		_, err = f.WriteString(" world")
		show("append", nil, err)
		f.Close()
	}
	read("read-appended", "/m/a.txt")
	_, err = os.OpenFile("/m/a.txt", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	show("excl-existing", nil, err)
	f, err = os.OpenFile("/m/t.txt", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	show("excl-new", nil, err)
	if err == nil {
		f.WriteString("0123456789")
		buf := make([]byte, 4)
		n, err := f.ReadAt(buf, 3)
		show("readat", string(buf[:n]), err)
		off, err := f.Seek(-2, io.SeekEnd)
		show("seek-end", off, err)
		n, err = f.Read(buf)
		show("read-after-seek", string(buf[:n]), err)
		show("truncate", nil, f.Truncate(4))
		fi, _ := f.Stat()
		show("size-after-truncate", fi.Size(), nil)
		show("sync", nil, f.Sync())
		f.Close()
	}
	f, err = os.OpenFile("/m/t.txt", os.O_RDWR|os.O_TRUNC, 0)
	show("open-trunc", nil, err)
	if err == nil {
		fi, _ := f.Stat()
		show("size-after-o-trunc", fi.Size(), nil)
		f.Close()
	}
	show("truncate-path", nil, os.Truncate("/m/t.txt", 7))
	stat("stat-truncated", "/m/t.txt", false)
	f, err = os.Open("/m/a.txt")
	if err == nil {
		_, err = f.Write([]byte("x"))
		show("write-readonly-fd", nil, err)
		f.Close()
	}

	show("mkdir", nil, os.Mkdir("/m/d", 0o755))
	show("mkdir-again", nil, os.Mkdir("/m/d", 0o755))
	show("mkdir-missing-parent", nil, os.Mkdir("/m/x/y", 0o755))
	show("mkdir-under-file", nil, os.Mkdir("/m/a.txt/y", 0o755))
	show("mkdirall", nil, os.MkdirAll("/m/d/e/f", 0o755))
	_, err = os.ReadDir("/m/a.txt")
	show("readdir-file", nil, err)
	_, err = os.OpenFile("/m/d", os.O_WRONLY, 0)
	show("open-dir-for-write", nil, err)

	show("rename-file", nil, os.Rename("/m/t.txt", "/m/d/t.txt"))
	show("write-b", nil, os.WriteFile("/m/b.txt", []byte("bee"), 0o644))
	show("rename-over-file", nil, os.Rename("/m/b.txt", "/m/d/t.txt"))
	read("read-replaced", "/m/d/t.txt")
	show("mkdir-empty", nil, os.Mkdir("/m/empty", 0o755))
	show("mkdir-moving", nil, os.Mkdir("/m/moving", 0o755))
	show("write-in-moving", nil, os.WriteFile("/m/moving/in.txt", []byte("in"), 0o644))
	show("rename-dir-over-empty-dir", nil, syscall.Rename("/m/moving", "/m/empty"))
	read("read-moved", "/m/empty/in.txt")
	show("rename-dir-over-nonempty", nil, syscall.Rename("/m/empty", "/m/d"))
	show("rename-file-over-dir", nil, syscall.Rename("/m/a.txt", "/m/d/e"))
	show("rename-dir-over-file", nil, syscall.Rename("/m/d/e", "/m/a.txt"))
	show("rename-missing", nil, os.Rename("/m/nope", "/m/nope2"))
	show("rename-into-itself", nil, os.Rename("/m/d", "/m/d/e/d"))
	// os.Rename refuses to replace a directory itself; rename(2) (syscall.Rename)
	// replaces an empty one.

	show("symlink", nil, os.Symlink("a.txt", "/m/l"))
	show("symlink-exists", nil, os.Symlink("a.txt", "/m/l"))
	target, err := os.Readlink("/m/l")
	show("readlink", target, err)
	_, err = os.Readlink("/m/a.txt")
	show("readlink-file", nil, err)
	stat("lstat-link", "/m/l", true)
	stat("stat-link", "/m/l", false)
	read("read-link", "/m/l")
	show("symlink-dir", nil, os.Symlink("d", "/m/ld"))
	list("list-through-link", "/m/ld")
	show("symlink-dangling", nil, os.Symlink("nowhere", "/m/dangle"))
	stat("stat-dangling", "/m/dangle", false)
	stat("lstat-dangling", "/m/dangle", true)
	show("symlink-loop", nil, os.Symlink("loop", "/m/loop"))
	read("read-loop", "/m/loop")
	show("symlink-up-inside", nil, os.Symlink("../a.txt", "/m/d/up"))
	read("read-up-inside", "/m/d/up")
	show("remove-link-to-dir", nil, os.Remove("/m/ld"))
	stat("dir-after-link-removed", "/m/d", false)

	show("link", nil, os.Link("/m/a.txt", "/m/hard"))
	stat("stat-hard", "/m/hard", false)
	show("link-exists", nil, os.Link("/m/a.txt", "/m/hard"))
	show("link-dir", nil, os.Link("/m/d", "/m/hd"))
	show("link-missing", nil, os.Link("/m/nope", "/m/hn"))

	when := time.Date(2021, 2, 3, 4, 5, 6, 7000, time.UTC)
	show("chtimes", nil, os.Chtimes("/m/a.txt", when, when))
	fi, err := os.Stat("/m/a.txt")
	if err == nil {
		show("mtime", fi.ModTime().UTC().Format(time.RFC3339Nano), nil)
	}
	show("chtimes-through-link", nil, os.Chtimes("/m/l", when.Add(time.Hour), when.Add(time.Hour)))
	fi, err = os.Stat("/m/a.txt")
	if err == nil {
		show("mtime-via-link", fi.ModTime().UTC().Format(time.RFC3339Nano), nil)
	}
	show("chtimes-missing", nil, os.Chtimes("/m/nope", when, when))

	show("remove-file", nil, os.Remove("/m/hard"))
	show("remove-nonempty-dir", nil, os.Remove("/m/d"))
	show("remove-empty-dir", nil, os.Remove("/m/d/e/f"))
	show("remove-missing", nil, os.Remove("/m/nope"))
	show("unlink-dir", nil, syscall.Unlink("/m/d/e"))
	show("rmdir-file", nil, syscall.Rmdir("/m/a.txt"))
	show("rmdir-link-to-dir", nil, syscall.Rmdir("/m/l"))
	show("removeall", nil, os.RemoveAll("/m/empty"))

	show("mkdir-many", nil, os.Mkdir("/m/many", 0o755))
	for i := range 300 {
		if err := os.WriteFile(fmt.Sprintf("/m/many/f%03d", i), nil, 0o644); err != nil {
			show("create-many", nil, err)
			break
		}
	}
	es, err := os.ReadDir("/m/many")
	show("readdir-many", len(es), err)
	d, err := os.Open("/m/many")
	if err == nil {
		first, err := d.ReadDir(7)
		show("readdir-first", len(first), err)
		_, err = d.Seek(0, io.SeekStart)
		show("rewind", nil, err)
		all, err := d.ReadDir(-1)
		show("readdir-after-rewind", len(all), err)
		_, err = d.Seek(5, io.SeekStart)
		show("seek-dir-nonzero", nil, err)
		d.Close()
	}

	names, err := os.ReadDir("/m")
	var got []string
	for _, e := range names {
		got = append(got, e.Name()+":"+e.Type().String())
	}
	slices.Sort(got)
	show("final-listing", strings.Join(got, " "), err)
}
