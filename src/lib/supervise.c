/*
 * The supervision of a run while it lives: one poll loop over the code's
 * streams (passed on with caps, or turned into a session's events), the
 * control socket of the sandbox's init, its pidfd, the caller's stdin and
 * cancel fd, and the run's limits (wall and CPU time, an OOM kill on
 * cgroup v1, a session's own).  Every stop is decided here from host
 * evidence and recorded in struct run for the verdict (verdict.c); the
 * loop ends once the tree is dead and every stream reached EOF.
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* One of the code's output streams: stdout, stderr, the channel. */
struct stream {
	int fd;		/* our read end, -1 when EOF */
	int out;	/* host fd to forward to, -1 = drop */
	uint64_t total, kept, limit;
	bool truncated;
	const char *name;
	struct sc_chan *chan;	/* the code's channel: routed, parsed after the run */
	struct sess *ss;	/* a session: the bytes become output events */
	int which;		/* a session: 0 stdout, 1 stderr */
};

void sc_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return; /* the caller's stream is gone: keep draining */
		}
		p += w;
		n -= (size_t)w;
	}
}

/* One read of a stream: passed on up to its limit (with one marker
 * where it was cut), routed to a session, or fed to the channel. */
static void pump(struct stream *s)
{
	char buf[65536];
	ssize_t n = read(s->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		if (s->ss)
			sc_sess_raw(s->ss, s->which, "", 0, true);
		close(s->fd);
		s->fd = -1;
		return;
	}
	s->total += (uint64_t)n;
	if (s->chan) {
		sc_chan_feed(s->chan, buf, (size_t)n);
		return;
	}
	if (s->kept < s->limit) {
		size_t take = (size_t)n;
		if (take > s->limit - s->kept)
			take = (size_t)(s->limit - s->kept);
		if (s->ss)
			sc_sess_raw(s->ss, s->which, buf, take, false);
		else if (s->out >= 0)
			sc_write_all(s->out, buf, take);
		s->kept += take;
		if (take < (size_t)n)
			s->truncated = true;
	} else {
		s->truncated = true;
	}
	if (s->truncated && (s->out >= 0 || s->ss) && s->kept == s->limit) {
		char marker[128];
		int m = snprintf(marker, sizeof(marker),
				 "\n[sandcell: %s truncated after %llu bytes]\n", s->name,
				 (unsigned long long)s->limit);
		if (s->ss) {
			sc_sess_raw(s->ss, s->which, "", 0, true);
			sc_sess_raw(s->ss, s->which, marker, (size_t)m, true);
		} else {
			sc_write_all(s->out, marker, (size_t)m);
		}
		s->kept = s->limit + 1; /* marker written once */
	}
}

int sc_wait_in(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	double end = now_sec() + timeout_ms / 1000.0;
	int r;

	while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
		if (timeout_ms > 0) {
			double left = end - now_sec();
			if (left <= 0)
				return 0;
			timeout_ms = (int)(left * 1000) + 1;
		}
	}
	return r > 0 ? 1 : r;
}

int sc_init_recv_fds(int sock, struct sc_msg *m, int *fds, size_t max, size_t *n)
{
	int r = sc_recv_fds(sock, m, fds, max, n, 0);

	/* An init that exited with a message of ours unread makes the socket
	 * report ECONNRESET once, ahead of what it had sent (its error). */
	if (r < 0 && errno == ECONNRESET)
		r = sc_recv_fds(sock, m, fds, max, n, 0);
	return r > 0 ? 0 : -1;
}

int sc_init_recv(int sock, struct sc_msg *m, int *fd_out)
{
	int fds[4];
	size_t n, k;
	int r = sc_init_recv_fds(sock, m, fds, 4, &n);

	if (fd_out)
		*fd_out = -1;
	for (k = 0; k < n; k++) {
		if (fd_out && *fd_out < 0 && m->type == SC_MSG_SCRATCH)
			*fd_out = fds[k];
		else
			close(fds[k]);
	}
	return r;
}

void sc_kill_tree(struct run *rn)
{
	if (rn->have_cg)
		sc_cgroup_kill(&rn->cg);
	/* Killing the namespace's init kills every process in it.  Reduced
	 * mode has no namespace: its init is asked to kill the tree itself
	 * (it is a subreaper; see contain.c), then the group is killed. */
	if (rn->pidfd >= 0 && !rn->reduced)
		syscall(SYS_pidfd_send_signal, rn->pidfd, SIGKILL, NULL, 0);
	if (rn->pidfd >= 0 && rn->reduced) {
		syscall(SYS_pidfd_send_signal, rn->pidfd, SIGTERM, NULL, 0);
		if (sc_wait_in(rn->pidfd, 2000) <= 0)
			syscall(SYS_pidfd_send_signal, rn->pidfd, SIGKILL, NULL, 0);
		kill(-rn->pid, SIGKILL);
	}
}

