// A hostile WASI command that tries every way out of its directory mounts it can
// find, written from WASI preview 1 (wasi/api.h) and POSIX alone. It runs as a CGI
// command (wasmsrv run --dir ..., or mode = "cgi" in a site) and prints one line per
// attempt: "<name> ok", "<name> ok:<first line read>" or "<name> err:<ERRNO>".
//
// It expects two mounts laid out by the tests (runtime/mounts_test.go, mountTree):
//
//   /data (writable)   file.txt "inside", sub/, and links planted by the host:
//                      pre_rel -> ../outside, pre_abs -> $OUTSIDE,
//                      pre_file -> ../outside/canary.txt, pre_in -> file.txt,
//                      pre_dangle -> ../outside/created.txt (nothing there),
//                      sub/pre_up -> ../../outside/canary.txt, sub/pre_ok -> ../file.txt
//   /ro (read-only)    file.txt "ro-inside", sub/, pre_rel, pre_abs, pre_in as above
//
// and the environment variable OUTSIDE, the host path of the directory holding the
// canary file. QUERY_STRING "race=N" instead reads /data/swap/canary.txt N times
// while the host swaps that directory for a link out, and prints the counts.
//
// Rebuild: bash sdk/c/build.sh (CI checks the committed main.wasm matches).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wasi/api.h>

static const char *ename(int e) {
	static char buf[16];
	switch (e) {
	case EPERM: return "EPERM";
	case EACCES: return "EACCES";
	case ENOENT: return "ENOENT";
	case EROFS: return "EROFS";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case ELOOP: return "ELOOP";
	case EEXIST: return "EEXIST";
	case EBADF: return "EBADF";
	case EINVAL: return "EINVAL";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ENOSYS: return "ENOSYS";
	case ENOTCAPABLE: return "ENOTCAPABLE";
	case EXDEV: return "EXDEV";
	case EIO: return "EIO";
	}
	snprintf(buf, sizeof buf, "E%d", e);
	return buf;
}

// result prints the outcome of a call that returns 0 or -1 with errno.
static void result(const char *name, int rc) {
	if (rc == 0) {
		printf("%s ok\n", name);
	} else {
		printf("%s err:%s\n", name, ename(errno));
	}
}

// wresult prints the outcome of a raw WASI call.
static void wresult(const char *name, __wasi_errno_t e) {
	if (e == 0) {
		printf("%s ok\n", name);
	} else {
		printf("%s err:%s\n", name, ename(e));
	}
}

// show prints the first line of what fd holds and closes it.
static void show(const char *name, int fd) {
	char buf[256];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n < 0) {
		printf("%s err:%s\n", name, ename(errno));
		return;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	printf("%s ok:%s\n", name, buf);
}

static void readf(const char *name, const char *path) {
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("%s err:%s\n", name, ename(errno));
		return;
	}
	show(name, fd);
}

// preopen returns the descriptor of the preopened directory called name.
static int preopen(const char *name) {
	for (__wasi_fd_t fd = 3; fd < 64; fd++) {
		__wasi_prestat_t ps;
		if (__wasi_fd_prestat_get(fd, &ps) != 0) {
			break;
		}
		char buf[64];
		size_t n = ps.u.dir.pr_name_len;
		if (n >= sizeof buf || __wasi_fd_prestat_dir_name(fd, (uint8_t *)buf, n) != 0) {
			continue;
		}
		buf[n] = 0;
		if (strcmp(buf, name) == 0) {
			return (int)fd;
		}
	}
	printf("no preopen %s\n", name);
	exit(1);
}

// rawopen is path_open with the given flags, reading the file when it opens.
static void rawopen(const char *name, int dir, const char *path, __wasi_lookupflags_t lookup,
                    __wasi_oflags_t oflags, __wasi_rights_t rights) {
	__wasi_fd_t fd;
	__wasi_errno_t e = __wasi_path_open((__wasi_fd_t)dir, lookup, path, oflags, rights, 0, 0, &fd);
	if (e != 0) {
		printf("%s err:%s\n", name, ename(e));
		return;
	}
	if (oflags & __WASI_OFLAGS_DIRECTORY) {
		close((int)fd);
		printf("%s ok\n", name);
		return;
	}
	show(name, (int)fd);
}

static void writef(const char *path, const char *s) {
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd >= 0) {
		write(fd, s, strlen(s));
		close(fd);
	}
}

static void listdir(const char *name, const char *path) {
	DIR *d = opendir(path);
	if (d == NULL) {
		printf("%s err:%s\n", name, ename(errno));
		return;
	}
	printf("%s ok:", name);
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		printf("%s,", e->d_name);
	}
	printf("\n");
	closedir(d);
}

