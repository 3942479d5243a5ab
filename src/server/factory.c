/*
 * The spare factory and the spares' supervisors (server.h; docs/warm.md,
 * "Isolated spares").
 *
 * The factory is forked from the template before the interpreter exists:
 * a small C process.  For each FACTORY_MAKE it forks a spare's
 * supervisor, which calls the same sandcell_run() as a cold run, with the
 * spare hooks set (internal.h, "A spare sandbox"): the sandbox is built
 * whole (namespaces, the shared part of the root, cgroups, the init
 * attached) before any request, and then waits.  The supervisor tells the
 * template (FACTORY_READY: the channel's template end, the init's pidfd,
 * the cgroup files), the template forks the code's process into the
 * sandbox and later hands it a connection.  The supervisor reads and
 * parses the request; what a spare does not serve (a session, the
 * listing, another interpreter, a cgroup parent) goes back to the
 * template (FACTORY_HANDBACK) for a worker of its own, and the spare, which
 * nothing of that request reached but its supervisor, waits for the next
 * (as after a refused request: FACTORY_FREE).  Each spare runs one run and
 * exits.
 */
#include "server.h"
#include "proto.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_MS 10000

/* ---- a spare's supervisor ---- */

static struct {
	int factory;		/* the socket to the template (shared with the factory) */
	int chan, chan_t;	/* the channel: ours, and the template's end until handed over */
	const struct opts *o;
	struct sc_request q;
	char *text;
	size_t len;
	int conn;
	bool served;		/* a request is this spare's run */
	bool answered;		/* its report went (the report hook) */
	bool ready_sent;	/* the template was told (FACTORY_READY) */
} sp = { -1, -1, -1, NULL, { 0 }, NULL, 0, -1, false, false, false };

static struct sc_spare_ops spare_ops;
/* The last request was handed back (FACTORY_HANDBACK frees the spare). */
static bool handed_back;

static int recv_msg_fd(int sock, struct sc_msg *m, int *fd)
{
	size_t n;
	int r = sc_recv_fds(sock, m, fd, 1, &n, 0);

	if (n == 0)
		*fd = -1;
	return r > 0 ? 0 : -1;
}

/* FACTORY_READY: the channel's template end, the init's pidfd, and the
 * join fds that are open (m.value: which of cg_fds came, a bit each). */
static int say_ready(int init_pidfd, const int *cg_fds, size_t n_cg)
{
	struct sc_msg m;
	int fds[8];
	size_t n = 0;

	memset(&m, 0, sizeof(m));
	m.type = FACTORY_READY;
	fds[n++] = sp.chan_t;
	fds[n++] = init_pidfd;
	for (size_t i = 0; i < n_cg && n < 8; i++)
		if (cg_fds[i] >= 0) {
			m.value |= 1 << i;
			fds[n++] = cg_fds[i];
		}
	if (sc_send_fds(sp.factory, &m, fds, n) < 0)
		return -1;
	sp.ready_sent = true;
	close(sp.chan_t);
	sp.chan_t = -1;
	return 0;
}

/* Whether a spare serves the request, as sandcell_run_remote's
 * defaults and the CLI send it; the rest goes back to the template.  The
 * pages its code's process wrote in advance (--write-ahead) are charged
 * to the run's memory cgroup: a run whose memory limit is under four
 * times that goes to a worker, whose copy starts with nothing written, so
 * that a small limit still leaves the code what it would have cold. */
static bool spare_serves(const struct sc_request *q)
{
	const char *want = sp.o->cgroup_parent, *got = q->cfg.cgroup_parent;

	return q->op == SC_OP_RUN && !(q->cfg.flags & SANDCELL_SESSION) &&
	       strcmp(q->cfg.python, sp.o->python) == 0 &&
	       (want == NULL ? got == NULL : got != NULL && strcmp(want, got) == 0) &&
	       q->cfg.limits.memory >= ((uint64_t)sp.o->write_ahead_mib << 22);
}

/* The pid behind a pidfd (its fdinfo's "Pid:"), or 0. */
static int pidfd_pid(int pidfd)
{
	char path[64], line[128];
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Pid: %d", &pid) == 1)
			break;
	if (f)
		fclose(f);
	return pid > 0 ? pid : 0;
}

/* m.value: the code's process of this spare, which the template stops
 * counting as a run (the worker it forks is the run now). */
static int hand_back(const int fds[3], size_t n_fds, int code_pidfd)
{
	struct sc_msg m;
	int all[5], mfd = memfd_create("sandcell-request", MFD_CLOEXEC), rc;
	size_t n = 0;

	if (mfd < 0 || write(mfd, sp.text, sp.len) != (ssize_t)sp.len) {
		if (mfd >= 0)
			close(mfd);
		return -1;
	}
	memset(&m, 0, sizeof(m));
	m.type = FACTORY_HANDBACK;
	m.value = pidfd_pid(code_pidfd);
	all[n++] = sp.conn;
	all[n++] = mfd;
	for (size_t i = 0; i < n_fds; i++)
		all[n++] = fds[i];
	rc = sc_send_fds(sp.factory, &m, all, n);
	close(mfd);
	handed_back = rc == 0;
	return rc;
}

