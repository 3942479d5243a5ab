/*
 * The sandbox side: everything that runs in the cloned child, in one
 * ordered setup function.  The child starts in fresh user, pid, mount, net,
 * ipc and uts namespaces as pid 1; it becomes the sandbox's init, applies
 * the layers to itself in a fixed order (seccomp last), then forks the
 * interpreter, reaps, and reports the interpreter's wait status.  When init
 * exits the kernel kills whatever is left in the pid namespace, which is
 * what ends double-forked daemons.
 *
 * Every failure is reported to the supervisor as SC_MSG_ERROR and the
 * child exits without ever running user code: fail closed.
 */
#include "internal.h"
#include "contain.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

sc_exec_hook sc_exec_hook_fn;

void sc_set_exec_hook(sc_exec_hook hook)
{
	sc_exec_hook_fn = hook;
}

static int send_msg(int sock, int type, int e, int value, const char *text, int pass_fd)
{
	struct sc_msg m;
	struct iovec iov = { &m, sizeof(m) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.err = e;
	m.value = value;
	if (text)
		snprintf(m.text, sizeof(m.text), "%s", text);
	if (pass_fd >= 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -1;
}

static __attribute__((noreturn)) void fail(int sock, const struct sandcell_error *err)
{
	send_msg(sock, SC_MSG_ERROR, err->code, 0, err->msg, -1);
	_exit(1);
}

/* The sandbox init is a clone of the supervisor, not an exec: its argv and
 * environ pages still hold the caller's command line (host paths, options),
 * and /proc/1/cmdline would show them to the code.  Zero them in place; the
 * range comes from /proc/self/stat (fields 48-51: arg_start, arg_end,
 * env_start, env_end).  Plain open/read: no malloc after clone. */
int sc_scrub_cmdline(void)
{
	char buf[2048];
	unsigned long v[4];
	ssize_t n;
	char *p;
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC), field, i;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* comm may contain spaces */
	if (p == NULL)
		return -1;
	/* after ") " comes field 3 */
	for (field = 3, p += 2; field < 48 && *p; p++)
		if (*p == ' ')
			field++;
	for (i = 0; i < 4; i++) {
		char *end;
		v[i] = strtoul(p, &end, 10);
		if (end == p)
			return -1;
		p = end + (*end == ' ');
	}
	if (v[1] > v[0] && v[1] - v[0] < (64u << 20))
		memset((void *)v[0], 0, v[1] - v[0]);
	if (v[3] > v[2] && v[3] - v[2] < (64u << 20))
		memset((void *)v[2], 0, v[3] - v[2]);
	return 0;
}

/* Moves the declared stream fds to 0..3 without clobbering each other. */
static int install_stdio(const struct sc_child *c, struct sandcell_error *err)
{
	int src[4] = { c->stdin_r, c->stdout_w, c->stderr_w, c->result_w };
	int hi[4];
	int i;

	if (c->stdin_r < 0)
		return 0; /* a spare's init: its code gets the streams (sc_code_enter) */
	for (i = 0; i < 4; i++) {
		hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 64);
		if (hi[i] < 0)
			return sc_err(err, errno, "fds: dup");
	}
	for (i = 0; i < 4; i++)
		if (dup2(hi[i], i) < 0)
			return sc_err(err, errno, "fds: dup2");
	return 0;
}

/* Namespaced setup.  Order matters: ids before creating files (tmpfs
 * refuses unmapped owners), mounts while we still hold the namespace's
 * capabilities, and then the layers that take privilege away, seccomp
 * last so no setup syscall has to be allowed by the filter. */
static void confine(const struct sc_child *c, struct sandcell_error *err);

/* Limits before code: nothing past this point runs outside the run's
 * cgroups.  Anything but ATTACHED means the supervisor gave up on us; after
 * it, the supervisor has put us in the v2 run cgroup (unless we were cloned
 * there) and we join the v1 ones ourselves (cgroup.c, sc_cgroup_join_open:
 * a task that moves itself alone skips the RCU grace period a move by
 * another waits for).  We are still the only thread: nothing here or
 * before made one. */
