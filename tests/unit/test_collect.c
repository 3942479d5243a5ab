/* Unit tests of collect.c: hostile /output trees must never make the host
 * follow a link, block, overrun a cap or write outside the destination. */
#include "internal.h"
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha2.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char root[64];

static void on_alarm(int sig)
{
	static const char msg[] = "FAIL test_collect: timed out (a FIFO or lock blocked the collector?)\n";

	(void)sig;
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more we can do */
	}
	_exit(1);
}

/* Iterative removal for trees of any depth: /bin/rm walks without
 * recursion limits, which our own test code would otherwise need. */
static void rm_rf(const char *path)
{
	char *argv[] = { "rm", "-rf", "--", (char *)path, NULL };
	pid_t pid;
	int st;

	if (posix_spawn(&pid, "/bin/rm", NULL, NULL, argv, environ) != 0) {
		CHECK(!"posix_spawn /bin/rm");
		return;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

struct tree {
	char dir[128];
	int src, dst;
};

static void tree_open(struct tree *t, const char *name)
{
	char p[256];

	snprintf(t->dir, sizeof(t->dir), "%s/%s", root, name);
	CHECK(mkdir(t->dir, 0700) == 0);
	snprintf(p, sizeof(p), "%s/src", t->dir);
	CHECK(mkdir(p, 0755) == 0);
	t->src = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(p, sizeof(p), "%s/dst", t->dir);
	CHECK(mkdir(p, 0755) == 0);
	t->dst = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(t->src >= 0 && t->dst >= 0);
}

static void tree_close(struct tree *t)
{
	close(t->src);
	close(t->dst);
	rm_rf(t->dir);
}

static struct sandcell_limits limits(uint64_t files, uint64_t bytes, uint64_t depth)
{
	struct sandcell_limits l;

	memset(&l, 0, sizeof(l));
	l.output_files = files;
	l.output_bytes = bytes;
	l.output_depth = depth;
	return l;
}

static void put(int dfd, const char *name, const void *data, size_t len)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, data, len) == (ssize_t)len);
	close(fd);
}

static int sub(int dfd, const char *name)
{
	int fd;

	CHECK(mkdirat(dfd, name, 0755) == 0);
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0);
	return fd;
}

static const struct sc_out_file *find_file(const struct sc_collect *c, const char *path)
{
	for (size_t i = 0; i < c->n_files; i++)
		if (strcmp(c->files[i].path, path) == 0)
			return &c->files[i];
	return NULL;
}

/* Skip records hold the escaped path; compare against the same escaping. */
static const char *skip_reason(const struct sc_collect *c, const char *path)
{
	char *want = sc_escape_bytes(path, strlen(path), NULL);
	const char *r = NULL;

	for (size_t i = 0; want != NULL && i < c->n_skips; i++)
		if (strcmp(c->skips[i].path, want) == 0)
			r = c->skips[i].reason;
	free(want);
	return r;
}

static size_t count_reason(const struct sc_collect *c, const char *reason)
{
	size_t n = 0;

	for (size_t i = 0; i < c->n_skips; i++)
		n += strcmp(c->skips[i].reason, reason) == 0;
	return n;
}

