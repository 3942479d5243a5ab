/*
 * sandcell-warm: the warm server behind `sandcell serve`.
 *
 * One process holds a template interpreter (CPython embedded, with numpy,
 * pandas and matplotlib already imported).  It never runs user code: for
 * each request it forks a worker, and the worker runs the request through
 * the very same sandcell_run() as a cold run, with one difference: where a
 * cold run would execve python, the sandboxed child (by then in its own
 * namespaces, cgroup, uid, Landlock domain and seccomp filter, with its own
 * /tmp, /input and /output) runs the code in the interpreter it inherited.
 *
 * Trade-offs (docs/warm.md): every child shares the template's memory
 * layout (ASLR), so the template re-executes itself after --respawn-runs
 * runs or --respawn-seconds; BLAS pools are pinned to one thread before
 * the imports, so the template has a single thread when it forks; RNGs are
 * reseeded in every child.
 *
 * And since a run inherits memory instead of exec'ing, nothing of its
 * request, of other requests, of the server's command line or of the host
 * may be in that memory when the code starts (G6): see "What a run's
 * memory holds" below.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "internal.h"
#include "server.h"
#include "table.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/capability.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_SPARES 16
#define REQUEST_TIMEOUT_MS 10000

struct opts {
	const char *socket;
	const char *python;
	const char *preload;
	long slots, queue, respawn_runs, spares, max_sessions;
	double queue_timeout, respawn_seconds;
};

/* A worker forked ahead of time: it waits on sock for the connection of
 * the request it will serve, so the template's fork is off the request
 * path.  It is an exact copy of the idle template (which never runs user
 * code), so what it serves later is what a fresh fork would have served. */
struct spare {
	pid_t pid;
	int pidfd;
	int sock; /* the template's end of a SOCK_SEQPACKET pair */
};


/* The template's own copies of its command line: host paths (the socket)
 * that no worker needs, so every worker frees them (drop_template_args). */
static char *self_path, **respawn_argv, *socket_path;
static int inherited_fd = -1;

