/*
 * `sandcell selftest`: a representative subset of the attack catalogue run
 * on this host, through the public library API only, one row per check and
 * at least one check per guarantee G1..G11 (docs/SECURITY.md).
 *
 * Each check is one sandcell_run() of a small embedded Python snippet with
 * small limits.  A check decides from host-side evidence wherever there is
 * some (the status and exit code the supervisor derived from timers, cgroup
 * counters and wait status; files, sockets and processes on the host) and
 * otherwise from the snippet's own stdout: here the snippet is our code,
 * not an adversary's, and a snippet that cannot print its verdict fails.
 * The code's stdout and stderr go to memfds (no pipe-capacity deadlock) and
 * are read after the run; their bytes are escaped before display.
 *
 * Exit status: 0 all checks passed, 1 some check failed, 125 usage error,
 * 126 the sandbox cannot start at all on this host.
 */
#include "selftest.h"
#include "sandcell.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif

#define ST_MAX_CHECKS 40
#define ST_OUT_MAX 16384
#define ST_DETAIL 240

struct st_check {
	const char *gid;
	const char *name;
	bool pass;
	char detail[ST_DETAIL];
};

/* What one run left behind, copied out of the opaque result and report. */
struct st_outcome {
	int rc;			/* sandcell_run(): -1 = refused (usage error) */
	enum sandcell_status status;
	int exit_code;
	bool started;
	long long host_uid;
	int landlock_abi;
	size_t n_not_held;
	size_t n_skipped;	/* outputs.skipped_total */
	char mode[16];
	char cgroup[16];
	char error[512];	/* library refusal, sandbox error or stop reason */
	char out[ST_OUT_MAX];	/* the code's stdout (NUL-terminated, capped) */
	char err[4096];		/* the code's stderr */
	double secs;
};

struct st {
	const char *python;
	const char *cgroup_parent;
	int out_fd, err_fd;
	char dir[PATH_MAX - 64];	/* private host directory of this selftest */
	char token[17];			/* random, unique to this selftest */
	struct st_check checks[ST_MAX_CHECKS];
	size_t n;
};

/* ------------------------------------------------------------ utilities */

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Copies at most one line of src into dst, escaping every byte that is not
 * printable ASCII (the bytes came from a sandboxed process). */
static void sanitize(char *dst, size_t size, const char *src)
{
	size_t o = 0;

	for (; *src && *src != '\n' && o + 5 < size; src++) {
		unsigned char ch = (unsigned char)*src;
		if (ch >= 0x20 && ch < 0x7f) {
			dst[o++] = (char)ch;
		} else {
			snprintf(dst + o, size - o, "\\x%02x", ch);
			o += 4;
		}
	}
	dst[o] = '\0';
}

static __attribute__((format(printf, 3, 4))) void fmt(char *dst, size_t size, const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vsnprintf(dst, size, f, ap);
	va_end(ap);
}