/* lstat relative to a test dir (test code may use paths). */
static int host_mode(int dfd, const char *rel)
{
	struct stat st;

	if (fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	return (int)st.st_mode;
}

static size_t count_entries(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	size_t n = 0;

	if (d == NULL)
		return (size_t)-1;
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

static void read_small(int dfd, const char *rel, char *buf, size_t cap)
{
	int fd = openat(dfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

static void test_basic(void)
{
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c, h;
	const struct sc_out_file *f;
	struct tree t = { .src = -1, .dst = -1 };
	char buf[64];
	int a, b;

	tree_open(&t, "basic");
	put(t.src, "abc.txt", "abc", 3);
	put(t.src, "empty", "", 0);
	a = sub(t.src, "a");
	b = sub(a, "b");
	put(b, "c.txt", "hello\n", 6);
	close(b);
	close(a);
	close(sub(t.src, "emptydir"));
	/* Hard links are two outputs and cost their bytes twice. */
	put(t.src, "h1", "0123456789", 10);
	CHECK(linkat(t.src, "h1", t.src, "h2", 0) == 0);

	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 5);
	CHECK_EQ_INT(c.n_skips, 0);
	CHECK(!c.limit_hit);
	CHECK_EQ_INT(c.bytes, 3 + 0 + 6 + 10 + 10);
	f = find_file(&c, "abc.txt");
	CHECK(f != NULL);
	if (f != NULL) {
		CHECK_EQ_INT(f->size, 3);
		CHECK_STR(f->sha256,
			  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	}
	f = find_file(&c, "empty");
	CHECK(f != NULL);
	if (f != NULL)
		CHECK_STR(f->sha256,
			  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	f = find_file(&c, "a/b/c.txt");
	CHECK(f != NULL && f->size == 6);
	CHECK(find_file(&c, "h1") != NULL && find_file(&c, "h2") != NULL);
	/* Directories are mirrored, not listed. */
	CHECK(find_file(&c, "emptydir") == NULL && find_file(&c, "a") == NULL);
	CHECK(S_ISDIR(host_mode(t.dst, "emptydir")));
	read_small(t.dst, "a/b/c.txt", buf, sizeof(buf));
	CHECK_STR(buf, "hello\n");

	/* Hash-only mode sees the same files and writes nothing. */
	CHECK_EQ_INT(sc_collect_tree(t.src, -1, &lim, &h, &err), 0);
	CHECK_EQ_INT(h.n_files, c.n_files);
	CHECK_EQ_INT(h.bytes, c.bytes);
	for (size_t i = 0; i < h.n_files; i++) {
		f = find_file(&c, h.files[i].path);
		CHECK(f != NULL && strcmp(f->sha256, h.files[i].sha256) == 0);
	}
	sc_collect_free(&h);
	sc_collect_free(&c);
	CHECK(c.files == NULL && c.n_files == 0 && c.bytes == 0);
	sc_collect_free(&c); /* idempotent */
	tree_close(&t);
}

static void test_errors(void)
{
	struct sandcell_limits lim = limits(10, 10, 10);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	int fd;

	CHECK_EQ_INT(sc_collect_tree(-1, -1, &lim, &c, &err), -1);
	CHECK(err.msg[0] != '\0');
	CHECK(c.files == NULL && c.n_files == 0);
	tree_open(&t, "errors");
	put(t.src, "f", "x", 1);
	fd = openat(t.src, "f", O_RDONLY | O_CLOEXEC);
	CHECK_EQ_INT(sc_collect_tree(fd, -1, &lim, &c, &err), -1);
	CHECK_EQ_INT(sc_collect_tree(t.src, fd, &lim, &c, &err), -1);
	close(fd);
	/* An O_PATH source works and its offset is not the collector's. */
	fd = openat(t.src, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK_EQ_INT(sc_collect_tree(fd, -1, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 1);
	sc_collect_free(&c);
	close(fd);
	tree_close(&t);
}

static void test_symlinks(void)
{
	static const char *const links[][2] = {
		{ "/etc/passwd", "abs" },     { "../../../../etc/passwd", "rel" },
		{ "loop_b", "loop_a" },	      { "loop_a", "loop_b" },
		{ "self", "self" },	      { "/nonexistent/x", "dangling" },
		{ "/", "rootdir" },	      { "/proc/self/root", "procroot" },
		{ "..", "dotdot" },	      { "real", "toreal" },
	};
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	int d;

	tree_open(&t, "symlinks");
	put(t.src, "real", "r", 1);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		CHECK(symlinkat(links[i][0], t.src, links[i][1]) == 0);
	d = sub(t.src, "d");
	CHECK(symlinkat("/", d, "up") == 0);
	close(d);

	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 1);
	CHECK(find_file(&c, "real") != NULL);
	for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
		CHECK_STR(skip_reason(&c, links[i][1]), "symlink");
		CHECK_EQ_INT(host_mode(t.dst, links[i][1]), -1);
	}
	CHECK_STR(skip_reason(&c, "d/up"), "symlink");
	CHECK_EQ_INT(count_reason(&c, "symlink"), 11);
	CHECK_EQ_INT(count_entries(t.dst), 2); /* real, d */
	CHECK(!c.limit_hit);
	sc_collect_free(&c);
	tree_close(&t);
}

static void test_special(void)
{
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sockaddr_un sa;
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	int s;

	tree_open(&t, "special");
	CHECK(mkfifoat(t.src, "fifo", 0666) == 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	CHECK(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/src/sock", t.dir) <
	      (int)sizeof(sa.sun_path));
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	put(t.src, "ok", "ok", 2);

	/* Opening the FIFO for reading would wait for a writer forever. */
	alarm(10);
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	alarm(0);
	CHECK_STR(skip_reason(&c, "fifo"), "fifo");
	CHECK_STR(skip_reason(&c, "sock"), "socket");
	CHECK(find_file(&c, "ok") != NULL);
	CHECK_EQ_INT(host_mode(t.dst, "fifo"), -1);
	CHECK_EQ_INT(host_mode(t.dst, "sock"), -1);
	sc_collect_free(&c);
	close(s);
	tree_close(&t);
}

static void test_bytes(void)
{
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	static char mib[1 << 20];
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	char p[256];
	int fd, a, b, dst2;

	tree_open(&t, "bytes");
	fd = openat(t.src, "sparse", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)1 << 40) == 0);
	close(fd);
	put(t.src, "small", "0123456789", 10);

	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK_STR(skip_reason(&c, "sparse"), "byte limit");
	CHECK(c.limit_hit);
	CHECK_EQ_INT(host_mode(t.dst, "sparse"), -1);
	/* Entries that still fit are collected after the cap was hit. */
	CHECK(find_file(&c, "small") != NULL);
	CHECK_EQ_INT(c.bytes, 10);
	sc_collect_free(&c);

	/* Exactly the cap fits; one byte more does not (no partial copy). */
	memset(mib, 'x', sizeof(mib));
	a = sub(t.src, "exact");
	put(a, "f", mib, sizeof(mib));
	b = sub(t.src, "over");
	put(b, "f", mib, sizeof(mib));
	put(b, "g", "1", 1);
	CHECK(unlinkat(t.src, "small", 0) == 0 && unlinkat(t.src, "sparse", 0) == 0);
	lim.output_bytes = sizeof(mib);
	CHECK_EQ_INT(sc_collect_tree(a, t.dst, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 1);
	CHECK_EQ_INT(c.bytes, sizeof(mib));
	CHECK(!c.limit_hit);
	sc_collect_free(&c);
	lim.output_bytes = sizeof(mib) - 1;
	snprintf(p, sizeof(p), "%s/dst2", t.dir);
	dst2 = sub(AT_FDCWD, p);
	CHECK_EQ_INT(sc_collect_tree(a, dst2, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 0);
	CHECK_STR(skip_reason(&c, "f"), "byte limit");
	CHECK_EQ_INT(count_entries(dst2), 0);
	sc_collect_free(&c);
	close(dst2);
	lim.output_bytes = 10;
	CHECK_EQ_INT(sc_collect_tree(b, -1, &lim, &c, &err), 0);
	CHECK_STR(skip_reason(&c, "f"), "byte limit");
	CHECK(find_file(&c, "g") != NULL);
	sc_collect_free(&c);
	close(a);
	close(b);
	tree_close(&t);
}

/* Files whose st_size is 0 but which have content: the cap must count what
 * is read.  /proc/sys files are such files and are harmless to read. */
static void test_size_not_trusted(void)
{
	struct sandcell_limits lim = limits(1000, 1 << 20, 1);
	struct sandcell_error err = { 0 };
	const struct sc_out_file *f;
	struct sc_collect c;
	char want[SHA256_DIGEST_STRING_LENGTH];
	struct stat st;
	int fd = open("/proc/sys/kernel", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fstatat(fd, "ostype", &st, 0) < 0 || st.st_size != 0) {
		printf("test_collect: /proc/sys/kernel/ostype unusable, size test skipped\n");
		if (fd >= 0)
			close(fd);
		return;
	}
	CHECK_EQ_INT(sc_collect_tree(fd, -1, &lim, &c, &err), 0);
	f = find_file(&c, "ostype");
	CHECK(f != NULL);
	if (f != NULL) {
		CHECK_EQ_INT(f->size, 6);
		SHA256Data((const uint8_t *)"Linux\n", 6, want);
		CHECK_STR(f->sha256, want);
	}
	sc_collect_free(&c);
	lim.output_bytes = 3;
	CHECK_EQ_INT(sc_collect_tree(fd, -1, &lim, &c, &err), 0);
	CHECK(find_file(&c, "ostype") == NULL);
	CHECK_STR(skip_reason(&c, "ostype"), "byte limit");
	CHECK(c.bytes <= 3);
	sc_collect_free(&c);
	close(fd);
}

static void test_file_cap(void)
{
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	char name[32];

	tree_open(&t, "filecap");
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "f%04d", i);
		put(t.src, name, "x", 1);
	}
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 100);
	CHECK_EQ_INT(c.bytes, 100);
	CHECK(c.limit_hit);
	/* 1900 skipped, at most 1000 recorded, all counted. */
	CHECK_EQ_INT(c.n_skips, 1000);
	CHECK_EQ_INT(c.n_skipped_total, 1900);
	CHECK_EQ_INT(count_reason(&c, "file limit"), 1000);
	/* The first 100 in name order are kept, the next 1000 listed. */
	CHECK(find_file(&c, "f0000") != NULL && find_file(&c, "f0099") != NULL);
	CHECK(find_file(&c, "f0100") == NULL);
	CHECK_STR(c.skips[0].path, "f0100");
	CHECK_STR(c.skips[999].path, "f1099");
	CHECK_EQ_INT(count_entries(t.dst), 100);
	sc_collect_free(&c);
	tree_close(&t);
}

static void test_depth(void)
{
	struct sandcell_limits lim = limits(1000, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	char path[1024] = "";
	int fd;

	tree_open(&t, "depth");
	fd = dup(t.src);
	for (int i = 0; i < 300; i++) {
		put(fd, "f", "x", 1);
		int next = sub(fd, "d");
		close(fd);
		fd = next;
	}
	close(fd);
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	/* Root's entries are depth 1: f at depths 1..32 fit. */
	CHECK_EQ_INT(c.n_files, 32);
	CHECK(c.limit_hit);
	for (int i = 0; i < 33; i++)
		strcat(path, i ? "/d" : "d");
	CHECK_STR(skip_reason(&c, path), "depth limit");
	path[strlen(path) - 1] = 'f';
	CHECK_STR(skip_reason(&c, path), "depth limit");
	CHECK_EQ_INT(c.n_skips, 2);
	path[strlen(path) - 2] = '\0';
	CHECK(S_ISDIR(host_mode(t.dst, path)));
	strcat(path, "/d");
	CHECK_EQ_INT(host_mode(t.dst, path), -1);
	sc_collect_free(&c);
	tree_close(&t);
}

/* 10^5 levels: the walk must be iterative and bounded, and must finish. */
static void test_very_deep(void)
{
	struct sandcell_limits lim = limits(1000, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	int fd;

	tree_open(&t, "verydeep");
	fd = dup(t.src);
	for (int i = 0; i < 100000 && fd >= 0; i++) {
		if (mkdirat(fd, "d", 0755) < 0)
			break;
		int next = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	CHECK(fd >= 0);
	put(fd, "bottom", "x", 1);
	close(fd);
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK(c.limit_hit);
	CHECK_EQ_INT(c.n_files, 0);
	CHECK_EQ_INT(count_reason(&c, "depth limit"), 1);
	sc_collect_free(&c);
	/* No usable depth cap at all: the path cap and the internal ceiling
	 * still bound the walk. */
	lim.output_depth = UINT64_MAX;
	CHECK_EQ_INT(sc_collect_tree(t.src, -1, &lim, &c, &err), 0);
	CHECK(c.limit_hit);
	CHECK_EQ_INT(c.n_skips, 1);
	CHECK_EQ_INT(c.n_files, 0);
	sc_collect_free(&c);
	tree_close(&t);
}

static void test_path_cap(void)
{
	struct sandcell_limits lim = limits(1000, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	char name[256];
	int fd;

	memset(name, 'n', 255);
	name[255] = '\0';
	tree_open(&t, "pathcap");
	fd = dup(t.src);
	/* 4 levels of 255 bytes + 3 slashes = 1023: fits; the 5th does not. */
	for (int i = 0; i < 5; i++) {
		put(fd, "f", "x", 1);
		int next = sub(fd, name);
		close(fd);
		fd = next;
	}
	close(fd);
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 4); /* f at levels 0..3; level 4's path is 1025 bytes */
	CHECK_EQ_INT(count_reason(&c, "path too long"), 2);
	CHECK(c.limit_hit);
	for (size_t i = 0; i < c.n_files; i++)
		CHECK(strlen(c.files[i].path) <= 1024);
	sc_collect_free(&c);
	tree_close(&t);
}

static void test_names(void)
{
	static const char *const bad[] = {
		"\n", "\x1b[2J", "\xff", "a\xc0\xaf" "b", "\xc2\x9b", "x\xe2\x80\xae" "y", "\xed\xa0\x80",
		"tab\there", "del\x7f",
	};
	static const char *const good[] = { "-rf", "   ", "\xc3\xbcn\xc3\xaf", "a b", "--", "\\" };
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	char longname[256];
	int d;

	tree_open(&t, "names");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		put(t.src, bad[i], "b", 1);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		put(t.src, good[i], "g", 1);
	memset(longname, 'L', 255);
	longname[255] = '\0';
	put(t.src, longname, "l", 1);
	d = sub(t.src, "\x1b]0;evil\x07");
	put(d, "inner", "i", 1);
	close(d);

	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, sizeof(good) / sizeof(good[0]) + 1);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		CHECK(find_file(&c, good[i]) != NULL);
		CHECK(S_ISREG(host_mode(t.dst, good[i])));
	}
	CHECK(find_file(&c, longname) != NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK_STR(skip_reason(&c, bad[i]), "unsafe name");
		CHECK_EQ_INT(host_mode(t.dst, bad[i]), -1);
	}
	CHECK_STR(skip_reason(&c, "\x1b]0;evil\x07"), "unsafe name");
	CHECK_EQ_INT(c.n_skips, sizeof(bad) / sizeof(bad[0]) + 1);
	CHECK(!c.limit_hit);
	/* What reaches a report or a terminal carries no raw bytes. */
	for (size_t i = 0; i < c.n_skips; i++)
		for (const unsigned char *p = (const unsigned char *)c.skips[i].path; *p; p++)
			CHECK(*p >= 0x20 && *p < 0x7f);
	CHECK_EQ_INT(count_entries(t.dst), sizeof(good) / sizeof(good[0]) + 1);
	sc_collect_free(&c);
	tree_close(&t);
}

/* Nothing that exists at a name in the destination is replaced, written
 * through or merged into (run.c hands over a new or empty directory; these
 * are what something else put there meanwhile): each is skipped, "exists". */
static void test_host_conflicts(void)
{
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	char p[256], buf[64];
	struct stat st;
	int d, victim;

	tree_open(&t, "conflicts");
	snprintf(p, sizeof(p), "%s/victim", t.dir);
	victim = sub(AT_FDCWD, p);
	put(victim, "target", "original", 8);
	put(victim, "linked", "original", 8);
	snprintf(p, sizeof(p), "%s/victim/target", t.dir);
	CHECK(symlinkat(p, t.dst, "out.txt") == 0);
	CHECK(symlinkat("/nonexistent/dangling", t.dst, "dangling.txt") == 0);
	snprintf(p, sizeof(p), "%s/victim", t.dir);
	CHECK(symlinkat(p, t.dst, "sub") == 0);
	CHECK(mkfifoat(t.dst, "fifo.txt", 0644) == 0);
	CHECK(linkat(victim, "linked", t.dst, "hl.txt", 0) == 0);
	CHECK(mkdirat(t.dst, "isdir", 0755) == 0);
	put(t.dst, "plain.txt", "host's own", 10);
	d = sub(t.dst, "existing");
	put(d, "keep", "host's own", 10);
	close(d);

	put(t.src, "out.txt", "attacker", 8);
	put(t.src, "dangling.txt", "attacker", 8);
	d = sub(t.src, "sub");
	put(d, "target", "attacker", 8);
	close(d);
	put(t.src, "fifo.txt", "attacker", 8);
	put(t.src, "hl.txt", "attacker", 8);
	put(t.src, "isdir", "attacker", 8);
	put(t.src, "plain.txt", "attacker", 8);
	d = sub(t.src, "existing");
	put(d, "x", "new", 3);
	put(d, "keep", "attacker", 8);
	close(d);
	put(t.src, "fresh.txt", "fresh", 5);

	alarm(10);
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	alarm(0);
	CHECK_STR(skip_reason(&c, "out.txt"), "exists");
	CHECK_STR(skip_reason(&c, "dangling.txt"), "exists");
	CHECK_STR(skip_reason(&c, "sub"), "exists");
	CHECK_STR(skip_reason(&c, "fifo.txt"), "exists");
	CHECK_STR(skip_reason(&c, "hl.txt"), "exists");
	CHECK_STR(skip_reason(&c, "isdir"), "exists");
	CHECK_STR(skip_reason(&c, "plain.txt"), "exists");
	CHECK_STR(skip_reason(&c, "existing"), "exists");
	/* A name taken on the host is not a cap. */
	CHECK(!c.limit_hit);
	CHECK_EQ_INT(c.n_skips, 8);
	CHECK_EQ_INT(c.n_skipped_total, 8);
	CHECK_EQ_INT(c.n_files, 1);
	CHECK(find_file(&c, "fresh.txt") != NULL);
	CHECK(S_ISLNK(host_mode(t.dst, "out.txt")));
	CHECK(S_ISLNK(host_mode(t.dst, "dangling.txt")));
	CHECK(S_ISLNK(host_mode(t.dst, "sub")));
	CHECK(S_ISFIFO(host_mode(t.dst, "fifo.txt")));
	read_small(victim, "target", buf, sizeof(buf));
	CHECK_STR(buf, "original");
	read_small(victim, "linked", buf, sizeof(buf));
	CHECK_STR(buf, "original");
	/* The host's hard link stays, the host's files keep their bytes. */
	CHECK(fstatat(t.dst, "hl.txt", &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink == 2);
	read_small(t.dst, "plain.txt", buf, sizeof(buf));
	CHECK_STR(buf, "host's own");
	read_small(t.dst, "existing/keep", buf, sizeof(buf));
	CHECK_STR(buf, "host's own");
	CHECK(host_mode(t.dst, "existing/x") == -1);
	CHECK_EQ_INT(count_entries(victim), 2);
	CHECK_EQ_INT(count_entries(t.dst), 9);
	sc_collect_free(&c);
	close(victim);
	tree_close(&t);
}

/* What a cap keeps does not depend on the order the code created its
 * files in: depth first, each directory in byte order of its names. */
static void test_deterministic_order(void)
{
	static const char *const order[] = {
		/* byte order: digits, upper case, '_', lower case, UTF-8 */
		"0", "A", "B/b1", "B/b2", "B/c/deep", "Z", "_x", "a", "b", "\xc3\xa9t\xc3\xa9",
	};
	const size_t n = sizeof(order) / sizeof(order[0]);
	struct sandcell_error err = { 0 };

	/* Created forwards, backwards and shuffled; capped at every k. */
	for (int how = 0; how < 3; how++) {
		for (size_t k = 0; k <= n; k++) {
			struct sandcell_limits lim = limits(k, 1 << 20, 32);
			struct sc_collect c;
			struct tree t = { .src = -1, .dst = -1 };
			char name[32];
			size_t idx[sizeof(order) / sizeof(order[0])];

			for (size_t i = 0; i < n; i++)
				idx[i] = how == 1 ? n - 1 - i : i;
			if (how == 2)
				for (size_t i = 0; i < n; i++) {
					size_t j = (i * 7 + 3) % n, tmp = idx[i];
					idx[i] = idx[j];
					idx[j] = tmp;
				}
			snprintf(name, sizeof(name), "order-%d-%zu", how, k);
			tree_open(&t, name);
			for (size_t i = 0; i < n; i++) {
				const char *path = order[idx[i]];
				const char *slash = strrchr(path, '/');
				int d = dup(t.src);

				/* Parent directories as needed, in creation order. */
				for (const char *p = path; d >= 0 && (slash = strchr(p, '/')) != NULL; p = slash + 1) {
					char comp[32];
					int next;

					snprintf(comp, sizeof(comp), "%.*s", (int)(slash - p), p);
					mkdirat(d, comp, 0755);
					next = openat(d, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
					close(d);
					d = next;
				}
				CHECK(d >= 0);
				put(d, strrchr(path, '/') ? strrchr(path, '/') + 1 : path, path, strlen(path));
				close(d);
			}
			CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
			CHECK_EQ_INT(c.n_files, k);
			CHECK_EQ_INT(c.n_skips, n - k);
			CHECK_EQ_INT(c.n_skipped_total, n - k);
			CHECK(c.limit_hit == (k < n));
			for (size_t i = 0; i < n; i++) {
				if (i < k) {
					CHECK(c.files != NULL && unit_str_eq(c.files[i].path, order[i]));
				} else {
					CHECK(c.skips != NULL && unit_str_eq(c.skips[i - k].path, order[i]));
					CHECK(c.skips != NULL && unit_str_eq(c.skips[i - k].reason, "file limit"));
				}
			}
			sc_collect_free(&c);
			tree_close(&t);
		}
	}
}

/* A directory with more names than the walk may hold is skipped whole:
 * more than the scratch space has inodes (which no real tree can have). */
static void test_too_many_entries(void)
{
	struct sandcell_limits lim = limits(1000, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	char name[32];
	int d;

	lim.disk_inodes = 60;
	tree_open(&t, "toomany");
	put(t.src, "a.txt", "a", 1);
	put(t.src, "z.txt", "z", 1);
	d = sub(t.src, "m");
	for (unsigned i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "%u", i);
		put(d, name, "", 0);
	}
	close(d);
	d = sub(t.src, "n");
	for (unsigned i = 0; i < 57; i++) {
		snprintf(name, sizeof(name), "%u", i);
		put(d, name, "", 0);
	}
	close(d);
	/* 4 + 50 names fit in 60 (m), 4 + 57 do not (n). */
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 52);
	CHECK(find_file(&c, "a.txt") != NULL && find_file(&c, "z.txt") != NULL);
	CHECK(find_file(&c, "m/49") != NULL);
	CHECK_STR(skip_reason(&c, "n"), "too many entries");
	CHECK_EQ_INT(c.n_skips, 1);
	CHECK(c.limit_hit);
	/* Nothing was made on the host for it. */
	CHECK(host_mode(t.dst, "n") == -1);
	sc_collect_free(&c);
	/* The root itself: nothing is collected. */
	lim.disk_inodes = 3;
	CHECK_EQ_INT(sc_collect_tree(t.src, -1, &lim, &c, &err), 0);
	CHECK_EQ_INT(c.n_files, 0);
	CHECK_STR(skip_reason(&c, "."), "too many entries");
	CHECK(c.limit_hit);
	sc_collect_free(&c);
	tree_close(&t);
}

static void test_modes(void)
{
	struct sandcell_limits lim = limits(100, 1 << 20, 32);
	struct sandcell_error err = { 0 };
	struct sc_collect c;
	struct tree t = { .src = -1, .dst = -1 };
	mode_t old;
	int d;

	tree_open(&t, "modes");
	put(t.src, "suid", "#!/bin/sh\n", 10);
	CHECK(fchmodat(t.src, "suid", 06777, 0) == 0);
	d = sub(t.src, "private");
	put(d, "f", "x", 1);
	CHECK(fchmod(d, 0700) == 0);
	close(d);
	/* The host modes are fixed whatever the caller's umask. */
	old = umask(077);
	CHECK_EQ_INT(sc_collect_tree(t.src, t.dst, &lim, &c, &err), 0);
	umask(old);
	CHECK_EQ_INT(c.n_files, 2);
	CHECK_EQ_INT(host_mode(t.dst, "suid"), S_IFREG | 0644);
	CHECK_EQ_INT(host_mode(t.dst, "private"), S_IFDIR | 0755);
	CHECK_EQ_INT(host_mode(t.dst, "private/f"), S_IFREG | 0644);
	sc_collect_free(&c);
	tree_close(&t);
}

int main(void)
{
	signal(SIGALRM, on_alarm);
	snprintf(root, sizeof(root), "/tmp/sc_collect.XXXXXX");
	if (mkdtemp(root) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_basic();
	test_errors();
	test_symlinks();
	test_special();
	test_bytes();
	test_size_not_trusted();
	test_file_cap();
	test_depth();
	test_very_deep();
	test_path_cap();
	test_names();
	test_host_conflicts();
	test_deterministic_order();
	test_too_many_entries();
	test_modes();
	rm_rf(root);
	return unit_done("test_collect");
}