/* Before a stop the supervisor decided (wall or CPU limit, cancel), the
 * code is asked where it is: SC_WHERE_SIGNAL to the sandbox's init, which
 * passes SIGURG on to the code (contain.c); the bootstrap answers with a W
 * record.  At most once per run, only once the code runs, and never in
 * the way of the kill: at a limit it comes WHERE_GRACE before the kill
 * (which stays when it was), on cancel the kill follows WHERE_GRACE later,
 * whatever the code does. */
#define WHERE_GRACE_MAX 0.25
static double where_grace(double limit)
{
	return limit / 10 < WHERE_GRACE_MAX ? limit / 10 : WHERE_GRACE_MAX;
}

static void ask_where(struct run *rn)
{
	if (rn->where_sent || !rn->r->code_started || rn->init_exited || rn->pidfd < 0)
		return;
	rn->where_sent = true;
	/* A spare's init did not fork the code and has no handler: the
	 * question goes to the code's process itself. */
	if (rn->code_pidfd >= 0)
		syscall(SYS_pidfd_send_signal, rn->code_pidfd, SIGURG, NULL, 0);
	else
		syscall(SYS_pidfd_send_signal, rn->pidfd, SC_WHERE_SIGNAL, NULL, 0);
}

/* One message of the sandbox init (contain.c), during the run or late
 * (EXIT races the pidfd: late, a session is over and says no "ready").
 * fd came with it (SCM_RIGHTS): kept only as the scratch fd, else closed. */
static void on_init_msg(struct run *rn, const struct sc_msg *m, int fd, double now, bool late)
{
	struct sandcell_result *r = rn->r;
	struct sess *ss = rn->ss;

	if (m->type == SC_MSG_SCRATCH && fd >= 0 && rn->scratch_fd < 0) {
		rn->scratch_fd = fd;
		return;
	}
	if (m->type == SC_MSG_STARTED) {
		r->code_started = true;
		if (ss && !ss->ready_sent && !late) {
			ss->ready_sent = true;
			ss->last_activity = now;
			sc_sess_emit(ss, json_pack("{s:s}", "ev", "ready"));
		}
	} else if (m->type == SC_MSG_EXIT) {
		rn->got_exit = true;
		rn->wait_status = m->value;
		/* A spare's init does not exit with the code: ending it ends
		 * the namespace, as a cold init's exit does. */
		if (rn->code_sock >= 0 && !rn->init_exited)
			syscall(SYS_pidfd_send_signal, rn->pidfd, SIGKILL, NULL, 0);
	} else if (m->type == SC_MSG_ERROR) {
		char msg[600];
		snprintf(msg, sizeof(msg), "sandbox setup failed: %s", m->text);
		set_error(r, msg);
		r->setup_errno = m->err;
	}
	if (fd >= 0)
		close(fd);
}

/* The loop's state: the run, its three streams, the caller's stdin on
 * its way to the code's (a run) or the commands (a session), the
 * deadlines, and where each fd sits in this turn's poll set. */
struct loop {
	struct run *rn;
	struct sess *ss;
	struct stream st[3];
	int in_src;			/* the caller's stdin, or -1 */
	char in_buf[65536];
	size_t in_len, in_off;		/* a run: bytes read, not yet written on */
	bool in_eof;			/* a run: no more stdin to pass on */
	double deadline, where_at;	/* the wall limit, and the question before it */
	double drain_deadline;		/* init exited: the streams' last chance */
	struct pollfd p[13];
	int np;
	int idx_st[3], idx_sock, idx_code, idx_cpid, idx_pid, idx_cancel, idx_in, idx_inw, idx_cmd, idx_loopw;
};

/* The streams, the channel and the stdin pipe, before the first turn.
 * A failure here stops the run (the loop then only drains). */
