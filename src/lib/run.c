/*
 * The supervisor: validates the configuration, prepares every layer that
 * can be prepared outside (seccomp BPF, cgroup, pipes), clones the sandbox,
 * writes its id maps, pumps its streams with caps, enforces wall and CPU
 * time, and after the whole process tree is dead collects /output from the
 * pinned scratch tmpfs.  Status and verdicts come only from host-side
 * evidence (timers, cgroup counters, wait status), never from the code.
 */
#include "internal.h"
#include "contain.h"
#include "proto.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define SC_MAX_RUNTIME 16
#define SC_CHILD_FD_MIN 10
#define SC_SETUP_TIMEOUT_MS 10000
#define SC_CPU_POLL_MS 50

void sandcell_config_init(struct sandcell_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->python = "/usr/bin/python3";
	cfg->stdin_fd = -1;
	cfg->stdout_fd = 1;
	cfg->stderr_fd = 2;
	cfg->limits.wall_sec = 30;
	cfg->limits.cpu_sec = 30;
	cfg->limits.memory = 1ull << 30;
	cfg->limits.pids = 128;
	cfg->limits.disk = 512ull << 20;
	cfg->limits.disk_inodes = 16384;
	cfg->limits.files = 256;
	cfg->limits.stream = 8ull << 20;
	cfg->limits.output_files = 1000;
	cfg->limits.output_bytes = 512ull << 20;
	cfg->limits.output_depth = 32;
	cfg->limits.result_bytes = 1ull << 20;
}

static double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int validate(const struct sandcell_config *cfg, struct sandcell_error *err)
{
	const struct sandcell_limits *l = &cfg->limits;
	size_t i, j;

	if (cfg->code == NULL)
		return sc_err(err, EINVAL, "no code to run");
	if (cfg->python == NULL || cfg->python[0] != '/')
		return sc_err(err, EINVAL, "--python must be an absolute path");
	if (access(cfg->python, X_OK) < 0)
		return sc_err(err, errno, "interpreter %s", cfg->python);
	if (!(l->wall_sec > 0) || !(l->cpu_sec > 0) || l->memory < (16u << 20) || l->pids < 4 ||
	    l->disk < (1u << 20) || l->files < 16 || l->disk_inodes < 64)
		return sc_err(err, EINVAL, "limits too small to start python "
			      "(memory >= 16M, pids >= 4, disk >= 1M, files >= 16)");
	for (i = 0; i < cfg->n_inputs; i++) {
		if (sandcell_check_name(cfg->inputs[i].name, err) < 0)
			return -1;
		for (j = 0; j < i; j++)
			if (strcmp(cfg->inputs[i].name, cfg->inputs[j].name) == 0)
				return sc_err(err, EINVAL, "input '%s' given twice",
					      cfg->inputs[i].name);
		if (access(cfg->inputs[i].path, R_OK) < 0)
			return sc_err(err, errno, "input '%s' (%s)", cfg->inputs[i].name,
				      cfg->inputs[i].path);
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

struct stream {
	int fd;		/* our read end, -1 when EOF */
	int out;	/* host fd to forward to, -1 = drop */
	uint64_t total, kept, limit;
	bool truncated;
	const char *name;
	char *buf;	/* the result channel keeps its bytes */
};

static void write_all(int fd, const char *p, size_t n)
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

static void pump(struct stream *s)
{
	char buf[65536];
	ssize_t n = read(s->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(s->fd);
		s->fd = -1;
		return;
	}
	s->total += (uint64_t)n;
	if (s->kept < s->limit) {
		size_t take = (size_t)n;
		if (take > s->limit - s->kept)
			take = (size_t)(s->limit - s->kept);
		if (s->buf)
			memcpy(s->buf + s->kept, buf, take);
		else if (s->out >= 0)
			write_all(s->out, buf, take);
		s->kept += take;
		if (take < (size_t)n)
			s->truncated = true;
	} else {
		s->truncated = true;
	}
	if (s->truncated && s->buf == NULL && s->out >= 0 && s->kept == s->limit) {
		char marker[128];
		int m = snprintf(marker, sizeof(marker),
				 "\n[sandcell: %s truncated after %llu bytes]\n", s->name,
				 (unsigned long long)s->limit);
		write_all(s->out, marker, (size_t)m);
		s->kept = s->limit + 1; /* marker written once */
	}
}

static int recv_msg(int sock, struct sc_msg *m, int *fd_out)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t n;

	memset(m, 0, sizeof(*m));
	n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	if (fd_out)
		*fd_out = -1;
	if (n <= 0)
		return -1;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			size_t k, cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (k = 0; k < cnt; k++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
				if (fd_out && *fd_out < 0 && m->type == SC_MSG_SCRATCH)
					*fd_out = fd;
				else
					close(fd);
			}
		}
	}
	if (n != (ssize_t)sizeof(*m))
		return -1;
	m->text[sizeof(m->text) - 1] = '\0';
	return 0;
}