/* The first line of text that starts with prefix, or NULL. */
static const char *find_line(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p = text;

	while (p && *p) {
		if (strncmp(p, prefix, n) == 0)
			return p;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* What follows a verdict keyword ("OK", "BAD") on its line. */
static const char *after_keyword(const char *line, size_t len)
{
	line += len;
	return line + strspn(line, " ");
}

/* The last non-empty line of text (a traceback's exception line). */
static const char *last_line(const char *text)
{
	const char *end = text + strlen(text), *p;

	while (end > text && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	for (p = end; p > text && p[-1] != '\n'; p--)
		;
	return p;
}

static void reset_fd(int fd)
{
	if (ftruncate(fd, 0) == 0)
		lseek(fd, 0, SEEK_SET);
}

static void slurp_fd(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);

	buf[n > 0 ? n : 0] = '\0';
	/* NULs in the stream would cut the text short: keep them visible. */
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = '?';
}

static int write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t len = strlen(text);
	bool ok;

	if (fd < 0)
		return -1;
	ok = write(fd, text, len) == (ssize_t)len && fchmod(fd, mode) == 0;
	return close(fd) == 0 && ok ? 0 : -1;
}

static int read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void add(struct st *s, const char *gid, const char *name, bool pass, const char *detail)
{
	struct st_check *c;

	if (s->n >= ST_MAX_CHECKS)
		return;
	c = &s->checks[s->n++];
	c->gid = gid;
	c->name = name;
	c->pass = pass;
	sanitize(c->detail, sizeof(c->detail), detail);
}

/* ------------------------------------------------------------ running */

static void base_config(const struct st *s, struct sandcell_config *cfg, const char *code,
			const char *const *args, size_t n_args)
{
	sandcell_config_init(cfg);
	cfg->python = s->python;
	cfg->cgroup_parent = s->cgroup_parent;
	cfg->code = code;
	cfg->code_len = strlen(code);
	cfg->args = args;
	cfg->n_args = n_args;
	cfg->stdin_fd = -1;
	cfg->stdout_fd = s->out_fd;
	cfg->stderr_fd = s->err_fd;
	/* Generous wall time: only a broken sandbox or a loaded host gets
	 * near it; the checks themselves take well under a second. */
	cfg->limits.wall_sec = 20;
	cfg->limits.cpu_sec = 10;
	cfg->limits.memory = 256u << 20;
	cfg->limits.pids = 32;
	cfg->limits.disk = 16u << 20;
	cfg->limits.disk_inodes = 1024;
	cfg->limits.stream = 64u << 10;
	cfg->limits.output_files = 16;
	cfg->limits.output_bytes = 1u << 20;
	cfg->limits.result_bytes = 64u << 10;
}

static void execute(struct st *s, const struct sandcell_config *cfg, struct st_outcome *o)
{
	struct sandcell_error e = { 0, "" };
	struct sandcell_result *r = NULL;
	const char *const *nh;
	double t0;

	memset(o, 0, sizeof(*o));
	snprintf(o->cgroup, sizeof(o->cgroup), "none");
	reset_fd(s->out_fd);
	reset_fd(s->err_fd);
	t0 = now_sec();
	o->rc = sandcell_run(cfg, &r, &e);
	o->secs = now_sec() - t0;
	slurp_fd(s->out_fd, o->out, sizeof(o->out));
	slurp_fd(s->err_fd, o->err, sizeof(o->err));
	if (o->rc < 0 || r == NULL) {
		o->rc = -1;
		o->status = SANDCELL_SANDBOX_ERROR;
		o->exit_code = SANDCELL_EXIT_USAGE;
		snprintf(o->error, sizeof(o->error), "%s", e.msg);
		snprintf(o->mode, sizeof(o->mode), "none");
		return;
	}
	o->status = sandcell_result_status(r);
	o->exit_code = sandcell_result_exit_code(r);
	snprintf(o->mode, sizeof(o->mode), "%s", sandcell_result_mode(r));
	for (nh = sandcell_result_not_held(r); nh && *nh; nh++)
		o->n_not_held++;
	o->started = sandcell_result_started(r);
	snprintf(o->error, sizeof(o->error), "%s",
		 sandcell_result_error(r)[0] ? sandcell_result_error(r) : sandcell_result_reason(r));
	o->host_uid = sandcell_result_host_uid(r);
	o->landlock_abi = sandcell_result_landlock_abi(r);
	snprintf(o->cgroup, sizeof(o->cgroup), "%s", sandcell_result_cgroup_version(r));
	o->n_skipped = sandcell_result_skipped_outputs(r);
	sandcell_result_free(r);
}

/* Why a run did not end the way a check needed, in one line. */
static void describe(const struct st_outcome *o, char *detail, size_t size)
{
	char tail[200];

	if (o->rc < 0) {
		fmt(detail, size, "refused: %s", o->error);
		return;
	}
	sanitize(tail, sizeof(tail), o->err[0] ? last_line(o->err) : o->error);
	fmt(detail, size, "status %s, exit %d%s%s", sandcell_status_name(o->status), o->exit_code,
	    tail[0] ? ": " : "", tail);
}

/* A snippet check: the run ended normally and the snippet printed a line
 * "OK ..." (its detail) rather than "BAD ...". */
static bool snippet_verdict(const struct st_outcome *o, char *detail, size_t size)
{
	const char *ok = find_line(o->out, "OK"), *bad = find_line(o->out, "BAD");

	if (o->rc < 0 || o->status != SANDCELL_OK) {
		describe(o, detail, size);
		return false;
	}
	if (bad) {
		sanitize(detail, size, after_keyword(bad, 3));
		return false;
	}
	if (ok == NULL) {
		char tail[200];
		sanitize(tail, sizeof(tail), last_line(o->err));
		fmt(detail, size, "the snippet printed no verdict%s%s", tail[0] ? ": " : "", tail);
		return false;
	}
	sanitize(detail, size, after_keyword(ok, 2));
	return true;
}

/* Runs a snippet with default limits and records its own verdict. */
static void snippet_check(struct st *s, const char *gid, const char *name, const char *code,
			  const char *const *args, size_t n_args)
{
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	char detail[ST_DETAIL];
	bool pass;

	if (o == NULL) {
		add(s, gid, name, false, "out of memory");
		return;
	}
	base_config(s, &cfg, code, args, n_args);
	execute(s, &cfg, o);
	pass = snippet_verdict(o, detail, sizeof(detail));
	add(s, gid, name, pass, detail);
	free(o);
}

/* ------------------------------------------------------------ snippets */

#define PY_PRELUDE                                                                        \
	"import ctypes, errno, os, sys\n"                                                 \
	"libc = ctypes.CDLL(None, use_errno=True)\n"                                      \
	"def en(e):\n"                                                                    \
	"    return errno.errorcode.get(e, str(e))\n"                                     \
	"def sc(*a):\n"                                                                   \
	"    ctypes.set_errno(0)\n"                                                       \
	"    r = libc.syscall(*[ctypes.c_long(x) if isinstance(x, int) else x for x in a])\n" \
	"    return r, ctypes.get_errno()\n"

static const char py_shadow[] = PY_PRELUDE
	"res = []\n"
	"for p in ('/etc/shadow', '/etc/gshadow', '/proc/1/root/etc/shadow'):\n"
	"    try:\n"
	"        open(p, 'rb').read(1)\n"
	"        res.append(p + ' READ')\n"
	"    except OSError as e:\n"
	"        res.append(p + ' -> ' + en(e.errno))\n"
	"bad = [r for r in res if r.endswith(' READ')]\n"
	"print(('BAD ' + ', '.join(bad)) if bad else 'OK ' + ', '.join(res))\n";

static const char py_host_paths[] = PY_PRELUDE
	"paths = ['/home', '/root', '/var', '/srv', '/boot', '/sys', '/run', '/mnt', '/media',\n"
	"         '/etc/ssh', '/etc/sudoers', os.path.dirname(sys.argv[1]), sys.argv[1]]\n"
	"seen = [p for p in paths if os.path.lexists(p)]\n"
	"print(('BAD visible: ' + ' '.join(seen)) if seen else\n"
	"      'OK %d host paths absent (/home /root /var /sys ... and a fresh host canary file)' % len(paths))\n";

static const char py_fds[] = PY_PRELUDE
	"fds = {}\n"
	"for f in os.listdir('/proc/self/fd'):\n"
	"    try:\n"
	"        fds[int(f)] = os.readlink('/proc/self/fd/' + f)\n"
	"    except OSError:\n"
	"        pass\n"
	"extra = ['%d -> %s' % (k, v) for k, v in sorted(fds.items()) if k > 3]\n"
	"print(('BAD inherited: ' + ', '.join(extra)) if extra else\n"
	"      'OK only fds 0-3 open (%s)' % ', '.join(sorted(set(v.split(':')[0] for v in fds.values()))))\n";

static const char py_writes[] = PY_PRELUDE
	"exe = os.path.realpath(sys.executable)\n"
	"rt = os.path.dirname(exe)\n"
	"tries = (\n"
	"    ('append ' + exe, lambda: open(exe, 'ab').close()),\n"
	"    ('create in ' + rt, lambda: open(os.path.join(rt, 'sandcell-selftest-' + sys.argv[1]), 'xb').close()),\n"
	"    ('chmod ' + exe, lambda: os.chmod(exe, 0o4777)),\n"
	"    ('rename ' + exe, lambda: os.rename(exe, exe + '.x')),\n"
	"    ('open /input/in.txt for writing', lambda: open('/input/in.txt', 'r+b').close()),\n"
	"    ('truncate /input/in.txt', lambda: os.truncate('/input/in.txt', 0)),\n"
	"    ('unlink /input/in.txt', lambda: os.unlink('/input/in.txt')),\n"
	"    ('create in /input', lambda: open('/input/new', 'xb').close()),\n"
	"    ('append /etc/passwd', lambda: open('/etc/passwd', 'ab').close()),\n"
	")\n"
	"res = []\n"
	"for label, fn in tries:\n"
	"    try:\n"
	"        fn()\n"
	"        res.append((label, None))\n"
	"    except OSError as e:\n"
	"        res.append((label, en(e.errno)))\n"
	"bad = [l for l, e in res if e is None]\n"
	"print(('BAD succeeded: ' + '; '.join(bad)) if bad else\n"
	"      'OK %d writes to the runtime, the input and /etc refused (%s)' %\n"
	"      (len(res), ','.join(sorted(set(e for l, e in res)))))\n";

static const char py_caps[] = PY_PRELUDE
	"st = {}\n"
	"for l in open('/proc/self/status'):\n"
	"    k, _, v = l.partition(':')\n"
	"    st[k] = v.strip()\n"
	"caps = {k: int(st[k], 16) for k in ('CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb')}\n"
	"ok = not any(caps.values()) and st.get('NoNewPrivs') == '1' and st.get('Seccomp') == '2'\n"
	"print(('OK ' if ok else 'BAD ') + 'CapEff=%x CapPrm=%x CapBnd=%x CapAmb=%x NoNewPrivs=%s Seccomp=%s' %\n"
	"      (caps['CapEff'], caps['CapPrm'], caps['CapBnd'], caps['CapAmb'],\n"
	"       st.get('NoNewPrivs'), st.get('Seccomp')))\n";

/* argv[1..3] = SYS_unshare, SYS_clone, SYS_clone3.  A clone that
 * succeeded returns 0 in a child that must leave at once. */
static const char py_unshare[] = PY_PRELUDE
	"NEWUSER, NEWNS, SIGCHLD = 0x10000000, 0x20000, 17\n"
	"args = ctypes.create_string_buffer(88)\n"
	"ctypes.memmove(args, (ctypes.c_uint64 * 5)(NEWUSER, 0, 0, 0, SIGCHLD), 40)\n"
	"res = []\n"
	"for n, a in (('unshare(NEWUSER)', (int(sys.argv[1]), NEWUSER)),\n"
	"             ('unshare(NEWNS)', (int(sys.argv[1]), NEWNS)),\n"
	"             ('clone(NEWUSER)', (int(sys.argv[2]), NEWUSER | SIGCHLD, 0, 0, 0, 0)),\n"
	"             ('clone3(NEWUSER)', (int(sys.argv[3]), args, 88))):\n"
	"    r, e = sc(*a)\n"
	"    if r == 0 and n.startswith('clone'):\n"
	"        os._exit(0)\n"
	"    if r > 0 and n.startswith('clone'):\n"
	"        os.waitpid(r, 0)\n"
	"    res.append((n, r, e))\n"
	"bad = [n for n, r, e in res if r != -1]\n"
	"print(('BAD allowed: ' + ' '.join(bad)) if bad else\n"
	"      'OK ' + ', '.join('%s -> %s' % (n, en(e)) for n, r, e in res))\n";

static const char py_setuid[] = PY_PRELUDE
	"res = []\n"
	"for n, fn in (('setuid(0)', lambda: os.setuid(0)), ('setgid(0)', lambda: os.setgid(0)),\n"
	"              ('setresuid(0,0,0)', lambda: os.setresuid(0, 0, 0))):\n"
	"    try:\n"
	"        fn()\n"
	"        res.append(n + ' SUCCEEDED')\n"
	"    except OSError as e:\n"
	"        res.append(n + ' -> ' + en(e.errno))\n"
	"ok = not any(r.endswith('SUCCEEDED') for r in res) and 0 not in os.getresuid()\n"
	"print(('OK ' if ok else 'BAD ') + ', '.join(res) + '; uids %d/%d/%d' % os.getresuid())\n";

#if defined(__x86_64__)
static const char py_x32[] =
	"import ctypes\n"
	"libc = ctypes.CDLL(None, use_errno=True)\n"
	"print('REACHED', flush=True)\n"
	"r = libc.syscall(ctypes.c_long(0x40000000 | 39))\n"
	"print('BAD x32 getpid returned %d' % r, flush=True)\n";

/* push rbx; mov eax, 20 (i386 getpid); mov ebx, 0; int 0x80; pop rbx; ret */
static const char py_int80[] =
	"import ctypes, mmap\n"
	"m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
	"m.write(b'\\x53\\xb8\\x14\\x00\\x00\\x00\\xbb\\x00\\x00\\x00\\x00\\xcd\\x80\\x5b\\xc3')\n"
	"f = ctypes.CFUNCTYPE(ctypes.c_long)(ctypes.addressof(ctypes.c_char.from_buffer(m)))\n"
	"print('REACHED', flush=True)\n"
	"r = f()\n"
	"print('BAD int 0x80 getpid returned %d' % r, flush=True)\n";
#endif

/* argv[1..3] = SYS_io_uring_setup, SYS_bpf, SYS_ptrace */
static const char py_denied[] = PY_PRELUDE
	"buf = ctypes.create_string_buffer(256)\n"
	"res = [('io_uring_setup', sc(int(sys.argv[1]), 1, buf)),\n"
	"       ('bpf', sc(int(sys.argv[2]), 0, buf, 72)),\n"
	"       ('ptrace(TRACEME)', sc(int(sys.argv[3]), 0, 0, 0, 0))]\n"
	"bad = [n for n, (r, e) in res if r != -1 or e != errno.EPERM]\n"
	"print(('BAD ' if bad else 'OK ') + ', '.join('%s -> %s' % (n, 'returned %d' % r if r != -1 else en(e))\n"
	"                                             for n, (r, e) in res))\n";

/* argv[1] = TCP port of a listener on the host's 127.0.0.1 */
static const char py_tcp[] = PY_PRELUDE
	"import socket\n"
	"port = int(sys.argv[1])\n"
	"try:\n"
	"    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
	"    s.settimeout(3)\n"
	"    s.connect(('127.0.0.1', port))\n"
	"    print('BAD connected to the host listener on 127.0.0.1:%d' % port)\n"
	"except OSError as e:\n"
	"    print('OK connect to the host listener 127.0.0.1:%d -> %s' %\n"
	"          (port, en(e.errno) if e.errno else type(e).__name__))\n";

static const char py_families[] = PY_PRELUDE
	"res = []\n"
	"for n, f, t in (('AF_INET/STREAM', 2, 1), ('AF_INET/DGRAM', 2, 2), ('AF_INET6', 10, 1),\n"
	"                ('AF_NETLINK', 16, 3), ('AF_PACKET', 17, 3), ('AF_VSOCK', 40, 1)):\n"
	"    ctypes.set_errno(0)\n"
	"    fd = libc.socket(f, t, 0)\n"
	"    e = ctypes.get_errno()\n"
	"    if fd >= 0:\n"
	"        os.close(fd)\n"
	"    res.append((n, None if fd >= 0 else en(e)))\n"
	"bad = [n for n, e in res if e is None]\n"
	"print(('BAD opened: ' + ' '.join(bad)) if bad else\n"
	"      'OK %s refused (%s)' % ('/'.join(n.split('/')[0] for n, e in res[1:]),\n"
	"                            ','.join(sorted(set(e for n, e in res)))))\n";

/* argv[1] = abstract name of a unix listener on the host */
static const char py_abstract[] = PY_PRELUDE
	"import socket\n"
	"s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
	"try:\n"
	"    s.connect('\\0' + sys.argv[1])\n"
	"    print('BAD connected to the host abstract socket @' + sys.argv[1])\n"
	"except OSError as e:\n"
	"    print('OK connect to the host abstract socket -> ' + en(e.errno))\n";

static const char py_session[] = PY_PRELUDE
	"sid, pgrp = os.getsid(0), os.getpgrp()\n"
	"ttys = [fd for fd in (0, 1, 2) if os.isatty(fd)]\n"
	"try:\n"
	"    open('/dev/tty', 'rb').close()\n"
	"    dev_tty = 'OPENED'\n"
	"except OSError as e:\n"
	"    dev_tty = en(e.errno)\n"
	"ok = sid > 0 and pgrp > 0 and not ttys and dev_tty != 'OPENED'\n"
	"print(('OK ' if ok else 'BAD ') + 'session %d (0 = the caller\\'s), no tty on 0-2%s, /dev/tty -> %s' %\n"
	"      (sid, ' (tty: %s)' % ttys if ttys else '', dev_tty))\n";

static const char py_proc[] = PY_PRELUDE
	"pids = sorted(int(d) for d in os.listdir('/proc') if d.isdigit())\n"
	"me = os.getuid()\n"
	"foreign = []\n"
	"for p in pids:\n"
	"    try:\n"
	"        for l in open('/proc/%d/status' % p):\n"
	"            if l.startswith('Uid:') and int(l.split()[1]) != me:\n"
	"                foreign.append(p)\n"
	"    except OSError:\n"
	"        pass\n"
	"ok = len(pids) <= 4 and not foreign and os.getppid() == 1\n"
	"print(('OK ' if ok else 'BAD ') + '%d processes visible %s, all uid %d, parent pid %d%s' %\n"
	"      (len(pids), pids, me, os.getppid(), ' foreign: %s' % foreign if foreign else ''))\n";

/* argv[1] = the value of a variable the selftest set in its own env */
static const char py_env[] = PY_PRELUDE
	"tok = sys.argv[1]\n"
	"leaks = sorted(k for k, v in os.environ.items() if tok in v or tok in k)\n"
	"leaks += [k for k in ('SANDCELL_SELFTEST_SECRET', 'SSH_AUTH_SOCK', 'DISPLAY', 'XDG_RUNTIME_DIR',\n"
	"                      'DBUS_SESSION_BUS_ADDRESS', 'SUDO_USER', 'SANDCELL_CGROUP_PARENT',\n"
	"                      'OLDPWD', 'MAIL') if k in os.environ and k not in leaks]\n"
	"try:\n"
	"    if tok.encode() in open('/proc/1/environ', 'rb').read():\n"
	"        leaks.append('/proc/1/environ')\n"
	"except OSError:\n"
	"    pass\n"
	"print(('BAD host variables visible: ' + ' '.join(leaks)) if leaks else\n"
	"      'OK %d variables, none from the host (canary absent, /proc/1/environ closed)' % len(os.environ))\n";

/* The sandbox init is a fork of this process: its argv pages must have
 * been scrubbed, or /proc/1/cmdline shows the host command line. */
static const char py_argv[] = PY_PRELUDE
	"data = open('/proc/1/cmdline', 'rb').read()\n"
	"shown = data.replace(b'\\0', b' ').strip()\n"
	"print(('BAD /proc/1/cmdline shows the host command line: %r' % shown[:60]) if b'selftest' in data else\n"
	"      'OK /proc/1/cmdline holds no host command line (%d bytes, %d non-NUL)' %\n"
	"      (len(data), len(data) - data.count(0)))\n";

static const char py_memory[] =
	"print('START', flush=True)\n"
	"x = b'\\x01' * (512 << 20)\n"
	"print('BAD allocated 512 MiB under a 32 MiB limit', flush=True)\n";

/* argv[1] = the pids limit */
static const char py_pids[] = PY_PRELUDE
	"import time\n"
	"n, err = 0, None\n"
	"for i in range(200):\n"
	"    try:\n"
	"        pid = os.fork()\n"
	"    except OSError as e:\n"
	"        err = e.errno\n"
	"        break\n"
	"    if pid == 0:\n"
	"        time.sleep(60)\n"
	"        os._exit(0)\n"
	"    n += 1\n"
	"lim = int(sys.argv[1])\n"
	"print(('OK' if err is not None and n < lim else 'BAD') +\n"
	"      ' %d forks succeeded, the next -> %s (pids limit %d)' % (n, en(err) if err else 'none', lim),\n"
	"      flush=True)\n";

static const char py_sleep[] =
	"import time\n"
	"print('START', flush=True)\n"
	"time.sleep(60)\n"
	"print('BAD woke up', flush=True)\n";

static const char py_spin[] =
	"print('START', flush=True)\n"
	"while True:\n"
	"    pass\n";

/* argv[1] = a name for the daemon's comm (/proc/PID/comm on the host) */
static const char py_daemon[] = PY_PRELUDE
	"import time\n"
	"r, w = os.pipe()\n"
	"if os.fork() == 0:\n"
	"    os.setsid()\n"
	"    if os.fork() == 0:\n"
	"        libc.prctl(15, ctypes.c_char_p(sys.argv[1].encode()), 0, 0, 0)\n"
	"        os.write(w, b'x')\n"
	"        for fd in (0, 1, 2):\n"
	"            os.close(fd)\n"
	"        t = time.time()\n"
	"        while time.time() - t < 20:\n"
	"            time.sleep(0.05)\n"
	"        os._exit(0)\n"
	"    os._exit(0)\n"
	"os.read(r, 1)\n"
	"print('OK daemon started', flush=True)\n";

/* argv[1] = absolute host path of a secret file, argv[2] = token */
static const char py_symlinks[] = PY_PRELUDE
	"os.symlink(sys.argv[1], '/output/host-secret')\n"
	"os.symlink('/etc/passwd', '/output/passwd')\n"
	"os.symlink(os.path.dirname(sys.argv[1]), '/output/host-dir')\n"
	"os.mkdir('/output/d')\n"
	"os.symlink('../' * 16 + sys.argv[1].lstrip('/'), '/output/d/relative')\n"
	"with open('/output/plain.txt', 'w') as f:\n"
	"    f.write('plain ' + sys.argv[2])\n"
	"print('OK planted', flush=True)\n";

static const char py_marker[] =
	"open('/output/code-ran', 'w').write('ran')\n"
	"print('CODE-RAN', flush=True)\n";

/* argv[1] = token */
static const char py_leave[] = PY_PRELUDE
	"for d in ('/tmp/', '/dev/shm/', '/output/'):\n"
	"    with open(d + 'selftest-' + sys.argv[1], 'w') as f:\n"
	"        f.write(sys.argv[1])\n"
	"print('OK wrote /tmp, /dev/shm and /output files')\n";

static const char py_find[] = PY_PRELUDE
	"left = [d + 'selftest-' + sys.argv[1] for d in ('/tmp/', '/dev/shm/', '/output/')\n"
	"        if os.path.lexists(d + 'selftest-' + sys.argv[1])]\n"
	"print(('BAD still there: ' + ' '.join(left)) if left else\n"
	"      'OK files of the previous run absent (/tmp, /dev/shm, /output: %d entries)' %\n"
	"      sum(len(os.listdir(d)) for d in ('/tmp', '/dev/shm', '/output')))\n";

/* ------------------------------------------------------------ checks */

static void check_g1(struct st *s)
{
	char canary[PATH_MAX], text[64];
	const char *args[1] = { canary };

	snippet_check(s, "G1", "read /etc/shadow", py_shadow, NULL, 0);
	fmt(canary, sizeof(canary), "%s/canary", s->dir);
	fmt(text, sizeof(text), "canary %s\n", s->token);
	if (write_text(canary, text, 0644) < 0) {
		add(s, "G1", "host paths absent", false, "cannot create the host canary file");
		return;
	}
	snippet_check(s, "G1", "host paths absent", py_host_paths, args, 1);
	snippet_check(s, "G1", "no inherited host fds", py_fds, NULL, 0);
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mode == b->st_mode && a->st_uid == b->st_uid &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static void check_g2(struct st *s)
{
	struct sandcell_config cfg;
	struct sandcell_input in;
	struct st_outcome *o = malloc(sizeof(*o));
	struct stat py_before, py_after, in_before, in_after;
	char input[PATH_MAX], exe[PATH_MAX], created[PATH_MAX + 64], content[128], now[128];
	char detail[ST_DETAIL];
	const char *args[1] = { s->token };
	char *slash;
	bool pass, same;

	fmt(input, sizeof(input), "%s/input.txt", s->dir);
	fmt(content, sizeof(content), "sandcell selftest input %s\n", s->token);
	if (o == NULL || write_text(input, content, 0644) < 0 || realpath(s->python, exe) == NULL ||
	    stat(exe, &py_before) < 0 || stat(input, &in_before) < 0) {
		add(s, "G2", "writes to runtime and input refused", false, "cannot prepare the host files");
		add(s, "G2", "runtime and input unchanged (host view)", false, "cannot prepare the host files");
		free(o);
		return;
	}
	in.name = "in.txt";
	in.path = input;
	in.flags = 0;
	base_config(s, &cfg, py_writes, args, 1);
	cfg.inputs = &in;
	cfg.n_inputs = 1;
	execute(s, &cfg, o);
	pass = snippet_verdict(o, detail, sizeof(detail));
	add(s, "G2", "writes to runtime and input refused", pass, detail);

	slash = strrchr(exe, '/');
	fmt(created, sizeof(created), "%.*s/sandcell-selftest-%s", (int)(slash ? slash - exe : 0), exe,
	    s->token);
	same = stat(exe, &py_after) == 0 && same_file(&py_before, &py_after) &&
	       stat(input, &in_after) == 0 && same_file(&in_before, &in_after) &&
	       read_text(input, now, sizeof(now)) == 0 && strcmp(now, content) == 0 &&
	       access(created, F_OK) < 0 && errno == ENOENT;
	if (same)
		fmt(detail, sizeof(detail), "%s and the input byte-identical, nothing created beside them", exe);
	else
		fmt(detail, sizeof(detail), "%s or %s changed on the host", exe, input);
	/* Only meaningful if the code actually tried. */
	add(s, "G2", "runtime and input unchanged (host view)", same && o->started, same && !o->started ?
	    "the code never started" : detail);
	free(o);
}

static void check_g3(struct st *s)
{
	char nr[3][32], detail[ST_DETAIL];
	const char *args[3] = { nr[0], nr[1], nr[2] };
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	bool pass;

	snippet_check(s, "G3", "no capabilities, no_new_privs, seccomp", py_caps, NULL, 0);
	fmt(nr[0], sizeof(nr[0]), "%d", (int)SYS_unshare);
	fmt(nr[1], sizeof(nr[1]), "%d", (int)SYS_clone);
	fmt(nr[2], sizeof(nr[2]), "%d", (int)SYS_clone3);
	snippet_check(s, "G3", "unshare/clone/clone3(CLONE_NEWUSER) denied", py_unshare, args, 3);
	if (o == NULL) {
		add(s, "G3", "setuid(0) fails, never root", false, "out of memory");
		return;
	}
	base_config(s, &cfg, py_setuid, NULL, 0);
	execute(s, &cfg, o);
	pass = snippet_verdict(o, detail, sizeof(detail));
	/* Host side: the code's uid outside is never root. */
	if (pass && o->host_uid == 0) {
		pass = false;
		fmt(detail, sizeof(detail), "the sandbox uid maps to host uid 0");
	} else if (pass) {
		size_t l = strlen(detail);
		fmt(detail + l, sizeof(detail) - l, "; host uid %lld", o->host_uid);
	}
	add(s, "G3", "setuid(0) fails, never root", pass, detail);
	free(o);
}

/* A check whose code must be killed by one of the given signals after it
 * printed REACHED (so the kill is the probe's, not an earlier failure). */
static void killed_check(struct st *s, const char *gid, const char *name, const char *code,
			 int sig1, int sig2, const char *why2)
{
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	char detail[ST_DETAIL];
	bool pass = false;

	if (o == NULL) {
		add(s, gid, name, false, "out of memory");
		return;
	}
	base_config(s, &cfg, code, NULL, 0);
	execute(s, &cfg, o);
	if (find_line(o->out, "BAD")) {
		sanitize(detail, sizeof(detail), after_keyword(find_line(o->out, "BAD"), 3));
	} else if (o->rc == 0 && o->status == SANDCELL_SIGNALED && find_line(o->out, "REACHED") &&
		   (o->exit_code == 128 + sig1 || (sig2 && o->exit_code == 128 + sig2))) {
		pass = true;
		fmt(detail, sizeof(detail), "killed by SIG%s (exit %d)%s",
		    o->exit_code == 128 + sig1 ? sigabbrev_np(sig1) : sigabbrev_np(sig2), o->exit_code,
		    o->exit_code == 128 + sig1 ? "" : why2);
	} else {
		describe(o, detail, sizeof(detail));
	}
	add(s, gid, name, pass, detail);
	free(o);
}

static void check_g4(struct st *s)
{
	char nr[3][32];
	const char *args[3] = { nr[0], nr[1], nr[2] };

#if defined(__x86_64__)
	killed_check(s, "G4", "x32 syscall killed", py_x32, SIGSYS, 0, "");
	/* A kernel without the i386 ABI faults before any syscall runs. */
	killed_check(s, "G4", "i386 int 0x80 killed", py_int80, SIGSYS, SIGSEGV,
		     " (the i386 ABI is disabled in this kernel)");
#endif
	fmt(nr[0], sizeof(nr[0]), "%d", (int)SYS_io_uring_setup);
	fmt(nr[1], sizeof(nr[1]), "%d", (int)SYS_bpf);
	fmt(nr[2], sizeof(nr[2]), "%d", (int)SYS_ptrace);
	snippet_check(s, "G4", "io_uring_setup, bpf, ptrace denied", py_denied, args, 3);
}

/* After the run nobody may have connected: accept() finds nothing. */
static bool nobody_connected(int fd)
{
	int c;

	if (fd < 0)
		return true;
	c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c >= 0) {
		close(c);
		return false;
	}
	return errno == EAGAIN || errno == EWOULDBLOCK;
}

static void listener_check(struct st *s, const char *name, const char *code, const char *arg, int fd)
{
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	char detail[ST_DETAIL];
	const char *args[1] = { arg };
	bool pass;

	if (o == NULL) {
		add(s, "G5", name, false, "out of memory");
		return;
	}
	base_config(s, &cfg, code, args, 1);
	execute(s, &cfg, o);
	pass = snippet_verdict(o, detail, sizeof(detail));
	if (!nobody_connected(fd)) {
		pass = false;
		fmt(detail, sizeof(detail), "the host listener accepted a connection from the sandbox");
	}
	add(s, "G5", name, pass, detail);
	free(o);
}

static void check_g5(struct st *s)
{
	struct sockaddr_in sin;
	struct sockaddr_un sun;
	socklen_t len = sizeof(sin);
	char port[16] = "1", name[64];
	int tcp, ux;
	socklen_t ulen;

	/* A listener on the host's loopback: the sandbox's 127.0.0.1 is its
	 * own (or it has no AF_INET at all). */
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	tcp = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (tcp >= 0 && (bind(tcp, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(tcp, 4) < 0 ||
			 getsockname(tcp, (struct sockaddr *)&sin, &len) < 0)) {
		close(tcp);
		tcp = -1;
	}
	if (tcp >= 0)
		fmt(port, sizeof(port), "%u", (unsigned)ntohs(sin.sin_port));
	listener_check(s, "TCP connect to a host listener fails", py_tcp, port, tcp);
	if (tcp >= 0)
		close(tcp);

	snippet_check(s, "G5", "AF_INET, AF_INET6, AF_NETLINK, AF_PACKET denied", py_families, NULL, 0);

	/* An abstract unix socket on the host (abstract names are per network
	 * namespace, and Landlock ABI 6 scopes them as well). */
	fmt(name, sizeof(name), "sandcell-selftest-%s", s->token);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path + 1, name, strlen(name));
	ulen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	ux = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ux >= 0 && (bind(ux, (struct sockaddr *)&sun, ulen) < 0 || listen(ux, 4) < 0)) {
		close(ux);
		ux = -1;
	}
	if (ux < 0) {
		add(s, "G5", "host abstract unix socket unreachable", false,
		    "cannot create the host abstract socket");
		return;
	}
	listener_check(s, "host abstract unix socket unreachable", py_abstract, name, ux);
	close(ux);
	snippet_check(s, "G5", "own session, no terminal", py_session, NULL, 0);
}

