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
 *  - The walk is deterministic: depth first, each directory's entries in
 *    byte order of their names (all of them read and sorted before the
 *    first is looked at), so when a cap stops collection, what is kept and
 *    what is listed as skipped depends on the tree only, never on the
 *    order the code created its files in.  The names held at once are
 *    bounded (SC_NAMES_MAX, SC_NAME_BYTES_MAX): a directory with more is
 *    skipped whole, which is deterministic too.
 *  - On the host, only single components are ever opened relative to the
 *    destination directory fd, and nothing that exists there is replaced,
 *    written through or merged into: a name already taken on the host is
 *    skipped ("exists").  The caller hands us a new or empty directory
 *    (run.c), so that only happens when something else writes into it
 *    while the run goes on.
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
/* Names of the open directories held at once (count and bytes): at most
 * the scratch space's inodes (every name costs one there, a hard link
 * too, so no real tree has more), and never more than these, whatever
 * disk_inodes a request asked for. */
#define SC_NAMES_MAX (1u << 17)
#define SC_NAME_BYTES_MAX (16u << 20)

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
#define R_EXISTS "exists"
#define R_TOO_MANY "too many entries"
#define R_WRITE "write failed"

/* One open directory of the walk, with its entries' names, sorted. */
struct frame {
	DIR *dir;	/* source stream; owns the source fd */
	int dst;	/* host directory fd, or -1 when only hashing */
	size_t plen;	/* length of this directory's relative path */
	uint64_t depth; /* 0 for the root; its entries are at depth + 1 */
	char **names;	/* malloc'd, each malloc'd */
	size_t n_names, next;
	size_t name_bytes; /* charged to the walk's budget */
};