static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("sandcell serve: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * The template's heap on transparent huge pages.  Every run copies the
 * template three times (spare worker, sandbox init, code); a fork copies
 * one page-table entry per 4 KiB page, and an exit tears them down, so a
 * heap of ~60 MiB in 4 KiB pages (pymalloc's arenas, one mapping each)
 * costs ~10 ms of CPU per fork and exit here, and a heap on 2 MiB pages a
 * PMD per 2 MiB (docs/warm.md, Performance).  So, when the kernel offers
 * THP (enabled: always or madvise), the template's Python objects come
 * from glibc's malloc (PYMEM_ALLOCATOR_MALLOC, not pymalloc's arenas),
 * and glibc's malloc is tuned before it starts: hugetlb=1 madvises its
 * heap for THP and aligns its growth to 2 MiB, and a 32 MiB mmap
 * threshold keeps large blocks (numpy's) in that heap rather than in
 * mappings of their own.  Tunables are read by the dynamic loader only,
 * so the template re-executes itself once with GLIBC_TUNABLES set (a
 * respawn sets it again); the variable is gone (clearenv in main) before
 * the interpreter starts, so neither it nor PYTHONMALLOC reaches a run's
 * environment.  What a run can observe is the allocator itself
 * (sys.getallocatedblocks() is 0 under malloc), documented.
 */
static const char heap_tunables[] = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432";
static bool heap_thp;

/* THP is available to an madvise()d heap: "always" or "madvise" is the
 * bracketed mode. */
static bool thp_available(void)
{
	char buf[128] = "";
	int fd = open("/sys/kernel/mm/transparent_hugepage/enabled", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "[always]") != NULL || strstr(buf, "[madvise]") != NULL;
}

/* Called first in main: re-executes the template with heap_tunables
 * unless they are in force (a respawn sets them, see respawn()).  Returns
 * only if no re-exec is needed or possible: without THP, or if the
 * tunables are already set, the template keeps what it has (pymalloc
 * without them: a slower template, never a wrong one). */
static void heap_on_huge_pages(char **argv)
{
	const char *t = getenv("GLIBC_TUNABLES");
	char self[4096];
	ssize_t n;

	if (!thp_available())
		return;
	if (t != NULL && strcmp(t, heap_tunables) == 0) {
		heap_thp = true;
		return;
	}
	/* A loader that rewrote the variable would bring us back here: one
	 * re-exec at most (the marker), then the template starts as it is. */
	if (getenv("SANDCELL_WARM_REEXEC") != NULL)
		return;
	if (setenv("GLIBC_TUNABLES", heap_tunables, 1) < 0 || setenv("SANDCELL_WARM_REEXEC", "1", 1) < 0)
		return;
	/* The binary's path, not /proc/self/exe: the process keeps its name
	 * (comm) for ps and the logs. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		execv(self, argv);
	}
	logmsg("cannot re-execute with the heap on huge pages: %s (continuing without)", strerror(errno));
	unsetenv("GLIBC_TUNABLES");
}

/* ---- What a run's memory holds ----
 *
 * A run is the code forked from the sandbox init, cloned from the worker
 * that read the request, forked from the template: without an exec, all
 * their memory is the code's.  What must not be in it (docs/warm.md):
 *
 * - the request (its JSON text, the jansson tree, paths, values): workers
 *   zero every heap block they free (free() and realloc() below replace
 *   glibc's for every library of the process: jansson, libc's own stdio
 *   and directory buffers, CPython); the request still parsed when the
 *   code starts is freed then (warm_exec); a request is served on a stack
 *   of its own (request_stack), which the code unmaps before it starts;
 * - the server's command line and environment: the original pages are
 *   zeroed at startup (main), the copies the template keeps are freed in
 *   every worker (drop_template_args), and the template zeroes the dead
 *   part of its main stack before it serves (wipe_dead_stack);
 * - the host as the template saw it while importing: it imports in the
 *   sandbox's view instead (template_view_enter).
 */

/* Set in every worker (and so in the sandbox init and in the code until
 * it starts): freed heap blocks are zeroed. */
bool scrub_heap;

void *__libc_malloc(size_t n);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

void free(void *p)
{
	if (p != NULL && scrub_heap)
		explicit_bzero(p, malloc_usable_size(p));
	__libc_free(p);
}

/* glibc's realloc moves or shrinks a block without calling free(): while
 * scrubbing, a copy, so the old bytes go through free() above. */
void *realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!scrub_heap || p == NULL)
		return __libc_realloc(p, n);
	if (n == 0) {
		free(p);
		return NULL;
	}
	q = __libc_malloc(n);
	if (q == NULL)
		return NULL;
	old = malloc_usable_size(p);
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

/* In a worker: the template's copies of its command line. */
static void drop_template_args(void)
{
	size_t k;

	for (k = 0; respawn_argv && respawn_argv[k]; k++)
		free(respawn_argv[k]);
	free(respawn_argv);
	free(self_path);
	free(socket_path);
	respawn_argv = NULL;
	self_path = socket_path = NULL;
}

/* The request being served, until the code frees it (warm_exec). */
static struct sc_request *live_request;

/*
 * Stacks.  A worker serves its request on request_stack (8 MiB, mapped
 * once by the template and never touched by it, so each worker writes its
 * own copy-on-write pages), entered with swapcontext from the main stack.
 * The sandbox init and the code are copies of the worker running on it.
 * The code switches back to the main stack, below the point where its
 * worker left it, and unmaps request_stack: every frame that held the
 * request is gone.  What is below that point on the main stack is the
 * template's own dead frames, zeroed once at startup (wipe_dead_stack)
 * and since then holding only the template's loop.
 */
#define REQUEST_STACK (8u << 20)
static char *request_stack; /* above one guard page */
static size_t page_size;
static ucontext_t main_ctx, side_ctx;

/* The stack pointer a ucontext saved (another architecture fails to
 * compile here, as it should). */
static char *ctx_sp(const ucontext_t *c)
{
#if defined(__aarch64__)
	return (char *)c->uc_mcontext.sp;
#else
	return (char *)c->uc_mcontext.gregs[REG_RSP];
#endif
}

static int map_request_stack(void)
{
	char *m;

	page_size = (size_t)sysconf(_SC_PAGESIZE);
	m = mmap(NULL, REQUEST_STACK + page_size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (m == MAP_FAILED || mprotect(m, page_size, PROT_NONE) < 0)
		return -1;
	request_stack = m + page_size;
	return 0;
}

/* Runs fn on request_stack; returns (on the main stack) when something
 * switches back to main_ctx. */
static int on_request_stack(void (*fn)(void))
{
	if (getcontext(&side_ctx) < 0)
		return -1;
	side_ctx.uc_stack.ss_sp = request_stack;
	side_ctx.uc_stack.ss_size = REQUEST_STACK;
	side_ctx.uc_link = NULL;
	makecontext(&side_ctx, fn, 0);
	return swapcontext(&main_ctx, &side_ctx);
}

/* The lowest address of the main stack (which only grows down). */
static char *main_stack_floor(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char *line = NULL, *floor = NULL;
	size_t cap = 0;
	uintptr_t here = (uintptr_t)&f, lo, hi;

	while (f && getline(&line, &cap, f) > 0)
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2 && lo <= here && here < hi) {
			floor = (char *)lo;
			break;
		}
	free(line);
	if (f)
		fclose(f);
	return floor;
}

static char *dead_floor;

static void wipe_entry(void)
{
	char *top = ctx_sp(&main_ctx);
	char *page = (char *)((uintptr_t)top & ~(uintptr_t)(page_size - 1));

	/* Whole pages are dropped (zero when touched again), the partial
	 * one is cleared. */
	if (page > dead_floor)
		madvise(dead_floor, (size_t)(page - dead_floor), MADV_DONTNEED);
	explicit_bzero(page, (size_t)(top - page));
	setcontext(&main_ctx);
	_exit(SANDCELL_EXIT_SANDBOX);
}

/* Zeroes the main stack below the caller's frame: startup's dead frames
 * hold the command line (getopt, the socket path given to bind, the
 * "ready" line formatted by stdio).  The zeroing runs on request_stack,
 * which is then dropped again, untouched for the workers. */
static int wipe_dead_stack(void)
{
	dead_floor = main_stack_floor();
	if (dead_floor == NULL || on_request_stack(wipe_entry) < 0)
		return -1;
	return madvise(request_stack, REQUEST_STACK, MADV_DONTNEED);
}

/*
 * The template's view.  What the template computes while it imports (the
 * uname cache of platform, matplotlib's config and cache directories,
 * os.environ, the locale) every run inherits, and freed copies would stay
 * in its memory even if a run reset the caches.  So it imports seeing
 * what a sandbox sees: the sandbox's fixed environment (HOME=/tmp,
 * MPLCONFIGDIR=/tmp/.matplotlib, ...), an empty private tmpfs on /tmp as
 * its cwd, and a uts namespace of its own named "sandcell".  The host name
 * never enters it, and nothing it writes or reads goes through the host's
 * shared /tmp (where anyone could plant a /tmp/.matplotlib/matplotlibrc).
 *
 * As root: private mount and uts namespaces; the mount namespace is left
 * again after the imports (setns back to the host's), so the server sees
 * host mounts as before.  Unprivileged: a user namespace mapping the
 * server's own uid and gid to themselves gives the rights; a user
 * namespace cannot be left, so the template stays in it (in a copy of the
 * host's mounts, receiving the host's mount events when / is shared), and
 * keeps CAP_SYS_ADMIN in it as an ambient capability so that a respawn
 * can mount its private /tmp again.  The sandbox init drops every
 * capability, ambient ones included (caps.c).
 */
static int host_mnt_fd = -1;

static int write_text(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int keep_sys_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].inheritable |= CAP_TO_MASK(CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &h, d) < 0)
		return -1;
	return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0);
}

static int template_view_enter(bool respawned, const char **step)
{
	if (geteuid() == 0) {
		*step = "unshare(CLONE_NEWNS|CLONE_NEWUTS)";
		host_mnt_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
		if (host_mnt_fd < 0 || unshare(CLONE_NEWNS | CLONE_NEWUTS) < 0)
			return -1;
	} else if (!respawned) {
		char map[64];
		uid_t u = geteuid();
		gid_t g = getegid();

		*step = "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWUTS)";
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS) < 0)
			return -1;
		*step = "mapping the server's uid and gid";
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)u, (unsigned)u);
		if (write_text("/proc/self/setgroups", "deny\n") < 0 ||
		    write_text("/proc/self/uid_map", map) < 0)
			return -1;
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)g, (unsigned)g);
		if (write_text("/proc/self/gid_map", map) < 0)
			return -1;
		*step = "keeping CAP_SYS_ADMIN for respawns";
		if (keep_sys_admin() < 0)
			return -1;
	}
	*step = "making the mounts private";
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -1;
	*step = "sethostname";
	if (sethostname("sandcell", 8) < 0 || setdomainname("sandcell", 8) < 0)
		return -1;
	*step = "mounting a private /tmp";
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=64m") < 0 ||
	    chdir("/tmp") < 0)
		return -1;
	return 0;
}