static int wait_msg(int sock, struct sc_msg *m, int *fd_out, int timeout_ms)
{
	struct pollfd p = { sock, POLLIN, 0 };
	int r = poll(&p, 1, timeout_ms);

	if (r <= 0)
		return -1;
	return recv_msg(sock, m, fd_out);
}

static int move_high(int *fd)
{
	int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, SC_CHILD_FD_MIN);
	if (nfd < 0)
		return -1;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int pipe_high(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	return move_high(&p[0]) < 0 || move_high(&p[1]) < 0 ? -1 : 0;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

struct run {
	const struct sandcell_config *cfg;
	struct sandcell_result *r;
	struct sc_cgroup cg;
	bool have_cg;
	struct sc_bpf bpf;
	int pidfd, sock, scratch_fd, out_dirfd;
	int in_pipe[2], out_pipe[2], err_pipe[2], res_pipe[2];
	pid_t pid;
	bool killed_wall, killed_cpu, init_exited, got_exit;
	int wait_status;
	double t0;
};

static void kill_tree(struct run *rn)
{
	if (rn->have_cg)
		sc_cgroup_kill(&rn->cg);
	/* Killing the namespace's init kills every process in it. */
	if (rn->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, rn->pidfd, SIGKILL, NULL, 0);
}

static void set_error(struct sandcell_result *r, const char *msg)
{
	if (r->error[0] == '\0')
		snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, msg);
}

/* The supervision loop: streams, messages, limits, until the tree is dead
 * and every stream reached EOF. */
