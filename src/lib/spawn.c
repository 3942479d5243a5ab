/*
 * The supervisor's side of one attempt at a run: what the sandbox will
 * run and see, the clone, and the handshakes with the sandbox's init
 * (contain.c) up to the point where supervise.c takes over.  sc_spawn()
 * is one ordered function, its steps numbered, as contain.c's setup()
 * is on the other side:
 *
 *   parent (here)                          child (contain.c)
 *   1-4  layout, pipes, mount plan, child
 *   5    clone (as the user namespace's
 *        owner, born in the v2 cgroup)  -> opens its sources
 *   6    READY?                         <- READY
 *   7    write the uid/gid maps
 *   8    GO                             -> identity, uts, net, mounts
 *   9    attach to every run cgroup     <- SCRATCH (read by supervise.c)
 *   10   ATTACHED                       -> cgroup namespace, confine,
 *                                          fork the code, STARTED
 *   11   supervise until the tree is dead
 *
 * A full attempt whose namespaces are refused before any code ran may be
 * retried in reduced mode (sandcell_run() decides, run.c).
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Everything one attempt builds for the child before the clone: the
 * child allocates nothing and reads all of it from here. */
struct spawn {
	const char *code_name;
	char code_path[PATH_MAX], boot_path[PATH_MAX];
	const char *argv[8 + 256];
	const char *envp[64];
	size_t n_env;
	/* 0-1 passed-through variables; reduced mode: 2-6 the private
	 * directory's code, .sandcell, input, tmp, output; 7-11 the
	 * variables that name them. */
	char env_buf[12][PATH_MAX + 32];
	const char *ro_exec[SC_MAX_RUNTIME + 8], *ro[64], *rw[4];
	size_t n_ro_exec, n_ro, n_rw;
	struct sc_landlock_rules rules;
	struct sc_mount_plan plan;
	struct sc_child child;
};

static bool userns_refused(int e)
{
	return e == EPERM || e == EACCES || e == ENOSPC || e == EUSERS || e == EINVAL;
}

/* The init's next message within timeout_ms (fd_out as sc_init_recv):
 * 0, or -1 (none came, or EOF). */
static int wait_msg(int sock, struct sc_msg *m, int *fd_out, int timeout_ms)
{
	if (sc_wait_in(sock, timeout_ms) <= 0)
		return -1;
	return sc_init_recv(sock, m, fd_out);
}

/* Reaps a child that was sent SIGKILL: a signal the caller handles
 * does not leave it unreaped. */
static void reap_killed(int pidfd)
{
	while (syscall(SYS_waitid, P_PIDFD, pidfd, NULL, WEXITED, NULL) < 0 && errno == EINTR)
		;
}

