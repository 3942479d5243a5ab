/*
 * The supervisor: validates the configuration, prepares every layer that
 * can be prepared outside (seccomp BPF, cgroup, pipes), clones the sandbox,
 * writes its id maps, pumps its streams with caps, enforces wall and CPU
 * time, and after the whole process tree is dead collects /output from the
 * pinned scratch tmpfs.  Status and verdicts come only from host-side
 * evidence (timers, cgroup counters, wait status), never from the code.
 */
#include "run.h"
#include "verdict.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
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

static void sess_raw(struct sess *ss, int which, const char *buf, size_t n, bool final);

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
		if (s->ss)
			sess_raw(s->ss, s->which, "", 0, true);
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
			sess_raw(s->ss, s->which, buf, take, false);
		else if (s->out >= 0)
			write_all(s->out, buf, take);
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
			sess_raw(s->ss, s->which, "", 0, true);
			sess_raw(s->ss, s->which, marker, (size_t)m, true);
		} else {
			write_all(s->out, marker, (size_t)m);
		}
		s->kept = s->limit + 1; /* marker written once */
	}
}

int sc_init_recv(int sock, struct sc_msg *m, int *fd_out)
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
	/* An init that exited with a message of ours unread makes the socket
	 * report ECONNRESET once, ahead of what it had sent (its error). */
	if (n < 0 && errno == ECONNRESET)
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
		struct pollfd p = { rn->pidfd, POLLIN, 0 };
		syscall(SYS_pidfd_send_signal, rn->pidfd, SIGTERM, NULL, 0);
		if (poll(&p, 1, 2000) <= 0)
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
	syscall(SYS_pidfd_send_signal, rn->pidfd, SC_WHERE_SIGNAL, NULL, 0);
}

/* ------------------------------------------------------------ session
 *
 * A session (docs/sessions.md) is one run whose interpreter (the session
 * loop, _sandcell_session.py) runs cells the caller sends one by one.
 * The caller's commands arrive as NDJSON on cfg->stdin_fd and are parsed
 * here (session.c); what the loop is told goes on the code's stdin, one
 * JSON line per command, written by us.  What comes back on the channel
 * (outputs, D and I records) is parsed as each record ends and turned into
 * events on cfg->stdout_fd: every event is built by us from parsed values,
 * never the sandbox's bytes passed on.  The verdicts (a cell killed, the
 * session's status) come from host evidence, as for a run. */

#define SESS_GRACE 5.0		/* after an interrupt at a cell limit, after close */
#define SESS_PROBLEMS_MAX 32
static sc_session_hook session_hook;

static sc_report_hook report_hook;

void sc_set_report_hook(sc_report_hook hook)
{
	report_hook = hook;
}

void sc_set_session_hook(sc_session_hook hook)
{
	session_hook = hook;
}

#define SESS_ADDS_MAX 1024	/* files added to a session (docs/sessions.md) */

struct sess {
	struct run *rn;
	struct sc_chan *chan;
	struct sc_chan_sink sink;
	int ev_fd;
	/* Commands from the caller. */
	char *line;
	size_t line_len, line_cap;
	bool line_skip;		/* the line in progress passed 64 MiB: refused at its end */
	bool closing;		/* close or EOF: no more commands */
	/* Lines for the loop, written as its stdin pipe takes them. */
	char *tl;
	size_t tl_len, tl_off;
	bool loop_closed;	/* its stdin was closed after close */
	double closed_at;
	/* The cell in progress. */
	bool running;
	char id[SC_SESSION_ID_MAX + 1];
	uint64_t seq;
	/* The running cell's execution count, kept here: a record from the
	 * code cannot change the count its caller sees. */
	uint64_t exec_count, n_counted;
	double t0;
	uint64_t cpu0;
	bool have_cpu0;
	bool input_pending;
	enum sc_sess_stop limit;	/* a cell limit sent the interrupt */
	double kill_at;		/* then the kill, unless its D comes first */
	double last_activity;
	bool ready_sent;
	enum sc_sess_stop stop;	/* what the supervisor ended the session for */
	json_t *used_ids;	/* an object used as a set */
	uint64_t n_ok, n_error, n_interrupted, n_killed, stray_outputs;
	json_t *problems;
	uint64_t more_problems;
	/* An incomplete UTF-8 sequence at the end of the last raw read. */
	char carry[2][4];
	size_t carry_len[2];
	uint64_t out_files, out_bytes; /* collected so far (the session's budget) */
	bool collected;
	/* Files added (op add) and the running cell's pending dataset request. */
	uint64_t n_added, n_requests;
	bool request_pending;
	char request_name[SC_SESSION_NAME_MAX + 1];
};

static void sess_emit(struct sess *ss, json_t *ev)
{
	char *text;

	if (ev == NULL)
		return;
	text = json_dumps(ev, JSON_COMPACT);
	json_decref(ev);
	if (text == NULL)
		return;
	/* Blocking, as the streams of a run are: a caller that stops reading
	 * its events stalls the supervisor (the cgroup limits still hold). */
	write_all(ss->ev_fd, text, strlen(text));
	write_all(ss->ev_fd, "\n", 1);
	free(text);
}