static void loop_start(struct loop *lp)
{
	struct run *rn = lp->rn;
	const struct sandcell_limits *l = &rn->cfg->limits;
	struct sandcell_result *r = rn->r;
	struct sc_chan_limits cl = { (size_t)l->result_bytes, (size_t)l->cell_bytes,
				     (size_t)l->cell_output_bytes, (size_t)l->cell_outputs };
	struct stream st[3] = {
		{ rn->out_pipe[0], rn->cfg->stdout_fd, 0, 0, l->stream, false, "stdout", NULL, NULL, 0 },
		{ rn->err_pipe[0], rn->cfg->stderr_fd, 0, 0, l->stream, false, "stderr", NULL, NULL, 1 },
		{ rn->res_pipe[0], -1, 0, 0, 0, false, "channel", NULL, NULL, 0 },
	};
	struct sess *ss = rn->ss;
	int i;

	memcpy(lp->st, st, sizeof(st));
	lp->in_src = rn->cfg->stdin_fd;
	lp->in_eof = lp->in_src < 0;
	lp->deadline = rn->t0 + l->wall_sec;
	lp->where_at = lp->deadline - where_grace(l->wall_sec);
	if (ss) {
		/* A session: the streams become events, the channel is
		 * streamed (the session owns it), stdin is the commands. */
		for (i = 0; i < 2; i++)
			lp->st[i].ss = ss;
		lp->st[2].chan = ss->chan;
		ss->last_activity = rn->t0;
	} else {
		lp->st[2].chan = sc_chan_new(&cl);
	}
	if (lp->st[2].chan == NULL) {
		set_error(r, "out of memory for the code's channel");
		sc_kill_tree(rn);
	}
	rn->out_pipe[0] = rn->err_pipe[0] = rn->res_pipe[0] = -1;
	if (ss) {
		if (fcntl(rn->in_pipe[1], F_SETFL, O_NONBLOCK) < 0) {
			set_error(r, "pipes: cannot make the stdin pipe non-blocking");
			sc_kill_tree(rn);
			close_fd(&rn->in_pipe[1]);
		}
		lp->in_eof = true; /* the generic stdin pump is not used */
	} else if (lp->in_eof) {
		close_fd(&rn->in_pipe[1]);
	} else if (fcntl(rn->in_pipe[1], F_SETFL, O_NONBLOCK) < 0) {
		/* A blocking stdin pipe could stall this loop and with it every
		 * limit: stop the run instead. */
		set_error(r, "pipes: cannot make the stdin pipe non-blocking");
		sc_kill_tree(rn);
		lp->in_eof = true;
		close_fd(&rn->in_pipe[1]);
	}
}

/* The run's limits, checked at every turn: the question before the wall
 * limit and the kill at it, a cancel's delayed kill, an OOM kill (cgroup
 * v1), the CPU limit and the question before it; then a session's own. */
static void enforce_limits(struct loop *lp, double now)
{
	struct run *rn = lp->rn;
	const struct sandcell_limits *l = &rn->cfg->limits;
	struct sess *ss = lp->ss;

	if (!rn->init_exited && now >= lp->where_at)
		ask_where(rn);
	if (!rn->init_exited && now >= lp->deadline && !rn->killed_wall) {
		rn->killed_wall = true;
		sc_kill_tree(rn);
	}
	if (!rn->init_exited && rn->kill_at > 0 && now >= rn->kill_at) {
		rn->kill_at = 0;
		sc_kill_tree(rn);
	}
	/* cgroup v1 has no memory.oom.group: one OOM kill there ends
	 * the whole run here, as v2 does in the kernel. */
	if (!rn->init_exited && rn->have_cg && !rn->killed_oom && sc_cgroup_oom(&rn->cg)) {
		rn->killed_oom = true;
		sc_kill_tree(rn);
	}
	if (!rn->init_exited && rn->have_cg && !rn->killed_cpu) {
		uint64_t us = 0;
		if (sc_cgroup_cpu_usec(&rn->cg, &us) == 0) {
			if ((double)us / 1e6 >= l->cpu_sec) {
				rn->killed_cpu = true;
				sc_kill_tree(rn);
			} else if ((double)us / 1e6 >= l->cpu_sec - where_grace(l->cpu_sec)) {
				ask_where(rn);
			}
		}
	}
	if (ss)
		sc_sess_tick(ss, now);
	if (ss && ss->closing && !ss->loop_closed && ss->tl_off == ss->tl_len &&
	    rn->in_pipe[1] >= 0) {
		/* Close: the loop reads EOF once the running cell, if
		 * any, is done, and exits. */
		close_fd(&rn->in_pipe[1]);
		ss->loop_closed = true;
		ss->closed_at = now;
	}
}

/* True once the loop is over: init exited and every stream reached EOF,
 * or the streams outlived their drain deadline. */