static int template_view_leave(const char **step)
{
	*step = "leaving the private /tmp";
	if (chdir("/") < 0)
		return -1;
	if (host_mnt_fd >= 0) {
		int rc = setns(host_mnt_fd, CLONE_NEWNS);
		close(host_mnt_fd);
		host_mnt_fd = -1;
		return rc;
	}
	return umount2("/tmp", MNT_DETACH);
}

/* A refused request's answer is a full report like any run's
 * (docs/report.md): status busy (the queue timed out), unreachable (the
 * server is stopping, or serves another uid), usage-error (the request,
 * a bad one: the CLI's 125) or sandbox-error; limits are the request's
 * when it was parsed, else the defaults.  Rendering needs memory: without
 * it, the template's own rendering of a sandbox error, made at startup,
 * goes instead, so a refusal always reaches the client whole. */
static char *refusal_fallback;

static void send_refusal(int fd, enum sandcell_status st, const char *why,
			 const struct sandcell_limits *lim)
{
	struct sandcell_result *r = sandcell_result_refused(st, why, lim);
	char *s = r ? sandcell_report_json(r) : NULL;

	if (s)
		sc_frame_send(fd, s, strlen(s), NULL, 0);
	else if (refusal_fallback)
		sc_frame_send(fd, refusal_fallback, strlen(refusal_fallback), NULL, 0);
	free(s);
	sandcell_result_free(r);
}

/* ---- the sandboxed side: run the code in the inherited interpreter ---- */

/* ---- the server's own Python (src/py/_sandcell_template.py, _sandcell_warm.py) ---- */

/* Runs an embedded file's text (tools/embed.sh warm) in a namespace of its
 * own, as "<string>": that namespace (a new reference), or NULL with the
 * Python error set.  The files only define functions. */
static PyObject *run_py_file(const char *name)
{
	const struct sc_py_file *f = sc_warm_py_files;
	PyObject *ns, *r;

	while (f->name && strcmp(f->name, name) != 0)
		f++;
	if (f->name == NULL) {
		PyErr_Format(PyExc_RuntimeError, "%s is not embedded", name);
		return NULL;
	}
	ns = PyDict_New();
	if (ns == NULL || PyDict_SetItemString(ns, "__builtins__", PyEval_GetBuiltins()) < 0) {
		Py_XDECREF(ns);
		return NULL;
	}
	r = PyRun_String(f->src, Py_file_input, ns, ns);
	if (r == NULL) {
		Py_DECREF(ns);
		return NULL;
	}
	Py_DECREF(r);
	return ns;
}

/* Calls the function ns[fn], with the string arg if not NULL: 0, or -1
 * with the Python error set. */
static int call_py(PyObject *ns, const char *fn, const char *arg)
{
	PyObject *f = PyDict_GetItemString(ns, fn), *r;

	if (f == NULL) {
		PyErr_Format(PyExc_RuntimeError, "%s is not defined", fn);
		return -1;
	}
	r = arg ? PyObject_CallFunction(f, "s", arg) : PyObject_CallNoArgs(f);
	Py_XDECREF(r);
	return r ? 0 : -1;
}

static PyObject *str_list(const char *const *v, size_t skip_none)
{
	PyObject *l = PyList_New(0);
	size_t i;

	(void)skip_none;
	for (i = 0; l && v[i]; i++) {
		PyObject *s = PyUnicode_DecodeFSDefault(v[i]);
		if (s == NULL || PyList_Append(l, s) < 0) {
			Py_XDECREF(s);
			Py_DECREF(l);
			return NULL;
		}
		Py_DECREF(s);
	}
	return l;
}

/* _sc_warm (src/py/_sandcell_warm.py), compiled once in the template
 * (not per run), and kept out of __main__ so the user's code does not see
 * it among its globals. */
static PyObject *warm_fn;

static int compile_warm_boot(void)
{
	PyObject *ns = run_py_file("_sandcell_warm.py");

	if (ns == NULL) {
		PyErr_Print();
		return -1;
	}
	warm_fn = PyDict_GetItemString(ns, "_sc_warm");
	Py_XINCREF(warm_fn);
	Py_DECREF(ns);
	return warm_fn ? 0 : -1;
}

static PyObject *code_argv, *code_envp;

/* In the code, back on the main stack (warm_exec switched). */
static __attribute__((noreturn)) void start_code(void)
{
	PyObject *r;

	/* Only warm_exec switches back, and only after it set these. */
	if (code_argv == NULL || code_envp == NULL)
		_exit(127);
	/* Every frame of the worker, the sandbox init and the setup. */
	if (munmap(request_stack - page_size, REQUEST_STACK + page_size) < 0)
		_exit(127);
	scrub_heap = false;
	/* _sc_warm ends with os._exit(); SystemExit inside is its business.
	 * Getting here means the bootstrap itself failed. */
	r = PyObject_CallFunctionObjArgs(warm_fn, code_argv, code_envp, NULL);
	if (r == NULL)
		PyErr_Print();
	_exit(1);
}

/* The exec hook: runs in the code's process, on request_stack, with
 * every layer of the sandbox applied and the heap still scrubbed. */
static void warm_exec(const char *const *argv, const char *const *envp)
{
	PyOS_AfterFork_Child();
	code_argv = str_list(argv, 0);
	code_envp = str_list(envp, 0);
	if (code_argv == NULL || code_envp == NULL) {
		PyErr_Print();
		_exit(127);
	}
	/* argv and envp were the last use of the request: its jansson tree,
	 * values and arrays go (zeroed). */
	if (live_request) {
		sc_request_free(live_request);
		live_request = NULL;
	}
	/* Back to where the worker left the main stack; the code keeps the
	 * signal mask the sandbox init gave it, not the worker's. */
	if (sigprocmask(SIG_SETMASK, NULL, &main_ctx.uc_sigmask) < 0)
		_exit(127);
	setcontext(&main_ctx);
	_exit(127);
}

/* ---- the worker: one request, one run ---- */

/* The worker's end of its status socket (table.h): -1 in the template. */
static int status_sock = -1;

static void on_cell(enum sc_session_state state, uint64_t cells)
{
	worker_cell(status_sock, state, cells);
}

/* A listing request: the template's table, as it answers a worker. */
static __attribute__((noreturn)) void serve_list(int conn, size_t n_fds)
{
	char *doc;

	if (n_fds != 0) {
		send_refusal(conn, SANDCELL_USAGE_ERROR, "protocol: a sessions request carries no fds", NULL);
		_exit(1);
	}
	doc = worker_list(status_sock);
	if (doc == NULL) {
		send_refusal(conn, SANDCELL_SANDBOX_ERROR, "server: the session table did not answer", NULL);
		_exit(1);
	}
	sc_frame_send(conn, doc, strlen(doc), NULL, 0);
	_exit(0);
}