struct walk {
	const struct sandcell_limits *lim;
	struct sc_collect *out;
	struct sandcell_error *err;
	struct frame *stack;
	size_t n_stack, cap_stack;
	size_t cap_files;
	uint64_t max_depth;
	/* Bytes read for files that were then dropped for the byte cap.
	 * Bounded too, so a writer that keeps growing files under us cannot
	 * make the host read without end. */
	uint64_t wasted;
	/* Names held by the frames on the stack, and how many may be. */
	size_t names_held, name_bytes_held, names_max;
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

/* Records a skipped entry.  The path is escaped because it may hold any
 * byte the sandbox chose.  The records' array holds SC_SKIPS_MAX, made
 * once by sc_collect_tree. */
static int skip(struct walk *w, size_t len, const char *reason, bool is_limit)
{
	struct sc_collect *o = w->out;
	char *shown;

	if (is_limit)
		o->limit_hit = true;
	o->n_skipped_total++;
	if (o->n_skips >= SC_SKIPS_MAX) {
		/* The report is incomplete from here on; say so. */
		o->limit_hit = true;
		return 0;
	}
	shown = sc_escape_bytes(w->path, len, NULL);
	if (shown == NULL)
		return oom(w);
	o->skips[o->n_skips].path = shown;
	o->skips[o->n_skips].reason = reason;
	o->n_skips++;
	return 0;
}

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

/* Creates the host copy of a file as a fresh inode, at a name nothing
 * holds: O_EXCL with O_NOFOLLOW fails on anything already there (a file,
 * a directory, a symlink even dangling, a FIFO), which is then left as it
 * is and the entry skipped ("exists").  So no host file is replaced,
 * truncated or written through.  Returns the fd, or -1 with *reason set
 * (NULL for a fatal error). */
static int host_create(struct walk *w, int dfd, const char *name, const char **reason)
{
	/* O_NONBLOCK and O_NOCTTY: nothing here can be a FIFO or a terminal
	 * we open (O_EXCL creates), but cost nothing. */
	int fd = openat(dfd, name,
			O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
			0644);

	if (fd < 0) {
		if (fatal_errno(errno)) {
			sc_err(w->err, errno, "creating an output file");
			*reason = NULL;
			return -1;
		}
		*reason = (errno == EEXIST || errno == ELOOP) ? R_EXISTS : R_WRITE;
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

/* Creates the host directory for a source directory.  A name already
 * taken on the host (even by a directory) is not merged into: the entry is
 * skipped ("exists").  The directory is opened O_NOFOLLOW|O_DIRECTORY, so
 * should it have been swapped for a symlink since mkdirat, nothing is
 * entered.  Returns the fd, or -1 with *reason set (NULL for a fatal
 * error). */
static int host_mkdir(struct walk *w, int dfd, const char *name, const char **reason)
{
	int fd;

	if (mkdirat(dfd, name, 0755) < 0) {
		*reason = errno == EEXIST ? R_EXISTS : R_WRITE;
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (fatal_errno(errno)) {
			sc_err(w->err, errno, "opening an output directory");
			*reason = NULL;
			return -1;
		}
		*reason = R_EXISTS;
		return -1;
	}
	/* The mode is fixed, whatever the umask said. */
	if (fchmod(fd, 0755) < 0) {
		close(fd);
		*reason = R_WRITE;
		return -1;
	}
	return fd;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(struct walk *w, char **names, size_t n, size_t bytes)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	w->names_held -= n;
	w->name_bytes_held -= bytes;
}

/* Reads every entry name of dir and sorts them.  Returns 0; 1 when the
 * directory holds more names than the walk may hold (nothing is kept); -1
 * without memory.  A read error keeps the names read so far and records
 * the directory as unreadable (the record's path is w->path[0..plen]). */
static int load_names(struct walk *w, DIR *dir, size_t plen, char ***names_out, size_t *n_out,
		      size_t *bytes_out)
{
	char **names = NULL;
	size_t n = 0, cap = 0, bytes = 0;
	struct dirent *de;

	*names_out = NULL;
	*n_out = *bytes_out = 0;
	for (;;) {
		char *copy;
		size_t len;

		errno = 0;
		de = readdir(dir);
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		len = strlen(de->d_name) + 1;
		if (w->names_held >= w->names_max || len > SC_NAME_BYTES_MAX - w->name_bytes_held) {
			free_names(w, names, n, bytes);
			return 1;
		}
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			char **p = realloc(names, ncap * sizeof(*p));

			if (p == NULL) {
				free_names(w, names, n, bytes);
				return oom(w);
			}
			names = p;
			cap = ncap;
		}
		copy = strdup(de->d_name);
		if (copy == NULL) {
			free_names(w, names, n, bytes);
			return oom(w);
		}
		names[n++] = copy;
		bytes += len;
		w->names_held++;
		w->name_bytes_held += len;
	}
	if (errno != 0) {
		/* The rest of this directory is lost; say so. */
		size_t shown = plen;

		if (shown == 0) {
			w->path[0] = '.';
			shown = 1;
		}
		if (skip(w, shown, R_UNREADABLE, false) < 0) {
			free_names(w, names, n, bytes);
			return -1;
		}
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	*names_out = names;
	*n_out = n;
	*bytes_out = bytes;
	return 0;
}

static int push(struct walk *w, DIR *dir, int dst, size_t plen, uint64_t depth, char **names,
		size_t n_names, size_t name_bytes)
{
	if (w->n_stack == w->cap_stack) {
		size_t ncap = w->cap_stack ? w->cap_stack * 2 : 16;
		struct frame *p = realloc(w->stack, ncap * sizeof(*p));

		if (p == NULL)
			return -1;
		w->stack = p;
		w->cap_stack = ncap;
	}
	w->stack[w->n_stack++] = (struct frame){ dir, dst, plen, depth, names, n_names, 0, name_bytes };
	return 0;
}

static void pop(struct walk *w)
{
	struct frame *f = &w->stack[--w->n_stack];

	closedir(f->dir);
	if (f->dst >= 0)
		close(f->dst);
	free_names(w, f->names, f->n_names, f->name_bytes);
}

/* Mirrors a verified source directory on the host and pushes it, so the
 * walk continues inside it (iteratively: no recursion).  Its names are
 * read first: a directory with too many is skipped before anything is
 * made for it on the host. */
static int enter_dir(struct walk *w, int fd, int pdst, const char *name, size_t plen,
		     uint64_t depth)
{
	const char *reason = NULL;
	char **names;
	size_t n_names, name_bytes;
	int dst = -1, rc;
	DIR *dir;

	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return oom(w);
	}
	rc = load_names(w, dir, plen, &names, &n_names, &name_bytes);
	if (rc != 0) {
		closedir(dir);
		return rc < 0 ? -1 : skip(w, plen, R_TOO_MANY, true);
	}
	if (pdst >= 0) {
		dst = host_mkdir(w, pdst, name, &reason);
		if (dst < 0) {
			closedir(dir);
			free_names(w, names, n_names, name_bytes);
			return reason == NULL ? -1 : skip(w, plen, reason, false);
		}
	}
	if (push(w, dir, dst, plen, depth, names, n_names, name_bytes) < 0) {
		closedir(dir);
		free_names(w, names, n_names, name_bytes);
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

		if (f->next == f->n_names) {
			pop(w);
			continue;
		}
		/* entry() may push a frame (moving the stack): index first. */
		if (entry(w, f->names[f->next++]) < 0)
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
	/* Every skip record there may be, up front: grown in skip(), the
	 * array would be one more thing gcc's analyzer loses track of. */
	out->skips = calloc(SC_SKIPS_MAX, sizeof(*out->skips));
	w = calloc(1, sizeof(*w));
	if (out->skips == NULL || w == NULL || (w->buf = malloc(SC_COPY_BUF)) == NULL) {
		free(w);
		closedir(dir);
		sc_collect_free(out);
		return sc_err(err, ENOMEM, "collecting outputs");
	}
	w->lim = lim;
	w->out = out;
	w->err = err;
	w->max_depth = lim->output_depth < SC_DEPTH_CEILING ? lim->output_depth : SC_DEPTH_CEILING;
	w->names_max = lim->disk_inodes > 0 && lim->disk_inodes < SC_NAMES_MAX ? (size_t)lim->disk_inodes
									       : SC_NAMES_MAX;
	{
		char **names = NULL;
		size_t n_names = 0, name_bytes = 0;

		rc = load_names(w, dir, 0, &names, &n_names, &name_bytes);
		if (rc == 1) {
			/* More names than may be held: nothing is collected. */
			w->path[0] = '.';
			rc = skip(w, 1, R_TOO_MANY, true);
		}
		if (rc < 0 || push(w, dir, -1, 0, 0, names, n_names, name_bytes) < 0) {
			free_names(w, names, n_names, name_bytes);
			closedir(dir);
			free(w->buf);
			free(w);
			sc_collect_free(out);
			return rc < 0 ? -1 : sc_err(err, ENOMEM, "collecting outputs");
		}
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

int sc_collect_merge(struct sc_collect *dst, struct sc_collect *src)
{
	size_t n = dst->n_files + src->n_files;
	struct sc_out_file *f;

	if (dst->skips == NULL && (dst->skips = calloc(SC_SKIPS_MAX, sizeof(*dst->skips))) == NULL)
		return -1;
	f = reallocarray(dst->files, n + 1, sizeof(*f));
	if (f == NULL)
		return -1;
	dst->files = f;
	for (size_t i = 0; i < src->n_files; i++) {
		dst->files[dst->n_files + i] = src->files[i];
		src->files[i].path = NULL; /* moved */
	}
	dst->n_files = n;
	for (size_t i = 0; i < src->n_skips && dst->n_skips < SC_SKIPS_MAX; i++) {
		dst->skips[dst->n_skips++] = src->skips[i];
		src->skips[i].path = NULL;
	}
	dst->n_skipped_total += src->n_skipped_total > src->n_skips ? src->n_skipped_total
								      : src->n_skips;
	dst->bytes += src->bytes;
	dst->limit_hit |= src->limit_hit;
	return 0;
}
