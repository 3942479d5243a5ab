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
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