static void supervise(struct run *rn)
{
	const struct sandcell_limits *l = &rn->cfg->limits;
	struct sandcell_result *r = rn->r;
	struct stream st[3] = {
		{ rn->out_pipe[0], rn->cfg->stdout_fd, 0, 0, l->stream, false, "stdout", NULL },
		{ rn->err_pipe[0], rn->cfg->stderr_fd, 0, 0, l->stream, false, "stderr", NULL },
		{ rn->res_pipe[0], -1, 0, 0, l->result_bytes, false, "result", NULL },
	};
	int in_src = rn->cfg->stdin_fd;
	char in_buf[65536];
	size_t in_len = 0, in_off = 0;
	bool in_eof = in_src < 0;
	double deadline = rn->t0 + l->wall_sec, drain_deadline = 0;

	st[2].buf = malloc(l->result_bytes ? l->result_bytes : 1);
	rn->out_pipe[0] = rn->err_pipe[0] = rn->res_pipe[0] = -1;
	if (in_eof)
		close_fd(&rn->in_pipe[1]);
	else
		fcntl(rn->in_pipe[1], F_SETFL, O_NONBLOCK);

	for (;;) {
		struct pollfd p[7];
		int np = 0, idx_sock = -1, idx_pid = -1, idx_in = -1, idx_inw = -1, idx_st[3];
		double now = now_sec();
		int timeout, i;

		if (!rn->init_exited && now >= deadline && !rn->killed_wall) {
			rn->killed_wall = true;
			kill_tree(rn);
		}
		if (!rn->init_exited && rn->have_cg && !rn->killed_cpu) {
			uint64_t us;
			if (sc_cgroup_cpu_usec(&rn->cg, &us) == 0 && (double)us / 1e6 >= l->cpu_sec) {
				rn->killed_cpu = true;
				kill_tree(rn);
			}
		}
		if (rn->init_exited && st[0].fd < 0 && st[1].fd < 0 && st[2].fd < 0)
			break;
		if (rn->init_exited && drain_deadline == 0)
			drain_deadline = now + 5;
		if (drain_deadline != 0 && now > drain_deadline)
			break; /* cannot happen with a dead namespace; never hang */

		for (i = 0; i < 3; i++) {
			idx_st[i] = -1;
			if (st[i].fd >= 0) {
				idx_st[i] = np;
				p[np++] = (struct pollfd){ st[i].fd, POLLIN, 0 };
			}
		}
		if (rn->sock >= 0) {
			idx_sock = np;
			p[np++] = (struct pollfd){ rn->sock, POLLIN, 0 };
		}
		if (!rn->init_exited) {
			idx_pid = np;
			p[np++] = (struct pollfd){ rn->pidfd, POLLIN, 0 };
		}
		if (!in_eof && in_off == in_len) {
			idx_in = np;
			p[np++] = (struct pollfd){ in_src, POLLIN, 0 };
		}
		if (rn->in_pipe[1] >= 0 && in_off < in_len) {
			idx_inw = np;
			p[np++] = (struct pollfd){ rn->in_pipe[1], POLLOUT, 0 };
		}
		timeout = rn->init_exited ? 1000 : (int)ceil((deadline - now) * 1000);
		if (rn->have_cg && timeout > SC_CPU_POLL_MS)
			timeout = SC_CPU_POLL_MS;
		if (timeout < 0)
			timeout = 0;
		if (poll(p, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			set_error(r, "poll failed");
			kill_tree(rn);
			break;
		}
		for (i = 0; i < 3; i++)
			if (idx_st[i] >= 0 && p[idx_st[i]].revents)
				pump(&st[i]);
		if (idx_sock >= 0 && p[idx_sock].revents) {
			struct sc_msg m;
			int fd = -1;
			if (recv_msg(rn->sock, &m, &fd) < 0) {
				close_fd(&rn->sock);
			} else if (m.type == SC_MSG_SCRATCH && fd >= 0 && rn->scratch_fd < 0) {
				rn->scratch_fd = fd;
			} else if (m.type == SC_MSG_STARTED) {
				r->code_started = true;
			} else if (m.type == SC_MSG_EXIT) {
				rn->got_exit = true;
				rn->wait_status = m.value;
			} else if (m.type == SC_MSG_ERROR) {
				char msg[600];
				snprintf(msg, sizeof(msg), "sandbox setup failed: %s", m.text);
				set_error(r, msg);
			}
			if (fd >= 0 && fd != rn->scratch_fd)
				close(fd);
		}
		if (idx_pid >= 0 && p[idx_pid].revents) {
			siginfo_t si;
			struct rusage ru;
			memset(&si, 0, sizeof(si));
			if (syscall(SYS_waitid, P_PIDFD, rn->pidfd, &si, WEXITED, &ru) == 0) {
				rn->init_exited = true;
				r->wall_sec = now_sec() - rn->t0;
				r->cpu_sec = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
					     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
				r->peak_memory = (uint64_t)ru.ru_maxrss * 1024;
				/* Second layer: whatever escaped the namespace
				 * teardown is still in the cgroup. */
				if (rn->have_cg)
					sc_cgroup_kill(&rn->cg);
				close_fd(&rn->in_pipe[1]);
			}
		}
		if (idx_in >= 0 && p[idx_in].revents) {
			ssize_t n = read(in_src, in_buf, sizeof(in_buf));
			if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
				in_eof = true;
				close_fd(&rn->in_pipe[1]);
			} else if (n > 0) {
				in_len = (size_t)n;
				in_off = 0;
			}
		}
		if (idx_inw >= 0 && p[idx_inw].revents) {
			ssize_t n = write(rn->in_pipe[1], in_buf + in_off, in_len - in_off);
			if (n > 0)
				in_off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				/* The code closed its stdin: stop feeding it. */
				in_eof = true;
				close_fd(&rn->in_pipe[1]);
			}
			if (in_off == in_len)
				in_off = in_len = 0;
		}
	}
	for (int i = 0; i < 3; i++)
		close_fd(&st[i].fd);
	/* Late messages (EXIT races the pidfd) are still in the socket. */
	while (rn->sock >= 0) {
		struct sc_msg m;
		int fd = -1;
		struct pollfd pf = { rn->sock, POLLIN, 0 };
		if (poll(&pf, 1, 0) <= 0 || recv_msg(rn->sock, &m, &fd) < 0)
			break;
		if (m.type == SC_MSG_EXIT) {
			rn->got_exit = true;
			rn->wait_status = m.value;
		} else if (m.type == SC_MSG_STARTED) {
			r->code_started = true;
		} else if (m.type == SC_MSG_ERROR) {
			char msg[600];
			snprintf(msg, sizeof(msg), "sandbox setup failed: %s", m.text);
			set_error(r, msg);
		} else if (m.type == SC_MSG_SCRATCH && fd >= 0 && rn->scratch_fd < 0) {
			rn->scratch_fd = fd;
			fd = -1;
		}
		if (fd >= 0)
			close(fd);
	}
	r->stdout_bytes = st[0].total;
	r->stderr_bytes = st[1].total;
	r->stdout_truncated = st[0].truncated;
	r->stderr_truncated = st[1].truncated;
	r->result_truncated = st[2].truncated;
	if (st[2].buf && (st[2].kept > 0 || st[2].truncated)) {
		struct sandcell_error e = { 0, "" };
		if (sc_result_channel_parse(st[2].buf, (size_t)st[2].kept, st[2].truncated, &r->result,
					    &e) < 0) {
			snprintf(r->result_error, sizeof(r->result_error), "%s", e.msg);
			r->result = NULL;
		}
	}
	free(st[2].buf);
}

