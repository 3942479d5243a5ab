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
 * memory holds" in worker.c.
 *
 * This file: the options, and the order of the template's startup.  The
 * rest, by role: server.h.
 */

#include "server.h"
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_MS 10000

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
 *   zeroed at startup (main.c), the copies the template keeps are freed in
 *   every worker (drop_template_args, template.c), and the template zeroes the dead
 *   part of its main stack before it serves (wipe_dead_stack);
 * - the host as the template saw it while importing: it imports in the
 *   sandbox's view instead (template_view_enter, template.c).
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

int map_request_stack(void)
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
int wipe_dead_stack(void)
{
	dead_floor = main_stack_floor();
	if (dead_floor == NULL || on_request_stack(wipe_entry) < 0)
		return -1;
	return madvise(request_stack, REQUEST_STACK, MADV_DONTNEED);
}

/* A refused request's answer is a full report like any run's
 * (docs/report.md): status busy (the queue timed out), unreachable (the
 * server is stopping, or serves another uid), usage-error (the request,
 * a bad one: the CLI's 125) or sandbox-error; limits are the request's
 * when it was parsed, else the defaults.  Rendering needs memory: without
 * it, the template's own rendering of a sandbox error, made at startup,
 * goes instead, so a refusal always reaches the client whole. */
static char *refusal_fallback;

void send_refusal(int fd, enum sandcell_status st, const char *why, const struct sandcell_limits *lim)
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

/* See send_refusal. */
int make_refusal_fallback(void)
{
	struct sandcell_result *r = sandcell_result_refused(SANDCELL_SANDBOX_ERROR, "request refused", NULL);

	refusal_fallback = r ? sandcell_report_json(r) : NULL;
	sandcell_result_free(r);
	if (refusal_fallback == NULL)
		logmsg("out of memory");
	return refusal_fallback ? 0 : -1;
}

/* ---- the code's start ---- */

/* Set by warm_exec once the code's arguments are taken (code_prepare). */
static bool code_ready;

/* The exec hook: runs in the code's process, on request_stack, with
 * every layer of the sandbox applied and the heap still scrubbed. */
void warm_exec(const char *const *argv, const char *const *envp)
{
	if (code_prepare(argv, envp) < 0)
		_exit(127);
	code_ready = true;
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

/* In the code, back on the main stack (warm_exec switched). */
static __attribute__((noreturn)) void start_code(void)
{
	/* Only warm_exec switches back, and only once the arguments are taken. */
	if (!code_ready)
		_exit(127);
	/* Every frame of the worker, the sandbox init and the setup. */
	if (munmap(request_stack - page_size, REQUEST_STACK + page_size) < 0)
		_exit(127);
	scrub_heap = false;
	code_run();
	_exit(1);
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

void worker_serve(int conn, int status, const struct opts *o)
{
	status_sock = status;
	serve(conn, o);
}

/* A spare waits for the connection it will serve (SCM_RIGHTS).  EOF
 * means the template is gone, respawning or stopping: nothing to serve.
 * The socket stays open: it is the worker's status socket (table.h). */
void worker_spare(int status, const struct opts *o)
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

	status_sock = status;
	do
		n = recvmsg(status_sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	c = n == 1 ? CMSG_FIRSTHDR(&mh) : NULL;
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(&conn, CMSG_DATA(c), sizeof(int));
	if (conn < 0)
		_exit(0);
	serve(conn, o);
}

/* A worker forked ahead of time: it waits on sock for the connection of
 * the request it will serve, so the template's fork is off the request
 * path.  It is an exact copy of the idle template (which never runs user
 * code), so what it serves later is what a fresh fork would have served. */
struct spare {
	pid_t pid;
	int pidfd;
	int sock; /* the template's end of a SOCK_SEQPACKET pair */
};

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

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
static void worker_drop_template(void)
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
}

/* fork() for a worker whose status socket is sv[1] (sv[0] the
 * template's): in the child, the heap and the fds are set up for serving
 * one request (worker_serve or worker_spare, with sv[1]). */
static pid_t fork_worker(int sv[2])
{
	pid_t pid = template_fork();

	if (pid == 0) {
		scrub_heap = true;
		drop_template_args();
		signal(SIGPIPE, SIG_IGN);
		close(sv[0]);
		worker_drop_template();
		return 0;
	}
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
		worker_spare(sv[1], &S.o);
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
		worker_serve(conn, sv[1], &S.o);
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
	int state;

	drop_spares();
	state = table_save(&tab, S.queue, S.n_queue);
	if (state < 0) {
		logmsg("respawn: cannot save the worker table: %s", strerror(errno));
		return;
	}
	template_reexec(S.ls, state);
}

/* SIGINT/SIGTERM: runs and sessions in flight finish on their own (their
 * workers are independent); queued clients are told why; spares see EOF
 * and exit. */
int stop_server(void)
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

/* ---- what main calls ---- */

int server_init(const struct opts *o, int state_fd)
{
	S.o = *o;
	S.started = now_sec();
	S.queue = calloc((size_t)o->queue, sizeof(*S.queue));
	tab.slots = o->slots;
	tab.max_sessions = o->max_sessions;
	if (S.queue == NULL)
		return -1;
	if (state_fd >= 0) {
		char why[200];
		/* Fail closed: without the table the slots and the session
		 * cap cannot be kept. */
		if (table_load(state_fd, &tab, S.queue, &S.n_queue, o->queue, why, sizeof(why)) < 0) {
			logmsg("respawn: %s", why);
			return -1;
		}
	}
	return 0;
}

int server_listen(int inherited)
{
	S.ls = inherited >= 0 ? inherited : listen_socket(S.o.socket);
	if (S.ls < 0)
		return -1;
	fcntl(S.ls, F_SETFD, FD_CLOEXEC);
	return 0;
}

int server_loop(void)
{
	while (!stop_sig)
		if (serve_turn() < 0)
			return SANDCELL_EXIT_SANDBOX;
	return stop_server();
}

volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

void logmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("sandcell serve: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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

int main(int argc, char **argv)
{
	struct opts o = { NULL, "/usr/bin/python3", "numpy,pandas,matplotlib,matplotlib.pyplot",
			  0, 64, 1000, -1, -1, 30.0, 600.0 };
	int c, listen_fd = -1, state_fd = -1;
	bool respawned;

	parse_args(argc, argv, &o);
	heap_on_huge_pages(argv);
	if (keep_copies(argc, argv, &o, &listen_fd, &state_fd) < 0)
		return SANDCELL_EXIT_SANDBOX;
	respawned = listen_fd >= 0;
	if (server_init(&o, state_fd) < 0)
		return SANDCELL_EXIT_SANDBOX;

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
	if (make_template(&o, respawned) < 0)
		return SANDCELL_EXIT_SANDBOX;
	/* Python installed handlers for its own use; the server itself
	 * stops on SIGINT/SIGTERM and ignores SIGPIPE. */
	if (stop_sig)
		return stop_server();
	signal(SIGPIPE, SIG_IGN);
	if (make_refusal_fallback() < 0)
		return SANDCELL_EXIT_SANDBOX;
	if (server_listen(respawned ? listen_fd : -1) < 0)
		return SANDCELL_EXIT_SANDBOX;
	if (!respawned)
		logmsg("ready on %s (slots %ld, max sessions %ld, preload %s)", o.socket, o.slots,
		       o.max_sessions, o.preload);
	if (wipe_dead_stack() < 0) {
		logmsg("cannot clear the template's stack: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	drain_free_chunks();
	return server_loop();
}