static bool loop_over(struct loop *lp, double now)
{
	struct run *rn = lp->rn;

	if (rn->init_exited && lp->st[0].fd < 0 && lp->st[1].fd < 0 && lp->st[2].fd < 0)
		return true;
	if (rn->init_exited && lp->drain_deadline == 0)
		lp->drain_deadline = now + 5;
	/* Cannot happen with a dead namespace; never hang. */
	return lp->drain_deadline != 0 && now > lp->drain_deadline;
}

static int watch(struct loop *lp, int fd, short events)
{
	lp->p[lp->np] = (struct pollfd){ fd, events, 0 };
	return lp->np++;
}

/* This turn's poll set: each fd there is something to do on. */
static void watch_fds(struct loop *lp)
{
	struct run *rn = lp->rn;
	struct sess *ss = lp->ss;
	int i;

	lp->np = 0;
	lp->idx_sock = lp->idx_code = lp->idx_cpid = lp->idx_pid = lp->idx_cancel = lp->idx_in = lp->idx_inw = -1;
	lp->idx_cmd = lp->idx_loopw = -1;
	for (i = 0; i < 3; i++)
		lp->idx_st[i] = lp->st[i].fd >= 0 ? watch(lp, lp->st[i].fd, POLLIN) : -1;
	if (rn->sock >= 0)
		lp->idx_sock = watch(lp, rn->sock, POLLIN);
	if (rn->code_sock >= 0)
		lp->idx_code = watch(lp, rn->code_sock, POLLIN);
	if (rn->code_pidfd >= 0 && !rn->code_gone && !rn->init_exited)
		lp->idx_cpid = watch(lp, rn->code_pidfd, POLLIN);
	if (!rn->init_exited)
		lp->idx_pid = watch(lp, rn->pidfd, POLLIN);
	if (rn->cfg->cancel_fd >= 0 && !rn->cancelled && !rn->init_exited)
		lp->idx_cancel = watch(lp, rn->cfg->cancel_fd, POLLIN);
	if (!lp->in_eof && lp->in_off == lp->in_len)
		lp->idx_in = watch(lp, lp->in_src, POLLIN);
	if (rn->in_pipe[1] >= 0 && lp->in_off < lp->in_len)
		lp->idx_inw = watch(lp, rn->in_pipe[1], POLLOUT);
	/* Commands are read once the loop runs: a reduced-mode retry
	 * after a failed first attempt then loses none. */
	if (ss && !ss->closing && rn->r->code_started && !rn->init_exited && lp->in_src >= 0)
		lp->idx_cmd = watch(lp, lp->in_src, POLLIN);
	if (ss && rn->in_pipe[1] >= 0 && ss->tl_off < ss->tl_len)
		lp->idx_loopw = watch(lp, rn->in_pipe[1], POLLOUT);
}

/* Milliseconds until the next thing the loop must do without an event:
 * the wall limit, the question before it, a delayed kill, the next CPU
 * reading, a session's own limits. */
static int next_timeout(const struct loop *lp, double now)
{
	const struct run *rn = lp->rn;
	int timeout = rn->init_exited ? 1000 : (int)ceil((lp->deadline - now) * 1000);

	if (!rn->init_exited && !rn->where_sent && rn->r->code_started &&
	    timeout > (int)ceil((lp->where_at - now) * 1000))
		timeout = (int)ceil((lp->where_at - now) * 1000);
	if (!rn->init_exited && rn->kill_at > 0 && timeout > (int)ceil((rn->kill_at - now) * 1000))
		timeout = (int)ceil((rn->kill_at - now) * 1000);
	if (rn->have_cg && timeout > SC_CPU_POLL_MS)
		timeout = SC_CPU_POLL_MS;
	if (lp->ss && !rn->init_exited)
		timeout = sc_sess_timeout(lp->ss, now, timeout);
	return timeout < 0 ? 0 : timeout;
}

static bool ready(const struct loop *lp, int idx)
{
	return idx >= 0 && lp->p[idx].revents;
}

/* The caller cancelled (the CLI got SIGINT or SIGTERM, a warm client
 * half-closed or went away): the run is killed and what /output holds so
 * far is collected.  A stop or a failure decided before stays the
 * verdict. */
static void on_cancel(struct run *rn, double now)
{
	struct sandcell_result *r = rn->r;

	rn->cancelled = true;
	rn->cancel_verdict = !r->error[0] && !rn->killed_wall && !rn->killed_cpu && !rn->killed_oom;
	if (r->code_started && !rn->where_sent) {
		ask_where(rn);
		rn->kill_at = now + WHERE_GRACE_MAX;
	} else {
		sc_kill_tree(rn);
	}
}