/* A bare control message from the supervisor to the sandbox's init. */
static int send_ctl(int sock, enum sc_msg_type type)
{
	struct sc_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	return send(sock, &m, sizeof(m), MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -1;
}

/* The report's isolation section, for the mode this attempt runs in. */
static void fill_isolation(struct run *rn, const struct sc_landlock_info *ll, uid_t host_uid)
{
	struct sc_isolation *iso = &rn->r->iso;
	bool ns = !rn->reduced;

	memset(iso, 0, sizeof(*iso));
	iso->mode = rn->reduced ? "reduced" : "full";
	iso->userns = iso->pidns = iso->mntns = iso->netns = iso->ipcns = iso->utsns = ns;
	iso->cgroupns = ns && rn->have_cg;
	iso->seccomp = iso->nnp = iso->caps_dropped = true;
	iso->landlock = *ll;
	iso->cgroup_version = rn->have_cg ? rn->cg.version : "none";
	iso->swap = rn->have_cg ? rn->cg.swap : "none";
	iso->cg_mem = rn->have_cg && (rn->cg.mem_v2 || rn->cg.v1_mem[0]);
	iso->cg_pids = rn->have_cg && (rn->cg.pids_v2 || rn->cg.v1_pids[0]);
	iso->cg_cpu = rn->have_cg && (rn->cg.cpu_v2 || rn->cg.v1_cpu[0]);
	iso->host_uid = host_uid;
#define NOT_HELD(s) iso->not_held[iso->n_not_held++] = (s)
	if (rn->have_cg && strcmp(rn->cg.swap, "unlimited") == 0)
		NOT_HELD("memory limit counts RAM only: the host has swap and no swap accounting");
	if (!rn->have_cg) {
		NOT_HELD("memory limit (no cgroup)");
		NOT_HELD("pids limit (no cgroup)");
		NOT_HELD("run-wide CPU limit (per-process RLIMIT_CPU only)");
	}
	if (rn->reduced) {
		NOT_HELD("process isolation: host processes are visible in /proc (no pid namespace)");
		NOT_HELD("read confinement is Landlock only: runtime, a few /etc files and /proc are readable");
		NOT_HELD("uid separation: the code runs as the caller's uid "
			 "(seccomp refuses chmod, chown and utime instead)");
		NOT_HELD("disk limit: RLIMIT_FSIZE per file only (no private tmpfs)");
		NOT_HELD("network: no network namespace (seccomp allows AF_UNIX only, Landlock denies TCP)");
		NOT_HELD("private inodes: the code's locks and inotify watches are on the host's own "
			 "runtime, /etc, input and device files (seccomp refuses leases and dnotify)");
		if (!ll->scope_signal)
			NOT_HELD("termination: a daemon that calls setsid can outlive the run");
	}
#undef NOT_HELD
	/* Whatever layer is missing, a run that lacks one says so. */
	if (iso->n_not_held > 0)
		iso->mode = "reduced";
}

/* The name the code is written under: the caller's base name when it is
 * a valid one. */
const char *sc_code_name(const struct sandcell_config *cfg)
{
	struct sandcell_error ne;
	const char *base;

	if (cfg->code_name == NULL)
		return "__main__.py";
	base = strrchr(cfg->code_name, '/');
	base = base ? base + 1 : cfg->code_name;
	return sandcell_check_name(base, &ne) < 0 ? "main.py" : base;
}

/* The environment every mode starts with: the fixed one, and a few
 * variables passed through from ours. */
static void base_env(struct spawn *s)
{
	/* Older OpenBLAS builds need these on some CPUs to pick a working
	 * kernel; they carry no secrets, so they pass through. */
	static const char *const passthrough[] = { "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE" };
	size_t i;

	for (i = 0; sc_env[i]; i++)
		s->envp[s->n_env++] = sc_env[i];
	for (i = 0; i < 2; i++) {
		const char *v = getenv(passthrough[i]);
		if (v && strlen(v) < 64) {
			snprintf(s->env_buf[i], sizeof(s->env_buf[i]), "%s=%s", passthrough[i], v);
			s->envp[s->n_env++] = s->env_buf[i];
		}
	}
}

/* Full mode: the sandbox's own root, the same paths every run. */
static void layout_full(struct spawn *s)
{
	static const char *const full_ro[] = { "/etc", "/code", "/.sandcell", "/input", "/proc" };
	static const char *const full_rw[] = { "/tmp", "/output", "/dev/shm" };
	size_t i;

	snprintf(s->code_path, sizeof(s->code_path), "/code/%s", s->code_name);
	snprintf(s->boot_path, sizeof(s->boot_path), "/.sandcell/_sandcell_boot.py");
	for (i = 0; i < 5; i++)
		s->ro[s->n_ro++] = full_ro[i];
	for (i = 0; i < 3; i++)
		s->rw[s->n_rw++] = full_rw[i];
	s->envp[s->n_env++] = "SANDCELL_RESULT_FD=3";
}

/* Reduced mode: the host's filesystem, the private directory (made
 * here) in place of /code, /input, /tmp and /output. */
static int layout_reduced(struct run *rn, struct sc_prep *pp, struct spawn *s,
			  struct sandcell_error *err)
{
	static const char *const etc_ro[] = { "/etc/ld.so.cache", "/etc/alternatives",
					      "/etc/matplotlibrc", "/etc/python3",
					      "/etc/python3.11", "/etc/fonts", "/etc/localtime",
					      "/proc" };
	const struct sandcell_config *cfg = rn->cfg;
	const char *wd = rn->workdir;
	size_t i;

	if (sc_workdir_make(cfg, s->code_name, rn->workdir, sizeof(rn->workdir), &rn->scratch_fd,
			    err) < 0)
		return -1;
	snprintf(s->code_path, sizeof(s->code_path), "%s/code/%s", wd, s->code_name);
	snprintf(s->boot_path, sizeof(s->boot_path), "%s/.sandcell/_sandcell_boot.py", wd);
	snprintf(s->env_buf[2], sizeof(s->env_buf[2]), "%s/code", wd);
	snprintf(s->env_buf[3], sizeof(s->env_buf[3]), "%s/.sandcell", wd);
	snprintf(s->env_buf[4], sizeof(s->env_buf[4]), "%s/input", wd);
	snprintf(s->env_buf[5], sizeof(s->env_buf[5]), "%s/tmp", wd);
	snprintf(s->env_buf[6], sizeof(s->env_buf[6]), "%s/output", wd);
	s->ro[s->n_ro++] = s->env_buf[2];
	s->ro[s->n_ro++] = s->env_buf[3];
	s->ro[s->n_ro++] = s->env_buf[4];
	/* The symlinks sc_workdir_make() made, not the caller's paths:
	 * a relative path would resolve against the private directory
	 * the child runs in, and Landlock skips a path it cannot
	 * find, leaving the input unreadable. */
	for (i = 0; i < cfg->n_inputs && s->n_ro < 40; i++) {
		snprintf(pp->input_ro[i], sizeof(pp->input_ro[i]), "%s/input/%s%s", wd,
			 sc_input_is_dataset(&cfg->inputs[i]) ? SC_DATASETS_DIR "/" : "",
			 cfg->inputs[i].name);
		s->ro[s->n_ro++] = pp->input_ro[i];
	}
	for (i = 0; i < sizeof(etc_ro) / sizeof(etc_ro[0]); i++)
		s->ro[s->n_ro++] = etc_ro[i];
	s->rw[s->n_rw++] = s->env_buf[5];
	s->rw[s->n_rw++] = s->env_buf[6];
	/* The fixed environment names /tmp; here the private dir
	 * replaces it (later entries win in CPython's os.environ). */
	for (i = 0; i < s->n_env; i++)
		if (strncmp(s->envp[i], "HOME=", 5) == 0 || strncmp(s->envp[i], "TMPDIR=", 7) == 0 ||
		    strncmp(s->envp[i], "MPLCONFIGDIR=", 13) == 0 ||
		    strncmp(s->envp[i], "XDG_CACHE_HOME=", 15) == 0)
			s->envp[i] = "SANDCELL_REDUCED=1";
	snprintf(s->env_buf[7], sizeof(s->env_buf[7]), "HOME=%s/tmp", wd);
	snprintf(s->env_buf[8], sizeof(s->env_buf[8]), "TMPDIR=%s/tmp", wd);
	snprintf(s->env_buf[9], sizeof(s->env_buf[9]), "MPLCONFIGDIR=%s/tmp/.matplotlib", wd);
	snprintf(s->env_buf[10], sizeof(s->env_buf[10]), "SANDCELL_INPUT_DIR=%s/input", wd);
	snprintf(s->env_buf[11], sizeof(s->env_buf[11]), "SANDCELL_OUTPUT_DIR=%s/output", wd);
	for (i = 7; i < 12; i++)
		s->envp[s->n_env++] = s->env_buf[i];
	s->envp[s->n_env++] = "SANDCELL_RESULT_FD=3";
	return 0;
}

/* What the child runs and may touch: the layout of this mode, its
 * environment, and the Landlock rules over those paths. */
static int layout(struct run *rn, struct sc_prep *pp, struct spawn *s, struct sandcell_error *err)
{
	size_t i;

	s->code_name = sc_code_name(rn->cfg);
	for (i = 0; i < pp->n_runtime; i++)
		s->ro_exec[s->n_ro_exec++] = pp->runtime[i];
	base_env(s);
	if (!rn->reduced)
		layout_full(s);
	else if (layout_reduced(rn, pp, s, err) < 0)
		return -1;
	s->envp[s->n_env] = NULL;
	s->rules.ro_exec = s->ro_exec;
	s->rules.n_ro_exec = s->n_ro_exec;
	s->rules.ro = s->ro;
	s->rules.n_ro = s->n_ro;
	s->rules.rw = s->rw;
	s->rules.n_rw = s->n_rw;
	s->rules.list_root = !rn->reduced;
	return 0;
}

/* The code's stdin, stdout, stderr and channel pipes and the control
 * socket, all above the fds the sandbox init rearranges. */
static int open_channels(struct run *rn, struct spawn *s)
{
	int sp[2] = { -1, -1 };
	int ret = 0;

	if (pipe_high(rn->in_pipe) < 0 || pipe_high(rn->out_pipe) < 0 || pipe_high(rn->err_pipe) < 0 ||
	    pipe_high(rn->res_pipe) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 || move_high(&sp[0]) < 0 ||
	    move_high(&sp[1]) < 0)
		ret = -1;
	/* Kept (and closed by their owners) even when the last step failed. */
	rn->sock = sp[0];
	s->child.sock = sp[1];
	return ret;
}

/* The sandbox's filesystem, built by the child (full mode). */
static int plan_mounts(struct run *rn, struct sc_prep *pp, struct spawn *s, struct sandcell_error *err)
{
	const struct sandcell_config *cfg = rn->cfg;
	struct sc_mount_plan *plan = &s->plan;

	plan->python = cfg->python;
	plan->runtime = pp->runtime;
	plan->n_runtime = pp->n_runtime;
	plan->runtime_fds = pp->runtime_fds;
	plan->inputs = cfg->inputs;
	plan->n_inputs = cfg->n_inputs;
	plan->input_fds = pp->input_fds;
	plan->code = cfg->code;
	plan->code_len = cfg->code_len;
	plan->code_name = s->code_name;
	plan->values_json = cfg->values_json;
	plan->py_files = sc_py_files;
	plan->disk = cfg->limits.disk;
	plan->disk_inodes = cfg->limits.disk_inodes;
	/* The run's own device nodes (root only), made while we are root. */
	plan->dev_fd = -1;
	if (!rn->reduced && sc_mounts_make_dev(&plan->dev_fd, err) < 0)
		return -1;
	return 0;
}

/* The command line: the interpreter, isolated, on the bootstrap, in the
 * mode the run asked for. */
static void command_line(const struct sandcell_config *cfg, struct spawn *s)
{
	size_t argc = 0, i;

	s->argv[argc++] = cfg->python;
	s->argv[argc++] = "-I";
	s->argv[argc++] = "-B";
	s->argv[argc++] = s->boot_path;
	if (cfg->flags & SANDCELL_SESSION)
		s->argv[argc++] = "session";
	else if (cfg->flags & SANDCELL_CELL)
		s->argv[argc++] = cfg->code_name ? "cell-file" : "cell-code";
	else
		s->argv[argc++] = cfg->code_name ? "file" : "code";
	s->argv[argc++] = s->code_path;
	for (i = 0; i < cfg->n_args; i++)
		s->argv[argc++] = cfg->args[i];
	s->argv[argc] = NULL;
}

/* The child's whole description (contain.h). */
static void describe_child(struct run *rn, struct sc_prep *pp, struct spawn *s)
{
	const struct sandcell_config *cfg = rn->cfg;
	struct sc_child *c = &s->child;

	c->plan = &s->plan;
	c->limits = &cfg->limits;
	c->bpf = &rn->bpf;
	c->landlock = &pp->ll;
	c->ll_rules = &s->rules;
	c->argv = s->argv;
	c->envp = s->envp;
	c->workdir = rn->reduced ? s->env_buf[5] : "/tmp";
	c->stdin_r = rn->in_pipe[0];
	c->stdout_w = rn->out_pipe[1];
	c->stderr_w = rn->err_pipe[1];
	c->result_w = rn->res_pipe[1];
	c->drop_groups = geteuid() == 0;
	c->cgroupns = rn->have_cg;
	c->reduced = rn->reduced;
	c->session = (cfg->flags & SANDCELL_SESSION) != 0;
	c->id_lock_fd = pp->ids.lock_fd;
	if (sc_spare != NULL) {
		/* The streams go to the code's process with its GO. */
		c->spare = true;
		c->stdin_r = c->stdout_w = c->stderr_w = c->result_w = -1;
	}
}

/* The clone itself: the child's pid, 0 never (the child does not
 * return), -1 with errno.  Born in its v2 cgroup where the kernel can
 * (clone3 with CLONE_INTO_CGROUP): moving a task later takes the cgroup
 * threadgroup lock for writing, which waits for an RCU grace period
 * (milliseconds per run). */
static long clone_sandbox(struct run *rn, const struct spawn *s)
{
	uint64_t ns = rn->reduced ? 0
				  : CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS |
					    (sc_hook_on(SC_HOOK_NO_NETNS) ? 0 : CLONE_NEWNET) |
					    CLONE_NEWIPC | CLONE_NEWUTS;
	int cgfd = rn->have_cg && rn->cg.v2[0] ? open(rn->cg.v2, O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
	long pid = -1;

	if (cgfd >= 0) {
		struct clone_args ca;
		memset(&ca, 0, sizeof(ca));
		ca.flags = ns | CLONE_PIDFD | CLONE_INTO_CGROUP;
		ca.pidfd = (uint64_t)(uintptr_t)&rn->pidfd;
		ca.exit_signal = SIGCHLD;
		ca.cgroup = (uint64_t)cgfd;
		pid = syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid == 0)
			sc_child_main(&s->child);
		if (pid > 0)
			rn->v2_attached = true;
		close(cgfd);
	}
	if (pid < 0)
		pid = syscall(SYS_clone, (unsigned long)(ns | CLONE_PIDFD | SIGCHLD), NULL, &rn->pidfd,
			      NULL, NULL);
	if (pid == 0)
		sc_child_main(&s->child);
	return pid;
}

/* A failed clone: a refused user namespace is retried reduced when the
 * caller allows it, else the run fails saying why. */
static enum sc_attempt clone_failed(struct run *rn, int e)
{
	char msg[300];

	if (!rn->reduced && userns_refused(e) && (rn->cfg->flags & SANDCELL_ALLOW_REDUCED))
		return SC_ATTEMPT_RETRY_REDUCED;
	snprintf(msg, sizeof(msg), "cannot create namespaces: %s%s", strerror(e),
		 userns_refused(e) ? " (user namespaces are unavailable to this user; "
				     "--allow-reduced runs with Landlock, seccomp and rlimits only)"
				   : "");
	set_error(rn->r, msg);
	return SC_ATTEMPT_DONE;
}

/* How the handshakes ended (steps 6-10). */
enum handshake { HS_OK, HS_FAILED, HS_ATTACH_FAILED, HS_LOST_CHILD };

/* Steps 6-10: the child's READY, its id maps, GO, the cgroup attach and
 * ATTACHED.  Any failure kills the tree; supervise.c then reaps it and
 * reads what the child said. */
static enum handshake handshake(struct run *rn, struct sc_prep *pp, struct sandcell_error *e)
{
	struct sandcell_result *r = rn->r;
	struct sc_msg m = { 0 };

	/* 6. READY: the child opened its sources with the caller's view. */
	if (wait_msg(rn->sock, &m, NULL, SC_SETUP_TIMEOUT_MS) < 0 || m.type != SC_MSG_READY) {
		char msg[600];
		snprintf(msg, sizeof(msg), "sandbox setup failed: %s",
			 m.type == SC_MSG_ERROR && m.text[0] ? m.text : "no handshake from the child");
		set_error(r, msg);
		sc_kill_tree(rn);
		return HS_FAILED;
	}
	/* 7. The single uid/gid of the run, mapped (full mode). */
	if (!rn->reduced &&
	    sc_userns_write_maps(rn->pid, pp->ids.uid, pp->ids.gid, geteuid() != 0, e) < 0) {
		set_error(r, e->msg);
		sc_kill_tree(rn);
		return HS_FAILED;
	}
	/* 8. GO: the child takes its ids and builds its root. */
	if (send_ctl(rn->sock, SC_MSG_GO) < 0) {
		set_error(r, "sandbox setup failed: lost the child");
		sc_kill_tree(rn);
		return HS_FAILED;
	}
	/* 9. Into the v2 run cgroup, unless cloned there; the init joins
	 * its v1 cgroups itself after ATTACHED (contain.c, wait_attached).
	 * Moving a task waits for an RCU grace period (v2 without clone3):
	 * the child builds its mounts meanwhile, and waits for ATTACHED
	 * before it enters its cgroup namespace or forks the code.  A child
	 * already gone (ESRCH) reports its own error. */
	if (rn->have_cg && sc_cgroup_attach(&rn->cg, rn->pid, rn->v2_attached, e) < 0) {
		if (e->code != ESRCH)
			set_error(r, e->msg);
		sc_kill_tree(rn);
		return HS_ATTACH_FAILED;
	}
	/* 10. ATTACHED.  A child that failed while we attached it has its
	 * own message still queued, saying why. */
	if (send_ctl(rn->sock, SC_MSG_ATTACHED) < 0) {
		sc_kill_tree(rn);
		return HS_LOST_CHILD;
	}
	return HS_OK;
}

static void close_child_streams(struct run *rn)
{
	close_fd(&rn->in_pipe[0]);
	close_fd(&rn->out_pipe[1]);
	close_fd(&rn->err_pipe[1]);
	close_fd(&rn->res_pipe[1]);
}

/* ---- A spare (internal.h, "A spare sandbox") ----
 *
 *   supervisor (here)                      init (contain.c, spare_run)
 *                                       <- IDLE (its namespaces final,
 *                                          its root's identity)
 *   S1  PREP for the code's process (its
 *       layers; it confines itself while
 *       idle, contain.c sc_code_confine);
 *       hand the sandbox out; wait for
 *       the request (sc_spare->await)
 *   S2  check it as a cold run's; open
 *       its output directory; its limits
 *       on the run cgroups
 *   S3  RUN (the request text)          -> the run's mounts, pivot
 *                                       <- SCRATCH
 *                                       -> confine
 *                                       <- CONFINED (the root's identity)
 *   S4  GO to the code's process (its streams, its limits, its argv),
 *       which says STARTED (contain.c, sc_code_enter)
 *   then supervision as for a cold run; the code's wait status comes
 *   from its parent, the template (SC_MSG_EXIT on the channel).
 */
enum spare_bind { SPARE_OK, SPARE_QUIET, SPARE_FAILED, SPARE_CANCELLED };

/* The join fds (SC_JOIN_*) of the code's process.  The init's cgroup
 * namespace is opened here, by its parent: the code's process, already in
 * the spare's user namespace, could not open it through the init (not
 * dumpable) any more. */
static int code_join_fds(struct run *rn, int fds[SC_JOIN_FDS], struct sandcell_error *e)
{
	char path[64];

	for (int i = 0; i < SC_JOIN_FDS; i++)
		fds[i] = -1;
	snprintf(path, sizeof(path), "/proc/%d/ns/cgroup", (int)rn->pid);
	fds[SC_JOIN_CGNS] = open(path, O_RDONLY | O_CLOEXEC);
	if (fds[SC_JOIN_CGNS] < 0)
		return sc_err(e, errno, "spare: %s", path);
	if (!rn->have_cg)
		return 0;
	if (rn->cg.v2[0]) {
		fds[SC_JOIN_V2] = open(rn->cg.v2, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[SC_JOIN_V2] < 0)
			return sc_err(e, errno, "cgroup: %s", rn->cg.v2);
	}
	return sc_cgroup_join_open(&rn->cg, fds + SC_JOIN_V1, e);
}

/* The root's identity in IDLE's and CONFINED's text (contain.c, root_id):
 * 0, or -1. */
static int parse_root(const char *text, uint64_t root[2])
{
	unsigned long long dev, ino;

	if (sscanf(text, "%llu:%llu", &dev, &ino) != 2)
		return -1;
	root[0] = dev;
	root[1] = ino;
	return 0;
}

/* S3: RUN, then the init's SCRATCH and CONFINED (or its error).
 * CONFINED names the root IDLE named (the one the code's process checked
 * its own against): a run's mounts never replace it. */
static int init_bind(struct run *rn, const struct sc_spare_req *q, const uint64_t root[2],
		     struct sandcell_error *e)
{
	struct sc_msg m;
	int mfd = memfd_create("sandcell-request", MFD_CLOEXEC), fd, rc;
	uint64_t confined[2];

	if (mfd < 0 || write(mfd, q->text, q->len) != (ssize_t)q->len) {
		if (mfd >= 0)
			close(mfd);
		return sc_err(e, errno ? errno : EIO, "spare: the request for the init");
	}
	memset(&m, 0, sizeof(m));
	m.type = SC_MSG_RUN;
	rc = sc_send_fds(rn->sock, &m, &mfd, 1);
	close(mfd);
	if (rc < 0)
		return sc_err(e, errno, "spare: lost the init");
	for (;;) {
		if (wait_msg(rn->sock, &m, &fd, SC_SETUP_TIMEOUT_MS) < 0)
			return sc_err(e, ETIMEDOUT, "spare: no answer from the init");
		if (m.type == SC_MSG_SCRATCH && fd >= 0 && rn->scratch_fd < 0) {
			rn->scratch_fd = fd;
		} else if (m.type == SC_MSG_CONFINED) {
			if (parse_root(m.text, confined) < 0)
				return sc_err(e, EPROTO, "spare: a bad CONFINED");
			if (confined[0] != root[0] || confined[1] != root[1])
				return sc_err(e, EXDEV, "spare: the init's root changed");
			return 0;
		} else if (m.type == SC_MSG_ERROR) {
			rn->r->setup_errno = m.err;
			return sc_err(e, m.err, "%s", m.text);
		} else {
			if (fd >= 0)
				close(fd);
			return sc_err(e, EPROTO, "spare: unexpected message %d from the init", (int)m.type);
		}
	}
}

/* S1: the code's PREP, the layers a cold init would give it, built with
 * the cold run's own functions for the spare's provisional config.  Every
 * request a spare serves has the same layout (full mode, the server's
 * interpreter: factory.c, spare_serves), so the same rules and program. */
static int code_prep(struct run *rn, struct sc_prep *pp, const uint64_t root[2], struct spawn *s,
		     struct sc_go *g, struct sandcell_error *e)
{
	if (layout(rn, pp, s, e) < 0)
		return -1;
	memset(g, 0, sizeof(*g));
	g->ll = pp->ll;
	g->rules = s->rules;
	g->bpf = rn->bpf;
	g->drop_groups = geteuid() == 0;
	g->root_dev = root[0];
	g->root_ino = root[1];
	return 0;
}

/* S4: the code's GO, built with the cold run's own functions. */
static int code_go(struct run *rn, struct sc_prep *pp, struct sandcell_error *e)
{
	struct spawn *s = calloc(1, sizeof(*s));
	struct sc_go g;
	int fds[4] = { rn->in_pipe[0], rn->out_pipe[1], rn->err_pipe[1], rn->res_pipe[1] };
	int rc = -1;

	if (s == NULL)
		return sc_err(e, ENOMEM, "spare");
	if (layout(rn, pp, s, e) == 0) {
		command_line(rn->cfg, s);
		memset(&g, 0, sizeof(g));
		g.limits = &rn->cfg->limits;
		g.argv = s->argv;
		g.envp = s->envp;
		rc = sc_go_send(sc_spare->chan, SC_MSG_GO, &g, fds, e);
	}
	free(s);
	return rc;
}

/* IDLE, with the mount namespaces the supervisor holds until its answer
 * (contain.c, held_mnt), and the pivoted root's identity: 0, or -1. */
static int recv_idle(struct run *rn, struct sc_msg *m, uint64_t root[2])
{
	size_t n;

	if (sc_wait_in(rn->sock, SC_SETUP_TIMEOUT_MS) <= 0 || sc_init_recv_fds(rn->sock, m, rn->held_mnt, 2, &n) < 0)
		return -1;
	return m->type == SC_MSG_IDLE ? parse_root(m->text, root) : 0;
}

static enum spare_bind spare_bind(struct run *rn, struct sc_prep *pp, struct sandcell_error *e)
{
	struct sc_spare_req q = { NULL, NULL, 0, -1 };
	struct spawn *s;
	struct sc_go prep;
	int cg[SC_JOIN_FDS];
	uint64_t root[2] = { 0, 0 };
	int rc;

	/* S1, once the init said its namespaces are final (the cgroup
	 * namespace is made last, after the init joined the run cgroups). */
	{
		struct sc_msg m = { 0 };
		if (recv_idle(rn, &m, root) < 0 || m.type != SC_MSG_IDLE) {
			if (m.type == SC_MSG_ERROR) {
				rn->r->setup_errno = m.err;
				sc_err(e, m.err, "sandbox setup failed: %s", m.text);
			} else {
				sc_err(e, EPROTO, "sandbox setup failed: no word from the init");
			}
			return SPARE_FAILED;
		}
	}
	for (int i = 0; i < SC_JOIN_FDS; i++)
		cg[i] = -1;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		sc_err(e, ENOMEM, "spare");
		return SPARE_FAILED;
	}
	rc = code_prep(rn, pp, root, s, &prep, e);
	if (rc == 0)
		rc = code_join_fds(rn, cg, e);
	if (rc == 0)
		rc = sc_spare->await(rn->pidfd, cg, SC_JOIN_FDS, &prep, &q);
	free(s);
	for (int i = 0; i < SC_JOIN_FDS; i++)
		if (cg[i] >= 0)
			close(cg[i]);
	if (rc <= 0)
		return rc < 0 ? SPARE_FAILED : SPARE_QUIET;
	rn->code_pidfd = q.code_pidfd;
	rn->code_sock = sc_spare->chan;
	/* S2.  A request this sandbox cannot take is the caller's mistake,
	 * answered as a cold run would answer it. */
	if (sc_run_accept(rn, q.cfg, e) < 0) {
		sc_spare->refuse(e->code == ENOMEM ? SANDCELL_SANDBOX_ERROR : SANDCELL_USAGE_ERROR, e->msg,
				 &q.cfg->limits);
		return SPARE_QUIET;
	}
	/* A request cancelled while it waited (the client hung up) is not
	 * started, as a cold run cancelled before its sandbox exists. */
	rc = sc_cancel_pending(rn->cfg->cancel_fd);
	if (rc != 0) {
		if (rc < 0)
			sc_err(e, errno, "cannot watch for a cancel: poll failed");
		return rc < 0 ? SPARE_FAILED : SPARE_CANCELLED;
	}
	if (rn->have_cg && sc_cgroup_set_limits(&rn->cg, &rn->cfg->limits, e) < 0)
		return SPARE_FAILED;
	/* S3, S4; the wall clock runs from here. */
	rn->t0 = now_sec();
	if (init_bind(rn, &q, root, e) < 0 || code_go(rn, pp, e) < 0)
		return SPARE_FAILED;
	return SPARE_OK;
}

