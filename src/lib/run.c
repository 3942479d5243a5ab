/*
 * The supervisor, sandcell_run(): validates the configuration, prepares
 * every layer that can be prepared outside (seccomp BPF, cgroup, the run's
 * host ids, the output directory), runs an attempt (spawn.c, which clones
 * the sandbox and supervises it with supervise.c) and, when the caller
 * allows it and the namespaces were refused, a second one in reduced
 * mode; then, with the whole process tree dead, collects /output from the
 * pinned scratch tmpfs and settles the report.  Status and verdicts come
 * only from host-side evidence (timers, cgroup counters, wait status),
 * never from the code: gathered here, judged by verdict.c.
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

/* Largest result and cell-output limits: the report carries them. */
#define SC_CELL_BYTES_MAX (32u << 20)

static int validate(const struct sandcell_config *cfg, struct sandcell_error *err)
{
	const struct sandcell_limits *l = &cfg->limits;
	size_t i, j;

	if (cfg->code == NULL)
		return sc_err(err, EINVAL, "no code to run");
	if ((cfg->flags & SANDCELL_SESSION) &&
	    (!(l->cell_wall_sec > 0) || !(l->cell_cpu_sec > 0) || !(l->idle_sec > 0)))
		return sc_err(err, EINVAL, "the cell and idle time limits of a session must be positive");
	if (cfg->python == NULL || cfg->python[0] != '/')
		return sc_err(err, EINVAL, "--python must be an absolute path");
	if (access(cfg->python, X_OK) < 0)
		return sc_err(err, errno, "interpreter %s", cfg->python);
	if (!(l->wall_sec > 0) || !(l->cpu_sec > 0) || l->memory < (16u << 20) || l->pids < 4 ||
	    l->disk < (1u << 20) || l->files < 16 || l->disk_inodes < 64)
		return sc_err(err, EINVAL, "limits too small to start python "
			      "(memory >= 16M, pids >= 4, disk >= 1M, files >= 16)");
	/* The outputs travel in the report, which a warm client reads into
	 * memory (at most 64 MiB). */
	if (l->cell_bytes > SC_CELL_BYTES_MAX || l->cell_output_bytes > SC_CELL_BYTES_MAX ||
	    l->result_bytes > SC_CELL_BYTES_MAX)
		return sc_err(err, EINVAL, "the result and cell output limits are at most %u MiB",
			      SC_CELL_BYTES_MAX >> 20);
	for (i = 0; i < cfg->n_inputs; i++) {
		const struct sandcell_input *in = &cfg->inputs[i];
		const char *kind = sc_input_is_dataset(in) ? "dataset" : "input";
		struct stat st;

		/* A flag this library does not know would be silently shown
		 * as something else: refuse it. */
		if (in->flags & ~(unsigned)SANDCELL_INPUT_DATASET)
			return sc_err(err, EINVAL, "input '%s': unknown flags 0x%x", in->name,
				      in->flags);
		if (sandcell_check_name(in->name, err) < 0)
			return sc_input_is_dataset(in) ? sc_err_wrap(err, "dataset") : -1;
		/* Datasets live in /input/.datasets, inputs in /input: a
		 * name is unique within its own kind only. */
		for (j = 0; j < i; j++)
			if (cfg->inputs[j].flags == in->flags &&
			    strcmp(in->name, cfg->inputs[j].name) == 0)
				return sc_err(err, EINVAL, "%s '%s' given twice", kind, in->name);
		if (access(in->path, R_OK) < 0)
			return sc_err(err, errno, "%s '%s' (%s)", kind, in->name, in->path);
		/* Checked again on the descriptor the mount is made from
		 * (sc_mounts_open_sources), where a swap cannot follow. */
		if (sc_input_is_dataset(in)) {
			if (stat(in->path, &st) < 0)
				return sc_err(err, errno, "dataset '%s' (%s)", in->name, in->path);
			if (!S_ISREG(st.st_mode)) {
				/* Code 0: strerror's "Invalid argument" adds nothing. */
				sc_err(err, 0, "dataset '%s' (%s): not a regular file (a dataset "
				       "is one frame archive)", in->name, in->path);
				if (err)
					err->code = EINVAL;
				return -1;
			}
		}
	}
	if (cfg->values_json) {
		json_t *v = NULL;
		if (sc_json_parse(cfg->values_json, strlen(cfg->values_json), 16u << 20,
				  SC_JSON_MAX_DEPTH, &v, err) < 0)
			return sc_err_wrap(err, "values");
		if (!json_is_object(v)) {
			json_decref(v);
			return sc_err(err, EINVAL, "values must be a JSON object");
		}
		json_decref(v);
	}
	return 0;
}