/* A session request: a session slot from the template (or a busy
 * refusal), then the session's id as the first event, so that its
 * caller can find it in the listing. */
static void claim_session(int conn, struct sc_request *q)
{
	char id[SESSION_ID_LEN + 1], why[200], ev[64];
	int rc;

	sc_session_defaults(&q->cfg.limits);
	rc = worker_claim(status_sock, &q->cfg.limits, id, why, sizeof(why));
	if (rc != 0) {
		send_refusal(conn, rc > 0 ? SANDCELL_BUSY : SANDCELL_UNREACHABLE,
			     rc > 0 ? why : "server: no session slot (the server is stopping)", &q->cfg.limits);
		_exit(1);
	}
	snprintf(ev, sizeof(ev), "{\"ev\":\"session\",\"id\":\"%s\"}\n", id);
	if (write(q->cfg.stdout_fd, ev, strlen(ev)) < 0) {
		/* The caller stopped reading: its hang-up ends the session. */
	}
	sc_set_session_hook(on_cell);
}

static void check_python(int conn, const struct sc_request *q, const struct opts *o)
{
	char m[600];

	if (strcmp(q->cfg.python, o->python) == 0)
		return;
	if (q->cfg.python[0] != '/' || access(q->cfg.python, X_OK) < 0) {
		snprintf(m, sizeof(m), "interpreter %.400s: not an executable absolute path", q->cfg.python);
	} else {
		snprintf(m, sizeof(m), "this server's template is %.200s, not %.200s", o->python, q->cfg.python);
	}
	send_refusal(conn, SANDCELL_USAGE_ERROR, m, &q->cfg.limits);
	_exit(1);
}

/* Report at completion (sc_report_hook): the answer goes as soon as every
 * process of the run is reaped and its outputs are collected, before the
 * run's cgroups are removed; that, and the worker's own exit, happen off
 * the client's path.  The client's stdio fds are closed first: the docs
 * promise the streams are closed on our side when the answer comes. */
static int answer_conn = -1;
static struct sc_request *answer_req;
static bool answered;

static void send_report(const struct sandcell_result *r)
{
	char *report = sandcell_report_json(r);

	close(answer_req->cfg.stdin_fd);
	close(answer_req->cfg.stdout_fd);
	close(answer_req->cfg.stderr_fd);
	answer_req->cfg.stdin_fd = answer_req->cfg.stdout_fd = answer_req->cfg.stderr_fd = -1;
	if (report)
		sc_frame_send(answer_conn, report, strlen(report), NULL, 0);
	else
		send_refusal(answer_conn, SANDCELL_SANDBOX_ERROR, "the report could not be rendered (out of memory)",
			     &answer_req->cfg.limits);
	free(report);
	/* The client may go now: nothing more is written to it. */
	close(answer_conn);
	answered = true;
}

static __attribute__((noreturn)) void serve_one(int conn, const struct opts *o)
{
	struct sandcell_error err = { 0, "" };
	struct sandcell_result *res = NULL;
	struct sc_request q;
	int fds[3] = { -1, -1, -1 };
	size_t n_fds = 3, len;
	char *buf = NULL, *report;

	/* A request the server cannot read or parse is the client's mistake:
	 * a usage error, as the same mistake on the CLI's command line is. */
	if (sc_frame_recv(conn, &buf, &len, SC_REQUEST_MAX, fds, &n_fds, REQUEST_TIMEOUT_MS, &err) < 0) {
		send_refusal(conn, SANDCELL_USAGE_ERROR, err.msg, NULL);
		_exit(1);
	}
	if (sc_request_parse(buf, len, &q, &err) < 0) {
		send_refusal(conn, SANDCELL_USAGE_ERROR, err.msg, NULL);
		_exit(1);
	}
	if (q.op == SC_OP_SESSIONS)
		serve_list(conn, n_fds);
	if (n_fds != 3) {
		send_refusal(conn, SANDCELL_USAGE_ERROR,
			     "protocol: a request carries exactly three fds (stdin, stdout, stderr)", NULL);
		_exit(1);
	}
	live_request = &q;
	/* The text is parsed: nothing reads it again (zeroed by free). */
	free(buf);
	buf = NULL;
	check_python(conn, &q, o);
	q.cfg.stdin_fd = fds[0];
	q.cfg.stdout_fd = fds[1];
	q.cfg.stderr_fd = fds[2];
	if (q.cfg.flags & SANDCELL_SESSION)
		claim_session(conn, &q);
	/* The client half-closing its side (or sending anything more, or
	 * hanging up) cancels the run, or ends the session: the report still
	 * goes back to it. */
	q.cfg.cancel_fd = conn;
	answer_conn = conn;
	answer_req = &q;
	if (!(q.cfg.flags & SANDCELL_SESSION))
		sc_set_report_hook(send_report);
	if (sandcell_run(&q.cfg, &res, &err) < 0) {
		/* Only memory is not the request's fault. */
		send_refusal(conn, err.code == ENOMEM ? SANDCELL_SANDBOX_ERROR : SANDCELL_USAGE_ERROR, err.msg,
			     &q.cfg.limits);
		_exit(1);
	}
	if (answered) {
		/* Sent before the cgroups were removed, so without them: what
		 * could not be removed is named here, and removed by a later
		 * run (docs/report.md, Cleanup). */
		for (int i = 0; i < res->n_left_behind && i < 8; i++)
			logmsg("a run's cgroup was left behind after its report: %s", res->left_behind[i]);
		_exit(0);
	}
	report = sandcell_report_json(res);
	if (report)
		sc_frame_send(conn, report, strlen(report), NULL, 0);
	else
		send_refusal(conn, SANDCELL_SANDBOX_ERROR, "the report could not be rendered (out of memory)",
			     &q.cfg.limits);
	_exit(0);
}

static int side_conn;
static const struct opts *side_opts;

static void side_entry(void)
{
	serve_one(side_conn, side_opts);
}

/* serve_one on request_stack.  Only the code of the run comes back here
 * (warm_exec): it starts on the main stack, below the worker's last frame. */
static __attribute__((noreturn)) void serve(int conn, const struct opts *o)
{
	side_conn = conn;
	side_opts = o;
	if (on_request_stack(side_entry) < 0) {
		send_refusal(conn, SANDCELL_SANDBOX_ERROR, "server: cannot switch to the request stack", NULL);
		_exit(1);
	}
	start_code();
}

/* A spare waits for the connection it will serve (SCM_RIGHTS).  EOF
 * means the template is gone, respawning or stopping: nothing to serve.
 * The socket stays open: it is the worker's status socket (table.h). */
