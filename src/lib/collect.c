/* Copies what the sandboxed code left under /output to the host.
 *
 * Everything below src_dirfd was written by untrusted code, possibly while
 * we walk it, so this file treats the tree as hostile:
 *
 *  - No symlink is ever followed.  Every entry is opened as one component
 *    relative to its parent's fd with openat2(RESOLVE_BENEATH |
 *    RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), so even
 *    a name swapped for a symlink after we looked at it cannot lead us out.
 *  - Entries are classified with fstatat(AT_SYMLINK_NOFOLLOW) before they
 *    are opened: symlinks, FIFOs, sockets and devices are never opened (a
 *    FIFO open would block, a device open can have side effects).  After
 *    opening, fstat must show the same inode and type, otherwise the entry
 *    was swapped in between and is skipped.
 *  - Caps count what is actually read, never st_size (which the writer
 *    controls and which says nothing about a file that still grows);
 *    st_size only ever lets us skip a file early, never admit one.
 *  - The walk is iterative with a bounded stack of open directories, so a
 *    deep tree costs neither C stack nor unbounded fds.
 *  - On the host, only single components are ever opened relative to the
 *    destination directory fd, and nothing is written through an existing
 *    symlink, FIFO, device or hard link.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SC_NAME_MAX 255
#define SC_PATH_MAX 1024
/* Skip records kept; beyond this we only count (limit_hit says so), so a
 * tree of a million FIFOs cannot make the report a million lines long. */
#define SC_SKIPS_MAX 1000
/* Hard ceiling on directory nesting, whatever output_depth says: each open
 * level holds two fds (source and host), and the 1024-byte path cap alone
 * would still allow 512 levels, i.e. more fds than a default RLIMIT_NOFILE. */
#define SC_DEPTH_CEILING 128
#define SC_COPY_BUF 65536

/* The fixed skip reasons; reports show them verbatim. */
#define R_SYMLINK "symlink"
#define R_FIFO "fifo"
#define R_SOCKET "socket"
#define R_DEVICE "device"
#define R_NAME "unsafe name"
#define R_FILES "file limit"
#define R_BYTES "byte limit"
#define R_DEPTH "depth limit"
#define R_PATH "path too long"
#define R_UNREADABLE "unreadable"
#define R_CHANGED "changed during collection"
#define R_CONFLICT "host path conflict"
#define R_WRITE "write failed"

/* One open directory of the walk. */
struct frame {
	DIR *dir;	/* source stream; owns the source fd */
	int dst;	/* host directory fd, or -1 when only hashing */
	size_t plen;	/* length of this directory's relative path */
	uint64_t depth; /* 0 for the root; its entries are at depth + 1 */
};

struct walk {
	const struct sandcell_limits *lim;
	struct sc_collect *out;
	struct sandcell_error *err;
	struct frame *stack;
	size_t n_stack, cap_stack;
	size_t cap_files, cap_skips;
	uint64_t max_depth;
	/* Bytes read for files that were then dropped for the byte cap.
	 * Bounded too, so a writer that keeps growing files under us cannot
	 * make the host read without end. */
	uint64_t wasted;
	/* Relative path of the current entry: a parent path that passed the
	 * cap, '/', and a name of at most SC_NAME_MAX bytes. */
	char path[SC_PATH_MAX + 1 + SC_NAME_MAX + 1];
	unsigned char *buf;
};

static int sys_openat2(int dirfd, const char *name, uint64_t flags)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = flags;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
		      RESOLVE_NO_XDEV;
	if (sc_hook_on(SC_HOOK_MUT_COLLECT_FOLLOWS)) {
		/* Mutant (test builds): a collector that follows symlinks. */
		how.resolve = 0;
		how.flags &= ~(uint64_t)O_NOFOLLOW;
	}
	return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
}

/* Out of fds or memory: collection as a whole cannot continue, and
 * silently skipping would under-report what the code left behind. */
static bool fatal_errno(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOMEM;
}

/* Names are shown to humans and put into JSON, so they must be valid
 * UTF-8 without anything a terminal or editor interprets: C0/C1 controls,
 * DEL, and the bidi overrides/isolates of "Trojan Source" (the same set
 * sc_escape_bytes escapes). */