static bool scratch_full(int fd)
{
	struct statfs s;

	if (fd < 0 || fstatfs(fd, &s) < 0)
		return false;
	return s.f_bavail < 2 || s.f_ffree < 2;
}

static void classify(struct run *rn)
{
	struct sandcell_result *r = rn->r;
	const struct sandcell_limits *l = &rn->cfg->limits;
	int st = rn->wait_status;
	bool oom = rn->have_cg && sc_cgroup_oom(&rn->cg);
	int sig = 0;

	r->script_exit = -1;
	if (rn->got_exit) {
		if (WIFEXITED(st))
			r->script_exit = WEXITSTATUS(st);
		else if (WIFSIGNALED(st))
			sig = r->script_signal = WTERMSIG(st);
	}
	if (r->error[0] || !r->code_started) {
		r->status = SANDCELL_SANDBOX_ERROR;
		if (!r->error[0])
			set_error(r, "the sandbox ended before the code started");
		snprintf(r->stop_reason, sizeof(r->stop_reason), "%.*s", (int)sizeof(r->stop_reason) - 1, r->error);
	} else if (rn->killed_wall) {
		r->status = SANDCELL_TIMEOUT;
		snprintf(r->stop_reason, sizeof(r->stop_reason),
			 "wall-clock limit of %g s reached; the process tree was killed", l->wall_sec);
	} else if (rn->killed_cpu || sig == SIGXCPU ||
		   (sig == SIGKILL && r->cpu_sec >= l->cpu_sec)) {
		r->status = SANDCELL_CPU_TIME;
		snprintf(r->stop_reason, sizeof(r->stop_reason),
			 "CPU-time limit of %g s reached; the process tree was killed", l->cpu_sec);
	} else if (oom) {
		r->status = SANDCELL_MEMORY;
		snprintf(r->stop_reason, sizeof(r->stop_reason),
			 "memory limit of %llu bytes reached (OOM kill in the run's cgroup)",
			 (unsigned long long)l->memory);
	} else if (sig == SIGXFSZ || ((r->script_exit != 0) && scratch_full(rn->scratch_fd))) {
		r->status = SANDCELL_DISK;
		snprintf(r->stop_reason, sizeof(r->stop_reason),
			 "disk limit of %llu bytes (or %llu files) for /tmp and /output reached",
			 (unsigned long long)l->disk, (unsigned long long)l->disk_inodes);
	} else if (sig) {
		r->status = SANDCELL_SIGNALED;
		snprintf(r->stop_reason, sizeof(r->stop_reason), "the code was killed by signal %d (%s)",
			 sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
	} else if (r->script_exit != 0) {
		r->status = SANDCELL_EXITED;
		snprintf(r->stop_reason, sizeof(r->stop_reason), "the code exited with status %d",
			 r->script_exit);
	} else if (r->outputs.limit_hit || r->result_truncated) {
		r->status = SANDCELL_OUTPUT_LIMIT;
		snprintf(r->stop_reason, sizeof(r->stop_reason), "%s",
			 r->result_truncated ? "the result exceeded its size limit"
					     : "/output exceeded the collection limits; some entries were skipped");
	} else {
		r->status = SANDCELL_OK;
	}
	switch (r->status) {
	case SANDCELL_SANDBOX_ERROR: r->exit_code = SANDCELL_EXIT_SANDBOX; break;
	case SANDCELL_TIMEOUT: r->exit_code = SANDCELL_EXIT_TIMEOUT; break;
	case SANDCELL_CPU_TIME: r->exit_code = SANDCELL_EXIT_CPU; break;
	case SANDCELL_MEMORY: r->exit_code = SANDCELL_EXIT_MEMORY; break;
	case SANDCELL_DISK: r->exit_code = SANDCELL_EXIT_DISK; break;
	case SANDCELL_SIGNALED: r->exit_code = 128 + sig; break;
	default: r->exit_code = r->script_exit < 0 ? 0 : r->script_exit; break;
	}
}

static void fill_isolation(struct run *rn, const struct sc_landlock_info *ll, uid_t host_uid)
{
	struct sc_isolation *iso = &rn->r->iso;

	iso->mode = "full";
	iso->userns = iso->pidns = iso->mntns = iso->netns = iso->ipcns = iso->utsns = true;
	iso->cgroupns = rn->have_cg;
	iso->seccomp = iso->nnp = iso->caps_dropped = true;
	iso->landlock = *ll;
	iso->cgroup_version = rn->have_cg ? rn->cg.version : "none";
	iso->cg_mem = rn->have_cg && (rn->cg.mem_v2 || rn->cg.v1_mem[0]);
	iso->cg_pids = rn->have_cg && (rn->cg.pids_v2 || rn->cg.v1_pids[0]);
	iso->cg_cpu = rn->have_cg && (rn->cg.cpu_v2 || rn->cg.v1_cpu[0]);
	iso->host_uid = host_uid;
	if (!rn->have_cg) {
		iso->not_held[iso->n_not_held++] = "memory limit (no cgroup)";
		iso->not_held[iso->n_not_held++] = "pids limit (no cgroup)";
		iso->not_held[iso->n_not_held++] = "run-wide CPU limit (per-process RLIMIT_CPU only)";
	}
}

int sandcell_run(const struct sandcell_config *cfg, struct sandcell_result **out,
		 struct sandcell_error *err)
{
	char dirs[SC_MAX_RUNTIME][PATH_MAX];
	const char *runtime[SC_MAX_RUNTIME];
	int runtime_fds[SC_MAX_RUNTIME];
	int *input_fds = NULL;
	size_t n_runtime = 0, i;
	struct sc_landlock_info ll;
	struct sc_mount_plan plan;
	struct sc_child child;
	struct sandcell_error e = { 0, "" };
	struct sandcell_result *r;
	struct run rn;
	const char *argv[8 + 256];
	char code_path[PATH_MAX];
	size_t argc = 0;
	uid_t host_uid;
	gid_t host_gid;
	sigset_t pipe_set, old_set;
	long pid;

	*out = NULL;
	memset(&child, 0, sizeof(child));
	child.sock = -1;
	if (validate(cfg, err) < 0)
		return -1;
	if (cfg->n_args > 256)
		return sc_err(err, E2BIG, "too many arguments (max 256)");
	if (runtime_dirs(cfg->python, dirs, &n_runtime, err) < 0)
		return -1;
	for (i = 0; i < n_runtime; i++)
		runtime[i] = dirs[i];

	r = calloc(1, sizeof(*r));
	input_fds = calloc(cfg->n_inputs + 1, sizeof(int));
	if (r == NULL || input_fds == NULL) {
		free(r);
		free(input_fds);
		return sc_err(err, ENOMEM, "sandcell_run");
	}
	memset(&rn, 0, sizeof(rn));
	rn.cfg = cfg;
	rn.r = r;
	rn.pidfd = rn.sock = rn.scratch_fd = rn.out_dirfd = -1;
	rn.in_pipe[0] = rn.in_pipe[1] = rn.out_pipe[0] = rn.out_pipe[1] = -1;
	rn.err_pipe[0] = rn.err_pipe[1] = rn.res_pipe[0] = rn.res_pipe[1] = -1;
	r->limits = cfg->limits;
	r->script_exit = -1;
	r->iso.mode = "none";
	r->iso.cgroup_version = "none";

	/* The host output directory is opened first: a bad --output is the
	 * caller's error and nothing runs. */
	if (cfg->output_dir) {
		if (mkdir(cfg->output_dir, 0755) < 0 && errno != EEXIST) {
			sc_err(err, errno, "output directory %s", cfg->output_dir);
			goto usage_fail;
		}
		rn.out_dirfd = open(cfg->output_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (rn.out_dirfd < 0) {
			sc_err(err, errno, "output directory %s", cfg->output_dir);
			goto usage_fail;
		}
	}

	/* Fail closed: each layer that cannot be prepared stops the run
	 * before anything is cloned. */
	if (sc_landlock_probe(&ll) < 0) {
		set_error(r, "Landlock is not available on this kernel (needed by every mode)");
		goto finish;
	}
	if (sc_seccomp_compile(&rn.bpf, &e) < 0) {
		set_error(r, e.msg);
		goto finish;
	}
	if (sc_cgroup_create(&rn.cg, cfg->cgroup_parent, &cfg->limits, &e) < 0) {
		if (!(cfg->flags & SANDCELL_ALLOW_REDUCED)) {
			char msg[600];
			snprintf(msg, sizeof(msg), "%s; pass --allow-reduced to run without cgroup limits", e.msg);
			set_error(r, msg);
			goto finish;
		}
	} else {
		rn.have_cg = true;
	}
	sc_userns_pick_ids(&host_uid, &host_gid);
	fill_isolation(&rn, &ll, host_uid);

	if (pipe_high(rn.in_pipe) < 0 || pipe_high(rn.out_pipe) < 0 || pipe_high(rn.err_pipe) < 0 ||
	    pipe_high(rn.res_pipe) < 0) {
		set_error(r, "cannot create pipes");
		goto finish;
	}
	{
		int sp[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
		    move_high(&sp[0]) < 0 || move_high(&sp[1]) < 0) {
			set_error(r, "cannot create the control socket");
			goto finish;
		}
		rn.sock = sp[0];
		child.sock = sp[1];
	}

	if (cfg->code_name) {
		struct sandcell_error ne;
		const char *base = strrchr(cfg->code_name, '/');
		base = base ? base + 1 : cfg->code_name;
		if (sandcell_check_name(base, &ne) < 0)
			base = "main.py";
		snprintf(code_path, sizeof(code_path), "/code/%s", base);
	} else {
		snprintf(code_path, sizeof(code_path), "/code/__main__.py");
	}
	memset(&plan, 0, sizeof(plan));
	plan.python = cfg->python;
	plan.runtime = runtime;
	plan.n_runtime = n_runtime;
	plan.runtime_fds = runtime_fds;
	plan.inputs = cfg->inputs;
	plan.n_inputs = cfg->n_inputs;
	plan.input_fds = input_fds;
	plan.code = cfg->code;
	plan.code_len = cfg->code_len;
	plan.code_name = cfg->code_name ? code_path + 6 : NULL;
	plan.values_json = cfg->values_json;
	plan.module_src = sc_py_module;
	plan.boot_src = sc_py_boot;
	plan.disk = cfg->limits.disk;
	plan.disk_inodes = cfg->limits.disk_inodes;

	argv[argc++] = cfg->python;
	argv[argc++] = "-I";
	argv[argc++] = "-B";
	argv[argc++] = "/.sandcell/_sandcell_boot.py";
	argv[argc++] = cfg->code_name ? "file" : "code";
	argv[argc++] = code_path;
	for (i = 0; i < cfg->n_args; i++)
		argv[argc++] = cfg->args[i];
	argv[argc] = NULL;

	child.plan = &plan;
	child.limits = &cfg->limits;
	child.bpf = &rn.bpf;
	child.landlock = &ll;
	child.argv = argv;
	child.stdin_r = rn.in_pipe[0];
	child.stdout_w = rn.out_pipe[1];
	child.stderr_w = rn.err_pipe[1];
	child.result_w = rn.res_pipe[1];
	child.drop_groups = geteuid() == 0;
	child.cgroupns = rn.have_cg;

	/* A code that closes its stdin must not kill the supervisor. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);

	rn.t0 = now_sec();
	pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET |
						 CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD | SIGCHLD),
		      NULL, &rn.pidfd, NULL, NULL);
	if (pid == 0)
		sc_child_main(&child);
	if (pid < 0) {
		char msg[300];
		snprintf(msg, sizeof(msg), "cannot create namespaces: %s%s", strerror(errno),
			 errno == EPERM || errno == ENOSPC
				 ? " (user namespaces are disabled for this user)" : "");
		set_error(r, msg);
		goto restore;
	}
	rn.pid = (pid_t)pid;
	close_fd(&child.sock);
	close_fd(&rn.in_pipe[0]);
	close_fd(&rn.out_pipe[1]);
	close_fd(&rn.err_pipe[1]);
	close_fd(&rn.res_pipe[1]);

	{
		struct sc_msg m;
		memset(&m, 0, sizeof(m));
		if (wait_msg(rn.sock, &m, NULL, SC_SETUP_TIMEOUT_MS) < 0 || m.type != SC_MSG_READY) {
			if (m.type == SC_MSG_ERROR && m.text[0]) {
				char msg[600];
				snprintf(msg, sizeof(msg), "sandbox setup failed: %s", m.text);
				set_error(r, msg);
			} else {
				set_error(r, "sandbox setup failed: no handshake from the child");
			}
			kill_tree(&rn);
		} else if (sc_userns_write_maps(rn.pid, host_uid, host_gid, geteuid() != 0, &e) < 0 ||
			   (rn.have_cg && sc_cgroup_attach(&rn.cg, rn.pid, &e) < 0)) {
			set_error(r, e.msg);
			kill_tree(&rn);
		} else {
			memset(&m, 0, sizeof(m));
			m.type = SC_MSG_GO;
			if (send(rn.sock, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
				set_error(r, "sandbox setup failed: lost the child");
				kill_tree(&rn);
			}
		}
	}
	supervise(&rn);
	if (!rn.init_exited) {
		kill_tree(&rn);
		syscall(SYS_waitid, P_PIDFD, rn.pidfd, NULL, WEXITED, NULL);
	}
	if (rn.have_cg) {
		uint64_t v;
		if (sc_cgroup_cpu_usec(&rn.cg, &v) == 0)
			r->cpu_sec = (double)v / 1e6;
		if (sc_cgroup_peak_memory(&rn.cg, &v) == 0)
			r->peak_memory = v;
	}
	/* Outputs are read only now: every process of the run is dead and
	 * the scratch tmpfs is reachable only through our fd. */
	if (rn.scratch_fd >= 0 && rn.out_dirfd >= 0 && r->code_started) {
		int odir = openat(rn.scratch_fd, "output", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (odir >= 0) {
			if (sc_collect_tree(odir, rn.out_dirfd, &cfg->limits, &r->outputs, &e) == 0)
				r->outputs_collected = true;
			else
				set_error(r, e.msg);
			close(odir);
		}
	}
	classify(&rn);
restore:
	{
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
		pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	}
finish:
	if (r->status == SANDCELL_OK && r->error[0])
		classify(&rn);
	if (rn.have_cg)
		sc_cgroup_destroy(&rn.cg);
	sc_seccomp_free(&rn.bpf);
	close_fd(&rn.pidfd);
	close_fd(&rn.sock);
	close_fd(&child.sock);
	close_fd(&rn.scratch_fd);
	close_fd(&rn.out_dirfd);
	for (i = 0; i < 2; i++) {
		close_fd(&rn.in_pipe[i]);
		close_fd(&rn.out_pipe[i]);
		close_fd(&rn.err_pipe[i]);
		close_fd(&rn.res_pipe[i]);
	}
	free(input_fds);
	*out = r;
	return 0;
usage_fail:
	close_fd(&rn.out_dirfd);
	free(input_fds);
	free(r);
	return -1;
}