static __attribute__((noreturn)) void spare_main(int sock, const struct opts *o)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char b;
	struct iovec iov = { &b, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;
	int conn = -1;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	c = n == 1 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&conn, CMSG_DATA(c), sizeof(int));
	if (conn < 0)
		_exit(0);
	serve(conn, o);
}

/* Hands conn to a spare; the spare then counts as a running worker. */
static int give_to_spare(const struct spare *sp, int conn)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char b = 'c';
	struct iovec iov = { &b, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(&u, 0, sizeof(u));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &conn, sizeof(int));
	return sendmsg(sp->sock, &mh, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* Only the server's own uid may run code through it: a request names host
 * paths, which the server opens with its own rights. */
static bool peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && cr.uid == geteuid();
}

/* The template's state.  Static, so that a fork can zero it: the table
 * names other sessions (ids, limits), which no run may hold. */
struct srv {
	struct opts o;
	int ls;
	struct pending *queue;
	long n_queue;
	struct spare spares[MAX_SPARES];
	long n_spares;
	long runs;		/* requests served since this template started */
	double started;
};
static struct srv S;
static struct table tab;

/* Closing its socket tells a spare to exit; it holds nothing else. */
static void drop_spares(void)
{
	long i;

	for (i = 0; i < S.n_spares; i++) {
		close(S.spares[i].sock);
		waitpid(S.spares[i].pid, NULL, 0);
		close(S.spares[i].pidfd);
	}
	S.n_spares = 0;
}

/* In a new worker: what the template holds that a worker must not (the
 * listening socket, queued clients, the other workers' fds, the table). */
static void worker_drop_template(int status)
{
	long i;

	close(S.ls);
	for (i = 0; i < S.n_queue; i++)
		close(S.queue[i].fd);
	for (i = 0; i < tab.n; i++) {
		close(tab.w[i].pidfd);
		if (tab.w[i].sock >= 0)
			close(tab.w[i].sock);
	}
	for (i = 0; i < S.n_spares; i++) {
		close(S.spares[i].sock);
		close(S.spares[i].pidfd);
	}
	explicit_bzero(&tab, sizeof(tab));
	explicit_bzero(S.queue, (size_t)S.o.queue * sizeof(*S.queue));
	S.n_queue = S.n_spares = 0;
	status_sock = status;
}

/* fork() for a worker whose status socket is sv[1] (sv[0] the
 * template's): in the child, Python and the fds are set up for serving
 * one request. */
static pid_t fork_worker(int sv[2])
{
	pid_t pid;

	PyOS_BeforeFork();
	pid = fork();
	if (pid == 0) {
		scrub_heap = true;
		drop_template_args();
		/* No PyOS_AfterFork_Child() here: a worker runs no Python, and
		 * the interpreter's after-fork work (its locks, the at-fork
		 * hooks of the modules: random, threading, logging...) would
		 * write hundreds of the template's pages in every worker.  The
		 * code, the only process below that runs Python, does it
		 * (warm_exec), as the child of this fork. */
		signal(SIGPIPE, SIG_IGN);
		close(sv[0]);
		worker_drop_template(sv[1]);
		return 0;
	}
	PyOS_AfterFork_Parent();
	close(sv[1]);
	if (pid < 0) {
		logmsg("fork: %s", strerror(errno));
		close(sv[0]);
	}
	return pid;
}

static int status_pair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0)
		return 0;
	logmsg("socketpair: %s", strerror(errno));
	return -1;
}

static int add_spare(void)
{
	int sv[2];
	pid_t pid;
	struct spare *sp = &S.spares[S.n_spares];

	if (status_pair(sv) < 0)
		return -1;
	pid = fork_worker(sv);
	if (pid == 0)
		spare_main(status_sock, &S.o);
	if (pid < 0)
		return -1;
	sp->pid = pid;
	sp->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	sp->sock = sv[0];
	S.n_spares++;
	return 0;
}

static void add_worker(pid_t pid, int pidfd, int sock)
{
	struct worker *w = &tab.w[tab.n++];

	memset(w, 0, sizeof(*w));
	w->pid = pid;
	w->pidfd = pidfd;
	w->sock = sock;
	S.runs++;
}

/* One queued connection to a worker: a spare if there is one, else a
 * fork.  A spare that died is reaped and replaced by a fork. */
static void dispatch_one(int conn)
{
	int sv[2];
	pid_t pid;

	if (S.n_spares > 0) {
		struct spare sp = S.spares[--S.n_spares];
		if (give_to_spare(&sp, conn) == 0) {
			close(conn);
			add_worker(sp.pid, sp.pidfd, sp.sock);
			return;
		}
		close(sp.sock);
		kill(sp.pid, SIGKILL);
		waitpid(sp.pid, NULL, 0);
		close(sp.pidfd);
	}
	if (status_pair(sv) < 0) {
		send_refusal(conn, SANDCELL_SANDBOX_ERROR, "server: cannot make a worker's socket", NULL);
		close(conn);
		return;
	}
	pid = fork_worker(sv);
	if (pid == 0)
		serve(conn, &S.o);
	close(conn);
	if (pid > 0)
		add_worker(pid, (int)syscall(SYS_pidfd_open, pid, 0), sv[0]);
}

/* One-shot runs take slots; sessions have --max-sessions of their own
 * (a worker counts as a run until it claims a session slot). */
static void dispatch(void)
{
	while (S.n_queue > 0 && tab.n - tab.n_sessions < S.o.slots && tab.n < MAX_WORKERS) {
		int conn = S.queue[0].fd;

		memmove(&S.queue[0], &S.queue[1], (size_t)(S.n_queue - 1) * sizeof(*S.queue));
		S.n_queue--;
		dispatch_one(conn);
	}
}

static void expire_queue(double t)
{
	long i;

	for (i = 0; i < S.n_queue;) {
		if (t - S.queue[i].since >= S.o.queue_timeout) {
			send_refusal(S.queue[i].fd, SANDCELL_BUSY, "server busy: queued longer than --queue-timeout",
				     NULL);
			close(S.queue[i].fd);
			memmove(&S.queue[i], &S.queue[i + 1], (size_t)(S.n_queue - i - 1) * sizeof(*S.queue));
			S.n_queue--;
		} else {
			i++;
		}
	}
}

static void reap(void)
{
	long i;

	for (i = 0; i < tab.n;) {
		struct worker *w = &tab.w[i];
		if (waitpid(w->pid, NULL, WNOHANG) == w->pid) {
			close(w->pidfd);
			if (w->sock >= 0)
				close(w->sock);
			tab.n_sessions -= w->session;
			*w = tab.w[tab.n - 1];
			explicit_bzero(&tab.w[tab.n - 1], sizeof(*w));
			tab.n--;
		} else {
			i++;
		}
	}
}