enum sc_attempt sc_spawn(struct run *rn, struct sc_prep *pp)
{
	const struct sandcell_config *cfg = rn->cfg;
	struct sandcell_result *r = rn->r;
	struct sandcell_error e = { 0, "" };
	struct sc_owner_saved owner = { false, -1, 0 };
	enum sc_attempt result = SC_ATTEMPT_DONE;
	enum handshake hs;
	struct spawn s;
	long pid;
	int saved;

	memset(&s, 0, sizeof(s));
	s.child.sock = s.child.id_lock_fd = s.plan.dev_fd = -1;
	for (int i = 0; i < SC_CGROUP_V1_JOIN; i++)
		s.child.cg_join[i] = -1;
	if (r->error[0])
		return SC_ATTEMPT_DONE; /* a layer for this attempt could not be prepared */
	fill_isolation(rn, &pp->ll, pp->ids.uid);
	rn->host_uid = pp->ids.uid;
	rn->host_gid = pp->ids.gid;

	/* 1. What the child runs and may touch. */
	if (layout(rn, pp, &s, &e) < 0) {
		set_error(r, e.msg);
		return SC_ATTEMPT_DONE;
	}
	/* 2. Pipes and the control socket. */
	if (open_channels(rn, &s) < 0) {
		set_error(r, "cannot create pipes");
		goto out;
	}
	/* 3. The mount plan, and the run's device nodes. */
	if (plan_mounts(rn, pp, &s, &e) < 0) {
		set_error(r, e.msg);
		goto out;
	}
	/* 4. The command line and the child's description. */
	command_line(cfg, &s);
	describe_child(rn, pp, &s);

