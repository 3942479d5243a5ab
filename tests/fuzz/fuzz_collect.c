/* Fuzzes collect.c with hostile trees.
 *
 * The input is a small program that builds a tree the way sandboxed code
 * could (plus a few traps planted on the host side), then the collector
 * copies it with small caps and the harness checks what must always hold:
 *
 *  - every host entry it made is a regular file of mode 0644 or a
 *    directory; no symlink, FIFO or socket ever appears on the host;
 *  - files <= output_files, bytes <= output_bytes, depth <= output_depth,
 *    and what the report lists is exactly what is on the host, with the
 *    source's content and sha256;
 *  - nothing outside the destination changed (the victim files that host
 *    symlinks and hard links point at keep their content);
 *  - reported paths are valid UTF-8 without control bytes.
 * Any violation abort()s.
 *
 * Input format: 3 header bytes (file cap, byte cap low/high, depth cap with
 * bit 7 = hash only), then ops: one opcode byte followed by its operands
 * (see run_op).  Names are a length byte (0 = generated name) and that
 * many raw bytes, with '/' and NUL replaced.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 200
#define MAX_STACK 24
#define MAX_PLANTED 16
#define VICTIM_TEXT "victim"

static char base[64];
static int base_fd = -1;
static unsigned name_seq;

struct prog {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct prog *g)
{
	if (g->n == 0)
		return 0;
	g->n--;
	return *g->p++;
}

static uint16_t u16(struct prog *g)
{
	uint16_t lo = u8(g);

	return (uint16_t)(lo | (uint16_t)(u8(g) << 8));
}

static void check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_collect: invariant violated: %s\n", what);
		abort();
	}
}

static void get_name(struct prog *g, char *buf)
{
	size_t len = u8(g) % 16;

	if (len == 0) {
		snprintf(buf, 16, "n%u", name_seq++ % 1000);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		char c = (char)u8(g);

		buf[i] = (c == '/' || c == '\0') ? '_' : c;
	}
	buf[len] = '\0';
	/* No directory can hold such entries, and ops on them would reach
	 * outside the tree (chmod "..", say). */
	if (strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0)
		buf[0] = '_';
}

static void write_file(int dfd, const char *name, size_t len, uint8_t seed)
{
	static uint8_t buf[8192];
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			0644);

	if (fd < 0)
		return;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 7);
	if (write(fd, buf, len) < 0) {
		/* a full disk just means a shorter tree */
	}
	close(fd);
}

struct rm_stack {
	struct rm_ent {
		DIR *d;
		char name[256];
		bool removed; /* this pass deleted something */
	} *e;
	size_t n, cap;
};

static bool rm_push(struct rm_stack *s, int pfd, const char *name)
{
	int fd;

	/* Fuzzed modes may have made the directory unreadable.  Never
	 * through a symlink. */
	fchmodat(pfd, name, 0700, AT_SYMLINK_NOFOLLOW);
	fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 32;
		s->e = realloc(s->e, s->cap * sizeof(*s->e));
		check(s->e != NULL, "cleanup allocation");
	}
	s->e[s->n].d = fdopendir(fd);
	check(s->e[s->n].d != NULL, "cleanup fdopendir");
	snprintf(s->e[s->n].name, sizeof(s->e[s->n].name), "%s", name);
	s->e[s->n].removed = false;
	s->n++;
	return true;
}

