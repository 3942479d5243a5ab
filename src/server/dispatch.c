/*
 * The warm server's loop (server.h): the template accepts connections
 * from its own uid, queues them, hands each to a spare (a sandbox the
 * factory built ahead of time, with the code's process the template
 * forked into it; factory.c) or else to a worker it forks, relays each
 * spare's code's wait status, reaps, answers the workers' status messages
 * (table.c), respawns itself, and stops.  It never reads a request: the
 * spares' supervisors and the workers read their own.
 */
#include "server.h"
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include "proto.h"
#include <time.h>
#include <unistd.h>

/* A spare (factory.c): a sandbox built ahead of time by a supervisor of
 * its own, with the code's process already forked into it, waiting for
 * its GO.  The template holds the channel's end that the code's process
 * also reads (GO comes there from the supervisor); the template only
 * writes to it: the code's pidfd, the connection, the wait status. */
struct spare {
	int chan;
	pid_t code_pid;
	int code_pidfd;
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
	int factory;		/* the factory's socket */
	long making;		/* spares asked for, not ready yet */
	double making_since;	/* when the oldest of those was asked for */
	double backoff_until;	/* a spare failed to build: none asked for before */
	long held;		/* queued runs with a slot, held for a spare being built */
	double taken_at;	/* when a spare was last handed a request */
	/* Spare runs whose code has ended, until their supervisor has
	 * answered and exited (its end of the channel closed): the template's
	 * ends of those channels. */
	int answering[MAX_WORKERS];
	long n_answering;
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

/* One message on a spare's channel (or the factory's socket), with an
 * fd or none. */
static int chan_send(int chan, int type, int value, int fd)
{
	struct sc_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.value = value;
	if (fd >= 0)
		return sc_send_fds(chan, &m, &fd, 1);
	return send(chan, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)sizeof(m) ? 0 : -1;
}

/* Only the server's own uid may run code through it: a request names host
 * paths, which the server opens with its own rights. */
static bool peer_allowed(int fd)
{
	struct ucred cr;
	socklen_t l = sizeof(cr);

	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &l) == 0 && cr.uid == geteuid();
}


/* Closing the template's end of its channel, and the code's process
 * gone with the sandbox, end an idle spare: its supervisor sees the
 * factory's socket close (respawn, stop) or kills its sandbox itself. */
static void drop_spare(struct spare *sp)
{
	close(sp->chan);
	syscall(SYS_pidfd_send_signal, sp->code_pidfd, SIGKILL, NULL, 0);
	close(sp->code_pidfd);
}

static void drop_spares(void)
{
	long i;

	for (i = 0; i < S.n_spares; i++)
		drop_spare(&S.spares[i]);
	S.n_spares = 0;
	if (S.factory >= 0)
		close(S.factory);
	S.factory = -1;
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
		if (tab.w[i].relay >= 0)
			close(tab.w[i].relay);
	}
	for (i = 0; i < S.n_spares; i++) {
		close(S.spares[i].chan);
		close(S.spares[i].code_pidfd);
	}
	if (S.factory >= 0)
		close(S.factory);
	S.factory = -1;
	explicit_bzero(&tab, sizeof(tab));
	explicit_bzero(S.queue, (size_t)S.o.queue * sizeof(*S.queue));
	S.n_queue = S.n_spares = 0;
}

/* fork() for a worker whose status socket is sv[1] (sv[0] the
 * template's): in the child, the heap and the fds are set up for serving
 * one request (worker_serve, with sv[1]). */
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

static void add_worker(pid_t pid, int pidfd, int sock, int relay)
{
	struct worker *w = &tab.w[tab.n++];

	memset(w, 0, sizeof(*w));
	w->pid = pid;
	w->pidfd = pidfd;
	w->sock = sock;
	w->relay = relay;
	S.runs++;
}

/* How long a queued request with a free slot waits for a spare being
 * built before a forked worker serves it.  A worker copies the template
 * three times on the request's path (worker, init, code), a spare once and
 * off it: under load, waiting for the factory costs less CPU per run than
 * the worker does, and a worker only serves when spares cannot keep up
 * (or cannot come: no factory, or one just failed to build). */
#define SPARE_WAIT_SEC 0.25

static bool spare_can_come(double t)
{
	return S.o.spares > 0 && S.factory >= 0 && t >= S.backoff_until;
}