static bool name_ok(const char *name, size_t n)
{
	const unsigned char *s = (const unsigned char *)name;

	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	for (size_t i = 0; i < n;) {
		uint32_t cp, min;
		size_t len;

		if (s[i] < 0x80) {
			len = 1, cp = s[i], min = 0;
		} else if (s[i] >= 0xc2 && s[i] <= 0xdf) {
			len = 2, cp = s[i] & 0x1f, min = 0x80;
		} else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			len = 3, cp = s[i] & 0x0f, min = 0x800;
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			len = 4, cp = s[i] & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms and surrogates would let two byte strings
		 * mean the same name. */
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == '/' ||
		    (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
			return false;
		i += len;
	}
	return true;
}

static int oom(struct walk *w)
{
	return sc_err(w->err, ENOMEM, "collecting outputs");
}

/* gcc 12's -fanalyzer reports the grown skips array as leaked when skip()
 * returns.  It is not: it is stored in the caller's struct sc_collect
 * (through w->out) and sc_collect_free() frees it; the asan-check unit tests
 * and the fuzz_collect harness run this code with the leak checker on.
 * Only this warning, only in this function. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wanalyzer-malloc-leak"
#endif
/* Records a skipped entry.  The path is escaped because it may hold any
 * byte the sandbox chose. */
static int skip(struct walk *w, size_t len, const char *reason, bool is_limit)
{
	struct sc_collect *o = w->out;
	char *shown;

	if (is_limit)
		o->limit_hit = true;
	if (o->n_skips >= SC_SKIPS_MAX) {
		/* The report is incomplete from here on; say so. */
		o->limit_hit = true;
		return 0;
	}
	if (o->n_skips == w->cap_skips) {
		size_t ncap = w->cap_skips ? w->cap_skips * 2 : 16;
		struct sc_out_skip *p;

		if (ncap > SC_SKIPS_MAX)
			ncap = SC_SKIPS_MAX;
		p = realloc(o->skips, ncap * sizeof(*p));
		if (p == NULL)
			return oom(w);
		o->skips = p;
		w->cap_skips = ncap;
	}
	shown = sc_escape_bytes(w->path, len, NULL);
	if (shown == NULL)
		return oom(w);
	o->skips[o->n_skips].path = shown;
	o->skips[o->n_skips].reason = reason;
	o->n_skips++;
	return 0;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

static int add_file(struct walk *w, size_t len, uint64_t size, const char *hex)
{
	struct sc_collect *o = w->out;
	struct sc_out_file *f;

	if (o->n_files == w->cap_files) {
		size_t ncap = w->cap_files ? w->cap_files * 2 : 16;

		f = realloc(o->files, ncap * sizeof(*f));
		if (f == NULL)
			return oom(w);
		o->files = f;
		w->cap_files = ncap;
	}
	f = &o->files[o->n_files];
	f->path = strndup(w->path, len);
	if (f->path == NULL)
		return oom(w);
	f->size = size;
	memcpy(f->sha256, hex, sizeof(f->sha256));
	o->n_files++;
	return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = write(fd, p, n);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Creates the host copy of a file as a fresh inode.  An existing regular
 * file is unlinked rather than truncated, so a host-side hard link (say to a
 * file outside the output directory) is never written through and no old
 * ACL, owner or xattr carries over.  Anything else already at the name is a
 * conflict: we neither follow it nor remove it.  Returns the fd, or -1 with
 * *reason set. */
static int host_create(struct walk *w, int dfd, const char *name, const char **reason)
{
	struct stat st;
	int fd;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISREG(st.st_mode)) {
			*reason = R_CONFLICT;
			return -1;
		}
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) {
			*reason = R_WRITE;
			return -1;
		}
	} else if (errno != ENOENT) {
		*reason = R_WRITE;
		return -1;
	}
	/* O_EXCL: if something appeared at the name since, we do not touch it.
	 * O_NONBLOCK guards against that something being a FIFO anyway. */
	fd = openat(dfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
		    0644);
	if (fd < 0) {
		if (fatal_errno(errno)) {
			sc_err(w->err, errno, "creating an output file");
			*reason = NULL;
			return -1;
		}
		*reason = (errno == EEXIST || errno == ELOOP) ? R_CONFLICT : R_WRITE;
		return -1;
	}
	/* The mode is fixed, whatever the umask or the source said. */
	if (fchmod(fd, 0644) < 0) {
		close(fd);
		unlinkat(dfd, name, 0);
		*reason = R_WRITE;
		return -1;
	}
	return fd;
}