static void wait_attached(const struct sc_child *c)
{
	struct sc_msg m;
	struct sandcell_error err;
	int fds[SC_CGROUP_V1_JOIN];

	if (recv(c->sock, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || m.type != SC_MSG_ATTACHED)
		_exit(1);
	memcpy(fds, c->cg_join, sizeof(fds));
	if (sc_cgroup_join_self(fds, &err) < 0)
		fail(c->sock, &err);
}

/*
 * A spare's inputs.  They are known only once the request comes, when the
 * init's own view has the staging tmpfs over the host's /tmp and the
 * root half built, and overlay takes its lower layers only from its
 * caller's mount namespace.  So an opener, forked when the init opens its
 * other sources (same credentials, same moment as a cold init's), keeps a
 * private copy of the caller's view: it builds each input's read-only
 * overlay there exactly as sc_mounts_open_sources() does for a cold run,
 * and hands the detached mounts and the O_PATH fds inside them to the
 * init, which attaches them (a detached mount may be moved into any
 * namespace its mover administers).  It serves one request, before any
 * code runs, and exits; it is not dumpable.
 */
static int opener_sock = -1;
static pid_t opener_pid = -1;
/* A spare's two mount namespaces (the opener's copy of the caller's view,
 * the sandbox's own), or -1, handed to the supervisor with IDLE (say_idle):
 * with a reference held outside, the opener's and the init's exits on the
 * request's path tear no mount down; that teardown (an RCU grace period
 * each) comes when the supervisor closes them, after its answer. */
static int opener_mnt = -1;
static int init_mnt = -1;
/* The run's input arrays, in the init and in the opener (which exit
 * with them). */
static int *spare_input_fds;
static struct sc_private_src *spare_in_priv;

static int recv_run(int sock, struct sc_request *q, struct sandcell_error *err);

static __attribute__((noreturn)) void opener_main(const struct sc_child *c, int sock)
{
	struct sandcell_error err = { 0, "" };
	struct sc_request q;
	struct sc_msg m;
	int ns;

	memset(&q, 0, sizeof(q));
	/* Private at once: the init's staging mount, made next, must not
	 * propagate into this copy. */
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		_exit(1);
	/* /proc is still the caller's: without it, READY carries no fd and
	 * only the teardown's place changes. */
	ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	memset(&m, 0, sizeof(m));
	m.type = SC_MSG_READY;
	if (sc_send_fds(sock, &m, &ns, ns >= 0) < 0)
		_exit(1);
	if (ns >= 0)
		close(ns);
	if (recv_run(sock, &q, &err) < 0)
		fail(sock, &err);
	c->plan->inputs = q.cfg.inputs;
	c->plan->n_inputs = q.cfg.n_inputs;
	spare_input_fds = calloc(q.cfg.n_inputs + 1, sizeof(int));
	c->plan->input_fds = spare_input_fds;
	if (c->plan->input_fds == NULL || sc_mounts_open_inputs(c->plan, &err) < 0)
		fail(sock, &err);
	for (size_t i = 0; i < q.cfg.n_inputs; i++) {
		const struct sc_private_src *src = &c->plan->in_priv[i];
		int fds[2], n = 0;

		memset(&m, 0, sizeof(m));
		m.type = SC_MSG_RUN;
		m.value = (src->mnt >= 0) | (src->file >= 0) << 1;
		if (src->mnt >= 0)
			fds[n++] = src->mnt;
		if (src->file >= 0)
			fds[n++] = src->file;
		if (n == 0 || sc_send_fds(sock, &m, fds, (size_t)n) < 0)
			_exit(1);
	}
	_exit(0);
}

static int opener_start(const struct sc_child *c, struct sandcell_error *err)
{
	struct sc_msg m;
	int sv[2], ns = -1;
	size_t n;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return sc_err(err, errno, "spare: opener socket");
	opener_pid = fork();
	if (opener_pid < 0)
		return sc_err(err, errno, "spare: fork the opener");
	if (opener_pid == 0) {
		close(sv[0]);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		opener_main(c, sv[1]);
	}
	close(sv[1]);
	opener_sock = sv[0];
	if (sc_recv_fds(opener_sock, &m, &ns, 1, &n, 0) <= 0 || m.type != SC_MSG_READY) {
		if (n > 0)
			close(ns);
		return sc_err(err, EIO, "spare: the opener failed");
	}
	opener_mnt = n > 0 ? ns : -1;
	return 0;
}

/* The inputs' sources from the opener, into plan->in_priv. */
static int opener_inputs(struct sc_mount_plan *p, int req_fd, struct sandcell_error *err)
{
	struct sc_msg m;

	spare_in_priv = calloc(p->n_inputs ? p->n_inputs : 1, sizeof(*p->in_priv));
	p->in_priv = spare_in_priv;
	if (p->in_priv == NULL)
		return sc_err(err, ENOMEM, "spare");
	/* No inputs: nothing to ask.  The opener reads end-of-file and exits
	 * without parsing the request (most runs: a round trip saved). */
	if (p->n_inputs > 0) {
		memset(&m, 0, sizeof(m));
		m.type = SC_MSG_RUN;
		if (sc_send_fds(opener_sock, &m, &req_fd, 1) < 0)
			return sc_err(err, errno, "spare: the opener is gone");
	}
	for (size_t i = 0; i < p->n_inputs; i++) {
		int fds[2] = { -1, -1 };
		size_t n, want;
		int r = sc_recv_fds(opener_sock, &m, fds, 2, &n, 0);

		if (r > 0 && m.type == SC_MSG_ERROR) {
			while (n > 0)
				close(fds[--n]);
			return sc_err(err, m.err, "%s", m.text);
		}
		want = (size_t)((m.value & 1) + ((m.value >> 1) & 1));
		if (r <= 0 || m.type != SC_MSG_RUN || want == 0 || n != want) {
			while (n > 0)
				close(fds[--n]);
			return sc_err(err, EPROTO, "spare: the opener's answer");
		}
		p->in_priv[i].mnt = (m.value & 1) ? fds[0] : -1;
		p->in_priv[i].file = (m.value & 2) ? fds[want - 1] : -1;
	}
	/* Its socket closed, the opener exits, and the init reaps it before
	 * it says CONFINED (opener_reap): no code starts while a process with
	 * the caller's view lives.  That view outlives it, held by the
	 * supervisor (opener_mnt), so the exit is quick. */
	close(opener_sock);
	opener_sock = -1;
	return 0;
}

static void opener_reap(void)
{
	while (opener_pid > 0 && waitpid(opener_pid, NULL, 0) < 0 && errno == EINTR)
		;
	opener_pid = -1;
}

/* The user namespace's budgets, opened while /proc is the host's and
 * written once the root is finished: each input's mount is cloned by
 * open_tree, which counts a mount namespace against this user
 * namespace's budget (max_mnt_namespaces, 0 for the code). */
static int ns_limits[SC_USERNS_LIMITS];

static void send_scratch(const struct sc_child *c, int *scratch_fd, struct sandcell_error *err)
{
	if (send_msg(c->sock, SC_MSG_SCRATCH, 0, 0, NULL, *scratch_fd) < 0) {
		sc_err(err, errno, "sending the scratch fd");
		fail(c->sock, err);
	}
	close(*scratch_fd);
	*scratch_fd = -1;
}

/* The request a spare waits for: SC_MSG_RUN and a memfd with its text,
 * parsed here as the server parsed it (the same bytes, the same parser):
 * the init builds from it the part of the root that is the run's. */
static int recv_run_fd(int sock, struct sc_request *q, int *req_fd, struct sandcell_error *err);

/* The same, for a reader that keeps nothing of it but the parse. */
static int recv_run(int sock, struct sc_request *q, struct sandcell_error *err)
{
	int fd = -1, rc = recv_run_fd(sock, q, &fd, err);

	if (fd >= 0)
		close(fd);
	return rc;
}

static int recv_run_fd(int sock, struct sc_request *q, int *req_fd, struct sandcell_error *err)
{
	struct sc_msg m;
	char *buf;
	off_t len;
	size_t n;
	int fd = -1, rc;

	rc = sc_recv_fds(sock, &m, &fd, 1, &n, 0);
	if (rc == 0)
		_exit(0); /* the supervisor dropped the spare */
	if (rc < 0 || n == 0)
		fd = -1;
	if (fd < 0 || m.type != SC_MSG_RUN)
		return sc_err(err, EPROTO, "spare: no request");
	len = lseek(fd, 0, SEEK_END);
	buf = len > 0 && len <= (off_t)SC_REQUEST_MAX ? malloc((size_t)len) : NULL;
	if (buf == NULL || pread(fd, buf, (size_t)len, 0) != len) {
		free(buf);
		close(fd);
		return sc_err(err, EIO, "spare: reading the request");
	}
	*req_fd = fd;
	rc = sc_request_parse(buf, (size_t)len, q, err);
	free(buf);
	return rc;
}

/* The root's identity, "dev:ino", as IDLE and CONFINED name it (spawn.c,
 * parse_root); it fails closed. */
static void root_id(const struct sc_child *c, char *buf, size_t n, struct sandcell_error *err)
{
	struct stat st;

	if (stat("/", &st) < 0) {
		sc_err(err, errno, "spare: stat /");
		fail(c->sock, err);
	}
	snprintf(buf, n, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

/* A spare's init once its request came: the run's part of the root and
 * the pivot, the scratch fd, then the same confinement as a cold init;
 * CONFINED carries the root's identity, which the code's process checks
 * its own root against.  The init forks nothing: the code's process is
 * already in the sandbox (sc_code_enter).  It stays, pid 1, until the
 * supervisor kills it, which ends the namespace; what is re-parented to
 * it meanwhile is reaped by the kernel (SIGCHLD ignored). */
static __attribute__((noreturn)) void spare_run(const struct sc_child *c0, int *scratch_fd,
						struct sandcell_error *err)
{
	struct sc_child c = *c0;
	struct sc_request q;
	char id[64];
	int req_fd = -1;

	memset(&q, 0, sizeof(q));
	if (recv_run_fd(c.sock, &q, &req_fd, err) < 0)
		fail(c.sock, err);
	c.plan->inputs = q.cfg.inputs;
	c.plan->n_inputs = q.cfg.n_inputs;
	spare_input_fds = calloc(q.cfg.n_inputs + 1, sizeof(int));
	c.plan->input_fds = spare_input_fds;
	c.plan->code = q.cfg.code;
	c.plan->code_len = q.cfg.code_len;
	c.plan->code_name = sc_code_name(&q.cfg);
	c.plan->values_json = q.cfg.values_json;
	c.plan->disk = q.cfg.limits.disk;
	c.plan->disk_inodes = q.cfg.limits.disk_inodes;
	c.limits = &q.cfg.limits;
	if (c.plan->input_fds == NULL) {
		sc_err(err, ENOMEM, "spare");
		fail(c.sock, err);
	}
	if (opener_inputs(c.plan, req_fd, err) < 0 || close(req_fd) < 0 ||
	    sc_mounts_finish(c.plan, true, *scratch_fd, err) < 0 ||
	    sc_userns_write_limits(ns_limits, err) < 0)
		fail(c.sock, err);
	send_scratch(&c, scratch_fd, err);
	confine(&c, err);
	root_id(&c, id, sizeof(id), err);
	/* It keeps no stream (confine() left fd 3 open for the code). */
	for (int fd = 0; fd < 4; fd++)
		close(fd);
	opener_reap();
	signal(SIGCHLD, SIG_IGN);
	if (send_msg(c.sock, SC_MSG_CONFINED, 0, 0, id, -1) < 0)
		_exit(1);
	for (;;) {
		char b;
		if (read(c.sock, &b, 1) == 0)
			_exit(0); /* the supervisor is gone */
	}
}

/* IDLE, with the mount namespaces the supervisor holds (opener_mnt,
 * init_mnt); the init keeps no copy.  A namespace that could not be
 * opened only leaves its teardown on the request's path.  Its text is
 * the pivoted root's identity, which the code's process checks its own
 * root against (PREP) and CONFINED must repeat. */
static void say_idle(const struct sc_child *c, struct sandcell_error *err)
{
	struct sc_msg m = { .type = SC_MSG_IDLE };
	int held[2];
	size_t n = 0;

	root_id(c, m.text, sizeof(m.text), err);
	if (opener_mnt >= 0)
		held[n++] = opener_mnt;
	if (init_mnt >= 0)
		held[n++] = init_mnt;
	if (sc_send_fds(c->sock, &m, held, n) < 0)
		_exit(1); /* the supervisor is gone */
	while (n > 0)
		close(held[--n]);
	opener_mnt = init_mnt = -1;
}

static void setup(const struct sc_child *c, int *scratch_fd, struct sandcell_error *err)
{
	struct sc_msg m;

	/* The code starts with no signal blocked, whatever the caller had
	 * (sandcell_run blocks SIGPIPE while it supervises). */
	{
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	/* The sandbox dies with its supervisor. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		sc_err(err, errno, "prctl(PR_SET_PDEATHSIG)");
		fail(c->sock, err);
	}
	/* Open the host paths while we still have the caller's view (a
	 * spare: and keep a process that has it, for its inputs). */
	if (sc_mounts_open_sources(c->plan, err) < 0 || (c->spare && opener_start(c, err) < 0))
		fail(c->sock, err);
	if (c->spare) /* /proc is still the caller's */
		init_mnt = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (send_msg(c->sock, SC_MSG_READY, 0, 0, NULL, -1) < 0 ||
	    recv(c->sock, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || m.type != SC_MSG_GO)
		_exit(1); /* the supervisor is gone: nothing to report to */

	/* 1. identity: the single mapped uid/gid, no supplementary groups
	 * (a root caller's groups would otherwise follow us in). */
	if (c->drop_groups && setgroups(0, NULL) < 0) {
		sc_err(err, errno, "setgroups");
		fail(c->sock, err);
	}
	if (setresgid(SC_SANDBOX_GID, SC_SANDBOX_GID, SC_SANDBOX_GID) < 0 ||
	    setresuid(SC_SANDBOX_UID, SC_SANDBOX_UID, SC_SANDBOX_UID) < 0) {
		sc_err(err, errno, "switching to the sandbox uid");
		fail(c->sock, err);
	}
	/* The kernel clears the parent-death signal when the filesystem or
	 * effective ids change, as they just did: arm it again.  The
	 * handshakes below (SCRATCH, ATTACHED) prove the supervisor was
	 * still alive after this point. */
	if (!sc_hook_on(SC_HOOK_MUT_NO_PDEATHSIG) && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
		sc_err(err, errno, "prctl(PR_SET_PDEATHSIG)");
		fail(c->sock, err);
	}
	/* Budgets the kernel keeps per user namespace, while /proc is still
	 * the host's and we hold CAP_SYS_RESOURCE in our namespace. */
	if (sc_userns_open_limits(ns_limits, err) < 0)
		fail(c->sock, err);
	/* 2. uts and net. */
	if (sethostname("sandcell", 8) < 0 || setdomainname("sandcell", 8) < 0) {
		sc_err(err, errno, "sethostname");
		fail(c->sock, err);
	}
	if (!sc_hook_on(SC_HOOK_NO_NETNS) && sc_net_loopback_up(err) < 0)
		fail(c->sock, err);
	/* 3. filesystem (a spare: the part every run shares, and the pivot
	 * into it; spare_run() finishes it once its request came). */
	if (c->spare) {
		if (sc_mounts_build_base(c->plan, scratch_fd, err) < 0 || sc_mounts_pivot(err) < 0)
			fail(c->sock, err);
	} else {
		if (sc_mounts_setup(c->plan, scratch_fd, err) < 0 ||
		    sc_userns_write_limits(ns_limits, err) < 0)
			fail(c->sock, err);
		send_scratch(c, scratch_fd, err);
	}
	/* 4. cgroups: we are in every run cgroup once wait_attached()
	 * returns; only then does the run cgroup become the visible root of
	 * a new cgroup namespace. */
	wait_attached(c);
	if (c->cgroupns && unshare(CLONE_NEWCGROUP) < 0) {
		sc_err(err, errno, "unshare(CLONE_NEWCGROUP)");
		fail(c->sock, err);
	}
	/* A spare is idle from here: its namespaces are final, and the code's
	 * process may enter them. */
	if (c->spare) {
		say_idle(c, err);
		spare_run(c, scratch_fd, err); /* does not return */
	}
	confine(c, err);
}

/* Reduced mode: no namespaces could be created.  The code runs on the
 * host's filesystem under Landlock and seccomp; init becomes a child
 * subreaper so daemons that double-fork are re-parented to it and die with
 * the run. */
static void setup_reduced(const struct sc_child *c, struct sandcell_error *err)
{
	struct sc_msg m;

	{
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	/* No pid namespace ends the code with init here: a killed
	 * supervisor sends SIGTERM, which init turns into killing the tree
	 * (on_term, reap_all) before it exits. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 ||
	    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		sc_err(err, errno, "prctl");
		fail(c->sock, err);
	}
	if (send_msg(c->sock, SC_MSG_READY, 0, 0, NULL, -1) < 0 ||
	    recv(c->sock, &m, sizeof(m), 0) != (ssize_t)sizeof(m) || m.type != SC_MSG_GO)
		_exit(1);
	wait_attached(c);
	confine(c, err);
}

/* 5. session: no controlling terminal, no signals to the caller's
 * process group; not dumpable, so nothing can ptrace or read its memory
 * even if ptrace were allowed. */
static void detach(const struct sc_child *c, struct sandcell_error *err)
{
	if ((!sc_hook_on(SC_HOOK_MUT_NO_SETSID) && setsid() < 0) ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		sc_err(err, errno, "setsid/dumpable");
		fail(c->sock, err);
	}
}

/* 8-10: the layers that take privilege away, seccomp last. */
static void drop_privilege(const struct sc_child *c, struct sandcell_error *err)
{
	/* 8. capabilities, then no_new_privs (needed by Landlock and seccomp,
	 * and it makes setuid and file capabilities inert). */
	if (sc_caps_drop_all(err) < 0)
		fail(c->sock, err);
	if (!sc_hook_on(SC_HOOK_MUT_NO_NNP) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		sc_err(err, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
		fail(c->sock, err);
	}
	/* 9. Landlock, matching the mount plan. */
	if (!sc_hook_on(SC_HOOK_NO_LANDLOCK) && sc_landlock_apply(c->landlock, c->ll_rules, err) < 0)
		fail(c->sock, err);
	/* 10. seccomp, last. */
	if (!sc_hook_on(SC_HOOK_NO_SECCOMP) && sc_seccomp_apply(c->bpf, err) < 0)
		fail(c->sock, err);
}

/* The layers every mode shares, in order, seccomp last. */
static void confine(const struct sc_child *c, struct sandcell_error *err)
{
	int keep[3];

	if (chdir(c->workdir) < 0) {
		sc_err(err, errno, "chdir %s", c->workdir);
		fail(c->sock, err);
	}
	detach(c, err);
	/* 6. descriptors: 0-3 are the declared streams; the status socket
	 * stays with init (close-on-exec, so the code never has it). */
	if (install_stdio(c, err) < 0)
		fail(c->sock, err);
	keep[0] = 3;
	keep[1] = c->sock;
	/* The claim on our host uid lasts as long as this init does;
	 * close-on-exec (and closed before a warm run's code), so the code
	 * never holds it. */
	keep[2] = c->id_lock_fd;
	if (sc_hook_on(SC_HOOK_NO_FDCLOSE)) {
		/* Ablation: behave like a supervisor that leaks its fds. */
		for (int fd = 4; fd < 1024; fd++)
			if (fd != c->sock)
				fcntl(fd, F_SETFD, 0);
	} else if (sc_fds_close_except(keep, c->id_lock_fd >= 0 ? 3 : 2, err) < 0) {
		fail(c->sock, err);
	}
	/* 7. resource backstops, after the fd shuffle above (which needs
	 * descriptors above a small RLIMIT_NOFILE). */
	if (!sc_hook_on(SC_HOOK_NO_LIMITS) && sc_rlimits_apply(c->limits, err) < 0)
		fail(c->sock, err);
	drop_privilege(c, err);
}

/* Reduced mode has no pid namespace to take the rest down.  With Landlock
 * signal scoping, kill(-1) reaches only processes of this sandbox's
 * domain; without it, only our process group is safe to kill (and a
 * daemon that called setsid is out of reach: the report says so). */
static void reap_all(const struct sc_child *c)
{
	int i;

	for (i = 0; i < 1000; i++) {
		if (c->landlock->scope_signal)
			kill(-1, SIGKILL);
		else
			kill(-getpid(), SIGKILL);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD)
			return;
		sched_yield();
	}
}

static volatile sig_atomic_t stop_requested;
/* The code's pid, for on_where (0 until it is forked). */
static volatile sig_atomic_t code_pid;

/* The supervisor's "where is the code?" (supervise.c, ask_where): passed on as
 * SIGURG, whose default is to be ignored, so code that installed no
 * handler (a bootstrap that failed, a subprocess) is not disturbed. */
static void on_where(int sig)
{
	int e = errno;

	(void)sig;
	if (code_pid > 0)
		kill((pid_t)code_pid, SIGURG);
	errno = e;
}

static void on_term(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static __attribute__((noreturn)) void run_init(const struct sc_child *c)
{
	int ex[2], go[2], status = 0, e = 0;
	pid_t pid, w;
	ssize_t n;

	if (pipe2(ex, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
		struct sandcell_error err;
		sc_err(&err, errno, "pipe2");
		fail(c->sock, &err);
	}
	{
		/* Installed before the code exists: the supervisor asks only
		 * once it was told the code started (SC_MSG_STARTED, below). */
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_where;
		sa.sa_flags = SA_RESTART;
		sigaction(SC_WHERE_SIGNAL, &sa, NULL);
	}
	pid = fork();
	if (pid == 0) {
		char b;
		/* The code starts with every disposition at its default (execve
		 * does this for handlers; a warm run does not exec). */
		signal(SC_WHERE_SIGNAL, SIG_DFL);
		/* A session's interpreter starts with SIGINT ignored: its
		 * interrupts are commands the loop turns into a SIGINT of its
		 * own (_sandcell_session.py), and no SIGINT from elsewhere in
		 * the sandbox may end the session (or raise KeyboardInterrupt
		 * in the bootstrap) before the loop's handler is in place.
		 * Python leaves an ignored SIGINT ignored. */
		if (c->session)
			signal(SIGINT, SIG_IGN);
		close(ex[0]);
		close(go[1]);
		/* Wait until init has scrubbed its copy of the caller's argv. */
		while (read(go[0], &b, 1) < 0 && errno == EINTR)
			;
		if (sc_exec_hook_fn) {
			/* Warm: no exec will close the pipe, so say "started"
			 * by closing it ourselves, then run in-process. */
			close(ex[1]);
			/* What execve would have closed: the control socket and
			 * the go pipe must not reach the code. */
			syscall(SYS_close_range, 4u, ~0u, 0u);
			sc_exec_hook_fn(c->argv, c->envp); /* does not return */
		}
		execve(c->argv[0], (char *const *)c->argv, (char *const *)c->envp);
		e = errno;
		if (write(ex[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(ex[1]);
	close(go[0]);
	if (pid > 0)
		code_pid = pid;
	if (pid > 0 && sc_scrub_cmdline() < 0) {
		/* Fail closed: the code must not start next to a readable
		 * copy of the caller's command line. */
		struct sandcell_error err;
		sc_err(&err, errno ? errno : EIO, "scrubbing the inherited command line");
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail(c->sock, &err);
	}
	close(go[1]);
	/* init keeps no stream: EOF on them must mean the code is gone. */
	close(0);
	close(1);
	close(2);
	close(3);
	if (pid < 0) {
		struct sandcell_error err;
		sc_err(&err, errno, "fork");
		fail(c->sock, &err);
	}
	n = read(ex[0], &e, sizeof(e));
	close(ex[0]);
	if (n == (ssize_t)sizeof(e)) {
		struct sandcell_error err;
		sc_err(&err, e, "exec %s", c->argv[0]);
		waitpid(pid, NULL, 0);
		fail(c->sock, &err);
	}
	if (send_msg(c->sock, SC_MSG_STARTED, 0, (int)pid, NULL, -1) < 0) {
		/* The supervisor cannot account for this run: end it. */
		kill(pid, SIGKILL);
		_exit(1);
	}
	/* Reap everything re-parented to us; stop when the code itself ends.
	 * Leaving then takes the rest of the namespace down with us. */
	for (;;) {
		w = waitpid(-1, &status, 0);
		if (w == pid)
			break;
		if (stop_requested) {
			/* Reduced-mode stop from the supervisor. */
			reap_all(c);
			_exit(0);
		}
		if (w < 0 && errno != EINTR)
			break;
	}
	send_msg(c->sock, SC_MSG_EXIT, 0, status, NULL, -1);
	if (c->reduced)
		reap_all(c);
	_exit(0);
}

/* Every signal at its default for the code (see sc_child_main). */
static void reset_signals(void)
{
	int sig;

	/* Dispositions a launcher ignored would survive execve (and the warm
	 * template): the code starts with every signal at its default.  The
	 * raw syscall, because glibc refuses to touch its reserved signals
	 * (32 SIGCANCEL, 33 SIGSETXID), which a launcher may still have
	 * ignored.  A handler glibc itself installed on those two stays: a
	 * warm run inherits glibc's state from a template that has had
	 * threads, and glibc does not install it again, so without it a
	 * threaded setuid() (glibc signals every thread) would kill the code. */
	for (sig = 1; sig < NSIG; sig++) {
		struct {
			void (*handler)(int);
			unsigned long flags;
			void (*restorer)(void);
			uint64_t mask;
		} ksa = { SIG_DFL, 0, NULL, 0 }, old;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if ((sig == 32 || sig == 33) &&
		    syscall(SYS_rt_sigaction, sig, NULL, &old, sizeof(uint64_t)) == 0 &&
		    old.handler != SIG_IGN)
			continue;
		syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(uint64_t));
	}
}

/* The code's process of a spare sandbox (internal.h): a fork of the warm
 * template that entered the sandbox's namespaces while it was idle.
 * While the spare is idle it takes the sandbox's identity and every
 * layer a cold init takes before it forks the code, in the same order,
 * from its PREP, after checking that its root is the one the init
 * pivoted into (fail closed: a root the pivot did not move would be the
 * host's view).  What it keeps is the channel alone.  Only the run's
 * part waits for its GO: the streams, the limits (rlimits only lower,
 * which needs no privilege), the command line.  So no request ever
 * reaches an unconfined process of a spare. */
void sc_code_confine(int chan)
{
	struct sandcell_error err = { 0, "" };
	struct sc_child c;
	struct sc_go p;
	struct stat st;
	void *mem;
	int keep[1] = { chan };

	reset_signals();
	{
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
	memset(&p, 0, sizeof(p));
	if (sc_go_recv(chan, SC_MSG_PREP, &p, &mem, NULL, &err) < 0) {
		if (err.code == 0)
			_exit(0); /* dropped while idle */
		fail(chan, &err);
	}
	if (stat("/", &st) < 0 || (uint64_t)st.st_dev != p.root_dev || (uint64_t)st.st_ino != p.root_ino) {
		sc_err(&err, EXDEV, "spare: the code's root is not the sandbox's");
		fail(chan, &err);
	}
	memset(&c, 0, sizeof(c));
	c.bpf = &p.bpf;
	c.landlock = &p.ll;
	c.ll_rules = &p.rules;
	c.sock = chan;
	/* 1. identity, as setup() takes it. */
	if (p.drop_groups && setgroups(0, NULL) < 0) {
		sc_err(&err, errno, "setgroups");
		fail(chan, &err);
	}
	if (setresgid(SC_SANDBOX_GID, SC_SANDBOX_GID, SC_SANDBOX_GID) < 0 ||
	    setresuid(SC_SANDBOX_UID, SC_SANDBOX_UID, SC_SANDBOX_UID) < 0) {
		sc_err(&err, errno, "switching to the sandbox uid");
		fail(chan, &err);
	}
	/* 5, 6 (it has no stream yet), 8-10. */
	detach(&c, &err);
	if (!sc_hook_on(SC_HOOK_NO_FDCLOSE) && sc_fds_close_except(keep, 1, &err) < 0)
		fail(chan, &err);
	drop_privilege(&c, &err);
	free((void *)p.argv);
	free(mem);
}

void sc_code_enter(int chan, const char *const **argv, const char *const **envp)
{
	struct sandcell_error err = { 0, "" };
	struct sc_child c;
	struct sc_go g;
	void *mem;
	int fds[4], keep[2];

	memset(&g, 0, sizeof(g));
	if (sc_go_recv(chan, SC_MSG_GO, &g, &mem, fds, &err) < 0) {
		if (err.code == 0)
			_exit(0); /* dropped before its run */
		fail(chan, &err);
	}
	memset(&c, 0, sizeof(c));
	c.sock = chan;
	c.stdin_r = fds[0];
	c.stdout_w = fds[1];
	c.stderr_w = fds[2];
	c.result_w = fds[3];
	/* 6. descriptors: 0-3 are the declared streams. */
	if (chdir("/tmp") < 0) {
		sc_err(&err, errno, "chdir /tmp");
		fail(chan, &err);
	}
	keep[0] = 3;
	keep[1] = chan;
	if (install_stdio(&c, &err) < 0 ||
	    (!sc_hook_on(SC_HOOK_NO_FDCLOSE) && sc_fds_close_except(keep, 2, &err) < 0))
		fail(chan, &err);
	/* 7. resource backstops. */
	if (!sc_hook_on(SC_HOOK_NO_LIMITS) && sc_rlimits_apply(g.limits, &err) < 0)
		fail(chan, &err);
	if (send_msg(chan, SC_MSG_STARTED, 0, (int)getpid(), NULL, -1) < 0)
		_exit(1);
	/* What execve would have closed: nothing above the streams. */
	syscall(SYS_close_range, 4u, ~0u, 0u);
	*argv = g.argv;
	*envp = g.envp;
}

void sc_child_main(const struct sc_child *c)
{
	struct sandcell_error err = { 0, "" };
	int scratch_fd = -1;

	reset_signals();
	if (c->reduced) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_term;
		sigaction(SIGTERM, &sa, NULL);
		setup_reduced(c, &err);
	} else {
		setup(c, &scratch_fd, &err);
	}
	run_init(c);
}