static void check_g6(struct st *s)
{
	const char *args[1] = { s->token };

	snippet_check(s, "G6", "/proc shows only the sandbox", py_proc, NULL, 0);
	setenv("SANDCELL_SELFTEST_SECRET", s->token, 1);
	snippet_check(s, "G6", "no host environment variables", py_env, args, 1);
	unsetenv("SANDCELL_SELFTEST_SECRET");
	snippet_check(s, "G6", "supervisor command line hidden", py_argv, NULL, 0);
}

/* A check that a limit stops the run with the documented status. */
static void limit_check(struct st *s, const char *name, const struct sandcell_config *cfg,
			enum sandcell_status want, int want_exit)
{
	struct st_outcome *o = malloc(sizeof(*o));
	char detail[ST_DETAIL];
	bool pass;

	if (o == NULL) {
		add(s, "G7", name, false, "out of memory");
		return;
	}
	execute(s, cfg, o);
	pass = o->rc == 0 && o->status == want && o->exit_code == want_exit &&
	       find_line(o->out, "START") && !find_line(o->out, "BAD");
	if (pass)
		fmt(detail, sizeof(detail), "status %s, exit %d after %.1f s", sandcell_status_name(o->status),
		    o->exit_code, o->secs);
	else if (find_line(o->out, "BAD"))
		sanitize(detail, sizeof(detail), after_keyword(find_line(o->out, "BAD"), 3));
	else
		describe(o, detail, sizeof(detail));
	add(s, "G7", name, pass, detail);
	free(o);
}