/* Copies (or only hashes) one verified regular file.  Reads at most the
 * remaining byte budget plus one byte: that extra byte is how an oversized
 * file is detected without trusting st_size. */
static int copy_file(struct walk *w, int sfd, const struct stat *st, int dfd, const char *name,
		     size_t plen)
{
	const struct sandcell_limits *lim = w->lim;
	uint64_t remaining = lim->output_bytes - w->out->bytes;
	uint64_t want = remaining == UINT64_MAX ? UINT64_MAX : remaining + 1;
	uint64_t got = 0;
	const char *reason = NULL;
	bool over = false;
	char hex[SHA256_DIGEST_STRING_LENGTH];
	SHA2_CTX ctx;
	int hfd = -1;

	/* A file that already claims to be larger than what is left can be
	 * skipped unread (a sparse 1 TiB file costs nothing).  The reverse is
	 * not trusted: a small st_size does not stop the read below. */
	if (st->st_size < 0 || (uint64_t)st->st_size > remaining)
		return skip(w, plen, R_BYTES, true);
	/* Reads of files dropped for the byte cap are bounded by the cap
	 * itself; past that, nothing more is read. */
	if (w->wasted > lim->output_bytes)
		return skip(w, plen, R_BYTES, true);

	if (dfd >= 0) {
		hfd = host_create(w, dfd, name, &reason);
		if (hfd < 0)
			return reason == NULL ? -1 : skip(w, plen, reason, false);
	}
	SHA256Init(&ctx);
	while (got < want) {
		size_t n = SC_COPY_BUF;
		ssize_t r;

		if (want - got < n)
			n = (size_t)(want - got);
		r = read(sfd, w->buf, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			reason = R_UNREADABLE;
			break;
		}
		if (r == 0)
			break;
		got += (uint64_t)r;
		if (got > remaining) {
			over = true;
			reason = R_BYTES;
			break;
		}
		SHA256Update(&ctx, w->buf, (size_t)r);
		if (hfd >= 0 && write_all(hfd, w->buf, (size_t)r) < 0) {
			reason = R_WRITE;
			break;
		}
	}
	if (hfd >= 0 && close(hfd) < 0 && reason == NULL)
		reason = R_WRITE;
	if (reason != NULL) {
		/* Never leave a partial copy that looks like a real output. */
		if (dfd >= 0)
			unlinkat(dfd, name, 0);
		if (over)
			w->wasted = got > UINT64_MAX - w->wasted ? UINT64_MAX : w->wasted + got;
		return skip(w, plen, reason, over);
	}
	SHA256End(&ctx, hex);
	w->out->bytes += got;
	return add_file(w, plen, got, hex);
}

/* Creates (or reuses) the host directory for a source directory.  An
 * existing name is accepted only if opening it with O_NOFOLLOW|O_DIRECTORY
 * yields a real directory, so a host symlink to elsewhere is never entered.
 * Returns the fd, or -1 with *reason set (NULL for a fatal error). */
static int host_mkdir(struct walk *w, int dfd, const char *name, const char **reason)
{
	bool created = true;
	int fd;

	if (mkdirat(dfd, name, 0755) < 0) {
		if (errno != EEXIST) {
			*reason = R_WRITE;
			return -1;
		}
		created = false;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (fatal_errno(errno)) {
			sc_err(w->err, errno, "opening an output directory");
			*reason = NULL;
			return -1;
		}
		*reason = R_CONFLICT;
		return -1;
	}
	/* Only directories we made get the fixed mode; an existing host
	 * directory belongs to whoever made it. */
	if (created && fchmod(fd, 0755) < 0) {
		close(fd);
		*reason = R_WRITE;
		return -1;
	}
	return fd;
}