/* A message of the sandbox init on the control socket. */
static void on_sock(struct run *rn, double now)
{
	struct sc_msg m = { 0 };
	int fd = -1;

	if (sc_init_recv(rn->sock, &m, &fd) < 0) {
		/* Lost contact with init before it said the code started:
		 * that is a setup failure; stop the run. */
		if (!rn->r->code_started) {
			set_error(rn->r, "sandbox setup failed: lost the control socket");
			sc_kill_tree(rn);
		}
		close_fd(&rn->sock);
	} else {
		on_init_msg(rn, &m, fd, now, false);
	}
}

/* A spare's channel: the code's process (STARTED, or its ERROR) and the
 * template, its parent (EXIT).  The channel is the server's: at its EOF
 * it is only no longer watched. */
static void on_code_sock(struct run *rn, double now)
{
	struct sc_msg m = { 0 };

	if (sc_init_recv(rn->code_sock, &m, NULL) < 0) {
		if (!rn->r->code_started) {
			set_error(rn->r, "sandbox setup failed: lost the code's process");
			sc_kill_tree(rn);
		}
		rn->code_sock = -1;
	} else if (m.type == SC_MSG_STARTED || m.type == SC_MSG_EXIT || m.type == SC_MSG_ERROR) {
		on_init_msg(rn, &m, -1, now, false);
	}
}

/*
 * A spare's code process exited (its pidfd; its wait status comes later,
 * from its parent the template, which may be busy forking the next
 * spare's for milliseconds): the init is killed now rather than then, so
 * that its exit (the mount namespace's teardown) overlaps that wait.
 * Killing it is what EXIT would do; nothing of the run survives the
 * code's process in a spare but what that kill ends.
 */
static void on_code_gone(struct run *rn)
{
	rn->code_gone = true;
	if (!rn->init_exited)
		syscall(SYS_pidfd_send_signal, rn->pidfd, SIGKILL, NULL, 0);
}

/* The init exited: reaped here, with its rusage as the run's measure
 * where no cgroup gives one. */
static void on_init_exit(struct run *rn)
{
	struct sandcell_result *r = rn->r;
	siginfo_t si;
	struct rusage ru;

	memset(&si, 0, sizeof(si));
	if (syscall(SYS_waitid, P_PIDFD, rn->pidfd, &si, WEXITED, &ru) != 0)
		return;
	rn->init_exited = true;
	r->wall_sec = now_sec() - rn->t0;
	r->cpu_sec = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	r->peak_memory = (uint64_t)ru.ru_maxrss * 1024;
	/* Second layer: whatever escaped the namespace teardown is still
	 * in the cgroup. */
	if (rn->have_cg)
		sc_cgroup_kill(&rn->cg);
	close_fd(&rn->in_pipe[1]);
}

/* A run: the caller's stdin, read, and written on to the code's. */
static void on_stdin(struct loop *lp)
{
	ssize_t n = read(lp->in_src, lp->in_buf, sizeof(lp->in_buf));

	if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
		lp->in_eof = true;
		close_fd(&lp->rn->in_pipe[1]);
	} else if (n > 0) {
		lp->in_len = (size_t)n;
		lp->in_off = 0;
	}
}

static void on_stdin_writable(struct loop *lp)
{
	struct run *rn = lp->rn;
	ssize_t n = write(rn->in_pipe[1], lp->in_buf + lp->in_off, lp->in_len - lp->in_off);

	if (n > 0) {
		lp->in_off += (size_t)n;
	} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
		/* The code closed its stdin: stop feeding it. */
		lp->in_eof = true;
		close_fd(&rn->in_pipe[1]);
	}
	if (lp->in_off == lp->in_len)
		lp->in_off = lp->in_len = 0;
}

/* A session: the caller's commands, and the lines for the loop. */
static void on_commands(struct loop *lp)
{
	ssize_t n = read(lp->in_src, lp->in_buf, sizeof(lp->in_buf));

	if (n > 0)
		sc_sess_commands(lp->ss, lp->in_buf, (size_t)n, false);
	else if (!(n < 0 && (errno == EINTR || errno == EAGAIN)))
		sc_sess_commands(lp->ss, lp->in_buf, 0, true);
}

