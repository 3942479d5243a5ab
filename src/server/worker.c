/*
 * A worker of the warm server (server.h): a fork of the template that
 * serves one request (a run, a session, or the sessions' listing) through
 * sandcell_run(), on a stack of its own, and answers with the report; and
 * what keeps the request, the server's command line and other runs out of
 * the memory the run's code inherits (G6).  The code itself starts here
 * too, in the exec hook: the sandbox init's child switches back to the
 * main stack and calls the bootstrap the template compiled.
 */
#include "asan.h"
#include "server.h"
#include "table.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
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

#ifdef SC_ASAN
/* The template clears its environment (main.c) and a respawn re-executes
 * it without ASAN_OPTIONS: the ASan build's options are built in.  No
 * leak check: the template's copies end in _exit, and the template's own
 * exit() would otherwise walk every mapping of every module first. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_leaks=0:abort_on_error=1";
}
#else
/* Not under AddressSanitizer: its allocator owns every block, and these
 * would hand them to glibc's.  The ASan build scrubs nothing (the tests
 * that look for scrubbed data skip there). */
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
#endif

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
/* For asan.h: the main stack's fake frames and bounds while on the side. */
static void *main_fake;
static const void *main_bottom;
static size_t main_size;

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
	int r;

	if (getcontext(&side_ctx) < 0)
		return -1;
	side_ctx.uc_stack.ss_sp = request_stack;
	side_ctx.uc_stack.ss_size = REQUEST_STACK;
	side_ctx.uc_link = NULL;
	makecontext(&side_ctx, fn, 0);
	asan_stack_leave(&main_fake, request_stack, REQUEST_STACK);
	r = swapcontext(&main_ctx, &side_ctx);
	asan_stack_arrived(main_fake, NULL, NULL);
	return r;
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

	asan_stack_arrived(NULL, &main_bottom, &main_size);
	/* Whole pages are dropped (zero when touched again), the partial
	 * one is cleared. */
	if (page > dead_floor)
		madvise(dead_floor, (size_t)(page - dead_floor), MADV_DONTNEED);
	explicit_bzero(page, (size_t)(top - page));
	asan_stack_leave(NULL, main_bottom, main_size);
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
	asan_frames_forget(request_stack, REQUEST_STACK);
	asan_frames_forget(dead_floor, (size_t)(ctx_sp(&main_ctx) - dead_floor));
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
	asan_stack_leave(NULL, main_bottom, main_size);
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
	asan_frames_forget(request_stack - page_size, REQUEST_STACK + page_size);
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

void answer_run(int conn, struct sandcell_config *cfg, const struct sandcell_result *r)
{
	char *report = sandcell_report_json(r);

	close(cfg->stdin_fd);
	close(cfg->stdout_fd);
	close(cfg->stderr_fd);
	cfg->stdin_fd = cfg->stdout_fd = cfg->stderr_fd = -1;
	if (report)
		sc_frame_send(conn, report, strlen(report), NULL, 0);
	else
		send_refusal(conn, SANDCELL_SANDBOX_ERROR, "the report could not be rendered (out of memory)",
			     &cfg->limits);
	free(report);
	/* The client may go now: nothing more is written to it. */
	close(conn);
}

static void send_report(const struct sandcell_result *r)
{
	answer_run(answer_conn, &answer_req->cfg, r);
	answered = true;
}

/* A request handed back by a spare's supervisor (factory.c): its text
 * and the client's fds came with the connection, in place of a frame. */
static int handed_text = -1;
static int handed_fds[3] = { -1, -1, -1 };

static int read_handed(char **buf, size_t *len, int fds[3], size_t *n_fds, struct sandcell_error *err)
{
	off_t n = lseek(handed_text, 0, SEEK_END);

	*buf = n >= 0 && n <= (off_t)SC_REQUEST_MAX ? malloc((size_t)n + 1) : NULL;
	if (*buf == NULL || pread(handed_text, *buf, (size_t)n, 0) != n)
		return sc_err(err, EIO, "server: reading a handed-back request");
	(*buf)[n] = '\0';
	*len = (size_t)n;
	memcpy(fds, handed_fds, sizeof(handed_fds));
	for (*n_fds = 0; *n_fds < 3 && fds[*n_fds] >= 0; (*n_fds)++)
		;
	close(handed_text);
	handed_text = -1;
	return 0;
}

static __attribute__((noreturn)) void serve_one(int conn, const struct opts *o)
{
	struct sandcell_error err = { 0, "" };
	struct sandcell_result *res = NULL;
	struct sc_request q;
	int fds[3] = { -1, -1, -1 };
	size_t n_fds = 3, len = 0;
	char *buf = NULL, *report;

	/* A request the server cannot read or parse is the client's mistake:
	 * a usage error, as the same mistake on the CLI's command line is. */
	if ((handed_text >= 0 ? read_handed(&buf, &len, fds, &n_fds, &err)
			      : sc_frame_recv(conn, &buf, &len, SC_REQUEST_MAX, fds, &n_fds, REQUEST_TIMEOUT_MS,
					      &err)) < 0) {
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
	asan_stack_arrived(NULL, &main_bottom, &main_size);
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

void worker_serve_handed(int conn, int status, int text_fd, const int fds[3], const struct opts *o)
{
	handed_text = text_fd;
	memcpy(handed_fds, fds, sizeof(handed_fds));
	worker_serve(conn, status, o);
}