static void race(int n) {
	int inside = 0, canary = 0, errors = 0;
	for (int i = 0; i < n; i++) {
		int fd = open("/data/swap/canary.txt", O_RDONLY);
		if (fd < 0) {
			errors++;
			continue;
		}
		char buf[64] = {0};
		ssize_t got = read(fd, buf, sizeof buf - 1);
		close(fd);
		if (got > 0 && strncmp(buf, "INSIDE", 6) == 0) {
			inside++;
		} else if (got > 0 && strstr(buf, "CANARY") != NULL) {
			canary++;
		} else {
			errors++;
		}
	}
	printf("race inside=%d canary=%d errors=%d\n", inside, canary, errors);
}

int main(void) {
	const char *q = getenv("QUERY_STRING");
	printf("Content-Type: text/plain\n\n");
	if (q != NULL && strncmp(q, "race=", 5) == 0) {
		race(atoi(q + 5));
		return 0;
	}
	const char *outside = getenv("OUTSIDE");
	if (outside == NULL) {
		printf("OUTSIDE is not set\n");
		return 1;
	}
	int data = preopen("/data"), ro = preopen("/ro");
	const __wasi_rights_t rd = __WASI_RIGHTS_FD_READ, wr = __WASI_RIGHTS_FD_WRITE;
	const __wasi_lookupflags_t follow = __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW;

	// Reading through links the host planted.
	readf("read-pre-rel", "/data/pre_rel/canary.txt");
	readf("read-pre-abs", "/data/pre_abs/canary.txt");
	readf("read-pre-file", "/data/pre_file");
	readf("read-sub-pre-up", "/data/sub/pre_up");
	struct stat st;
	result("stat-pre-rel", stat("/data/pre_rel/canary.txt", &st));
	listdir("list-pre-rel", "/data/pre_rel");
	int dfd = open("/data/pre_rel", O_RDONLY | O_DIRECTORY);
	if (dfd < 0) {
		printf("dirfd-pre-rel err:%s\n", ename(errno));
	} else {
		int fd = openat(dfd, "canary.txt", O_RDONLY);
		if (fd < 0) {
			printf("dirfd-pre-rel err:%s\n", ename(errno));
		} else {
			show("dirfd-pre-rel", fd);
		}
		close(dfd);
	}
	char target[128];
	ssize_t tn = readlink("/data/pre_rel", target, sizeof target - 1);
	if (tn < 0) {
		printf("readlink-pre-rel err:%s\n", ename(errno));
	} else {
		target[tn] = 0;
		printf("readlink-pre-rel ok:%s\n", target);
	}
	readf("read-pre-in", "/data/pre_in");
	readf("read-sub-pre-ok", "/data/sub/pre_ok");

	// ".." and absolute paths straight to path_open.
	rawopen("raw-dotdot", data, "../outside/canary.txt", follow, 0, rd);
	rawopen("raw-sub-dotdot", data, "sub/../../outside/canary.txt", follow, 0, rd);
	rawopen("raw-abs", data, "/etc/passwd", follow, 0, rd);
	rawopen("raw-dotdot-dir", data, "..", follow, __WASI_OFLAGS_DIRECTORY, rd);
	__wasi_fd_t sub;
	if (__wasi_path_open((__wasi_fd_t)data, follow, "sub", __WASI_OFLAGS_DIRECTORY, rd, 0, 0, &sub) != 0) {
		printf("no sub\n");
		return 1;
	}
	rawopen("raw-dirfd-dotdot", (int)sub, "../../outside/canary.txt", follow, 0, rd);
	rawopen("raw-nofollow-link", data, "pre_in", 0, 0, rd);
	rawopen("raw-nofollow-file", data, "file.txt", 0, 0, rd);
	readf("libc-dotdot", "/data/../outside/canary.txt");

	// Writing outside through links and "..".
	int fd = open("/data/pre_rel/new.txt", O_CREAT | O_WRONLY, 0644);
	result("create-via-link", fd < 0 ? -1 : 0);
	rawopen("raw-create-dotdot", data, "../outside/new2.txt", follow, __WASI_OFLAGS_CREAT, wr);
	fd = open("/data/pre_dangle", O_CREAT | O_WRONLY, 0644);
	result("create-via-dangling-link", fd < 0 ? -1 : 0);
	result("mkdir-via-link", mkdir("/data/pre_rel/newdir", 0755));
	fd = open("/data/pre_file", O_WRONLY | O_TRUNC);
	result("trunc-via-link", fd < 0 ? -1 : 0);
	fd = open("/data/pre_abs/canary.txt", O_WRONLY | O_APPEND);
	result("append-via-link", fd < 0 ? -1 : 0);
	result("unlink-via-link", unlink("/data/pre_rel/canary.txt"));
	struct timespec ts[2] = {{1, 0}, {1, 0}};
	result("utimes-via-link", utimensat(AT_FDCWD, "/data/pre_file", ts, 0));

	// Making links out.
	result("symlink-etc", symlink("../../../../etc", "/data/g_etc"));
	readf("read-g-etc", "/data/g_etc/passwd");
	result("symlink-abs", symlink(outside, "/data/g_abs"));
	result("symlink-abs-etc", symlink("/etc", "/data/g_abs2"));
	result("symlink-rel", symlink("../outside", "/data/g_rel"));
	readf("read-g-rel", "/data/g_rel/canary.txt");
	result("symlink-mid", symlink("sub/../../outside", "/data/g_mid"));
	result("symlink-sub-up", symlink("../../outside", "/data/sub/g_up"));
	result("symlink-chain", symlink("pre_rel/canary.txt", "/data/g_chain"));
	result("symlink-dot", symlink(".", "/data/g_dot"));
	result("symlink-dot-dotdot", symlink("g_dot/..", "/data/g_dd"));
	wresult("raw-symlink-dotdot", __wasi_path_symlink("../outside", (__wasi_fd_t)data, "g_raw"));
	result("symlink-in", symlink("file.txt", "/data/g_in"));
	readf("read-g-in", "/data/g_in");
	result("symlink-sub-in", symlink("../file.txt", "/data/sub/g_in"));
	readf("read-sub-g-in", "/data/sub/g_in");

	// Hard links.
	result("link-escaping-link", link("/data/pre_file", "/data/h_pre"));
	result("link-moves-link-up", link("/data/sub/g_in", "/data/h_up"));
	result("link-outside-file", link("/data/pre_rel/canary.txt", "/data/h_canary"));
	result("link-file", link("/data/file.txt", "/data/sub/h_file"));

	// Renames into and out of the mount, and moves that would turn links outward.
	writef("/data/mine.txt", "mine");
	result("rename-out", rename("/data/mine.txt", "/data/pre_rel/stolen.txt"));
	result("rename-in", rename("/data/pre_rel/canary.txt", "/data/stolen.txt"));
	result("rename-link-up", rename("/data/sub/g_in", "/data/g_moved"));
	result("rename-escaping-link", rename("/data/pre_rel", "/data/pre_rel2"));
	// One level down, "../outside" names /data/outside: inside, so allowed.
	result("rename-link-down", rename("/data/pre_rel", "/data/sub/pre_rel2"));
	readf("read-link-down", "/data/sub/pre_rel2/canary.txt");
	mkdir("/data/a", 0755);
	mkdir("/data/a/b", 0755);
	result("symlink-deep", symlink("../../file.txt", "/data/a/b/l"));
	readf("read-deep", "/data/a/b/l");
	result("rename-dir-up", rename("/data/a/b", "/data/b"));
	readf("read-b-l", "/data/b/l");
	result("rename-dir-down", rename("/data/a", "/data/sub/a"));
	mkdir("/data/c", 0755);
	result("rename-dir-same", rename("/data/sub/a", "/data/c/a"));
	readf("read-deep-moved", "/data/c/a/b/l");

	// The read-only mount.
	readf("ro-read", "/ro/file.txt");
	readf("ro-read-pre-rel", "/ro/pre_rel/canary.txt");
	readf("ro-read-pre-abs", "/ro/pre_abs/canary.txt");
	readf("ro-read-pre-in", "/ro/pre_in");
	fd = open("/ro/new.txt", O_CREAT | O_WRONLY, 0644);
	result("ro-create", fd < 0 ? -1 : 0);
	rawopen("ro-raw-create", ro, "new2.txt", follow, __WASI_OFLAGS_CREAT, rd);
	rawopen("ro-raw-trunc", ro, "file.txt", follow, __WASI_OFLAGS_TRUNC, rd);
	rawopen("ro-raw-excl", ro, "file.txt", follow, __WASI_OFLAGS_CREAT | __WASI_OFLAGS_EXCL, rd);
	result("ro-mkdir", mkdir("/ro/d", 0755));
	result("ro-unlink", unlink("/ro/file.txt"));
	result("ro-rmdir", rmdir("/ro/sub"));
	result("ro-rename", rename("/ro/file.txt", "/ro/moved.txt"));
	result("ro-symlink", symlink("file.txt", "/ro/l"));
	result("ro-link", link("/ro/file.txt", "/ro/h"));
	result("ro-utimes", utimensat(AT_FDCWD, "/ro/file.txt", ts, 0));
	fd = open("/ro/file.txt", O_RDONLY);
	result("ro-futimes", futimens(fd, ts));
	result("ro-ftruncate", ftruncate(fd, 0));
	result("ro-write", write(fd, "x", 1) == 1 ? 0 : -1);
	result("ro-setappend", fcntl(fd, F_SETFL, O_APPEND));
	close(fd);
	readf("ro-read-after", "/ro/file.txt");
	printf("done\n");
	return 0;
}