	/* 5. The clone, as the owner of the run's user namespace (full
	 * mode), which is left again at once.  First, as the caller, the v1
	 * run cgroups' tasks files: the init joins those cgroups itself
	 * through them (cgroup.c, sc_cgroup_join_open). */
	if (rn->have_cg && sc_cgroup_join_open(&rn->cg, s.child.cg_join, &e) < 0) {
		set_error(r, e.msg);
		goto out;
	}
	rn->t0 = now_sec();
	if (!rn->reduced && sc_userns_owner_enter(&pp->ids, &owner, &e) < 0) {
		set_error(r, e.msg);
		goto out;
	}
	pid = clone_sandbox(rn, &s);
	saved = errno;
	if (sc_userns_owner_leave(&owner, &e) < 0) {
		/* The supervisor cannot be trusted to manage this run with
		 * the wrong ids: stop it before any code. */
		set_error(r, e.msg);
		if (pid > 0) {
			rn->pid = (pid_t)pid;
			sc_kill_tree(rn);
			reap_killed(rn->pidfd);
		}
		goto out;
	}
	if (pid < 0) {
		result = clone_failed(rn, saved);
		goto out;
	}
	rn->pid = (pid_t)pid;
	/* The child's ends are the child's. */
	close_fd(&s.child.sock);
	close_fd(&s.plan.dev_fd);
	sc_cgroup_join_close(s.child.cg_join);
	if (!sc_spare)
		close_child_streams(rn);

