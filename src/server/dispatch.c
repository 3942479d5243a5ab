/*
 * The warm server's loop (server.h): the template accepts connections
 * from its own uid, queues them, hands each to a worker (a spare forked
 * ahead of time, else a fork), reaps workers and answers their status
 * messages (table.c), respawns itself, and stops.  It never reads a
 * request: each worker reads its own.
 */
#include "server.h"
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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