static void check_g7(struct st *s)
{
	struct sandcell_config cfg;
	char lim[16];
	const char *args[1] = { lim };

	base_config(s, &cfg, py_memory, NULL, 0);
	cfg.limits.memory = 32u << 20;
	limit_check(s, "memory limit -> status memory", &cfg, SANDCELL_MEMORY, SANDCELL_EXIT_MEMORY);

	/* The fork bomb's verdict is its own (the run ends normally). */
	base_config(s, &cfg, py_pids, args, 1);
	cfg.limits.pids = 16;
	fmt(lim, sizeof(lim), "%u", 16u);
	{
		struct st_outcome *o = malloc(sizeof(*o));
		char detail[ST_DETAIL];
		bool pass = false;
		if (o) {
			execute(s, &cfg, o);
			pass = snippet_verdict(o, detail, sizeof(detail));
		} else {
			fmt(detail, sizeof(detail), "out of memory");
		}
		add(s, "G7", "pids limit bounds a fork bomb", pass, detail);
		free(o);
	}

	base_config(s, &cfg, py_spin, NULL, 0);
	cfg.limits.cpu_sec = 0.5;
	cfg.limits.wall_sec = 60; /* CPU, not wall, must end it, even on a busy host */
	limit_check(s, "CPU limit -> status cpu-time", &cfg, SANDCELL_CPU_TIME, SANDCELL_EXIT_CPU);

	base_config(s, &cfg, py_sleep, NULL, 0);
	cfg.limits.wall_sec = 1;
	limit_check(s, "wall limit -> status timeout", &cfg, SANDCELL_TIMEOUT, SANDCELL_EXIT_TIMEOUT);
}