	/* 6-10. The handshakes, up to the code's start. */
	hs = handshake(rn, pp, &e);
	/* A spare: S1-S4 above; the streams' child ends were kept for the
	 * code's GO.  Nothing ran when it ends quietly (no request, or one
	 * refused): the tree is killed and the run has no report. */
	if (sc_spare) {
		enum spare_bind sb = hs == HS_OK ? spare_bind(rn, pp, &e) : SPARE_FAILED;
		close_child_streams(rn);
		if (sb == SPARE_QUIET)
			rn->spare_quiet = true;
		if (sb == SPARE_CANCELLED)
			rn->cancelled = rn->cancel_verdict = true;
		if (sb == SPARE_FAILED && hs == HS_OK)
			set_error(r, e.msg[0] ? e.msg : "spare: setup failed");
		if (sb != SPARE_OK)
			sc_kill_tree(rn);
	}
	/* 11. Supervision, until the tree is dead and its streams drained;
	 * then the init is reaped whatever happened. */
	sc_supervise(rn);
	if (!rn->init_exited) {
		sc_kill_tree(rn);
		reap_killed(rn->pidfd);
	}
	/* The handshakes' failures that wait for the child's own word:
	 * only where it said nothing do they stand. */
	if (hs == HS_ATTACH_FAILED)
		set_error(r, e.msg);
	if (hs == HS_LOST_CHILD)
		set_error(r, "sandbox setup failed: lost the child");
	if (rn->reduced)
		kill(-rn->pid, SIGKILL); /* stragglers of the session, if any */
	/* A user namespace that exists but cannot mount (e.g. an LSM that
	 * strips its capabilities) fails in setup, before any code ran. */
	if (!rn->reduced && !r->code_started && r->setup_errno != 0 &&
	    userns_refused(r->setup_errno) && (cfg->flags & SANDCELL_ALLOW_REDUCED))
		result = SC_ATTEMPT_RETRY_REDUCED;
out:
	close_fd(&s.child.sock);
	close_fd(&s.plan.dev_fd);
	sc_cgroup_join_close(s.child.cg_join);
	return result;
}