/* A spare that died while it waited (killed from outside: the OOM
 * killer, an operator) is reaped at once and refilled by serve_turn, so
 * no zombie stays and the pool keeps its size. */
static void reap_spares(void)
{
	long i;

	for (i = 0; i < S.n_spares;) {
		struct spare *sp = &S.spares[i];
		if (waitpid(sp->pid, NULL, WNOHANG) == sp->pid) {
			logmsg("spare %ld died while idle; replacing it", (long)sp->pid);
			close(sp->sock);
			close(sp->pidfd);
			*sp = S.spares[--S.n_spares];
		} else {
			i++;
		}
	}
}

static void accept_one(void)
{
	int conn = accept4(S.ls, NULL, NULL, SOCK_CLOEXEC);

	if (conn < 0)
		return;
	if (!peer_allowed(conn)) {
		send_refusal(conn, SANDCELL_UNREACHABLE, "permission denied: only the server's own uid may use it",
			     NULL);
		close(conn);
		return;
	}
	S.queue[S.n_queue].fd = conn;
	S.queue[S.n_queue].since = now_sec();
	S.n_queue++;
}

/*
 * Respawn: the whole layout is shared by every child, so after enough
 * runs or time the template re-executes itself (new ASLR).  Nothing
 * waits: the live workers (sessions, runs, each with its own supervisor)
 * stay our children across the execv, and the new template takes over
 * their pidfds and status sockets, and the queued clients, from a memfd
 * the old one wrote (table_save).  Only the spares, copies of the old
 * layout, go.
 */
static void respawn(void)
{
	char buf[16];
	int state;

	drop_spares();
	state = table_save(&tab, S.queue, S.n_queue);
	if (state < 0) {
		logmsg("respawn: cannot save the worker table: %s", strerror(errno));
		return;
	}
	snprintf(buf, sizeof(buf), "%d", S.ls);
	fcntl(S.ls, F_SETFD, 0);
	setenv("SANDCELL_WARM_LISTEN_FD", buf, 1);
	snprintf(buf, sizeof(buf), "%d", state);
	setenv("SANDCELL_WARM_STATE_FD", buf, 1);
	/* The new template's heap as this one's (heap_on_huge_pages): the
	 * loader reads the tunables before main. */
	if (heap_thp)
		setenv("GLIBC_TUNABLES", heap_tunables, 1);
	execv(self_path, respawn_argv);
	logmsg("respawn failed: %s", strerror(errno));
	exit(SANDCELL_EXIT_SANDBOX);
}

/* SIGINT/SIGTERM: runs and sessions in flight finish on their own (their
 * workers are independent); queued clients are told why; spares see EOF
 * and exit. */
static int stop_server(void)
{
	long i;

	for (i = 0; i < S.n_queue; i++)
		send_refusal(S.queue[i].fd, SANDCELL_UNREACHABLE, "server shutting down", NULL);
	drop_spares();
	unlink(S.o.socket);
	logmsg("stopped by signal %d", (int)stop_sig);
	return 0;
}

/* One turn of the template's loop: respawn, expire, dispatch, refill,
 * then wait for a connection, a worker's exit or message. */
static int serve_turn(void)
{
	static struct pollfd p[1 + 2 * MAX_WORKERS + MAX_SPARES];
	long idx_w[MAX_WORKERS], i;
	int np = 0, timeout = 1000;
	double t = now_sec();

	if (S.runs >= S.o.respawn_runs || t - S.started >= S.o.respawn_seconds)
		respawn(); /* returns only if the table could not be saved */
	expire_queue(t);
	dispatch();
	/* Refill the spares, one fork per turn so that a request arriving
	 * meanwhile waits for at most one fork. */
	if (S.n_queue == 0 && S.n_spares < S.o.spares && tab.n + S.n_spares < MAX_WORKERS)
		if (add_spare() == 0 && S.n_spares < S.o.spares)
			timeout = 0;
	if (S.n_queue < S.o.queue)
		p[np++] = (struct pollfd){ S.ls, POLLIN, 0 };
	for (i = 0; i < tab.n; i++) {
		p[np++] = (struct pollfd){ tab.w[i].pidfd, POLLIN, 0 };
		idx_w[i] = tab.w[i].sock >= 0 ? np : -1;
		if (tab.w[i].sock >= 0)
			p[np++] = (struct pollfd){ tab.w[i].sock, POLLIN, 0 };
	}
	for (i = 0; i < S.n_spares; i++)
		p[np++] = (struct pollfd){ S.spares[i].pidfd, POLLIN, 0 };
	if (S.n_queue > 0)
		timeout = 50;
	if (poll(p, (nfds_t)np, timeout) < 0)
		return errno == EINTR ? 0 : -1;
	/* Messages first: a worker's last ones come before its exit. */
	tab.spares = S.n_spares;
	tab.queued = S.n_queue;
	for (i = 0; i < tab.n; i++)
		if (idx_w[i] >= 0 && p[idx_w[i]].revents)
			table_on_msg(&tab, &tab.w[i]);
	reap();
	reap_spares();
	if (np > 0 && p[0].fd == S.ls && (p[0].revents & POLLIN))
		accept_one();
	return 0;
}

/* ---- the template ---- */

/* The open fds, as a bitmap of the first 1024: 0 if it could be read. */
static int open_fds(unsigned char map[128])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(map, 0, 128);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd != dirfd(d) && fd >= 0 && fd < 1024)
			map[fd / 8] |= (unsigned char)(1u << (fd % 8));
		else if (fd >= 1024) {
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	return 0;
}

/* The warm-up (_sc_warm_up in tpl, the template file's namespace). */
static int run_warm_up(PyObject *tpl)
{
	unsigned char before[128], after[128];

	if (open_fds(before) < 0) {
		logmsg("cannot list the template's fds");
		return -1;
	}
	if (call_py(tpl, "_sc_warm_up", NULL) < 0) {
		/* The traceback would name only the runtime's own paths: still,
		 * the error goes, not its state (sys.last_value). */
		PyErr_Clear();
		logmsg("the warm-up failed: runs start without it");
	}
	/* Fail closed: a file the warm-up left open would be in every
	 * worker, held by an object that closes its number in a run. */
	if (open_fds(after) < 0 || memcmp(before, after, sizeof(before)) != 0) {
		logmsg("the warm-up left a file open");
		return -1;
	}
	return 0;
}

/* The last step, _sc_freeze (gc.freeze), with nothing of the template
 * file left to freeze: its namespace is emptied first (its functions
 * reference it, a cycle only the collector would free, and nothing is
 * collected once frozen), and the function itself goes after its call. */