/* Host pids whose comm is name (the daemon's). */
static size_t find_comm(const char *name, pid_t *pids, size_t max)
{
	char path[64], comm[64];
	size_t n = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL && n < max) {
		char *nl;
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		fmt(path, sizeof(path), "/proc/%s/comm", de->d_name);
		if (read_text(path, comm, sizeof(comm)) < 0)
			continue;
		nl = strchr(comm, '\n');
		if (nl)
			*nl = '\0';
		if (strcmp(comm, name) == 0)
			pids[n++] = (pid_t)atoi(de->d_name);
	}
	closedir(d);
	return n;
}

static void check_g8(struct st *s)
{
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	char name[16], detail[ST_DETAIL];
	const char *args[1] = { name };
	pid_t left[8];
	size_t n;
	bool pass;

	/* comm holds 15 bytes: "sc" + 12 hex digits of the token. */
	fmt(name, sizeof(name), "sc%.12s", s->token);
	if (o == NULL) {
		add(s, "G8", "double-forked daemon dies with the run", false, "out of memory");
		return;
	}
	base_config(s, &cfg, py_daemon, args, 1);
	execute(s, &cfg, o);
	pass = snippet_verdict(o, detail, sizeof(detail));
	n = find_comm(name, left, 8);
	if (n > 0) {
		for (size_t i = 0; i < n; i++)
			kill(left[i], SIGKILL);
		pass = false;
		fmt(detail, sizeof(detail), "the daemon (host pid %d) survived the run; the selftest killed it",
		    (int)left[0]);
	} else if (pass) {
		fmt(detail, sizeof(detail), "setsid + double fork: no process named %s on the host after the run",
		    name);
	}
	add(s, "G8", "double-forked daemon dies with the run", pass, detail);
	free(o);
}