static void on_loop_writable(struct loop *lp)
{
	struct run *rn = lp->rn;
	struct sess *ss = lp->ss;
	ssize_t n;

	if (rn->in_pipe[1] < 0)
		return;
	n = write(rn->in_pipe[1], ss->tl + ss->tl_off, ss->tl_len - ss->tl_off);
	if (n > 0) {
		ss->tl_off += (size_t)n;
	} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
		/* The loop closed its stdin: it can take no more. */
		ss->tl_off = ss->tl_len;
		close_fd(&rn->in_pipe[1]);
	}
}

/* This turn's events, in a fixed order: cancel first, so that what the
 * streams and init say after it is read as the cancel's doing. */
static void handle(struct loop *lp, double now)
{
	int i;

	if (ready(lp, lp->idx_cancel))
		on_cancel(lp->rn, now);
	for (i = 0; i < 3; i++)
		if (ready(lp, lp->idx_st[i]))
			pump(&lp->st[i]);
	if (ready(lp, lp->idx_sock))
		on_sock(lp->rn, now);
	if (ready(lp, lp->idx_code))
		on_code_sock(lp->rn, now);
	if (ready(lp, lp->idx_cpid))
		on_code_gone(lp->rn);
	if (ready(lp, lp->idx_pid))
		on_init_exit(lp->rn);
	if (ready(lp, lp->idx_in))
		on_stdin(lp);
	if (ready(lp, lp->idx_cmd))
		on_commands(lp);
	if (ready(lp, lp->idx_loopw))
		on_loop_writable(lp);
	if (ready(lp, lp->idx_inw))
		on_stdin_writable(lp);
}

/* After the loop: the late messages, the streams' counts, the channel. */
static void loop_finish(struct loop *lp)
{
	struct run *rn = lp->rn;
	struct sandcell_result *r = rn->r;
	struct stream *st = lp->st;
	int i;

	for (i = 0; i < 3; i++)
		close_fd(&st[i].fd);
	/* A spare's init exits only once the template reaped the code (the
	 * namespace's last task), which then says so on the channel: EXIT
	 * is there or on its way (the template sends it right after its
	 * waitpid); EOF or 2 s without it end the wait. */
	while (rn->code_sock >= 0 && !rn->got_exit) {
		struct sc_msg m = { 0 };
		if (sc_wait_in(rn->code_sock, rn->init_exited ? 2000 : 0) <= 0 || sc_init_recv(rn->code_sock, &m, NULL) < 0)
			break;
		if (m.type == SC_MSG_EXIT || m.type == SC_MSG_STARTED || m.type == SC_MSG_ERROR)
			on_init_msg(rn, &m, -1, now_sec(), true);
	}
	/* Late messages (EXIT races the pidfd) are still in the socket. */
	while (rn->sock >= 0) {
		struct sc_msg m = { 0 };
		int fd = -1;
		if (sc_wait_in(rn->sock, 0) <= 0 || sc_init_recv(rn->sock, &m, &fd) < 0)
			break;
		on_init_msg(rn, &m, fd, now_sec(), true);
	}
	/* Bytes passed on to the caller; the rest was drained and dropped. */
	r->stdout_bytes = st[0].kept < st[0].limit ? st[0].kept : st[0].limit;
	r->stderr_bytes = st[1].kept < st[1].limit ? st[1].kept : st[1].limit;
	r->stdout_truncated = st[0].truncated;
	r->stderr_truncated = st[1].truncated;
	if (st[2].chan && !lp->ss) {
		struct sandcell_error e = { 0, "" };
		struct sc_chan_out co;

		if (sc_chan_finish(st[2].chan, &co, &e) < 0) {
			snprintf(r->result_error, sizeof(r->result_error), "%s", e.msg);
		} else {
			/* A retried attempt replaces what an earlier one had. */
			sc_result_set_channel(r, &co);
		}
		sc_chan_free(st[2].chan);
	}
	r->where_asked = rn->where_sent;
	r->cancelled = rn->cancelled;
}

void sc_supervise(struct run *rn)
{
	struct loop lp;

	memset(&lp, 0, sizeof(lp));
	lp.rn = rn;
	lp.ss = rn->ss;
	loop_start(&lp);
	for (;;) {
		double now = now_sec();

		enforce_limits(&lp, now);
		if (loop_over(&lp, now))
			break;
		watch_fds(&lp);
		if (poll(lp.p, (nfds_t)lp.np, next_timeout(&lp, now)) < 0) {
			if (errno == EINTR)
				continue;
			set_error(rn->r, "poll failed");
			sc_kill_tree(rn);
			break;
		}
		handle(&lp, now);
	}
	loop_finish(&lp);
}