static void freeze_gc(PyObject *tpl)
{
	PyObject *f = PyDict_GetItemString(tpl, "_sc_freeze"), *r;

	Py_XINCREF(f);
	PyDict_Clear(tpl);
	Py_DECREF(tpl);
	r = f ? PyObject_CallNoArgs(f) : NULL;
	if (r == NULL)
		PyErr_Print();
	Py_XDECREF(r);
	Py_XDECREF(f);
}

/* CPython in the template: isolated as `python3 -I`, then the Python
 * steps of src/py/_sandcell_template.py, in its order. */
static int init_python(const struct opts *o)
{
	PyPreConfig pre;
	PyConfig config;
	PyStatus st;
	PyObject *tpl;
	char *list, *tok, *save = NULL;
	wchar_t *w;

	/* LC_CTYPE from the fixed environment (C.UTF-8), as `python3 -I`
	 * sets it in a cold run: the locale is process state every run
	 * inherits. */
	PyPreConfig_InitIsolatedConfig(&pre);
	pre.configure_locale = 1;
	/* See heap_on_huge_pages: objects in glibc's THP heap, not in
	 * pymalloc's 4 KiB-page arenas. */
	if (heap_thp)
		pre.allocator = PYMEM_ALLOCATOR_MALLOC;
	st = Py_PreInitialize(&pre);
	if (PyStatus_Exception(st))
		return -1;
	PyConfig_InitIsolatedConfig(&config);
	config.write_bytecode = 0;
	w = Py_DecodeLocale(o->python, NULL);
	if (w) {
		PyConfig_SetString(&config, &config.program_name, w);
		PyConfig_SetString(&config, &config.executable, w);
		PyMem_RawFree(w);
	}
	st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st))
		return -1;
	tpl = run_py_file("_sandcell_template.py");
	if (tpl == NULL || call_py(tpl, "_sc_base_imports", NULL) < 0) {
		PyErr_Print();
		Py_XDECREF(tpl);
		return -1;
	}
	list = strdup(o->preload);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (tok[0] == '\0')
			continue;
		if (call_py(tpl, "_sc_preload", tok) < 0) {
			PyErr_Print();
			logmsg("preloading %s failed", tok);
			free(list);
			Py_DECREF(tpl);
			return -1;
		}
		if (strcmp(tok, "matplotlib") == 0 && call_py(tpl, "_sc_agg", NULL) < 0)
			PyErr_Print();
	}
	free(list);
	if (run_warm_up(tpl) < 0) {
		Py_DECREF(tpl);
		return -1;
	}
	if (compile_warm_boot() < 0) {
		logmsg("compiling the run bootstrap failed");
		Py_DECREF(tpl);
		return -1;
	}
	freeze_gc(tpl);
	return 0;
}

static int listen_socket(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int s;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		logmsg("socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	/* Replace a stale socket, never any other file. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			logmsg("%s exists and is not a socket", path);
			return -1;
		}
		unlink(path);
	}
	s = socket(AF_UNIX, SOCK_STREAM, 0); /* inherited across respawn */
	/* The socket is born 0600: with the caller's umask there would be a
	 * window between bind and chmod in which another uid could connect. */
	mode_t old_umask = umask(077);
	int bound = s < 0 ? -1 : bind(s, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_umask);
	if (bound < 0 || chmod(path, 0600) < 0 || listen(s, 128) < 0) {
		logmsg("cannot listen on %s: %s", path, strerror(errno));
		return -1;
	}
	/* A host path: and this frame may be main's, which the stack wipe
	 * leaves alone (wipe_dead_stack). */
	explicit_bzero(&sa, sizeof(sa));
	return s;
}

static void usage(void)
{
	fputs("Usage: sandcell serve --socket PATH [--slots N] [--max-sessions N] [--queue N]\n"
	      "                      [--queue-timeout SEC] [--preload MODULES] [--respawn-runs N]\n"
	      "                      [--respawn-seconds SEC] [--python PATH] [--spares N]\n",
	      stderr);
	exit(SANDCELL_EXIT_USAGE);
}

static void parse_count_opt(const char *arg, long min, long max, long *out)
{
	struct sandcell_error e;
	uint64_t v;

	if (sandcell_parse_count(arg, &v, &e) < 0 || (long)v < min || v > (uint64_t)max) {
		fprintf(stderr, "sandcell serve: bad value '%s' (%ld to %ld)\n", arg, min, max);
		exit(SANDCELL_EXIT_USAGE);
	}
	*out = (long)v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "slots", required_argument, NULL, 'n' },
		{ "max-sessions", required_argument, NULL, 'm' },
		{ "queue", required_argument, NULL, 'q' },
		{ "queue-timeout", required_argument, NULL, 't' },
		{ "preload", required_argument, NULL, 'p' },
		{ "respawn-runs", required_argument, NULL, 'r' },
		{ "respawn-seconds", required_argument, NULL, 'R' },
		{ "python", required_argument, NULL, 'y' },
		{ "spares", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sandcell_error e;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->socket = optarg; break;
		case 'p': o->preload = optarg; break;
		case 'y': o->python = optarg; break;
		case 'n': parse_count_opt(optarg, 1, MAX_SLOTS, &o->slots); break;
		case 'm': parse_count_opt(optarg, 0, MAX_SESSIONS, &o->max_sessions); break;
		case 'q': parse_count_opt(optarg, 1, 1000000, &o->queue); break;
		case 'r': parse_count_opt(optarg, 1, 1000000, &o->respawn_runs); break;
		case 'S': parse_count_opt(optarg, 0, MAX_SPARES, &o->spares); break;
		case 't': case 'R':
			if (sandcell_parse_seconds(optarg, c == 't' ? &o->queue_timeout : &o->respawn_seconds,
						   &e) < 0) {
				fprintf(stderr, "sandcell serve: %s\n", e.msg);
				exit(SANDCELL_EXIT_USAGE);
			}
			break;
		default: usage();
		}
	}
	if (o->socket == NULL || optind != argc)
		usage();
	if (o->slots == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o->slots = n > 0 ? n * 2 : 2;
	}
	if (o->spares < 0)
		o->spares = o->slots < 2 ? o->slots : 2;
	if (o->max_sessions < 0)
		o->max_sessions = o->slots;
}

/* Every run is a fork of this process: nothing of the launcher's command
 * line or environment may stay in its memory.  Copies of what we need are
 * kept (the caller zeroes the original pages), and the fds a previous
 * template handed over are taken. */