/* Walks the collected tree: only regular files and directories, and none
 * of them carries the host secret or passwd contents. */
struct walk {
	const char *token;
	int symlinks, others, leaks, plain_ok;
};

static struct walk *walk_state;

static int walk_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	char buf[256];

	(void)ftw;
	if (flag == FTW_SL || flag == FTW_SLN || S_ISLNK(sb->st_mode)) {
		walk_state->symlinks++;
	} else if (flag == FTW_F && S_ISREG(sb->st_mode)) {
		if (read_text(path, buf, sizeof(buf)) == 0) {
			if (strstr(buf, "SECRET") || strstr(buf, "root:"))
				walk_state->leaks++;
			if (strncmp(buf, "plain ", 6) == 0 && strcmp(buf + 6, walk_state->token) == 0)
				walk_state->plain_ok = 1;
		}
	} else if (flag != FTW_D && flag != FTW_DP) {
		walk_state->others++;
	}
	return 0;
}

static void check_g9(struct st *s)
{
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	struct walk w = { s->token, 0, 0, 0, 0 };
	char secret[PATH_MAX], out[PATH_MAX], text[64], detail[ST_DETAIL];
	const char *args[2] = { secret, s->token };
	bool pass;

	fmt(secret, sizeof(secret), "%s/secret.txt", s->dir);
	fmt(out, sizeof(out), "%s/out", s->dir);
	fmt(text, sizeof(text), "SECRET %s\n", s->token);
	if (o == NULL || write_text(secret, text, 0644) < 0) {
		add(s, "G9", "/output symlinks not followed", false, "cannot create the host secret file");
		free(o);
		return;
	}
	base_config(s, &cfg, py_symlinks, args, 2);
	cfg.output_dir = out;
	execute(s, &cfg, o);
	pass = snippet_verdict(o, detail, sizeof(detail));
	walk_state = &w;
	nftw(out, walk_entry, 16, FTW_PHYS);
	walk_state = NULL;
	if (w.symlinks || w.others || w.leaks) {
		pass = false;
		fmt(detail, sizeof(detail), "collected %d symlinks, %d special files, %d copies of host files",
		    w.symlinks, w.others, w.leaks);
	} else if (pass && !w.plain_ok) {
		pass = false;
		fmt(detail, sizeof(detail), "the plain file was not collected (collector not exercised)");
	} else if (pass) {
		fmt(detail, sizeof(detail), "plain file collected; 4 symlinks (host file, host dir, /etc/passwd, ../..) "
		    "not followed, %zu skipped", o->n_skipped);
	}
	add(s, "G9", "/output symlinks not followed", pass, detail);
	free(o);
}