static void __attribute__((format(printf, 2, 3))) sess_problem(struct sess *ss, const char *fmt, ...)
{
	char b[512];
	va_list ap;

	if (json_array_size(ss->problems) >= SESS_PROBLEMS_MAX) {
		ss->more_problems++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	/* A problem may quote the code's bytes (an id, a key): only valid
	 * UTF-8 goes into the report. */
	{
		char *clean = sc_escape_bytes(b, strlen(b), NULL);
		json_array_append_new(ss->problems, json_string(clean ? clean : "?"));
		free(clean);
	}
}

static json_t *id_or_null(const char *id)
{
	return id && id[0] ? json_string(id) : json_null();
}

static void sess_refuse(struct sess *ss, const char *id, const char *reason)
{
	sess_emit(ss, json_pack("{s:s,s:o,s:s}", "ev", "refused", "id", id_or_null(id), "reason",
				reason));
}

static void sess_to_loop(struct sess *ss, json_t *cmd)
{
	char *text = json_dumps(cmd, JSON_COMPACT);
	size_t n;
	char *q;

	json_decref(cmd);
	if (text == NULL) {
		set_error(ss->rn->r, "out of memory for a session command");
		sc_kill_tree(ss->rn);
		return;
	}
	n = strlen(text);
	if (ss->tl_off == ss->tl_len)
		ss->tl_off = ss->tl_len = 0;
	q = realloc(ss->tl, ss->tl_len + n + 1);
	if (q == NULL) {
		free(text);
		set_error(ss->rn->r, "out of memory for a session command");
		sc_kill_tree(ss->rn);
		return;
	}
	ss->tl = q;
	memcpy(ss->tl + ss->tl_len, text, n);
	ss->tl[ss->tl_len + n] = '\n';
	ss->tl_len += n + 1;
	free(text);
}

static bool sess_cpu(struct sess *ss, uint64_t *us)
{
	return ss->rn->have_cg && sc_cgroup_cpu_usec(&ss->rn->cg, us) == 0;
}

/* The interrupt goes to the loop as a command naming the running cell:
 * the loop signals itself only if that cell still runs (or as it starts
 * it), so an interrupt that takes its time never lands in a later cell,
 * as a signal sent from out here could. */
static void sess_interrupt(struct sess *ss)
{
	sess_to_loop(ss, json_pack("{s:s,s:s}", "op", "interrupt", "id", ss->id));
}

static void sess_output(void *ctx, json_t *o)
{
	struct sess *ss = ctx;

	if (!ss->running) {
		/* Written between cells (a thread the code left behind): no
		 * cell to show it in, and no cell's caps to count it against. */
		ss->stray_outputs++;
		json_decref(o);
		return;
	}
	sess_emit(ss, json_pack("{s:s,s:s,s:o}", "ev", "output", "id", ss->id, "output", o));
}

static void sess_raw(struct sess *ss, int which, const char *buf, size_t n, bool final)
{
	char joined[65536 + 4];
	size_t len = 0, used = 0, out_len = 0;
	char *text;

	if (n > sizeof(joined) - sizeof(ss->carry[0]))
		n = sizeof(joined) - sizeof(ss->carry[0]); /* pump reads 64 KiB at most */
	memcpy(joined, ss->carry[which], ss->carry_len[which]);
	len = ss->carry_len[which];
	memcpy(joined + len, buf, n);
	len += n;
	ss->carry_len[which] = 0;
	if (len == 0)
		return;
	text = sc_utf8_replace(joined, len, final, &used, &out_len);
	if (text == NULL)
		return;
	if (used < len && len - used <= sizeof(ss->carry[0])) {
		memcpy(ss->carry[which], joined + used, len - used);
		ss->carry_len[which] = len - used;
	}
	if (out_len > 0)
		sess_emit(ss, json_pack("{s:s,s:o,s:{s:s,s:s,s:s%}}", "ev", "output", "id",
					ss->running ? json_string(ss->id) : json_null(), "output",
					"output_type", "stream", "name", which ? "stderr" : "stdout",
					"text", text, out_len));
	free(text);
}


/* The cell's outbox: /output is copied to <--output>/<seq>/ by the
 * collector (which treats the tree as hostile: no symlink followed, no
 * other mount, caps), then emptied, so the next cell starts with an
 * empty /output.  The sandbox may still be alive here: a process the
 * cell left running can change files while they are copied, never where
 * they land.  The caps are the session's: what one cell takes, later
 * ones do not get. */
static json_t *sess_collect(struct sess *ss)
{
	struct run *rn = ss->rn;
	struct sandcell_limits lim = rn->cfg->limits;
	struct sandcell_error e = { 0, "" };
	struct sc_collect c;
	json_t *files = json_array();
	char name[32];
	int odir, probe, dst;

	if (files == NULL || rn->out_dirfd < 0 || rn->scratch_fd < 0 || !rn->r->code_started)
		return files;
	odir = openat(rn->scratch_fd, "output", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (odir < 0)
		return files;
	probe = openat(odir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (probe < 0 || sc_dir_is_empty(probe, NULL) != 0) {
		if (probe >= 0)
			close(probe);
		close(odir);
		return files;
	}
	close(probe);
	snprintf(name, sizeof(name), "%llu", (unsigned long long)ss->seq);
	lim.output_files = lim.output_files > ss->out_files ? lim.output_files - ss->out_files : 0;
	lim.output_bytes = lim.output_bytes > ss->out_bytes ? lim.output_bytes - ss->out_bytes : 0;
	if (mkdirat(rn->out_dirfd, name, 0755) < 0 ||
	    (dst = openat(rn->out_dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		sess_problem(ss, "cell %s: cannot make the output directory %s: %s", ss->id, name,
			     strerror(errno));
		close(odir);
		return files;
	}
	if (sc_collect_tree(odir, dst, &lim, &c, &e) == 0) {
		ss->collected = true;
		for (size_t i = 0; i < c.n_files; i++) {
			struct sc_out_file *f = &c.files[i];
			char *p = NULL;

			if (asprintf(&p, "%s/%s", name, f->path) < 0)
				continue;
			free(f->path);
			f->path = p;
			json_array_append_new(files, json_pack("{s:s,s:I,s:s}", "path", p, "size",
							       (json_int_t)f->size, "sha256", f->sha256));
			ss->out_files++;
		}
		for (size_t i = 0; i < c.n_skips; i++) {
			char *p = NULL;

			if (asprintf(&p, "%s/%s", name, c.skips[i].path) >= 0) {
				free(c.skips[i].path);
				c.skips[i].path = p;
			}
		}
		ss->out_bytes += c.bytes;
		if (sc_collect_merge(&rn->r->outputs, &c) < 0)
			sess_problem(ss, "cell %s: out of memory listing its files in the report", ss->id);
		sc_collect_free(&c);
	} else {
		sess_problem(ss, "cell %s: collecting /output: %s", ss->id, e.msg);
	}
	close(dst);
	/* Emptied whatever was collected or not: what was skipped is listed. */
	sc_remove_tree(odir, 0);
	close(odir);
	return files;
}

/* Ends the cell in progress: its result, error and outputs as the
 * channel kept them, its outbox, then the done event.  status is the
 * loop's word ("ok", "error", "interrupted") or "killed" (ours, with the
 * stop's cause). */
static void sess_cell_end(struct sess *ss, const char *status, bool counted, const char *why)
{
	struct run *rn = ss->rn;
	struct sandcell_error e = { 0, "" };
	struct sc_chan_out co;
	json_t *usage, *files, *err = NULL;
	uint64_t us = 0;
	double wall = now_sec() - ss->t0;
	bool killed = strcmp(status, "killed") == 0;

	if (sc_chan_cell_end(ss->chan, &co, &e) < 0)
		memset(&co, 0, sizeof(co));
	/* The exception counts only from a cell that did not finish ok. */
	if (co.exception && strcmp(status, "ok") != 0 && !killed) {
		err = json_incref(co.exception);
		sess_emit(ss, json_pack("{s:s,s:s,s:o}", "ev", "output", "id", ss->id, "output",
					sc_chan_error_output(co.exception)));
	} else if (killed) {
		sess_emit(ss, json_pack("{s:s,s:s,s:o}", "ev", "output", "id", ss->id, "output",
					sc_chan_stop_output(why, rn->where_sent ? co.where : NULL)));
	}
	if (co.result_error[0])
		sess_problem(ss, "cell %s: %s", ss->id, co.result_error);
	for (size_t i = 0; i < json_array_size(co.problems); i++)
		sess_problem(ss, "cell %s: %s", ss->id,
			     json_string_value(json_array_get(co.problems, i)));
	usage = json_pack("{s:f}", "wall_sec", wall);
	if (usage && ss->have_cpu0 && sess_cpu(ss, &us))
		json_object_set_new(usage, "cpu_sec",
				    json_real((double)(us > ss->cpu0 ? us - ss->cpu0 : 0) / 1e6));
	else if (usage)
		json_object_set_new(usage, "cpu_sec", json_null());
	files = sess_collect(ss);
	sess_emit(ss, json_pack("{s:s,s:s,s:s,s:o,s:o,s:O,s:o,s:o}", "ev", "done", "id", ss->id,
				"status", status, "execution_count",
				counted ? json_integer((json_int_t)ss->exec_count) : json_null(),
				"error", err ? err : json_null(), "result",
				co.result ? co.result : json_null(), "usage", usage, "files", files));
	if (!strcmp(status, "ok"))
		ss->n_ok++;
	else if (!strcmp(status, "error"))
		ss->n_error++;
	else if (!strcmp(status, "interrupted"))
		ss->n_interrupted++;
	else
		ss->n_killed++;
	sc_chan_out_free(&co);
	ss->running = ss->input_pending = ss->request_pending = false;
	ss->limit = SC_STOP_NONE;
	ss->kill_at = 0;
	ss->last_activity = now_sec();
	if (session_hook)
		session_hook(SC_SESSION_IDLE, ss->seq);
}

static void sess_control(void *ctx, char tag, json_t *v, const char *why)
{
	struct sess *ss = ctx;
	const char *what = tag == 'D' ? "done" : tag == 'I' ? "input request" : "dataset request";
	const char *id = json_string_value(json_object_get(v, "id"));

	if (v == NULL) {
		sess_problem(ss, "a %s record was rejected: %s", what, why);
		return;
	}
	if (!ss->running || strcmp(id, ss->id) != 0) {
		sess_problem(ss, "a %s record for %s, which is not the running cell, was dropped", what,
			     id);
		return;
	}
	if (tag == 'D') {
		sess_cell_end(ss, json_string_value(json_object_get(v, "status")), true, NULL);
		return;
	}
	if (tag == 'Q') {
		/* One at a time: the loop waits for the answer, so a second
		 * one is the code writing records of its own. */
		if (ss->request_pending) {
			sess_problem(ss, "cell %s: a second dataset request while one was pending was "
				     "dropped", id);
			return;
		}
		ss->request_pending = true;
		ss->n_requests++;
		snprintf(ss->request_name, sizeof(ss->request_name), "%s",
			 json_string_value(json_object_get(v, "name")));
		sess_emit(ss, json_pack("{s:s,s:s,s:s}", "ev", "dataset_request", "id", ss->id,
					"name", ss->request_name));
		return;
	}
	if (ss->input_pending) {
		sess_problem(ss, "cell %s: a second input request while one was pending was dropped", id);
		return;
	}
	ss->input_pending = true;
	sess_emit(ss, json_pack("{s:s,s:s,s:O,s:O}", "ev", "input_request", "id", ss->id, "prompt",
				json_object_get(v, "prompt"), "password",
				json_object_get(v, "password")));
}

/* ------------------------------------------------- session: op add
 *
 * A host file copied into the sandbox's scratch tmpfs, at
 * tmp/.sandcell/{datasets,inputs}/NAME (the code's /tmp/.sandcell/...).
 * The tree under tmp/ is the code's and hostile: every directory is
 * opened beneath its parent with no symlink, magic link or other mount
 * crossed, the file is created new (O_EXCL, O_NOFOLLOW) under a temporary
 * name and renamed into place, replacing only a regular file.  The copy
 * is written with the code's host ids: the tmpfs belongs to the
 * sandbox's user namespace, where only those are mapped (and so nothing
 * is written with root's powers).  It counts against --disk like any
 * file the code writes. */

static int add_openat2(int dirfd, const char *name, uint64_t flags)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = flags;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
	return (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
}

/* dir/name as a directory, made (mode 0755) if missing. */
static int add_subdir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
		return -1;
	return add_openat2(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Filesystem ids for writes into the tmpfs, and back (0 when unchanged). */
static bool add_ids_enter(struct run *rn)
{
	if (rn->reduced || geteuid() != 0 || rn->host_uid == 0)
		return false;
	syscall(SYS_setfsgid, rn->host_gid);
	syscall(SYS_setfsuid, rn->host_uid);
	return true;
}

static void add_ids_leave(bool entered)
{
	if (entered) {
		syscall(SYS_setfsuid, 0);
		syscall(SYS_setfsgid, 0);
	}
}

/* Copies src (a regular file of size bytes) to dir/name; why says why
 * not.  Nothing is left behind on failure. */
static int add_copy(struct run *rn, int src, uint64_t size, int dir, const char *name, char *why,
		    size_t why_len)
{
	static uint64_t counter;
	const uint64_t cap = rn->cfg->limits.disk;
	char tmp[64], buf[65536];
	uint64_t done = 0;
	struct stat st;
	int fd = -1, e = 0;

	for (int tries = 0; tries < 16 && fd < 0; tries++) {
		/* Names never start with '.': this cannot be one. */
		snprintf(tmp, sizeof(tmp), ".add-%d-%llu.tmp", (int)getpid(),
			 (unsigned long long)++counter);
		fd = openat(dir, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	if (fd < 0) {
		e = errno;
		snprintf(why, why_len, e == ENOSPC || e == EDQUOT
			 ? "the session's scratch space (--disk) is full: no room for another file"
			 : "cannot create the copy in the sandbox: %s", strerror(e));
		return -1;
	}
	for (;;) {
		ssize_t n = read(src, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_len, "reading the host file: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		/* The file may grow while it is read: the cap holds anyway. */
		if (done + (uint64_t)n > cap) {
			snprintf(why, why_len, "the file is larger than the session's disk limit "
				 "(%llu bytes)", (unsigned long long)cap);
			goto fail;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				e = errno;
				if (e == ENOSPC || e == EDQUOT || e == EFBIG)
					snprintf(why, why_len, "the session's scratch space (--disk, %llu "
						 "bytes) is full: %llu bytes do not fit",
						 (unsigned long long)cap, (unsigned long long)size);
				else
					snprintf(why, why_len, "writing the copy in the sandbox: %s",
						 strerror(e));
				goto fail;
			}
			off += w;
		}
		done += (uint64_t)n;
	}
	if (close(fd) < 0) {
		fd = -1;
		snprintf(why, why_len, "writing the copy in the sandbox: %s", strerror(errno));
		goto fail;
	}
	fd = -1;
	/* An earlier copy is replaced; anything else the code put under the
	 * name is left as it is and the add refused.  (A swap after this
	 * check still cannot send the rename anywhere: renameat replaces a
	 * symlink itself, and fails on a directory.) */
	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "something that is not a regular file is in the way in the "
			 "sandbox");
		goto fail;
	}
	if (renameat(dir, tmp, dir, name) < 0) {
		snprintf(why, why_len, "putting the copy in place in the sandbox: %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(dir, tmp, 0);
	return -1;
}

/* Copies the caller's file into the sandbox; fills where (the path the
 * loop opens) or why. */
static int sess_add_file(struct sess *ss, const struct sc_cmd *cmd, char *where, size_t where_len,
			 char *why, size_t why_len)
{
	struct run *rn = ss->rn;
	const char *sub = cmd->kind == SC_ADD_DATASET ? "datasets" : "inputs";
	const uint64_t cap = rn->cfg->limits.disk;
	struct stat st;
	int src, tmpd = -1, top = -1, dir = -1, rc = -1;
	bool ids;

	if (rn->scratch_fd < 0 || !rn->r->code_started) {
		snprintf(why, why_len, "the sandbox is not running");
		return -1;
	}
	/* The caller's own path, opened as --input opens one. */
	src = open(json_string_value(cmd->text), O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (src < 0) {
		snprintf(why, why_len, "cannot open the host file: %s", strerror(errno));
		return -1;
	}
	if (fstat(src, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "the host path is not a regular file");
		close(src);
		return -1;
	}
	if ((uint64_t)st.st_size > cap) {
		snprintf(why, why_len, "the file (%llu bytes) is larger than the session's disk limit "
			 "(%llu bytes)", (unsigned long long)st.st_size, (unsigned long long)cap);
		close(src);
		return -1;
	}
	ids = add_ids_enter(rn);
	tmpd = add_openat2(rn->scratch_fd, "tmp", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmpd >= 0)
		top = add_subdir(tmpd, ".sandcell");
	if (top >= 0)
		dir = add_subdir(top, sub);
	if (dir < 0) {
		int e = errno;

		snprintf(why, why_len, e == ELOOP || e == EXDEV || e == ENOTDIR
			 ? "/tmp/.sandcell/%s in the sandbox is not a directory of its own (a symlink "
			   "or something else is in the way)"
			 : e == ENOSPC ? "the session's scratch space (--disk) is full (making "
					 "/tmp/.sandcell/%s)"
				       : "cannot make /tmp/.sandcell/%s in the sandbox", sub);
	} else if (add_copy(rn, src, (uint64_t)st.st_size, dir, cmd->name, why, why_len) == 0) {
		snprintf(where, where_len, "%s%s/.sandcell/%s/%s", rn->reduced ? rn->workdir : "",
			 "/tmp", sub, cmd->name);
		rc = 0;
	}
	add_ids_leave(ids);
	if (dir >= 0)
		close(dir);
	if (top >= 0)
		close(top);
	if (tmpd >= 0)
		close(tmpd);
	close(src);
	return rc;
}

static void sess_add(struct sess *ss, const struct sc_cmd *cmd)
{
	const char *kind = cmd->kind == SC_ADD_DATASET ? "dataset" : "input";
	bool answers = cmd->kind == SC_ADD_DATASET && ss->request_pending &&
		       strcmp(ss->request_name, cmd->name) == 0;
	char why[512], where[PATH_MAX];

	if (cmd->refused) {
		if (!answers) {
			sess_emit(ss, json_pack("{s:s,s:n,s:s,s:s,s:s}", "ev", "refused", "id", "kind",
						kind, "name", cmd->name, "reason",
						"no dataset request of that name is pending"));
			return;
		}
		ss->request_pending = false;
		sess_to_loop(ss, json_pack("{s:s,s:s,s:s,s:O}", "op", "add", "kind", kind, "name",
					   cmd->name, "refused", cmd->text));
		return;
	}
	why[0] = '\0';
	if (ss->n_added >= SESS_ADDS_MAX) {
		snprintf(why, sizeof(why), "this session has had %d files added already",
			 SESS_ADDS_MAX);
	} else if (sess_add_file(ss, cmd, where, sizeof(where), why, sizeof(why)) == 0) {
		ss->n_added++;
		if (answers)
			ss->request_pending = false;
		sess_to_loop(ss, json_pack("{s:s,s:s,s:s,s:s}", "op", "add", "kind", kind, "name",
					   cmd->name, "path", where));
		sess_emit(ss, json_pack("{s:s,s:s,s:s}", "ev", "added", "kind", kind, "name",
					cmd->name));
		return;
	}
	sess_emit(ss, json_pack("{s:s,s:n,s:s,s:s,s:s}", "ev", "refused", "id", "kind", kind, "name",
				cmd->name, "reason", why));
	/* A cell waiting for this dataset is told, rather than left waiting
	 * for an answer that failed. */
	if (answers) {
		char text[600];

		ss->request_pending = false;
		snprintf(text, sizeof(text), "the host's answer could not be copied in: %s", why);
		sess_to_loop(ss, json_pack("{s:s,s:s,s:s,s:s}", "op", "add", "kind", kind, "name",
					   cmd->name, "refused", text));
	}
}

static void sess_command(struct sess *ss, const char *line, size_t len)
{
	struct sandcell_error e = { 0, "" };
	struct sc_cmd cmd;
	double now = now_sec();

	ss->last_activity = now;
	if (sc_session_parse_cmd(line, len, &cmd, &e) < 0) {
		sess_refuse(ss, cmd.id, e.msg);
		return;
	}
	switch (cmd.op) {
	case SC_CMD_RUN:
		if (ss->running) {
			sess_refuse(ss, cmd.id, "a cell is running: wait for its done event");
		} else if (json_object_get(ss->used_ids, cmd.id) != NULL) {
			sess_refuse(ss, cmd.id, "this id was used already in this session");
		} else if (json_object_set_new(ss->used_ids, cmd.id, json_true()) < 0) {
			sess_refuse(ss, cmd.id, "out of memory");
		} else {
			struct sc_chan_out co;

			/* What the code wrote between cells is not this cell's. */
			if (sc_chan_cell_end(ss->chan, &co, NULL) == 0)
				sc_chan_out_free(&co);
			snprintf(ss->id, sizeof(ss->id), "%s", cmd.id);
			ss->running = true;
			ss->seq++;
			/* As the loop counts: an id starting with "_" is a
			 * silent cell, which takes no count (shown as 0). */
			ss->exec_count = cmd.id[0] == '_' ? 0 : ++ss->n_counted;
			if (session_hook)
				session_hook(SC_SESSION_RUNNING, ss->seq);
			ss->t0 = now;
			ss->have_cpu0 = sess_cpu(ss, &ss->cpu0);
			sess_to_loop(ss, json_pack("{s:s,s:s,s:O}", "op", "run", "id", cmd.id, "code",
						   cmd.text));
		}
		break;
	case SC_CMD_INPUT:
		if (!ss->running || !ss->input_pending || strcmp(cmd.id, ss->id) != 0) {
			sess_refuse(ss, cmd.id, "no input request of this cell is pending");
		} else {
			ss->input_pending = false;
			sess_to_loop(ss, json_pack("{s:s,s:s,s:O}", "op", "input", "id", cmd.id, "value",
						   cmd.text));
		}
		break;
	case SC_CMD_INTERRUPT:
		if (ss->running)
			sess_interrupt(ss);
		break;
	case SC_CMD_CLOSE:
		ss->closing = true;
		break;
	case SC_CMD_ADD:
		sess_add(ss, &cmd);
		break;
	}
	sc_session_cmd_free(&cmd);
}

/* Splits the caller's bytes into command lines (at most 64 MiB each). */
static void sess_commands(struct sess *ss, const char *buf, size_t n, bool eof)
{
	size_t i = 0;

	while (i < n && !ss->closing) {
		const char *nl = memchr(buf + i, '\n', n - i);
		size_t seg = nl ? (size_t)(nl - (buf + i)) : n - i;

		if (!ss->line_skip && seg > SC_SESSION_LINE_MAX - ss->line_len) {
			ss->line_skip = true;
			free(ss->line);
			ss->line = NULL;
			ss->line_len = ss->line_cap = 0;
		}
		if (!ss->line_skip && seg > 0) {
			if (ss->line_len + seg > ss->line_cap) {
				size_t cap = ss->line_cap ? ss->line_cap : 65536;
				char *q;

				while (cap < ss->line_len + seg)
					cap *= 2;
				q = realloc(ss->line, cap);
				if (q == NULL) {
					ss->line_skip = true;
					free(ss->line);
					ss->line = NULL;
					ss->line_len = ss->line_cap = 0;
				} else {
					ss->line = q;
					ss->line_cap = cap;
				}
			}
			if (!ss->line_skip) {
				memcpy(ss->line + ss->line_len, buf + i, seg);
				ss->line_len += seg;
			}
		}
		i += seg;
		if (nl == NULL)
			break;
		i++;
		if (ss->line_skip)
			sess_refuse(ss, NULL, "the command line is longer than 64 MiB (or the host had "
				    "no memory for it)");
		else if (ss->line_len > 0)
			sess_command(ss, ss->line, ss->line_len);
		ss->line_skip = false;
		ss->line_len = 0;
	}
	if (eof && !ss->closing) {
		/* A last line without its newline is still a command. */
		if (ss->line_skip)
			sess_refuse(ss, NULL, "the command line is longer than 64 MiB");
		else if (ss->line_len > 0)
			sess_command(ss, ss->line, ss->line_len);
		ss->line_len = 0;
		ss->closing = true;
	}
}

/* The session's own clocks, each poll: per-cell limits, idle, close. */
static void sess_tick(struct sess *ss, double now)
{
	struct run *rn = ss->rn;
	const struct sandcell_limits *l = &rn->cfg->limits;
	uint64_t us;

	if (rn->init_exited || !rn->r->code_started || ss->stop != SC_STOP_NONE)
		return;
	if (ss->running && ss->limit == SC_STOP_NONE) {
		if (now - ss->t0 >= l->cell_wall_sec)
			ss->limit = SC_STOP_CELL_WALL;
		else if (ss->have_cpu0 && sess_cpu(ss, &us) &&
			 (double)(us - ss->cpu0) / 1e6 >= l->cell_cpu_sec)
			ss->limit = SC_STOP_CELL_CPU;
		if (ss->limit != SC_STOP_NONE) {
			/* The loop turns it into KeyboardInterrupt; a cell that
			 * ignores it has SESS_GRACE to end before the kill. */
			sess_interrupt(ss);
			ss->kill_at = now + SESS_GRACE;
		}
	}
	if (ss->running && ss->kill_at > 0 && now >= ss->kill_at) {
		ss->stop = ss->limit;
		if (ss->stop == SC_STOP_CELL_CPU)
			rn->killed_cpu = true;
		else
			rn->killed_wall = true;
		sc_kill_tree(rn);
		return;
	}
	if (!ss->running && !ss->closing && now - ss->last_activity >= l->idle_sec) {
		ss->stop = SC_STOP_IDLE;
		rn->killed_wall = true;
		sc_kill_tree(rn);
		return;
	}
	if (ss->loop_closed && !ss->running &&
	    now - (ss->closed_at > ss->last_activity ? ss->closed_at : ss->last_activity) >= SESS_GRACE) {
		ss->stop = SC_STOP_CLOSE_GRACE;
		rn->killed_wall = true;
		sc_kill_tree(rn);
	}
}

/* The next time sess_tick has something to do, as a poll timeout. */
static int sess_timeout(struct sess *ss, double now, int timeout)
{
	const struct sandcell_limits *l = &ss->rn->cfg->limits;
	double at = 0;

	if (ss->running)
		at = ss->kill_at > 0 ? ss->kill_at : ss->t0 + l->cell_wall_sec;
	else if (!ss->closing)
		at = ss->last_activity + l->idle_sec;
	else if (ss->loop_closed)
		at = (ss->closed_at > ss->last_activity ? ss->closed_at : ss->last_activity) + SESS_GRACE;
	if (at > 0) {
		int ms = (int)ceil((at - now) * 1000);

		if (ms < timeout)
			timeout = ms < 0 ? 0 : ms;
	}
	return timeout;
}

static struct sess *sess_new(struct run *rn)
{
	const struct sandcell_limits *l = &rn->cfg->limits;
	struct sc_chan_limits cl = { (size_t)l->result_bytes, (size_t)l->cell_bytes,
				     (size_t)l->cell_output_bytes, (size_t)l->cell_outputs };
	struct sess *ss = calloc(1, sizeof(*ss));

	if (ss == NULL)
		return NULL;
	ss->rn = rn;
	ss->ev_fd = rn->cfg->stdout_fd;
	ss->chan = sc_chan_new(&cl);
	ss->used_ids = json_object();
	ss->problems = json_array();
	if (ss->chan == NULL || ss->used_ids == NULL || ss->problems == NULL) {
		sc_chan_free(ss->chan);
		json_decref(ss->used_ids);
		json_decref(ss->problems);
		free(ss);
		return NULL;
	}
	ss->sink.ctx = ss;
	ss->sink.output = sess_output;
	ss->sink.control = sess_control;
	sc_chan_stream(ss->chan, &ss->sink);
	return ss;
}

static void sess_free(struct sess *ss)
{
	if (ss == NULL)
		return;
	sc_chan_free(ss->chan);
	json_decref(ss->used_ids);
	json_decref(ss->problems);
	free(ss->line);
	free(ss->tl);
	free(ss);
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
			sess_emit(ss, json_pack("{s:s}", "ev", "ready"));
		}
	} else if (m->type == SC_MSG_EXIT) {
		rn->got_exit = true;
		rn->wait_status = m->value;
	} else if (m->type == SC_MSG_ERROR) {
		char msg[600];
		snprintf(msg, sizeof(msg), "sandbox setup failed: %s", m->text);
		set_error(r, msg);
		r->setup_errno = m->err;
	}
	if (fd >= 0)
		close(fd);
}

/* The supervision loop: streams, messages, limits, until the tree is dead
 * and every stream reached EOF. */
void sc_supervise(struct run *rn)
{
	const struct sandcell_limits *l = &rn->cfg->limits;
	struct sandcell_result *r = rn->r;
	struct sc_chan_limits cl = { (size_t)l->result_bytes, (size_t)l->cell_bytes,
				     (size_t)l->cell_output_bytes, (size_t)l->cell_outputs };
	struct stream st[3] = {
		{ rn->out_pipe[0], rn->cfg->stdout_fd, 0, 0, l->stream, false, "stdout", NULL, NULL, 0 },
		{ rn->err_pipe[0], rn->cfg->stderr_fd, 0, 0, l->stream, false, "stderr", NULL, NULL, 1 },
		{ rn->res_pipe[0], -1, 0, 0, 0, false, "channel", NULL, NULL, 0 },
	};
	int in_src = rn->cfg->stdin_fd;
	char in_buf[65536];
	size_t in_len = 0, in_off = 0;
	bool in_eof = in_src < 0;
	double deadline = rn->t0 + l->wall_sec, drain_deadline = 0;
	double where_at = deadline - where_grace(l->wall_sec);
	struct sess *ss = rn->ss;
	int i;

	if (ss) {
		/* A session: the streams become events, the channel is
		 * streamed (the session owns it), stdin is the commands. */
		for (i = 0; i < 2; i++)
			st[i].ss = ss;
		st[2].chan = ss->chan;
		ss->last_activity = rn->t0;
	} else {
		st[2].chan = sc_chan_new(&cl);
	}
	if (st[2].chan == NULL) {
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
		in_eof = true; /* the generic stdin pump is not used */
	} else if (in_eof) {
		close_fd(&rn->in_pipe[1]);
	} else if (fcntl(rn->in_pipe[1], F_SETFL, O_NONBLOCK) < 0) {
		/* A blocking stdin pipe could stall this loop and with it every
		 * limit: stop the run instead. */
		set_error(r, "pipes: cannot make the stdin pipe non-blocking");
		sc_kill_tree(rn);
		in_eof = true;
		close_fd(&rn->in_pipe[1]);
	}

	for (;;) {
		struct pollfd p[12];
		int np = 0, idx_sock = -1, idx_pid = -1, idx_in = -1, idx_inw = -1, idx_cancel = -1,
		    idx_st[3];
		double now = now_sec();
		int timeout, idx_cmd = -1, idx_loopw = -1;

		if (!rn->init_exited && now >= where_at)
			ask_where(rn);
		if (!rn->init_exited && now >= deadline && !rn->killed_wall) {
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
			sess_tick(ss, now);
		if (ss && ss->closing && !ss->loop_closed && ss->tl_off == ss->tl_len &&
		    rn->in_pipe[1] >= 0) {
			/* Close: the loop reads EOF once the running cell, if
			 * any, is done, and exits. */
			close_fd(&rn->in_pipe[1]);
			ss->loop_closed = true;
			ss->closed_at = now;
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
		if (rn->cfg->cancel_fd >= 0 && !rn->cancelled && !rn->init_exited) {
			idx_cancel = np;
			p[np++] = (struct pollfd){ rn->cfg->cancel_fd, POLLIN, 0 };
		}
		if (!in_eof && in_off == in_len) {
			idx_in = np;
			p[np++] = (struct pollfd){ in_src, POLLIN, 0 };
		}
		if (rn->in_pipe[1] >= 0 && in_off < in_len) {
			idx_inw = np;
			p[np++] = (struct pollfd){ rn->in_pipe[1], POLLOUT, 0 };
		}
		/* Commands are read once the loop runs: a reduced-mode retry
		 * after a failed first attempt then loses none. */
		if (ss && !ss->closing && r->code_started && !rn->init_exited && in_src >= 0) {
			idx_cmd = np;
			p[np++] = (struct pollfd){ in_src, POLLIN, 0 };
		}
		if (ss && rn->in_pipe[1] >= 0 && ss->tl_off < ss->tl_len) {
			idx_loopw = np;
			p[np++] = (struct pollfd){ rn->in_pipe[1], POLLOUT, 0 };
		}
		timeout = rn->init_exited ? 1000 : (int)ceil((deadline - now) * 1000);
		if (!rn->init_exited && !rn->where_sent && r->code_started &&
		    timeout > (int)ceil((where_at - now) * 1000))
			timeout = (int)ceil((where_at - now) * 1000);
		if (!rn->init_exited && rn->kill_at > 0 && timeout > (int)ceil((rn->kill_at - now) * 1000))
			timeout = (int)ceil((rn->kill_at - now) * 1000);
		if (rn->have_cg && timeout > SC_CPU_POLL_MS)
			timeout = SC_CPU_POLL_MS;
		if (ss && !rn->init_exited)
			timeout = sess_timeout(ss, now, timeout);
		if (timeout < 0)
			timeout = 0;
		if (poll(p, (nfds_t)np, timeout) < 0) {
			if (errno == EINTR)
				continue;
			set_error(r, "poll failed");
			sc_kill_tree(rn);
			break;
		}
		if (idx_cancel >= 0 && p[idx_cancel].revents) {
			/* The caller cancelled (the CLI got SIGINT or SIGTERM, a
			 * warm client half-closed or went away): the run is killed
			 * and what /output holds so far is collected.  A stop or a
			 * failure decided before stays the verdict. */
			rn->cancelled = true;
			rn->cancel_verdict = !r->error[0] && !rn->killed_wall && !rn->killed_cpu && !rn->killed_oom;
			if (r->code_started && !rn->where_sent) {
				ask_where(rn);
				rn->kill_at = now + WHERE_GRACE_MAX;
			} else {
				sc_kill_tree(rn);
			}
		}
		for (i = 0; i < 3; i++)
			if (idx_st[i] >= 0 && p[idx_st[i]].revents)
				pump(&st[i]);
		if (idx_sock >= 0 && p[idx_sock].revents) {
			struct sc_msg m = { 0 };
			int fd = -1;
			if (sc_init_recv(rn->sock, &m, &fd) < 0) {
				/* Lost contact with init before it said the code
				 * started: that is a setup failure; stop the run. */
				if (!r->code_started) {
					set_error(r, "sandbox setup failed: lost the control socket");
					sc_kill_tree(rn);
				}
				close_fd(&rn->sock);
			} else {
				on_init_msg(rn, &m, fd, now, false);
			}
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
		if (idx_cmd >= 0 && p[idx_cmd].revents) {
			ssize_t n = read(in_src, in_buf, sizeof(in_buf));
			if (n > 0)
				sess_commands(ss, in_buf, (size_t)n, false);
			else if (!(n < 0 && (errno == EINTR || errno == EAGAIN)))
				sess_commands(ss, in_buf, 0, true);
		}
		if (idx_loopw >= 0 && p[idx_loopw].revents && rn->in_pipe[1] >= 0) {
			ssize_t n = write(rn->in_pipe[1], ss->tl + ss->tl_off, ss->tl_len - ss->tl_off);
			if (n > 0) {
				ss->tl_off += (size_t)n;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				/* The loop closed its stdin: it can take no more. */
				ss->tl_off = ss->tl_len;
				close_fd(&rn->in_pipe[1]);
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
	for (i = 0; i < 3; i++)
		close_fd(&st[i].fd);
	/* Late messages (EXIT races the pidfd) are still in the socket. */
	while (rn->sock >= 0) {
		struct sc_msg m = { 0 };
		int fd = -1;
		struct pollfd pf = { rn->sock, POLLIN, 0 };
		if (poll(&pf, 1, 0) <= 0 || sc_init_recv(rn->sock, &m, &fd) < 0)
			break;
		on_init_msg(rn, &m, fd, now_sec(), true);
	}
	/* Bytes passed on to the caller; the rest was drained and dropped. */
	r->stdout_bytes = st[0].kept < st[0].limit ? st[0].kept : st[0].limit;
	r->stderr_bytes = st[1].kept < st[1].limit ? st[1].kept : st[1].limit;
	r->stdout_truncated = st[0].truncated;
	r->stderr_truncated = st[1].truncated;
	if (st[2].chan && !ss) {
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

/* After classify(): the cell that was running when the session ended
 * gets its done (killed, with the stop's cause; what it collected is
 * kept), the reason names a stop of the session's own, and the report
 * gets its session object. */
static void sess_settle(struct sess *ss)
{
	struct run *rn = ss->rn;
	struct sandcell_result *r = rn->r;
	const struct sandcell_limits *l = &rn->cfg->limits;
	const char *ended_by;
	struct sc_sess_evidence ev = {
		.limits = l,
		.stop = ss->stop,
		.closing = ss->closing,
		.cancel_verdict = rn->cancel_verdict,
		.cell_id = ss->id,
		.grace = SESS_GRACE,
	};

	sc_verdict_session(&ev, r->status, r->stop_reason, sizeof(r->stop_reason), &ended_by);
	if (ss->running)
		sess_cell_end(ss, "killed", false,
			      r->status == SANDCELL_OK || r->status == SANDCELL_EXITED
				      ? "the session's interpreter exited while the cell ran"
				      : r->stop_reason);
	if (ss->collected)
		r->outputs_collected = true;
	if (ss->more_problems > 0) {
		char b[80];

		snprintf(b, sizeof(b), "... and %llu more", (unsigned long long)ss->more_problems);
		json_array_append_new(ss->problems, json_string(b));
	}
	json_decref(r->session);
	r->session = json_pack("{s:I,s:{s:I,s:I,s:I,s:I},s:s,s:{s:f,s:f,s:f},s:I,s:I,s:I,s:O}",
			       "cells",
			       (json_int_t)ss->seq, "statuses", "ok", (json_int_t)ss->n_ok, "error",
			       (json_int_t)ss->n_error, "interrupted", (json_int_t)ss->n_interrupted,
			       "killed", (json_int_t)ss->n_killed, "ended_by", ended_by, "limits",
			       "cell_wall_sec", l->cell_wall_sec, "cell_cpu_sec", l->cell_cpu_sec,
			       "idle_sec", l->idle_sec, "outputs_between_cells",
			       (json_int_t)ss->stray_outputs, "files_added", (json_int_t)ss->n_added,
			       "dataset_requests", (json_int_t)ss->n_requests, "problems", ss->problems);
}

/* The last event: the session's status and its full report. */
static void sess_end(struct sess *ss)
{
	struct sandcell_result *r = ss->rn->r;
	char *text = sc_report_render(r);
	json_t *doc = text ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;

	free(text);
	/* The listing drops it before its caller can hear it ended. */
	if (session_hook)
		session_hook(SC_SESSION_ENDED, ss->seq);
	sess_emit(ss, json_pack("{s:s,s:s,s:s,s:o}", "ev", "end", "status",
				sandcell_status_name(r->status), "reason", r->stop_reason, "report",
				doc ? doc : json_null()));
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

/* 1 if a cancel is pending on fd, 0 if not (or no fd), -1 if that
 * cannot be known. */
static int cancel_pending(int fd)
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

int sandcell_run(const struct sandcell_config *cfg, struct sandcell_result **out,
		 struct sandcell_error *err)
{
	struct sandcell_error e = { 0, "" };
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
	rn.in_pipe[0] = rn.in_pipe[1] = rn.out_pipe[0] = rn.out_pipe[1] = -1;
	rn.err_pipe[0] = rn.err_pipe[1] = rn.res_pipe[0] = rn.res_pipe[1] = -1;
	pp->ids.lock_fd = -1;
	if (runtime_dirs(cfg->python, pp->dirs, &pp->n_runtime, err) < 0)
		goto usage_fail;
	if ((cfg->flags & SANDCELL_SESSION) && (rn.ss = sess_new(&rn)) == NULL) {
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

	/* The host output directory is opened first: a bad --output is the
	 * caller's error and nothing runs.  It must be new or empty, so that
	 * no host file is ever replaced and what it holds afterwards is this
	 * run's outputs only (docs/report.md, "Output collection"). */
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
		if (sc_dir_is_empty(rn.out_dirfd, err) <= 0) {
			sc_err_wrap(err, "output directory %s", cfg->output_dir);
			goto usage_fail;
		}
	}

	/* Fail closed: each layer that cannot be prepared stops the run
	 * before anything is cloned. */
	if (sc_landlock_probe(&pp->ll) < 0) {
		set_error(r, "Landlock is not available on this kernel (needed by every mode)");
		goto finish;
	}
	if (sc_seccomp_compile(&rn.bpf, false, &e) < 0) {
		set_error(r, e.msg);
		goto finish;
	}
	if (sc_hook_on(SC_HOOK_NO_LIMITS)) {
		/* Ablation: generous limits everywhere the cgroup enforces. */
		static struct sandcell_limits big;
		big = cfg->limits;
		big.memory = 1ull << 40;
		big.pids = 1u << 22;
		rn.have_cg = sc_cgroup_create(&rn.cg, cfg->cgroup_parent, &big, &e) == 0;
	} else if (sc_cgroup_create(&rn.cg, cfg->cgroup_parent, &cfg->limits, &e) < 0) {
		if (!(cfg->flags & SANDCELL_ALLOW_REDUCED)) {
			char msg[600];
			snprintf(msg, sizeof(msg), "%.440s; pass --allow-reduced to run without cgroup limits",
				 e.msg);
			set_error(r, msg);
			goto finish;
		}
	} else {
		rn.have_cg = true;
		/* Swap the cgroup cannot bound would let the code's memory
		 * grow past --memory into swap: a layer missing like any other. */
		if (strcmp(rn.cg.swap, "unlimited") == 0 && !(cfg->flags & SANDCELL_ALLOW_REDUCED)) {
			set_error(r, "cgroup: the host has swap but no swap accounting (no memory.swap.max or "
				     "memory.memsw.limit_in_bytes), so --memory cannot bound swap; boot with "
				     "swapaccount=1, turn swap off, or pass --allow-reduced");
			goto finish;
		}
	}
	if (sc_userns_claim_ids(&pp->ids, &e) < 0) {
		set_error(r, e.msg);
		goto finish;
	}
	/* Above the fds the sandbox init rearranges (0-3). */
	if (pp->ids.lock_fd >= 0 && move_high(&pp->ids.lock_fd) < 0) {
		set_error(r, "userns: fds: moving the host uid claim");
		goto finish;
	}
	if (sc_hook_on(SC_HOOK_NO_UIDMAP)) {
		sc_userns_release_ids(&pp->ids);
		pp->ids.uid = geteuid();
		pp->ids.gid = getegid();
	}

	/* A code that closes its stdin must not kill the supervisor. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
	/* A run cancelled before its sandbox exists is not started; one
	 * cancelled during its first attempt is not tried again. */
	int pending = cancel_pending(cfg->cancel_fd);

	if (pending < 0) {
		/* A cancel that cannot be seen now could not be later either. */
		set_error(r, "cannot watch for a cancel: poll failed");
	} else if (pending > 0) {
		rn.cancelled = rn.cancel_verdict = true;
	} else if (sc_spawn(&rn, pp) == SC_ATTEMPT_RETRY_REDUCED && !rn.cancelled) {
		reset_for_retry(&rn);
		/* Reduced mode runs as the caller: no dedicated ids. */
		sc_userns_release_ids(&pp->ids);
		pp->ids.uid = geteuid();
		pp->ids.gid = getegid();
		sc_spawn(&rn, pp);
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
	if (rn.scratch_fd >= 0 && rn.out_dirfd >= 0 && r->code_started && !rn.ss) {
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
	{
		struct timespec zero = { 0, 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
			;
		pthread_sigmask(SIG_SETMASK, &old_set, NULL);
	}
finish:
	if (r->error[0] && r->status != SANDCELL_SANDBOX_ERROR)
		classify(&rn);
	settle_channel(&rn);
	if (rn.ss)
		sess_settle(rn.ss);
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
	/* Every process of the run is reaped (attempt() waited for the init)
	 * and the outputs are collected: the report is final but for
	 * left_behind, and the caller gets it before the cleanup below. */
	if (report_hook && !rn.ss && !rn.reduced)
		report_hook(r);
	if (rn.have_cg)
		destroy_cgroup(&rn);
	sc_workdir_remove(rn.workdir);
	sc_seccomp_free(&rn.bpf);
	close_fd(&rn.pidfd);
	close_fd(&rn.sock);
	close_fd(&rn.scratch_fd);
	close_fd(&rn.out_dirfd);
	for (i = 0; i < 2; i++) {
		close_fd(&rn.in_pipe[i]);
		close_fd(&rn.out_pipe[i]);
		close_fd(&rn.err_pipe[i]);
		close_fd(&rn.res_pipe[i]);
	}
	sc_userns_release_ids(&pp->ids);
	free(pp->input_fds);
	free(pp->input_ro);
	free(pp);
	if (rn.ss) {
		sess_end(rn.ss);
		sess_free(rn.ss);
	}
	*out = r;
	return 0;
usage_fail:
	sess_free(rn.ss);
	close_fd(&rn.out_dirfd);
	free(pp->input_fds);
	free(pp->input_ro);
	free(pp);
	free(r);
	return -1;
}