/* Host dirs the interpreter needs, bound read-only at the same paths. */
static int runtime_dirs(const char *python, char dirs[][PATH_MAX], size_t *n,
			struct sandcell_error *err)
{
	static const char *const base[] = { "/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32" };
	char real[PATH_MAX];
	struct stat st;
	size_t i;

	*n = 0;
	for (i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
		/* usr-merged symlinks are recreated, not bound. */
		if (lstat(base[i], &st) == 0 && S_ISDIR(st.st_mode))
			snprintf(dirs[(*n)++], PATH_MAX, "%s", base[i]);
	}
	if (realpath(python, real) == NULL)
		return sc_err(err, errno, "interpreter %s", python);
	if (strncmp(real, "/usr/", 5) != 0) {
		/* An interpreter outside /usr brings its prefix:
		 * PREFIX/bin/python3 -> PREFIX. */
		char *s = strrchr(real, '/');
		if (s)
			*s = '\0';
		s = strrchr(real, '/');
		if (s && s != real)
			*s = '\0';
		if (strcmp(real, "/") == 0 || real[0] == '\0')
			return sc_err(err, EINVAL, "cannot derive a runtime prefix for %s", python);
		snprintf(dirs[(*n)++], PATH_MAX, "%s", real);
	}
	return 0;
}

static sc_report_hook report_hook;

void sc_set_report_hook(sc_report_hook hook)
{
	report_hook = hook;
}

static bool scratch_full(int fd)
{
	struct statfs s;

	if (fd < 0 || fstatfs(fd, &s) < 0)
		return false;
	return s.f_bavail < 2 || s.f_ffree < 2;
}

/* The host's evidence of how the run ended, gathered here once every
 * process of it is dead; the verdict itself is verdict.c's. */
static void classify(struct run *rn)
{
	struct sandcell_result *r = rn->r;
	struct sc_run_verdict v;
	struct sc_evidence ev = {
		.limits = &rn->cfg->limits,
		.code_started = r->code_started,
		.got_exit = rn->got_exit,
		.wait_status = rn->wait_status,
		.killed_wall = rn->killed_wall,
		.killed_cpu = rn->killed_cpu,
		.killed_oom = rn->killed_oom,
		.cancel_verdict = rn->cancel_verdict,
		.oom = rn->have_cg && sc_cgroup_oom(&rn->cg),
		.scratch_full = scratch_full(rn->scratch_fd),
		.cpu_sec = r->cpu_sec,
		.error = r->error,
		.outputs_limit_hit = r->outputs.limit_hit,
		.result_truncated = r->result_truncated,
	};

	sc_run_verdict(&ev, &v);
	r->status = v.status;
	r->script_exit = v.script_exit;
	r->script_signal = v.script_signal;
	r->exit_code = v.exit_code;
	memcpy(r->error, v.error, sizeof(r->error));
	memcpy(r->stop_reason, v.reason, sizeof(r->stop_reason));
}

/* What the code said about itself (channel.c), kept only where the host's
 * own evidence agrees, since the code can write any record: an exception
 * ends the code with exit status 1 (the bootstrap's), so a record from
 * code that exited 0 or was killed is no uncaught exception; a location
 * counts only after the supervisor asked for one and then stopped the
 * run.  In cell mode the outputs end with an error output, as a notebook
 * shows one: the exception's, or, for a run stopped at a limit, killed by
 * a signal or cancelled, one that names the cause (and the location). */