static int push(struct walk *w, DIR *dir, int dst, size_t plen, uint64_t depth)
{
	if (w->n_stack == w->cap_stack) {
		size_t ncap = w->cap_stack ? w->cap_stack * 2 : 16;
		struct frame *p = realloc(w->stack, ncap * sizeof(*p));

		if (p == NULL)
			return -1;
		w->stack = p;
		w->cap_stack = ncap;
	}
	w->stack[w->n_stack++] = (struct frame){ dir, dst, plen, depth };
	return 0;
}

static void pop(struct walk *w)
{
	struct frame *f = &w->stack[--w->n_stack];

	closedir(f->dir);
	if (f->dst >= 0)
		close(f->dst);
}

/* Mirrors a verified source directory on the host and pushes it, so the
 * walk continues inside it (iteratively: no recursion). */
static int enter_dir(struct walk *w, int fd, int pdst, const char *name, size_t plen,
		     uint64_t depth)
{
	const char *reason = NULL;
	int dst = -1;
	DIR *dir;

	if (pdst >= 0) {
		dst = host_mkdir(w, pdst, name, &reason);
		if (dst < 0) {
			close(fd);
			return reason == NULL ? -1 : skip(w, plen, reason, false);
		}
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		if (dst >= 0)
			close(dst);
		return oom(w);
	}
	if (push(w, dir, dst, plen, depth) < 0) {
		closedir(dir);
		if (dst >= 0)
			close(dst);
		return oom(w);
	}
	return 0;
}