/* Hands conn to a ready spare (its code's process then counts as a
 * running worker, the spare's channel its relay); -1 if none is. */
static int to_spare(int conn)
{
	while (S.n_spares > 0) {
		struct spare sp = S.spares[--S.n_spares];
		if (chan_send(sp.chan, SC_MSG_RUN, 0, conn) == 0) {
			close(conn);
			S.taken_at = now_sec();
			add_worker(sp.code_pid, sp.code_pidfd, -1, sp.chan);
			return 0;
		}
		drop_spare(&sp);
	}
	return -1;
}

/* One queued connection: to a ready spare, else to a forked worker. */
static void dispatch_one(int conn)
{
	int sv[2];
	pid_t pid;

	if (to_spare(conn) == 0)
		return;
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
		add_worker(pid, (int)syscall(SYS_pidfd_open, pid, 0), sv[0], -1);
}

/* One-shot runs take slots; sessions have --max-sessions of their own
 * (a worker counts as a run until it claims a session slot). */
static void dispatch(double t)
{
	long free_slots;

	S.held = 0;
	while (S.n_queue > 0 && (free_slots = S.o.slots - (tab.n - tab.n_sessions)) > 0 && tab.n < MAX_WORKERS) {
		int conn = S.queue[0].fd;

		/* FIFO: the oldest waits for the next spare, and the rest
		 * behind it; refill asks for one per request held. */
		if (S.n_spares == 0 && spare_can_come(t) && t - S.queue[0].since < SPARE_WAIT_SEC) {
			S.held = S.n_queue < free_slots ? S.n_queue : free_slots;
			return;
		}
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

/* ---- spares: the code's process, forked into each ---- */

/* What the code's process takes with it (template_fork_into). */
struct code_args {
	int chan;
	int join[SC_JOIN_FDS]; /* the cgroup namespace, the run cgroups (-1: none) */
};

static __attribute__((noreturn)) void code_fail(int chan, const char *what)
{
	struct sc_msg m;

	memset(&m, 0, sizeof(m));
	m.type = SC_MSG_ERROR;
	m.err = errno;
	snprintf(m.text, sizeof(m.text), "spare: %s: %s", what, strerror(errno));
	send(chan, &m, sizeof(m), MSG_NOSIGNAL);
	_exit(127);
}

/* The v2 run cgroup, when the fork could not be born in it: a move of
 * its own, through the cgroup's directory (the slow way: a move waits for
 * an RCU grace period, holding the kernel's cgroup mutex). */
static void code_join_v2(int chan, int dirfd)
{
	int fd = openat(dirfd, "cgroup.procs", O_WRONLY | O_CLOEXEC);

	if (fd < 0 || write(fd, "0", 1) != 1)
		code_fail(chan, "joining the v2 run cgroup");
	close(fd);
}

/* In the code's process, pid 3 of the spare: the template's state goes
 * (as in a worker), every fd but the channel and the join fds is closed,
 * the run cgroups are joined (the v2 one at birth, template_fork_into)
 * and the spare's cgroup namespace entered while the sandbox is idle,
 * where it confines itself (sc_code_confine) before its idle work; then
 * it waits for its GO (sc_code_enter), and the code starts in this
 * interpreter. */
static void code_child(void *arg, bool born_in)
{
	struct code_args *a = arg;
	struct sandcell_error e;
	const char *const *argv, *const *envp;
	int keep[1 + SC_JOIN_FDS], n = 0;

	/* Freed blocks zeroed while the template's state goes (its command
	 * line's copies name host paths), as in a worker. */
	scrub_heap = true;
	drop_template_args();
	worker_drop_template();
	scrub_heap = false;
	S.o.socket = S.o.cgroup_parent = NULL;
	keep[n++] = a->chan;
	for (int i = 0; i < SC_JOIN_FDS; i++)
		if (a->join[i] >= 0)
			keep[n++] = a->join[i];
	if (sc_fds_close_except(keep, (size_t)n, &e) < 0)
		code_fail(a->chan, "closing fds");
	if (a->join[SC_JOIN_V2] >= 0) {
		if (!born_in)
			code_join_v2(a->chan, a->join[SC_JOIN_V2]);
		close(a->join[SC_JOIN_V2]);
	}
	if (sc_cgroup_join_self(a->join + SC_JOIN_V1, &e) < 0) {
		errno = e.code;
		code_fail(a->chan, "joining the v1 run cgroups");
	}
	if (a->join[SC_JOIN_CGNS] < 0)
		errno = EBADF;
	if (a->join[SC_JOIN_CGNS] < 0 || setns(a->join[SC_JOIN_CGNS], CLONE_NEWCGROUP) < 0)
		code_fail(a->chan, "entering the cgroup namespace");
	close(a->join[SC_JOIN_CGNS]);
	sc_code_confine(a->chan);
	code_idle(a->chan);
	sc_code_enter(a->chan, &argv, &envp);
	if (code_prepare(argv, envp) < 0)
		_exit(127);
	code_run();
	_exit(1);
}

/* FACTORY_READY's fds: the channel's template end, the init's pidfd, the
 * join fds m.value names (SC_JOIN_*). */
static int ready_fds(int sock, struct sc_msg *m, int fds[8], size_t *n)
{
	return sc_recv_fds(sock, m, fds, 8, n, MSG_DONTWAIT);
}

/* A spare is ready: the code's process forked into it, its pidfd sent to
 * the supervisor, and it joins the pool. */
static void on_spare_ready(const struct sc_msg *m, int *fds, size_t n)
{
	struct code_args a;
	struct spare *sp;
	size_t k = 2;
	pid_t pid;

	/* A spare that came back (spare_free_again) may have filled the pool
	 * meanwhile: one too many goes, before any fork. */
	if (n < 2 || S.n_spares >= S.o.spares + S.held || S.n_spares >= MAX_SPARES) {
		/* Its supervisor sees the channel close and ends it. */
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return;
	}
	a.chan = fds[0];
	for (int i = 0; i < SC_JOIN_FDS; i++)
		a.join[i] = (m->value & (1 << i)) && k < n ? fds[k++] : -1;
	pid = template_fork_into(fds[1], a.join[SC_JOIN_V2], code_child, &a);
	for (size_t i = 1; i < n; i++)
		close(fds[i]); /* the init's pidfd and the join fds: the code's */
	if (pid < 0) {
		logmsg("cannot fork into a spare: %s", strerror(errno));
		close(fds[0]);
		return;
	}
	sp = &S.spares[S.n_spares];
	sp->chan = fds[0];
	sp->code_pid = pid;
	sp->code_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (sp->code_pidfd < 0 || chan_send(sp->chan, SC_MSG_CODE, 0, sp->code_pidfd) < 0) {
		drop_spare(sp);
		return;
	}
	S.n_spares++;
}

static long find_worker(pid_t pid);
static void forget_worker(long i);

/* A spare handed a request it did not run (handed back, or refused) is
 * free again: back to the pool from the table, where it counted as a run
 * (a refused request still counts toward --respawn-runs; one handed on
 * counts as its worker's).  pid is its code's process (the message's
 * value, never trusted further than to find our own entry). */
static void spare_free_again(pid_t pid, bool handed_on)
{
	long w = pid > 0 ? find_worker(pid) : -1;
	struct worker *e;

	if (w < 0 || tab.w[w].relay < 0)
		return;
	e = &tab.w[w];
	if (handed_on)
		S.runs--; /* the request counts once, as its worker's */
	/* Its replacement may be ready already: the pool keeps --spares,
	 * and the one that goes is the newest (that replacement), so that a
	 * request handed back leaves the pool as it was, whichever of the
	 * two came first.  Both are sandboxes no code has run in. */
	if (S.n_spares >= S.o.spares || S.n_spares >= MAX_SPARES) {
		if (S.n_spares == 0) {
			syscall(SYS_pidfd_send_signal, e->pidfd, SIGKILL, NULL, 0);
			forget_worker(w);
			return;
		}
		drop_spare(&S.spares[--S.n_spares]);
	}
	S.spares[S.n_spares++] = (struct spare){ e->relay, e->pid, e->pidfd };
	e->relay = e->pidfd = -1;
	*e = tab.w[tab.n - 1];
	explicit_bzero(&tab.w[tab.n - 1], sizeof(*e));
	tab.n--;
}

/* A request a spare does not serve, handed back: a worker serves it. */
static void on_handback(const struct sc_msg *m, int *fds, size_t n)
{
	int sv[2], client[3] = { -1, -1, -1 };
	pid_t pid;

	for (size_t i = 2; i < n && i < 5; i++)
		client[i - 2] = fds[i];
	spare_free_again((pid_t)m->value, true);
	if (n < 2 || tab.n >= MAX_WORKERS || status_pair(sv) < 0) {
		if (n >= 1)
			send_refusal(fds[0], SANDCELL_BUSY, "server busy: no worker for the request", NULL);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return;
	}
	pid = fork_worker(sv);
	if (pid == 0)
		worker_serve_handed(fds[0], sv[1], fds[1], client, &S.o);
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
	if (pid > 0)
		add_worker(pid, (int)syscall(SYS_pidfd_open, pid, 0), sv[0], -1);
}

/* The factory's socket: ready spares, failed ones, handed-back requests. */
static void on_factory(void)
{
	struct sc_msg m;
	int fds[8];
	size_t n;
	int r;

	while ((r = ready_fds(S.factory, &m, fds, &n)) > 0) {
		if (m.type == FACTORY_READY) {
			S.making -= S.making > 0;
			S.making_since = now_sec();
			on_spare_ready(&m, fds, n);
		} else if (m.type == FACTORY_HANDBACK) {
			on_handback(&m, fds, n);
		} else if (m.type == FACTORY_FREE) {
			spare_free_again((pid_t)m.value, false);
			for (size_t i = 0; i < n; i++)
				close(fds[i]);
		} else if (m.type == FACTORY_FAILED) {
			/* A spare that could not be built: workers serve
			 * meanwhile, and the next is asked for later. */
			S.making -= S.making > 0;
			S.backoff_until = now_sec() + 1;
			for (size_t i = 0; i < n; i++)
				close(fds[i]);
		} else {
			for (size_t i = 0; i < n; i++)
				close(fds[i]);
		}
	}
	if (r == 0) {
		logmsg("the spare factory is gone: requests go to forked workers");
		close(S.factory);
		S.factory = -1;
	}
}

/*
 * While one run is in flight, none waits and a spare is still ready for
 * the next request, the pool waits to be refilled until that run is over
 * (its code ended and its supervisor answered and exited), or until
 * REFILL_DEFER_SEC after a spare was last taken: building a
 * sandbox (its namespaces, the code's copy of the template) beside a
 * short run takes CPU from it, milliseconds on a small machine, while a
 * long run must not leave the pool short.  With more runs in flight, or
 * requests waiting, the pool is refilled at once, as it is when empty:
 * then a spare ready in time saves a wait or a worker.  Returns the
 * seconds left to wait, or 0.
 */
#define REFILL_DEFER_SEC 1.0
static double refill_deferred(double t)
{
	if (S.n_spares == 0 || S.held > 0 || S.n_queue > 0 ||
	    tab.n - tab.n_sessions + S.n_answering != 1 || t - S.taken_at >= REFILL_DEFER_SEC)
		return 0;
	return S.taken_at + REFILL_DEFER_SEC - t;
}

/* Asks the factory for what the pool lacks.  Spares asked for that
 * brought no answer for 10 s (a supervisor died) are asked for again. */
static void refill(double t)
{
	if (S.factory < 0 || t < S.backoff_until)
		return;
	if (S.making > 0 && t - S.making_since > 10)
		S.making = 0;
	if (refill_deferred(t) > 0)
		return;
	while (S.n_spares + S.making < S.o.spares + S.held && S.n_spares + S.making < MAX_SPARES) {
		if (chan_send(S.factory, FACTORY_MAKE, 0, -1) < 0)
			return;
		if (S.making++ == 0)
			S.making_since = t;
	}
}

static long find_worker(pid_t pid)
{
	for (long i = 0; i < tab.n; i++)
		if (tab.w[i].pid == pid)
			return i;
	return -1;
}

static void forget_worker(long i)
{
	struct worker *w = &tab.w[i];

	if (w->relay >= 0)
		close(w->relay);
	close(w->pidfd);
	if (w->sock >= 0)
		close(w->sock);
	tab.n_sessions -= w->session;
	*w = tab.w[tab.n - 1];
	explicit_bzero(&tab.w[tab.n - 1], sizeof(*w));
	tab.n--;
}

/* Which answering supervisors are gone (p: their poll entries, in order).
 * Nothing is read from them: a message on the channel (none is sent
 * after the wait status) is dropped unread. */
static void answered(const struct pollfd *p)
{
	long k = 0;

	for (long i = 0; i < S.n_answering; i++) {
		char b;
		ssize_t r = p[i].revents ? recv(S.answering[i], &b, 1, MSG_DONTWAIT) : -1;

		if (p[i].revents && (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))) {
			close(S.answering[i]);
			continue;
		}
		S.answering[k++] = S.answering[i];
	}
	S.n_answering = k;
}

/* Every child that ended: a worker leaves the table; a spare's code's
 * process has its wait status relayed to the spare's supervisor, which
 * decides the run's verdict from it (the template is its parent: no one
 * in the sandbox could say it); a spare whose code's process died while
 * idle (killed from outside: the OOM killer, an operator) is dropped and
 * refilled by serve_turn.  Anything else (the helpers of
 * template_fork_into, spares and orphans re-parented to the template, a
 * previous template's) is only reaped. */
static void reap(void)
{
	int st;
	pid_t pid;

	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		long i = find_worker(pid);
		if (i >= 0) {
			if (tab.w[i].relay >= 0) {
				chan_send(tab.w[i].relay, SC_MSG_EXIT, st, -1);
				if (S.n_answering < MAX_WORKERS) {
					S.answering[S.n_answering++] = tab.w[i].relay;
					tab.w[i].relay = -1;
				}
			}
			forget_worker(i);
			continue;
		}
		for (i = 0; i < S.n_spares; i++)
			if (S.spares[i].code_pid == pid) {
				/* One that exited with a status failed a step
				 * of its own (code_child, sc_code_confine; its
				 * supervisor logs a confinement's error): a spare
				 * that could not be built, as FACTORY_FAILED. */
				if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
					logmsg("spare %ld failed while idle (exit %d); the next in a second", (long)pid,
					       WEXITSTATUS(st));
					S.backoff_until = now_sec() + 1;
				} else {
					logmsg("spare %ld died while idle; replacing it", (long)pid);
				}
				drop_spare(&S.spares[i]);
				S.spares[i] = S.spares[--S.n_spares];
				break;
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
	static struct pollfd p[2 + 3 * MAX_WORKERS + MAX_SPARES];
	long idx_w[MAX_WORKERS], idx_a, idx_f, i;
	int np = 0, timeout = 1000, defer_ms;
	double t = now_sec();

	if (S.runs >= S.o.respawn_runs || t - S.started >= S.o.respawn_seconds)
		respawn(); /* returns only if the table could not be saved */
	expire_queue(t);
	dispatch(t);
	refill(t);
	if (S.n_queue < S.o.queue)
		p[np++] = (struct pollfd){ S.ls, POLLIN, 0 };
	for (i = 0; i < tab.n; i++) {
		p[np++] = (struct pollfd){ tab.w[i].pidfd, POLLIN, 0 };
		idx_w[i] = tab.w[i].sock >= 0 ? np : -1;
		if (tab.w[i].sock >= 0)
			p[np++] = (struct pollfd){ tab.w[i].sock, POLLIN, 0 };
	}
	for (i = 0; i < S.n_spares; i++)
		p[np++] = (struct pollfd){ S.spares[i].code_pidfd, POLLIN, 0 };
	idx_a = np;
	for (i = 0; i < S.n_answering; i++)
		p[np++] = (struct pollfd){ S.answering[i], POLLIN, 0 };
	idx_f = S.factory >= 0 ? np : -1;
	if (S.factory >= 0)
		p[np++] = (struct pollfd){ S.factory, POLLIN, 0 };
	if (S.n_queue > 0)
		timeout = 50;
	/* A deferred refill is due without an event to wake for. */
	defer_ms = (int)(refill_deferred(t) * 1000) + 1;
	if (defer_ms > 1 && S.n_spares + S.making < S.o.spares && timeout > defer_ms)
		timeout = defer_ms;
	if (poll(p, (nfds_t)np, timeout) < 0)
		return errno == EINTR ? 0 : -1;
	/* Messages first: a worker's last ones come before its exit. */
	tab.spares = S.n_spares;
	tab.queued = S.n_queue;
	for (i = 0; i < tab.n; i++)
		if (idx_w[i] >= 0 && p[idx_w[i]].revents)
			table_on_msg(&tab, &tab.w[i]);
	answered(p + idx_a);
	reap();
	if (idx_f >= 0 && p[idx_f].revents)
		on_factory();
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

void server_set_factory(int fd)
{
	S.factory = fd;
}

int server_init(const struct opts *o, int state_fd)
{
	S.o = *o;
	S.factory = -1;
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