static void settle_channel(struct run *rn)
{
	struct sandcell_result *r = rn->r;
	enum sandcell_status s = r->status;
	bool we_stopped = s == SANDCELL_TIMEOUT || s == SANDCELL_CPU_TIME ||
			  (s == SANDCELL_CANCELLED && r->code_started);
	json_t *out = NULL;

	if (r->exception && !(r->script_exit > 0 && s != SANDCELL_SANDBOX_ERROR)) {
		json_decref(r->exception);
		r->exception = NULL;
	}
	if (r->stopped_at && !(rn->where_sent && we_stopped)) {
		json_decref(r->stopped_at);
		r->stopped_at = NULL;
	}
	if (!r->cell_mode || r->cell_outputs == NULL || !r->code_started)
		return;
	if (r->exception)
		out = sc_chan_error_output(r->exception);
	else if (we_stopped || s == SANDCELL_MEMORY || s == SANDCELL_DISK || s == SANDCELL_SIGNALED)
		out = sc_chan_stop_output(r->stop_reason, r->stopped_at);
	if (out != NULL && json_array_append_new(r->cell_outputs, out) < 0)
		r->cell_dropped++;
}

/* Removes the run cgroups; whatever stays is named in the report. */
static void destroy_cgroup(struct run *rn)
{
	const char *dirs[4];
	int i;

	if (sc_cgroup_destroy(&rn->cg) == 0)
		return;
	dirs[0] = rn->cg.v2;
	dirs[1] = rn->cg.v1_mem;
	dirs[2] = rn->cg.v1_pids;
	dirs[3] = rn->cg.v1_cpu;
	for (i = 0; i < 4; i++)
		if (dirs[i][0] && rn->r->n_left_behind < (int)(sizeof(rn->r->left_behind) / sizeof(rn->r->left_behind[0])))
			snprintf(rn->r->left_behind[rn->r->n_left_behind++], sizeof(rn->r->left_behind[0]),
				 "%s", dirs[i]);
}

static void reset_for_retry(struct run *rn)
{
	struct sandcell_result *r = rn->r;
	struct sandcell_error e2 = { 0, "" };
	int i;

	close_fd(&rn->pidfd);
	close_fd(&rn->sock);
	close_fd(&rn->code_pidfd);
	close_fd(&rn->held_mnt[0]);
	close_fd(&rn->held_mnt[1]);
	close_fd(&rn->scratch_fd);
	for (i = 0; i < 2; i++) {
		close_fd(&rn->in_pipe[i]);
		close_fd(&rn->out_pipe[i]);
		close_fd(&rn->err_pipe[i]);
		close_fd(&rn->res_pipe[i]);
	}
	rn->killed_wall = rn->killed_cpu = rn->killed_oom = rn->init_exited = rn->got_exit = false;
	r->error[0] = '\0';
	r->setup_errno = 0;
	r->code_started = false;
	if (rn->have_cg) {
		/* A fresh, empty cgroup for the second attempt. */
		struct sandcell_error e;
		destroy_cgroup(rn);
		rn->have_cg = sc_cgroup_create(&rn->cg, rn->cfg->cgroup_parent, &rn->cfg->limits, &e) == 0;
	}
	rn->reduced = true;
	rn->v2_attached = false;
	sc_seccomp_free(&rn->bpf);
	if (sc_seccomp_compile(&rn->bpf, true, &e2) < 0)
		set_error(r, e2.msg);
}

int sc_cancel_pending(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r;

	if (fd < 0)
		return 0;
	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : r > 0;
}

void sc_session_defaults(struct sandcell_limits *l)
{
	if (l->cell_wall_sec == 0)
		l->cell_wall_sec = 600;
	if (l->cell_cpu_sec == 0)
		l->cell_cpu_sec = 600;
	if (l->idle_sec == 0)
		l->idle_sec = 3600;
}

/* The caller's host output directory, opened first: a bad --output is
 * the caller's error and nothing runs.  It must be new or empty, so that
 * no host file is ever replaced and what it holds afterwards is this
 * run's outputs only (docs/report.md, "Output collection"). */
static int open_output_dir(struct run *rn, const char *dir, struct sandcell_error *err)
{
	if (dir == NULL)
		return 0;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return sc_err(err, errno, "output directory %s", dir);
	rn->out_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (rn->out_dirfd < 0)
		return sc_err(err, errno, "output directory %s", dir);
	if (sc_dir_is_empty(rn->out_dirfd, err) <= 0)
		return sc_err_wrap(err, "output directory %s", dir);
	return 0;
}