static int keep_copies(int argc, char **argv, struct opts *o, int *state_fd)
{
	const char *inherited = getenv("SANDCELL_WARM_LISTEN_FD"), *state = getenv("SANDCELL_WARM_STATE_FD");
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int k;

	if (n <= 0)
		return -1;
	self[n] = '\0';
	self_path = strdup(self);
	respawn_argv = calloc((size_t)argc + 1, sizeof(char *));
	if (self_path == NULL || respawn_argv == NULL)
		return -1;
	for (k = 0; k < argc; k++)
		respawn_argv[k] = strdup(argv[k]);
	o->socket = socket_path = strdup(o->socket);
	o->python = strdup(o->python);
	o->preload = strdup(o->preload);
	if (inherited)
		inherited_fd = atoi(inherited);
	*state_fd = state ? atoi(state) : -1;
	/* Returning from main ends the process: the copies that did succeed
	 * are not leaked. */
	return o->socket && o->python && o->preload ? 0 : -1;
}

/* The template interpreter, in a sandbox's view (template_view_enter),
 * the exec hook, and the seccomp filter compiled once for every run to
 * inherit. */
static int make_template(const struct opts *o, bool respawned)
{
	struct sandcell_error e;
	struct sc_bpf b;
	const char *step = "";

	/* Fail closed: a template importing in the host's view would hand
	 * the host name and its paths to every run. */
	if (template_view_enter(respawned, &step) < 0) {
		logmsg("cannot give the template a sandbox's view (%s): %s", step, strerror(errno));
		return -1;
	}
	if (init_python(o) < 0) {
		logmsg("cannot start the template interpreter");
		return -1;
	}
	if (template_view_leave(&step) < 0) {
		logmsg("cannot leave the template's import view (%s): %s", step, strerror(errno));
		return -1;
	}
	sc_set_exec_hook(warm_exec);
	if (sc_seccomp_compile(&b, false, &e) < 0) {
		logmsg("%s", e.msg);
		return -1;
	}
	sc_seccomp_free(&b);
	return 0;
}

/*
 * glibc's malloc keeps what the imports and the warm-up freed as free
 * chunks scattered over the heap.  Every worker and every run's code would
 * take its first allocations from them: each one, and the list and bin
 * walks that find it, writes (and so copies) a page of the template's,
 * hundreds per process, more than the rest of a trivial run writes.  So
 * the template takes every free chunk out of glibc's hands once, before
 * it forks anything, and keeps them: requests from 16 MiB down to 16
 * bytes, each size repeated until it is served from the top of the heap
 * (an address at or above where the top began), which is given back.
 * Children then allocate from the top: fresh, contiguous memory.  The
 * chunks held cost no memory that was not resident already; they hold
 * what the template freed while it started (its own data, never a
 * request's: no request reaches the template).
 */
static void drain_free_chunks(void)
{
	struct mallinfo2 mi;
	char *top0, *p;
	size_t s, held = 0;

	/* mallopt consolidates the fast bins first thing. */
	mallopt(M_MXFAST, 64 * (int)sizeof(size_t) / 4); /* glibc's default */
	mi = mallinfo2();
	top0 = (char *)sbrk(0) - mi.keepcost;
	for (s = 16u << 20; s >= 16; s = s > 1024 ? s - s / 16 : s - 16) {
		for (;;) {
			p = malloc(s);
			if (p == NULL)
				return;
			if (p >= top0) {
				free(p);
				break;
			}
			/* Never more than was free: should the heap not be
			 * one brk area (where top0 means nothing), this ends. */
			held += malloc_usable_size(p);
			if (held > mi.fordblks)
				return;
		}
	}
}

/* See send_refusal. */
static int make_refusal_fallback(void)
{
	struct sandcell_result *r = sandcell_result_refused(SANDCELL_SANDBOX_ERROR, "request refused", NULL);

	refusal_fallback = r ? sandcell_report_json(r) : NULL;
	sandcell_result_free(r);
	if (refusal_fallback == NULL)
		logmsg("out of memory");
	return refusal_fallback ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct opts o = { NULL, "/usr/bin/python3", "numpy,pandas,matplotlib,matplotlib.pyplot",
			  0, 64, 1000, -1, -1, 30.0, 600.0 };
	int c, state_fd = -1;
	bool respawned;

	parse_args(argc, argv, &o);
	heap_on_huge_pages(argv);
	if (keep_copies(argc, argv, &o, &state_fd) < 0)
		return SANDCELL_EXIT_SANDBOX;
	respawned = inherited_fd >= 0;
	S.o = o;
	S.started = now_sec();
	S.queue = calloc((size_t)o.queue, sizeof(*S.queue));
	tab.slots = o.slots;
	tab.max_sessions = o.max_sessions;
	if (S.queue == NULL)
		return SANDCELL_EXIT_SANDBOX;
	if (state_fd >= 0) {
		char why[200];
		/* Fail closed: without the table the slots and the session
		 * cap cannot be kept. */
		if (table_load(state_fd, &tab, S.queue, &S.n_queue, o.queue, why, sizeof(why)) < 0) {
			logmsg("respawn: %s", why);
			return SANDCELL_EXIT_SANDBOX;
		}
	}

	/* The template's environment is the sandbox's fixed one: thread
	 * pools are pinned before numpy is imported, and what the imports
	 * cache from it is what a sandbox would compute.  From here on a
	 * stop request is honoured, even while the imports run. */
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
	clearenv();
	if (sc_scrub_cmdline() < 0) {
		logmsg("cannot scrub the launcher's command line and environment");
		return SANDCELL_EXIT_SANDBOX;
	}
	for (c = 0; sc_env[c]; c++)
		putenv((char *)sc_env[c]);
	if (map_request_stack() < 0) {
		logmsg("cannot map the request stack: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	if (make_template(&S.o, respawned) < 0)
		return SANDCELL_EXIT_SANDBOX;
	/* Python installed handlers for its own use; the server itself
	 * stops on SIGINT/SIGTERM and ignores SIGPIPE. */
	if (stop_sig)
		return stop_server();
	signal(SIGPIPE, SIG_IGN);
	if (make_refusal_fallback() < 0)
		return SANDCELL_EXIT_SANDBOX;
	S.ls = respawned ? inherited_fd : listen_socket(S.o.socket);
	if (S.ls < 0)
		return SANDCELL_EXIT_SANDBOX;
	fcntl(S.ls, F_SETFD, FD_CLOEXEC);
	if (!respawned)
		logmsg("ready on %s (slots %ld, max sessions %ld, preload %s)", S.o.socket, S.o.slots,
		       S.o.max_sessions, S.o.preload);
	if (wipe_dead_stack() < 0) {
		logmsg("cannot clear the template's stack: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	if (heap_thp)
		drain_free_chunks();
	while (!stop_sig)
		if (serve_turn() < 0)
			return SANDCELL_EXIT_SANDBOX;
	return stop_server();
}