static void check_g10(struct st *s, const struct st_outcome *base)
{
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	char out[PATH_MAX], marker[PATH_MAX + 16], detail[ST_DETAIL], err[160];
	bool pass;

	pass = base->rc == 0 && base->status == SANDCELL_OK && strcmp(base->mode, "full") == 0 &&
	       base->n_not_held == 0;
	if (pass)
		fmt(detail, sizeof(detail), "mode full, nothing reported as not held; Landlock ABI %d, cgroup %s",
		    base->landlock_abi, base->cgroup);
	else
		fmt(detail, sizeof(detail), "mode %s, %zu guarantees reported as not held", base->mode,
		    base->n_not_held);
	add(s, "G10", "full isolation in force", pass, detail);

	if (o == NULL) {
		add(s, "G10", "a failing layer stops the run", false, "out of memory");
		return;
	}
	/* A cgroup parent below a regular file (every hierarchy's root has a
	 * cgroup.procs file): mkdir fails with ENOTDIR for root and for
	 * users alike, and nothing is created. */
	fmt(out, sizeof(out), "%s/g10-out", s->dir);
	fmt(marker, sizeof(marker), "%s/code-ran", out);
	base_config(s, &cfg, py_marker, NULL, 0);
	cfg.cgroup_parent = "cgroup.procs/sandcell-selftest";
	cfg.output_dir = out;
	execute(s, &cfg, o);
	pass = o->rc == 0 && o->status == SANDCELL_SANDBOX_ERROR &&
	       o->exit_code == SANDCELL_EXIT_SANDBOX && !o->started && !strstr(o->out, "CODE-RAN") &&
	       access(marker, F_OK) < 0;
	sanitize(err, sizeof(err), o->error);
	if (strstr(err, "; "))
		*strstr(err, "; ") = '\0';
	if (pass)
		fmt(detail, sizeof(detail), "cgroup creation made to fail: sandbox-error, exit 126, code never "
		    "started (%s)", err);
	else if (o->started || strstr(o->out, "CODE-RAN"))
		fmt(detail, sizeof(detail), "THE CODE RAN although the cgroup layer failed (status %s)",
		    sandcell_status_name(o->status));
	else
		describe(o, detail, sizeof(detail));
	add(s, "G10", "a failing layer stops the run", pass, detail);
	free(o);
}

static void check_g11(struct st *s)
{
	struct sandcell_config cfg;
	struct st_outcome *o = malloc(sizeof(*o));
	char detail[ST_DETAIL], host[PATH_MAX];
	const char *args[1] = { s->token };
	bool pass;

	if (o == NULL) {
		add(s, "G11", "files of a run gone in the next run", false, "out of memory");
		return;
	}
	base_config(s, &cfg, py_leave, args, 1);
	execute(s, &cfg, o);
	pass = snippet_verdict(o, detail, sizeof(detail));
	if (pass) {
		base_config(s, &cfg, py_find, args, 1);
		execute(s, &cfg, o);
		pass = snippet_verdict(o, detail, sizeof(detail));
	}
	/* The first run's /tmp was never the host's. */
	fmt(host, sizeof(host), "/tmp/selftest-%s", s->token);
	if (pass && access(host, F_OK) == 0) {
		pass = false;
		fmt(detail, sizeof(detail), "%s appeared on the host", host);
	}
	add(s, "G11", "files of a run gone in the next run", pass, detail);
	free(o);
}

/* ------------------------------------------------------------ output */

static void print_table(const struct st *s, const struct st_outcome *base, size_t failed, double secs)
{
	size_t w = 5, i;

	for (i = 0; i < s->n; i++)
		if (strlen(s->checks[i].name) > w)
			w = strlen(s->checks[i].name);
	printf("sandcell selftest: mode %s, Landlock ABI %d, cgroup %s, sandbox host uid %lld\n\n",
	       base->mode, base->landlock_abi, base->cgroup, base->host_uid);
	printf("%-4s | %-*s | %-6s | %s\n", "G", (int)w, "check", "result", "detail");
	printf("-----+-%.*s-+--------+-------\n", (int)w,
	       "------------------------------------------------------------------------");
	for (i = 0; i < s->n; i++)
		printf("%-4s | %-*s | %-6s | %s\n", s->checks[i].gid, (int)w, s->checks[i].name,
		       s->checks[i].pass ? "PASS" : "FAIL", s->checks[i].detail);
	printf("\n%zu checks: %zu passed, %zu failed (%.1f s)\n", s->n, s->n - failed, failed, secs);
	if (failed)
		printf("sandcell selftest: FAILED: confinement does not fully hold on this host\n");
}