int sc_run_accept(struct run *rn, const struct sandcell_config *cfg, struct sandcell_error *err)
{
	if (validate(cfg, err) < 0)
		return -1;
	if (cfg->n_args > 256)
		return sc_err(err, E2BIG, "too many arguments (max 256)");
	/* The server hands a spare only what it can serve (docs/warm.md);
	 * this is the backstop. */
	if ((cfg->flags & SANDCELL_SESSION) || strcmp(cfg->python, rn->cfg->python) != 0 ||
	    (cfg->cgroup_parent == NULL) != (rn->cfg->cgroup_parent == NULL) ||
	    (cfg->cgroup_parent && strcmp(cfg->cgroup_parent, rn->cfg->cgroup_parent) != 0))
		return sc_err(err, EINVAL, "spare: not a request a spare serves");
	if (open_output_dir(rn, cfg->output_dir, err) < 0)
		return -1;
	rn->cfg = cfg;
	rn->r->limits = cfg->limits;
	rn->r->cell_mode = (cfg->flags & SANDCELL_CELL) != 0;
	return 0;
}

/* The run's cgroup, with the limits (generous ones for the ablation
 * hook).  Fail closed: no cgroup, or swap it cannot bound, stops the run
 * unless the caller allows reduced mode. */
static int prepare_cgroup(struct run *rn)
{
	const struct sandcell_config *cfg = rn->cfg;
	struct sandcell_error e = { 0, "" };

	if (sc_hook_on(SC_HOOK_NO_LIMITS)) {
		/* Ablation: generous limits everywhere the cgroup enforces. */
		static struct sandcell_limits big;
		big = cfg->limits;
		big.memory = 1ull << 40;
		big.pids = 1u << 22;
		rn->have_cg = sc_cgroup_create(&rn->cg, cfg->cgroup_parent, &big, &e) == 0;
	} else if (sc_cgroup_create(&rn->cg, cfg->cgroup_parent, &cfg->limits, &e) < 0) {
		if (!(cfg->flags & SANDCELL_ALLOW_REDUCED)) {
			char msg[600];
			snprintf(msg, sizeof(msg), "%.440s; pass --allow-reduced to run without cgroup limits",
				 e.msg);
			set_error(rn->r, msg);
			return -1;
		}
	} else {
		rn->have_cg = true;
		/* Swap the cgroup cannot bound would let the code's memory
		 * grow past --memory into swap: a layer missing like any other. */
		if (strcmp(rn->cg.swap, "unlimited") == 0 && !(cfg->flags & SANDCELL_ALLOW_REDUCED)) {
			set_error(rn->r, "cgroup: the host has swap but no swap accounting (no memory.swap.max or "
				     "memory.memsw.limit_in_bytes), so --memory cannot bound swap; boot with "
				     "swapaccount=1, turn swap off, or pass --allow-reduced");
			return -1;
		}
	}
	return 0;
}

/* Fail closed: each layer that cannot be prepared stops the run before
 * anything is cloned (-1, r->error says which). */
static int prepare_layers(struct run *rn, struct sc_prep *pp)
{
	struct sandcell_result *r = rn->r;
	struct sandcell_error e = { 0, "" };

	if (sc_landlock_probe(&pp->ll) < 0) {
		set_error(r, "Landlock is not available on this kernel (needed by every mode)");
		return -1;
	}
	if (sc_seccomp_compile(&rn->bpf, false, &e) < 0) {
		set_error(r, e.msg);
		return -1;
	}
	if (prepare_cgroup(rn) < 0)
		return -1;
	if (sc_userns_claim_ids(&pp->ids, &e) < 0) {
		set_error(r, e.msg);
		return -1;
	}
	/* Above the fds the sandbox init rearranges (0-3). */
	if (pp->ids.lock_fd >= 0 && move_high(&pp->ids.lock_fd) < 0) {
		set_error(r, "userns: fds: moving the host uid claim");
		return -1;
	}
	if (sc_hook_on(SC_HOOK_NO_UIDMAP)) {
		sc_userns_release_ids(&pp->ids);
		pp->ids.uid = geteuid();
		pp->ids.gid = getegid();
	}
	return 0;
}