/* Removes a tree without recursion and without following symlinks. */
static void rm_tree(int pfd, const char *name)
{
	struct rm_stack s = { NULL, 0, 0 };

	if (!rm_push(&s, pfd, name)) {
		unlinkat(pfd, name, 0);
		return;
	}
	while (s.n > 0) {
		struct rm_ent *e = &s.e[s.n - 1];
		struct dirent *de = readdir(e->d);
		struct stat sb;

		if (de == NULL) {
			/* Deleting while reading may hide entries on some file
			 * systems: read again until a pass deletes nothing. */
			if (e->removed) {
				e->removed = false;
				rewinddir(e->d);
				continue;
			}
			closedir(e->d);
			s.n--;
			check(unlinkat(s.n ? dirfd(s.e[s.n - 1].d) : pfd, s.e[s.n].name,
				       AT_REMOVEDIR) == 0,
			      "cleanup rmdir");
			if (s.n > 0)
				s.e[s.n - 1].removed = true;
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd(e->d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(sb.st_mode)) {
			check(rm_push(&s, dirfd(e->d), de->d_name), "cleanup open");
			continue;
		}
		check(unlinkat(dirfd(e->d), de->d_name, 0) == 0, "cleanup unlink");
		e->removed = true;
	}
	free(s.e);
}

static void remove_base(void)
{
	if (base[0] != '\0')
		rmdir(base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* tmpfs, like the sandbox's /output, and far faster than a disk for
	 * the thousands of tiny trees a run builds; /tmp if there is none. */
	snprintf(base, sizeof(base), "/dev/shm/sc_fuzz_collect.XXXXXX");
	if (mkdtemp(base) == NULL) {
		snprintf(base, sizeof(base), "/tmp/sc_fuzz_collect.XXXXXX");
		check(mkdtemp(base) != NULL, "mkdtemp");
	}
	base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	check(base_fd >= 0, "open base");
	atexit(remove_base);
	return 0;
}

struct ctx {
	int stack[MAX_STACK];
	size_t depth;
	int dst, victim;
	char last[16];
	char planted[MAX_PLANTED][16];
	size_t n_planted;
};

static void run_op(struct ctx *c, struct prog *g)
{
	int cur = c->stack[c->depth - 1];
	char name[16], path[128];
	uint8_t op = u8(g) % 13;

	switch (op) {
	case 0: /* mkdir NAME, flag: enter it */
		get_name(g, name);
		if (mkdirat(cur, name, 0755) == 0 && (u8(g) & 1) && c->depth < MAX_STACK) {
			int fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (fd >= 0)
				c->stack[c->depth++] = fd;
		}
		break;
	case 1: /* leave the current directory */
		if (c->depth > 1)
			close(c->stack[--c->depth]);
		break;
	case 2: { /* write NAME with u16 % 8192 bytes */
		size_t len;

		get_name(g, name);
		len = u16(g) % 8192;
		write_file(cur, name, len, u8(g));
		memcpy(c->last, name, sizeof(name));
		break;
	}
	case 3: { /* sparse NAME of 2^k bytes (up to 1 TiB) */
		int fd;

		get_name(g, name);
		fd = openat(cur, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
		if (fd >= 0) {
			if (ftruncate(fd, (off_t)1 << (u8(g) % 41)) < 0) {
				/* too large for this file system */
			}
			close(fd);
		}
		break;
	}
	case 4: { /* symlink NAME -> one of the classic escapes */
		const char *targets[] = { "..",
					  "/",
					  "/proc/self/root",
					  ".",
					  name,
					  "../../../../../../etc/passwd",
					  "nonexistent",
					  c->last,
					  "/proc/self/cwd",
					  path,
					  "/dev/zero",
					  "/dev/tty" };

		get_name(g, name);
		snprintf(path, sizeof(path), "%s/victim/target", base);
		if (symlinkat(targets[u8(g) % (sizeof(targets) / sizeof(targets[0]))], cur, name) ==
		    0)
			memcpy(c->last, name, sizeof(name));
		break;
	}
	case 5: /* hard link LAST -> NAME, or a file from outside the tree
		 * (not "target": later ops here could write through it) */
		get_name(g, name);
		if (u8(g) & 1)
			linkat(c->victim, "outside", cur, name, 0);
		else
			linkat(cur, c->last, cur, name, 0);
		break;
	case 6: /* FIFO */
		get_name(g, name);
		mkfifoat(cur, name, 0666);
		break;
	case 7: { /* bound unix socket, created through the dir fd's magic link */
		struct sockaddr_un sa;
		int s;

		get_name(g, name);
		memset(&sa, 0, sizeof(sa));
		sa.sun_family = AF_UNIX;
		snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", cur, name);
		s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (s >= 0) {
			bind(s, (struct sockaddr *)&sa, sizeof(sa));
			close(s);
		}
		break;
	}
	case 8: { /* chain of up to 63 directories with a file at the bottom */
		unsigned k = u8(g) % 64;
		int fd = dup(cur);

		for (unsigned i = 0; i < k && fd >= 0; i++) {
			int next;

			if (mkdirat(fd, "d", 0755) < 0)
				break;
			next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			close(fd);
			fd = next;
		}
		if (fd >= 0) {
			write_file(fd, "bottom", 3, 1);
			close(fd);
		}
		break;
	}
	case 9: /* odd modes, including setuid and unreadable */
		get_name(g, name);
		/* NOFOLLOW: the name may be one of the symlinks above, and
		 * following it would chmod "/" or /dev/zero when run as root. */
		fchmodat(cur, name, u16(g) & 07777, AT_SYMLINK_NOFOLLOW);
		break;
	case 10: { /* a trap planted on the host side, at the destination root */
		uint8_t kind = u8(g) % 5;

		get_name(g, name);
		if (c->n_planted == MAX_PLANTED)
			break;
		snprintf(path, sizeof(path), "%s/victim%s", base, kind == 0 ? "/target" : "");
		if ((kind <= 1 && symlinkat(path, c->dst, name) == 0) ||
		    (kind == 2 && mkfifoat(c->dst, name, 0644) == 0) ||
		    (kind == 3 && linkat(c->victim, "target", c->dst, name, 0) == 0) ||
		    (kind == 4 && mkdirat(c->dst, name, 0700) == 0))
			memcpy(c->planted[c->n_planted++], name, sizeof(name));
		break;
	}
	case 11: { /* a burst of tiny files */
		unsigned k = u8(g) % 64;

		for (unsigned i = 0; i < k; i++) {
			snprintf(name, sizeof(name), "b%u", i);
			write_file(cur, name, i % 5, (uint8_t)i);
		}
		break;
	}
	case 12: { /* a long name, up to the 255-byte maximum */
		char lname[256];
		size_t len = 200 + u8(g) % 56;
		char fill = (char)u8(g);

		if (fill == '/' || fill == '\0')
			fill = 'L';
		memset(lname, fill, len);
		lname[len] = '\0';
		if (u8(g) & 1)
			mkdirat(cur, lname, 0755);
		else
			write_file(cur, lname, 5, 2);
		break;
	}
	}
}

static int sys_openat2(int dirfd, const char *path, uint64_t flags)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = flags;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* Reads a file for comparison; returns its size and sha256 hex. */
static int hash_at(int dfd, const char *path, uint64_t *size, char *hex, struct stat *st)
{
	uint8_t buf[65536];
	SHA2_CTX ctx;
	ssize_t r;
	int fd = sys_openat2(dfd, path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		close(fd);
		return -1;
	}
	*size = 0;
	SHA256Init(&ctx);
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		SHA256Update(&ctx, buf, (size_t)r);
		*size += (uint64_t)r;
	}
	close(fd);
	if (r < 0)
		return -1;
	SHA256End(&ctx, hex);
	return 0;
}

/* An independent check of what a reported path may contain. */
static bool path_ok(const char *p, uint64_t max_depth)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t len = strlen(p), comp = 0;
	uint64_t depth = 1;

	if (len == 0 || len > 1024 || s[0] == '/' || s[len - 1] == '/')
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return false;
		if (s[i] == '/') {
			if (comp == 0 || comp > 255)
				return false;
			depth++;
			comp = 0;
			continue;
		}
		comp++;
	}
	if (strstr(p, "//") || strcmp(p, ".") == 0 || strcmp(p, "..") == 0 ||
	    strncmp(p, "./", 2) == 0 || strncmp(p, "../", 3) == 0 || strstr(p, "/./") ||
	    strstr(p, "/../") || (len >= 2 && strcmp(p + len - 2, "/.") == 0) ||
	    (len >= 3 && strcmp(p + len - 3, "/..") == 0))
		return false;
	/* UTF-8: lead and continuation bytes well formed. */
	for (size_t i = 0; i < len;) {
		size_t k = s[i] < 0x80 ? 1 : s[i] >= 0xc2 && s[i] <= 0xdf ? 2
					  : s[i] >= 0xe0 && s[i] <= 0xef ? 3
					  : s[i] >= 0xf0 && s[i] <= 0xf4 ? 4
									 : 0;

		if (k == 0 || len - i < k)
			return false;
		for (size_t j = 1; j < k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return depth <= max_depth;
}

static bool reason_ok(const char *r)
{
	static const char *const known[] = {
		"symlink",     "fifo",		"socket",	  "device",
		"unsafe name", "file limit",	"byte limit",	  "depth limit",
		"path too long", "unreadable",	"changed during collection",
		"exists", "too many entries", "write failed",
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(r, known[i]) == 0)
			return true;
	return false;
}

/* Compares two relative paths component by component (strcmp on each). */
static int path_cmp(const char *a, const char *b)
{
	for (;;) {
		size_t la = strcspn(a, "/"), lb = strcspn(b, "/");
		int c = memcmp(a, b, la < lb ? la : lb);

		if (c != 0)
			return c;
		if (la != lb)
			return la < lb ? -1 : 1;
		if (a[la] == '\0' || b[lb] == '\0')
			return (a[la] != '\0') - (b[lb] != '\0');
		a += la + 1;
		b += lb + 1;
	}
}

static bool listed(const struct sc_collect *out, const char *path)
{
	for (size_t i = 0; i < out->n_files; i++)
		if (strcmp(out->files[i].path, path) == 0)
			return true;
	return false;
}

/* Walks the host copy iteratively: every entry must be one we may make. */
static void check_host(const struct ctx *c, const struct sc_collect *out,
		       const struct sandcell_limits *lim, bool hash_only)
{
	struct hf {
		DIR *d;
		uint64_t depth;
	} st[64];
	size_t n = 0;
	uint64_t files = 0, bytes = 0;
	int fd = openat(c->dst, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	check(fd >= 0, "open host root");
	st[n].d = fdopendir(fd);
	st[n++].depth = 0;
	while (n > 0) {
		struct hf *h = &st[n - 1];
		struct dirent *de = readdir(h->d);
		struct stat sb;
		bool planted = false;

		if (de == NULL) {
			closedir(h->d);
			n--;
			continue;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		check(fstatat(dirfd(h->d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0, "host stat");
		for (size_t i = 0; h->depth == 0 && i < c->n_planted; i++)
			planted |= strcmp(de->d_name, c->planted[i]) == 0;
		/* Host traps stay as they were: nothing is replaced, written
		 * through or merged into.  A planted name is never reported as
		 * collected (but in hash-only mode, which looks at no host
		 * name), and a planted directory stays empty (anything the walk
		 * below finds in it counts as a file and breaks the files ==
		 * reported check). */
		check(hash_only || !planted || !listed(out, de->d_name), "a planted name is never collected");
		if (planted && !S_ISDIR(sb.st_mode))
			continue;
		check(!hash_only || planted, "hash-only mode writes nothing");
		/* The harness made the planted entries, not the collector. */
		check(planted || h->depth + 1 <= lim->output_depth, "host depth within cap");
		if (S_ISREG(sb.st_mode)) {
			check((sb.st_mode & 07777) == 0644, "host file mode 0644");
			check(sb.st_nlink == 1, "host file not hard linked");
			files++;
			bytes += (uint64_t)sb.st_size;
			continue;
		}
		check(S_ISDIR(sb.st_mode), "host entry is a file or a directory");
		check(planted || (sb.st_mode & 07777) == 0755, "host dir mode 0755");
		check(n < sizeof(st) / sizeof(st[0]), "host depth bounded");
		fd = openat(dirfd(h->d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		check(fd >= 0, "open host dir");
		st[n].d = fdopendir(fd);
		check(st[n].d != NULL, "fdopendir host dir");
		st[n].depth = h->depth + 1;
		n++;
	}
	check(files == (hash_only ? 0 : out->n_files), "host files == reported files");
	check(bytes == (hash_only ? 0 : out->bytes), "host bytes == reported bytes");
}

static void check_result(const struct ctx *c, const struct sc_collect *out,
			 const struct sandcell_limits *lim, int src, bool hash_only)
{
	uint64_t sum = 0;
	char buf[16] = "";
	int fd;

	check(out->n_files <= lim->output_files, "file cap");
	check(out->bytes <= lim->output_bytes, "byte cap");
	check(out->n_skips <= 1000, "skip records bounded");
	for (size_t i = 0; i < out->n_skips; i++) {
		check(reason_ok(out->skips[i].reason), "known skip reason");
		for (const unsigned char *p = (const unsigned char *)out->skips[i].path; *p; p++)
			check(*p >= 0x20 && *p != 0x7f, "skip path escaped");
	}
	for (size_t i = 0; i < out->n_files; i++) {
		const struct sc_out_file *f = &out->files[i];
		char hex[SHA256_DIGEST_STRING_LENGTH];
		struct stat sb;
		uint64_t size;

		check(path_ok(f->path, lim->output_depth), "reported path well formed");
		sum += f->size;
		/* The copy matches the source, which nobody changed meanwhile. */
		check(hash_at(src, f->path, &size, hex, &sb) == 0, "source readable");
		check(size == f->size && strcmp(hex, f->sha256) == 0, "sha256 matches source");
		if (hash_only)
			continue;
		check(hash_at(c->dst, f->path, &size, hex, &sb) == 0, "host copy readable");
		check(size == f->size && strcmp(hex, f->sha256) == 0, "host copy matches");
	}
	check(sum == out->bytes, "bytes == sum of sizes");
	/* Walk order: depth first, names in byte order, so the reported
	 * paths increase component by component. */
	for (size_t i = 1; i < out->n_files; i++)
		check(path_cmp(out->files[i - 1].path, out->files[i].path) < 0, "files in walk order");
	check(out->n_skipped_total >= out->n_skips, "skip count covers the list");
	/* Hash-only mode must leave the host untouched. */
	check_host(c, out, lim, hash_only);
	/* Nothing outside the destination was written. */
	fd = openat(c->victim, "target", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	check(fd >= 0, "victim present");
	check(read(fd, buf, sizeof(buf) - 1) == (ssize_t)strlen(VICTIM_TEXT), "victim size");
	check(strcmp(buf, VICTIM_TEXT) == 0, "victim unchanged");
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct prog g = { data, size };
	struct sandcell_limits lim;
	struct sandcell_error err;
	struct sc_collect out;
	struct ctx c;
	bool hash_only;
	uint8_t d;
	int src, rc;

	memset(&c, 0, sizeof(c));
	memset(&lim, 0, sizeof(lim));
	lim.output_files = 1 + u8(&g) % 32;
	lim.output_bytes = u16(&g);
	d = u8(&g);
	lim.output_depth = (d & 0x7f) % 12;
	hash_only = (d & 0x80) != 0;
	/* A small name budget (the scratch space's inodes) now and then. */
	lim.disk_inodes = 4 * lim.output_files + 8;

	check(mkdirat(base_fd, "src", 0755) == 0, "mkdir src");
	check(mkdirat(base_fd, "dst", 0755) == 0, "mkdir dst");
	check(mkdirat(base_fd, "victim", 0755) == 0, "mkdir victim");
	src = openat(base_fd, "src", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c.dst = openat(base_fd, "dst", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c.victim = openat(base_fd, "victim", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	check(src >= 0 && c.dst >= 0 && c.victim >= 0, "open trees");
	write_file(c.victim, "outside", 16, 3);
	write_file(c.victim, "target", 0, 0);
	{
		int fd = openat(c.victim, "target", O_WRONLY | O_TRUNC | O_CLOEXEC);

		check(fd >= 0 && write(fd, VICTIM_TEXT, strlen(VICTIM_TEXT)) ==
					 (ssize_t)strlen(VICTIM_TEXT),
		      "write victim");
		close(fd);
	}
	snprintf(c.last, sizeof(c.last), "n0");
	c.stack[0] = dup(src);
	c.depth = 1;
	for (unsigned ops = 0; g.n > 0 && ops < MAX_OPS; ops++)
		run_op(&c, &g);
	while (c.depth > 0)
		close(c.stack[--c.depth]);

	rc = sc_collect_tree(src, hash_only ? -1 : c.dst, &lim, &out, &err);
	check(rc == 0, "collection succeeds on any tree");
	check_result(&c, &out, &lim, src, hash_only);
	sc_collect_free(&out);
	check(out.files == NULL && out.skips == NULL && out.n_files == 0, "free zeroes");

	close(src);
	close(c.dst);
	close(c.victim);
	rm_tree(base_fd, "src");
	rm_tree(base_fd, "dst");
	rm_tree(base_fd, "victim");
	/* Nothing was created beside the three trees. */
	{
		int fd = openat(base_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dir = fdopendir(fd);
		struct dirent *de;

		check(dir != NULL, "open base");
		while ((de = readdir(dir)) != NULL)
			check(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0,
			      "nothing left beside the trees");
		closedir(dir);
	}
	return 0;
}