static int print_json(const struct st *s, const struct st_outcome *base, size_t failed, double secs,
		      int code, const char *error)
{
	json_t *doc = json_object(), *checks = json_array();
	char *text;
	size_t i;

	for (i = 0; i < s->n; i++)
		json_array_append_new(checks, json_pack("{s:s, s:s, s:s, s:s}", "guarantee", s->checks[i].gid,
							"check", s->checks[i].name, "result",
							s->checks[i].pass ? "PASS" : "FAIL", "detail",
							s->checks[i].detail));
	json_object_set_new(doc, "schema", json_integer(1));
	json_object_set_new(doc, "ok", json_boolean(code == 0));
	json_object_set_new(doc, "exit_code", json_integer(code));
	json_object_set_new(doc, "error", error ? json_string(error) : json_null());
	json_object_set_new(doc, "mode", json_string(base->mode));
	json_object_set_new(doc, "landlock_abi", json_integer(base->landlock_abi));
	json_object_set_new(doc, "cgroup", json_string(base->cgroup));
	json_object_set_new(doc, "host_uid", json_integer(base->host_uid));
	json_object_set_new(doc, "passed", json_integer((json_int_t)(s->n - failed)));
	json_object_set_new(doc, "failed", json_integer((json_int_t)failed));
	json_object_set_new(doc, "seconds", json_real(secs));
	json_object_set_new(doc, "checks", checks);
	text = json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	if (text == NULL)
		return -1;
	puts(text);
	free(text);
	return fflush(stdout);
}

static const char selftest_usage[] =
	"Usage: sandcell selftest [--json] [--python PATH] [--cgroup-parent PATH]\n"
	"Runs a representative set of attacks (at least one per guarantee G1..G11 of\n"
	"docs/SECURITY.md) in the sandbox on this host and prints one row per check.\n"
	"Exit status: 0 all checks passed, 1 a check failed, 126 the sandbox cannot\n"
	"start on this host.  $SANDCELL_CGROUP_PARENT is honoured as by `run`.\n";

static int usage_error(const char *fmt_, const char *arg)
{
	fputs("sandcell: selftest: ", stderr);
	fprintf(stderr, fmt_, arg);
	fputs("\nTry 'sandcell selftest --help'.\n", stderr);
	return SANDCELL_EXIT_USAGE;
}

/* "--opt VALUE" or "--opt=VALUE"; advances *i past a separate VALUE. */
static const char *opt_value(int argc, char **argv, int *i, const char *opt, bool *bad)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*bad = true;
		return NULL;
	}
	return argv[++*i];
}

int sandcell_selftest(int argc, char **argv)
{
	struct st *s = calloc(1, sizeof(*s));
	struct st_outcome *base = calloc(1, sizeof(*base));
	struct sandcell_config cfg;
	const char *tmp = getenv("TMPDIR"), *env_parent = getenv("SANDCELL_CGROUP_PARENT");
	unsigned char rnd[8];
	bool json = false;
	size_t failed = 0, i;
	double t0 = now_sec();
	int code, a;

	if (s == NULL || base == NULL) {
		free(s);
		free(base);
		fputs("sandcell: selftest: out of memory\n", stderr);
		return SANDCELL_EXIT_SANDBOX;
	}
	s->python = "/usr/bin/python3";
	s->out_fd = s->err_fd = -1;
	if (env_parent && *env_parent)
		s->cgroup_parent = env_parent;
	for (a = 1; a < argc; a++) {
		bool bad = false;
		const char *v;
		if (strcmp(argv[a], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
			fputs(selftest_usage, stdout);
			free(s);
			free(base);
			return 0;
		} else if ((v = opt_value(argc, argv, &a, "--python", &bad)) != NULL) {
			s->python = v;
		} else if ((v = opt_value(argc, argv, &a, "--cgroup-parent", &bad)) != NULL) {
			s->cgroup_parent = v;
		} else {
			code = usage_error(bad ? "%s needs a value" : "unknown argument '%s'", argv[a]);
			free(s);
			free(base);
			return code;
		}
	}

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		unsigned long long x = (unsigned long long)getpid() ^ (unsigned long long)(now_sec() * 1e9);
		memcpy(rnd, &x, sizeof(rnd));
	}
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(s->token + 2 * i, 3, "%02x", rnd[i]);
	fmt(s->dir, sizeof(s->dir), "%s/sandcell-selftest-XXXXXX",
	    tmp && tmp[0] == '/' && strlen(tmp) < 512 ? tmp : "/tmp");
	s->out_fd = memfd_create("sandcell-selftest-stdout", MFD_CLOEXEC);
	s->err_fd = memfd_create("sandcell-selftest-stderr", MFD_CLOEXEC);
	if (s->out_fd < 0 || s->err_fd < 0 || mkdtemp(s->dir) == NULL) {
		fprintf(stderr, "sandcell: selftest: cannot prepare (%s)\n", strerror(errno));
		code = SANDCELL_EXIT_SANDBOX;
		s->dir[0] = '\0';
		goto out;
	}

	/* Can the sandbox start here at all? */
	base_config(s, &cfg, "print('OK sandcell selftest')\n", NULL, 0);
	execute(s, &cfg, base);
	if (base->rc < 0 || !base->started) {
		char err[512];
		sanitize(err, sizeof(err), base->error[0] ? base->error : "the code never started");
		code = SANDCELL_EXIT_SANDBOX;
		if (json)
			print_json(s, base, 0, now_sec() - t0, code, err);
		fprintf(stderr, "sandcell: selftest: the sandbox cannot start on this host: %s\n", err);
		goto out;
	}

	check_g1(s);
	check_g2(s);
	check_g3(s);
	check_g4(s);
	check_g5(s);
	check_g6(s);
	check_g7(s);
	check_g8(s);
	check_g9(s);
	check_g10(s, base);
	check_g11(s);

	for (i = 0; i < s->n; i++)
		if (!s->checks[i].pass)
			failed++;
	code = failed ? 1 : 0;
	if (json) {
		if (print_json(s, base, failed, now_sec() - t0, code, NULL) < 0)
			code = SANDCELL_EXIT_SANDBOX;
	} else {
		print_table(s, base, failed, now_sec() - t0);
		if (fflush(stdout) != 0)
			code = SANDCELL_EXIT_SANDBOX;
	}
out:
	if (s->dir[0])
		rm_tree(s->dir);
	if (s->out_fd >= 0)
		close(s->out_fd);
	if (s->err_fd >= 0)
		close(s->err_fd);
	free(s);
	free(base);
	return code;
}