/* The attempts: a run cancelled before its sandbox exists is not
 * started; one cancelled during its first attempt is not tried again. */
static void run_attempts(struct run *rn, struct sc_prep *pp)
{
	int pending = sc_cancel_pending(rn->cfg->cancel_fd);

	if (pending < 0) {
		/* A cancel that cannot be seen now could not be later either. */
		set_error(rn->r, "cannot watch for a cancel: poll failed");
	} else if (pending > 0) {
		rn->cancelled = rn->cancel_verdict = true;
	} else if (sc_spawn(rn, pp) == SC_ATTEMPT_RETRY_REDUCED && !rn->cancelled) {
		reset_for_retry(rn);
		/* Reduced mode runs as the caller: no dedicated ids. */
		sc_userns_release_ids(&pp->ids);
		pp->ids.uid = geteuid();
		pp->ids.gid = getegid();
		sc_spawn(rn, pp);
	}
}

/* Once every process of the run is dead: the cgroup's measures, and
 * /output, reachable now only through our fd on the scratch tmpfs. */
static void collect(struct run *rn)
{
	struct sandcell_result *r = rn->r;
	struct sandcell_error e = { 0, "" };

	if (rn->have_cg) {
		uint64_t v;
		if (sc_cgroup_cpu_usec(&rn->cg, &v) == 0)
			r->cpu_sec = (double)v / 1e6;
		if (sc_cgroup_peak_memory(&rn->cg, &v) == 0)
			r->peak_memory = v;
	}
	if (rn->scratch_fd >= 0 && rn->out_dirfd >= 0 && r->code_started && !rn->ss) {
		int odir = openat(rn->scratch_fd, "output", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (odir >= 0) {
			if (sc_collect_tree(odir, rn->out_dirfd, &rn->cfg->limits, &r->outputs, &e) == 0)
				r->outputs_collected = true;
			else
				set_error(r, e.msg);
			close(odir);
		}
	}
}

/* The report's last touches, before the caller sees it. */
static void settle(struct run *rn)
{
	struct sandcell_result *r = rn->r;

	if (r->error[0] && r->status != SANDCELL_SANDBOX_ERROR)
		classify(rn);
	settle_channel(rn);
	if (rn->ss)
		sc_sess_settle(rn->ss);
	if (!r->code_started) {
		/* No code ran, so no layer confined any: the report must not
		 * list the ones a failed setup had planned or half applied. */
		uid_t uid = r->iso.host_uid;
		memset(&r->iso, 0, sizeof(r->iso));
		r->iso.mode = "none";
		r->iso.cgroup_version = "none";
		r->iso.swap = "none";
		r->iso.host_uid = uid;
	}
}

/* Everything the run holds on the host, released. */
static void release(struct run *rn, struct sc_prep *pp)
{
	int i;

	if (rn->have_cg)
		destroy_cgroup(rn);
	sc_workdir_remove(rn->workdir);
	sc_seccomp_free(&rn->bpf);
	close_fd(&rn->pidfd);
	close_fd(&rn->sock);
	close_fd(&rn->code_pidfd);
	close_fd(&rn->held_mnt[0]);
	close_fd(&rn->held_mnt[1]);
	close_fd(&rn->scratch_fd);
	close_fd(&rn->out_dirfd);
	for (i = 0; i < 2; i++) {
		close_fd(&rn->in_pipe[i]);
		close_fd(&rn->out_pipe[i]);
		close_fd(&rn->err_pipe[i]);
		close_fd(&rn->res_pipe[i]);
	}
	sc_userns_release_ids(&pp->ids);
}

static void free_prep(struct sc_prep *pp)
{
	free(pp->input_fds);
	free(pp->input_ro);
	free(pp);
}

int sandcell_run(const struct sandcell_config *cfg, struct sandcell_result **out,
		 struct sandcell_error *err)
{
	struct sandcell_result *r;
	struct sc_prep *pp;
	struct run rn;
	sigset_t pipe_set, old_set;
	size_t i;

	struct sandcell_config session_cfg;

	*out = NULL;
	sc_hooks_load();
	if (cfg->flags & SANDCELL_SESSION) {
		/* A session's defaults, on a copy: the caller's stays as given. */
		session_cfg = *cfg;
		session_cfg.flags |= SANDCELL_CELL;
		if (session_cfg.code == NULL) {
			session_cfg.code = "";
			session_cfg.code_len = 0;
		}
		sc_session_defaults(&session_cfg.limits);
		cfg = &session_cfg;
	}
	if (validate(cfg, err) < 0)
		return -1;
	if (cfg->n_args > 256)
		return sc_err(err, E2BIG, "too many arguments (max 256)");
	pp = calloc(1, sizeof(*pp));
	r = calloc(1, sizeof(*r));
	if (pp == NULL || r == NULL || (pp->input_fds = calloc(cfg->n_inputs + 1, sizeof(int))) == NULL ||
	    (pp->input_ro = calloc(cfg->n_inputs + 1, sizeof(*pp->input_ro))) == NULL) {
		if (pp)
			free(pp->input_fds);
		free(pp);
		free(r);
		return sc_err(err, ENOMEM, "sandcell_run");
	}
	/* The run state first: every exit path below closes its fds, and
	 * an uninitialised one could be any descriptor of the caller's (in a
	 * warm worker, the client's connection). */
	memset(&rn, 0, sizeof(rn));
	rn.cfg = cfg;
	rn.r = r;
	rn.pidfd = rn.sock = rn.scratch_fd = rn.out_dirfd = -1;
	rn.code_pidfd = rn.code_sock = rn.held_mnt[0] = rn.held_mnt[1] = -1;
	rn.in_pipe[0] = rn.in_pipe[1] = rn.out_pipe[0] = rn.out_pipe[1] = -1;
	rn.err_pipe[0] = rn.err_pipe[1] = rn.res_pipe[0] = rn.res_pipe[1] = -1;
	pp->ids.lock_fd = -1;
	if (runtime_dirs(cfg->python, pp->dirs, &pp->n_runtime, err) < 0)
		goto usage_fail;
	if ((cfg->flags & SANDCELL_SESSION) && (rn.ss = sc_sess_new(&rn)) == NULL) {
		sc_err(err, ENOMEM, "session");
		goto usage_fail;
	}
	for (i = 0; i < pp->n_runtime; i++)
		pp->runtime[i] = pp->dirs[i];
	r->limits = cfg->limits;
	r->script_exit = -1;
	r->cell_mode = (cfg->flags & SANDCELL_CELL) != 0;
	r->iso.mode = "none";
	r->iso.cgroup_version = "none";
	r->iso.swap = "none";
	if (open_output_dir(&rn, cfg->output_dir, err) < 0)
		goto usage_fail;

	if (prepare_layers(&rn, pp) == 0) {
		/* A code that closes its stdin must not kill the supervisor. */
		sigemptyset(&pipe_set);
		sigaddset(&pipe_set, SIGPIPE);
		pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
		run_attempts(&rn, pp);
		collect(&rn);
		classify(&rn);
		{
			struct timespec zero = { 0, 0 };
			while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
				;
			pthread_sigmask(SIG_SETMASK, &old_set, NULL);
		}
	}
	settle(&rn);
	/* Every process of the run is reaped (sc_spawn() waited for the
	 * init) and the outputs are collected: the report is final but for
	 * left_behind, and the caller gets it before the cleanup below.  The
	 * host uid is free as the sandbox is gone (G11: held while it lives),
	 * before the caller hears of the end; the init's copy of the lock
	 * went with the init. */
	sc_userns_release_ids(&pp->ids);
	if (report_hook && !rn.ss && !rn.reduced && !rn.spare_quiet)
		report_hook(r);
	release(&rn, pp);
	free_prep(pp);
	if (rn.ss) {
		sc_sess_end(rn.ss);
		sc_sess_free(rn.ss);
	}
	*out = r;
	return 0;
usage_fail:
	sc_sess_free(rn.ss);
	close_fd(&rn.out_dirfd);
	free_prep(pp);
	free(r);
	return -1;
}