/* A request this spare did not run (refused): it is free again. */
static void say_free(int code_pidfd)
{
	struct sc_msg m;

	memset(&m, 0, sizeof(m));
	m.type = FACTORY_FREE;
	m.value = pidfd_pid(code_pidfd);
	send(sp.factory, &m, sizeof(m), MSG_NOSIGNAL);
}

/* The request on conn, read and parsed as a worker reads it (worker.c):
 * 1, a run for this spare; 0, refused or handed back. */
/* After a refusal: the client may still be writing the rest of its
 * frame, and a close now would fail its writes (EPIPE) before it reads
 * the answer.  What it sends is read and dropped until it closes, for at
 * most 2 s, as a worker that refused kept its connection until it exited. */
static void drain_and_close(int conn)
{
	char buf[4096];
	double until = 2000;
	struct timespec t0, t1;

	shutdown(conn, SHUT_WR);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { conn, POLLIN, 0 };
		double spent;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		spent = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		if (spent >= until || poll(&p, 1, (int)(until - spent)) <= 0 || read(conn, buf, sizeof(buf)) <= 0)
			break;
	}
	close(conn);
}

static int read_request(int code_pidfd)
{
	struct sandcell_error err = { 0, "" };
	int fds[3] = { -1, -1, -1 };
	size_t n_fds = 3;
	bool parsed = false;

	if (sc_frame_recv(sp.conn, &sp.text, &sp.len, SC_REQUEST_MAX, fds, &n_fds, REQUEST_TIMEOUT_MS,
			  &err) < 0) {
		send_refusal(sp.conn, SANDCELL_USAGE_ERROR, err.msg, NULL);
	} else if (sc_request_parse(sp.text, sp.len, &sp.q, &err) < 0) {
		send_refusal(sp.conn, SANDCELL_USAGE_ERROR, err.msg, NULL);
	} else if ((parsed = true, !spare_serves(&sp.q))) {
		if (hand_back(fds, n_fds, code_pidfd) < 0)
			send_refusal(sp.conn, SANDCELL_SANDBOX_ERROR, "server: cannot hand the request on", NULL);
	} else if (n_fds != 3) {
		send_refusal(sp.conn, SANDCELL_USAGE_ERROR,
			     "protocol: a request carries exactly three fds (stdin, stdout, stderr)", NULL);
	} else {
		sp.q.cfg.stdin_fd = fds[0];
		sp.q.cfg.stdout_fd = fds[1];
		sp.q.cfg.stderr_fd = fds[2];
		/* The client half-closing its side (or hanging up) cancels the run. */
		sp.q.cfg.cancel_fd = sp.conn;
		return 1;
	}
	/* Not this spare's run: nothing of the request stays, and the spare,
	 * untouched (nothing reached its init or its code's process), is the
	 * template's again (hand_back said so; else FACTORY_FREE does). */
	for (size_t i = 0; i < n_fds; i++)
		close(fds[i]);
	if (parsed)
		sc_request_free(&sp.q);
	memset(&sp.q, 0, sizeof(sp.q));
	free(sp.text);
	sp.text = NULL;
	sp.len = 0;
	if (!handed_back)
		drain_and_close(sp.conn);
	else
		close(sp.conn);
	sp.conn = -1;
	return 0;
}

/* sc_spare_ops.await: the code's PREP, ready, then the code's pidfd
 * (SC_MSG_CODE) and the connection (SC_MSG_RUN) from the template; EOF:
 * dropped. */
static int spare_await(int init_pidfd, const int *cg_fds, size_t n_cg, const struct sc_go *prep,
		       struct sc_spare_req *q)
{
	struct sandcell_error err = { 0, "" };
	struct sc_msg m;
	int fd, code_pidfd = -1, sv[2];

