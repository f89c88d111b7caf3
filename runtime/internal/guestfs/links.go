package guestfs

import (
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// Guest-made symbolic links must not lead out of the mount, not only for the guest
// (os.Root refuses to follow such a link anyway) but for whatever else reads the
// host directory: a backup job, another app mounting a parent directory, an
// operator's shell. The rules, checked where a link is placed (Symlink, Link of a
// link, Rename of a link or of a directory holding links):
//
//  1. the target is relative;
//  2. ".." appears only at its start: "../../lib/x", never "a/../..". Past the
//     leading ".." the kernel resolves names through whatever they are then, so
//     "x/.." climbs out once x is replaced by a link to "." — only leading ".." are
//     as deep as they look, from the link's own (real) directory;
//  3. resolved now from the link's real directory, through the links that exist,
//     the target stays inside (a missing component ends the walk: what is created
//     there later is checked when it is created);
//  4. a directory moved up the tree must not hold a link whose leading ".." would
//     then climb above the root.

const (
	// maxLinkHops bounds the links followed while resolving one path (Linux: 40).
	maxLinkHops = 40
	// maxResolveSteps bounds the components walked while resolving one path.
	maxResolveSteps = 4096
	// maxMoveScan bounds the entries examined under a directory moved up the tree
	// (a host call cannot be interrupted by the deadline); a larger tree is refused
	// with EPERM. WASI preview 1 has EXDEV, on which mv(1) would copy instead, but
	// wazero's errno set does not.
	maxMoveScan = 10000
)

// climb returns how many leading ".." target has, and false if it is absolute or
// has ".." after a name (rules 1 and 2).
func climb(target string) (ups int, ok bool) {
	if strings.HasPrefix(target, "/") {
		return 0, false
	}
	named := false
	for rest := target; rest != ""; {
		var c string
		c, rest, _ = strings.Cut(rest, "/")
		switch c {
		case "", ".":
		case "..":
			if named {
				return 0, false
			}
			ups++
		default:
			named = true
		}
	}
	return ups, true
}

// checkLink says whether a symbolic link to target may be placed at link.
func (f *FS) checkLink(target, link string) experimentalsys.Errno {
	if _, ok := climb(target); !ok {
		return experimentalsys.EPERM
	}
	dir, errno := f.realDir(link)
	if errno != 0 {
		return errno
	}
	if _, errno := f.resolve(dir, target, true); errno != 0 {
		return errno
	}
	return 0
}

// realDir is the real path (components from the root, no links, no "..") of the
// directory that holds name's last component.
func (f *FS) realDir(name string) ([]string, experimentalsys.Errno) {
	dir, _ := splitParent(name)
	return f.resolve(nil, dir, false)
}

// resolve walks p from the real directory dir the way the kernel would, following
// links, and returns the real path it reaches. Leaving the root is EPERM. With
// partial, a missing component ends the walk without error; otherwise it is ENOENT.
func (f *FS) resolve(dir []string, p string, partial bool) ([]string, experimentalsys.Errno) {
	real := append([]string(nil), dir...)
	parts := splitPath(p)
	hops, steps := 0, 0
	for len(parts) > 0 {
		if steps++; steps > maxResolveSteps {
			return nil, experimentalsys.ENAMETOOLONG
		}
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(real) == 0 {
				return nil, experimentalsys.EPERM
			}
			real = real[:len(real)-1]
			continue
		}
		here := path.Join(append(real, c)...)
		fi, err := f.root.Lstat(here)
		if err != nil {
			errno := toErrno(err)
			if partial && (errno == experimentalsys.ENOENT || errno == experimentalsys.ENOTDIR) {
				return real, 0 // nothing there to follow (yet)
			}
			return nil, errno
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxLinkHops {
				return nil, experimentalsys.ELOOP
			}
			target, err := f.root.Readlink(here)
			if err != nil {
				return nil, toErrno(err)
			}
			if strings.HasPrefix(target, "/") {
				return nil, experimentalsys.EPERM
			}
			parts = append(splitPath(target), parts...)
		case fi.IsDir():
			real = append(real, c)
		default:
			if len(parts) > 0 {
				if partial {
					return real, 0 // a file cannot be walked through
				}
				return nil, experimentalsys.ENOTDIR
			}
			real = append(real, c)
		}
	}
	return real, 0
}

func splitPath(p string) []string {
	if p == "" || p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

// checkDirMove refuses moving the directory from up the tree when a link inside it
// would then climb out of the root (rule 4).
func (f *FS) checkDirMove(from, to string) experimentalsys.Errno {
	oldDir, errno := f.realDir(from)
	if errno != 0 {
		return errno
	}
	newDir, errno := f.realDir(to)
	if errno != 0 {
		return errno
	}
	if len(newDir) >= len(oldDir) {
		return 0 // as deep or deeper: every leading ".." still lands inside
	}
	// An entry k directories below the moved one sits at depth len(newDir)+1+k.
	type pending struct {
		name  string
		depth int
	}
	stack := []pending{{from, len(newDir) + 1}}
	seen := 0
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		entries, errno := f.readDir(d.name, maxMoveScan-seen)
		if errno != 0 {
			return errno
		}
		for _, e := range entries {
			if seen++; seen > maxMoveScan {
				return experimentalsys.EPERM
			}
			name := d.name + "/" + e.Name()
			switch {
			case e.Type()&fs.ModeSymlink != 0:
				target, err := f.root.Readlink(name)
				if err != nil {
					return toErrno(err)
				}
				if ups, ok := climb(target); !ok || ups > d.depth {
					return experimentalsys.EPERM
				}
			case e.IsDir():
				stack = append(stack, pending{name, d.depth + 1})
			}
		}
	}
	return 0
}

// readDir lists up to n+1 entries of the directory name (one more than the budget,
// so that going over it shows).
func (f *FS) readDir(name string, n int) ([]fs.DirEntry, experimentalsys.Errno) {
	d, err := f.root.OpenFile(name, os.O_RDONLY|dirFlag, 0)
	if err != nil {
		return nil, toErrno(err)
	}
	defer d.Close()
	entries, err := d.ReadDir(n + 1)
	if err != nil && err != io.EOF {
		return nil, toErrno(err)
	}
	return entries, 0
}