/* Handles one directory entry of the top frame. */
static int entry(struct walk *w, const char *name)
{
	struct frame f = w->stack[w->n_stack - 1];
	int pfd = dirfd(f.dir);
	size_t nlen = strlen(name), plen;
	uint64_t depth = f.depth + 1;
	struct stat st, st2;
	int fd;

	/* Cannot happen on Linux; refuse rather than overflow w->path (the
	 * record then shows the name cut to the cap). */
	bool too_long = nlen > SC_NAME_MAX;

	if (too_long)
		nlen = SC_NAME_MAX;
	plen = f.plen;
	if (plen > 0)
		w->path[plen++] = '/';
	memcpy(w->path + plen, name, nlen);
	plen += nlen;
	w->path[plen] = '\0';

	if (too_long)
		return skip(w, plen, R_PATH, true);
	if (!name_ok(name, nlen))
		return skip(w, plen, R_NAME, false);
	/* Classify without opening and without following anything. */
	if (fstatat(pfd, name, &st,
		    (sc_hook_on(SC_HOOK_MUT_COLLECT_FOLLOWS) ? 0 : AT_SYMLINK_NOFOLLOW) | AT_NO_AUTOMOUNT) < 0) {
		if (fatal_errno(errno))
			return sc_err(w->err, errno, "collecting outputs");
		return skip(w, plen, errno == ENOENT ? R_CHANGED : R_UNREADABLE, false);
	}
	if (S_ISLNK(st.st_mode))
		return skip(w, plen, R_SYMLINK, false);
	if (S_ISFIFO(st.st_mode))
		return skip(w, plen, R_FIFO, false);
	if (S_ISSOCK(st.st_mode))
		return skip(w, plen, R_SOCKET, false);
	if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
		return skip(w, plen, R_DEVICE, false);
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return skip(w, plen, R_UNREADABLE, false);
	if (depth > w->max_depth)
		return skip(w, plen, R_DEPTH, true);
	if (plen > SC_PATH_MAX)
		return skip(w, plen, R_PATH, true);
	if (S_ISREG(st.st_mode) && w->out->n_files >= w->lim->output_files)
		return skip(w, plen, R_FILES, true);

	/* O_NONBLOCK: should the name have become a FIFO since fstatat, the
	 * open must not wait for a writer.  O_NOCTTY: nor adopt a terminal. */
	fd = sys_openat2(pfd, name,
			 O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
				 (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
	if (fd < 0) {
		int e = errno;

		if (fatal_errno(e))
			return sc_err(w->err, e, "collecting outputs");
		/* ELOOP: it is a symlink now; ENOTDIR: no longer a directory. */
		return skip(w, plen, (e == ENOENT || e == ELOOP || e == ENOTDIR) ? R_CHANGED
										: R_UNREADABLE,
			    false);
	}
	if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino ||
	    (st2.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
		close(fd);
		return skip(w, plen, R_CHANGED, false);
	}

	if (S_ISREG(st2.st_mode)) {
		int rc = copy_file(w, fd, &st2, f.dst, name, plen);

		close(fd);
		return rc;
	}

	return enter_dir(w, fd, f.dst, name, plen, depth);
}

static int walk(struct walk *w)
{
	while (w->n_stack > 0) {
		struct frame *f = &w->stack[w->n_stack - 1];
		struct dirent *de;

		errno = 0;
		de = readdir(f->dir);
		if (de == NULL) {
			if (errno != 0) {
				/* The rest of this directory is lost; say so. */
				size_t plen = f->plen;

				if (plen == 0) {
					w->path[0] = '.';
					plen = 1;
				}
				if (skip(w, plen, R_UNREADABLE, false) < 0)
					return -1;
			}
			pop(w);
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (entry(w, de->d_name) < 0)
			return -1;
	}
	return 0;
}

int sc_collect_tree(int src_dirfd, int dst_dirfd, const struct sandcell_limits *lim,
		    struct sc_collect *out, struct sandcell_error *err)
{
	struct walk *w;
	struct stat st;
	DIR *dir;
	int fd, rc;

	if (out == NULL || lim == NULL)
		return sc_err(err, EINVAL, "collecting outputs: no result or limits");
	memset(out, 0, sizeof(*out));
	if (src_dirfd < 0 || fstat(src_dirfd, &st) < 0 || !S_ISDIR(st.st_mode))
		return sc_err(err, ENOTDIR, "collecting outputs: source is not a directory");
	if (dst_dirfd >= 0 && (fstat(dst_dirfd, &st) < 0 || !S_ISDIR(st.st_mode)))
		return sc_err(err, ENOTDIR, "collecting outputs: destination is not a directory");

	/* A fresh open file description: readdir must not move the caller's
	 * offset, and src_dirfd may be an O_PATH fd. */
	fd = sys_openat2(src_dirfd, ".", O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOSYS)
		return sc_err(err, ENOSYS, "collecting outputs needs openat2 (Linux 5.6 or later)");
	if (fd < 0)
		return sc_err(err, errno, "collecting outputs: opening the output directory");
	dir = fdopendir(fd);
	if (dir == NULL) {
		rc = errno;
		close(fd);
		return sc_err(err, rc, "collecting outputs");
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL || (w->buf = malloc(SC_COPY_BUF)) == NULL) {
		free(w);
		closedir(dir);
		return sc_err(err, ENOMEM, "collecting outputs");
	}
	w->lim = lim;
	w->out = out;
	w->err = err;
	w->max_depth = lim->output_depth < SC_DEPTH_CEILING ? lim->output_depth : SC_DEPTH_CEILING;
	if (push(w, dir, -1, 0, 0) < 0) {
		closedir(dir);
		free(w->buf);
		free(w);
		return sc_err(err, ENOMEM, "collecting outputs");
	}
	/* The root frame gets its own copy of the caller's host fd so that
	 * pop() can close every frame alike. */
	w->stack[0].dst = dst_dirfd < 0 ? -1 : fcntl(dst_dirfd, F_DUPFD_CLOEXEC, 3);
	if (dst_dirfd >= 0 && w->stack[0].dst < 0) {
		rc = sc_err(err, errno, "collecting outputs");
	} else {
		rc = walk(w);
	}
	while (w->n_stack > 0)
		pop(w);
	free(w->stack);
	free(w->buf);
	free(w);
	if (rc < 0)
		sc_collect_free(out);
	return rc;
}

void sc_collect_free(struct sc_collect *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_files; i++)
		free(c->files[i].path);
	for (size_t i = 0; i < c->n_skips; i++)
		free(c->skips[i].path);
	free(c->files);
	free(c->skips);
	memset(c, 0, sizeof(*c));
}