	/* The channel is made now, after the clone: the sandbox's init
	 * (and its opener) must hold no end of it, or an idle spare whose
	 * template end closed would never see EOF.  PREP is its first
	 * message, there before the code's process exists. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	sp.chan = spare_ops.chan = sv[0];
	sp.chan_t = sv[1];
	if (sc_go_send(sp.chan, SC_MSG_PREP, prep, NULL, &err) < 0) {
		logmsg("spare: %s", err.msg);
		return -1;
	}
	if (say_ready(init_pidfd, cg_fds, n_cg) < 0)
		return -1;
	for (;;) {
		/* The template's end of the factory socket closes with the
		 * template: an idle spare then ends.  (Its end of the
		 * channel does not: the code's process holds it too.) */
		struct pollfd p[2] = { { sp.chan, POLLIN, 0 }, { sp.factory, 0, 0 } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return 0;
		/* The channel first: a connection handed over just before the
		 * template re-executed (or died) is this spare's to answer;
		 * only an idle spare ends with its template. */
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (p[1].revents & (POLLHUP | POLLERR))
				return 0;
			continue;
		}
		if (recv_msg_fd(sp.chan, &m, &fd) < 0)
			return 0;
		if (m.type == SC_MSG_CODE && fd >= 0 && code_pidfd < 0) {
			code_pidfd = fd;
		} else if (m.type == SC_MSG_RUN && fd >= 0 && code_pidfd >= 0) {
			/* The code's process stops its idle writes (pages.c)
			 * now, not at its GO: the CPU is the request's from
			 * here.  Without --write-ahead it has none to stop. */
			struct sc_msg t = { .type = SC_MSG_TAKEN };
			if (sp.o->write_ahead_mib > 0)
				send(sp.chan, &t, sizeof(t), MSG_NOSIGNAL | MSG_DONTWAIT);
			sp.conn = fd;
			if (read_request(code_pidfd) > 0)
				break;
			if (!handed_back)
				say_free(code_pidfd);
			handed_back = false;
		} else if (m.type == SC_MSG_ERROR && fd < 0) {
			/* The code's process failed its idle confinement
			 * (sc_code_confine) and exits: the channel's EOF ends
			 * this spare. */
			logmsg("spare: the code's process: %s", m.text);
		} else if (fd >= 0) {
			close(fd);
		}
	}
	sp.served = true;
	q->cfg = &sp.q.cfg;
	q->text = sp.text;
	q->len = sp.len;
	q->code_pidfd = code_pidfd;
	return 1;
}

static void spare_refuse(enum sandcell_status st, const char *why, const struct sandcell_limits *lim)
{
	send_refusal(sp.conn, st, why, lim);
	sp.served = false;
}

/* Report at completion (sc_report_hook), as a worker answers. */
static void spare_report(const struct sandcell_result *r)
{
	if (!sp.served)
		return;
	answer_run(sp.conn, &sp.q.cfg, r);
	sp.answered = true;
}

static __attribute__((noreturn)) void spare_main(void)
{
	struct sandcell_config cfg;
	struct sandcell_result *res = NULL;
	struct sandcell_error err = { 0, "" };

	/* Not the factory's: the supervisor reaps its init.  It outlives
	 * the factory (a respawn ends that) to finish its run. */
	signal(SIGCHLD, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
	spare_ops.await = spare_await;
	spare_ops.refuse = spare_refuse;
	spare_ops.chan = -1; /* made by spare_await */
	sc_set_spare(&spare_ops);
	sc_set_report_hook(spare_report);
	sandcell_config_init(&cfg);
	cfg.python = sp.o->python;
	cfg.cgroup_parent = sp.o->cgroup_parent;
	cfg.code = "";
	cfg.code_len = 0;
	cfg.stdout_fd = cfg.stderr_fd = -1;
	if (sandcell_run(&cfg, &res, &err) < 0) {
		struct sc_msg m;
		memset(&m, 0, sizeof(m));
		m.type = FACTORY_FAILED;
		send(sp.factory, &m, sizeof(m), MSG_NOSIGNAL);
		logmsg("spare: %s", err.msg);
		_exit(1);
	}
	if (!sp.served) {
		/* No run: a setup that failed before any request is the
		 * server's to know (it forks workers meanwhile). */
		if (!sp.ready_sent) {
			struct sc_msg m;
			memset(&m, 0, sizeof(m));
			m.type = FACTORY_FAILED;
			send(sp.factory, &m, sizeof(m), MSG_NOSIGNAL);
			logmsg("spare: %s", res->error[0] ? res->error : "setup failed");
		}
		_exit(0);
	}
	if (!sp.answered)
		answer_run(sp.conn, &sp.q.cfg, res);
	for (int i = 0; i < res->n_left_behind && i < 8; i++)
		logmsg("a run's cgroup was left behind after its report: %s", res->left_behind[i]);
	_exit(0);
}

/* ---- the factory ---- */

void factory_main(int sock, const struct opts *o)
{
	struct sc_msg m;

	/* Spares that end are reaped by the kernel; the factory ends with
	 * its template (killed, or the socket closed by a respawn). */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(1);
	sp.factory = sock;
	sp.o = o;
	for (;;) {
		ssize_t n = recv(sock, &m, sizeof(m), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(m))
			_exit(0);
		if (m.type != FACTORY_MAKE)
			continue;
		if (fork() == 0)
			spare_main();
	}
}
