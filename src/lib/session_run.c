/*
 * A session's side of the supervisor.  A session (docs/sessions.md) is
 * one run whose interpreter (the session loop, _sandcell_session.py) runs
 * cells the caller sends one by one.  The caller's commands arrive as
 * NDJSON on cfg->stdin_fd and are parsed by session.c; what the loop is
 * told goes on the code's stdin, one JSON line per command, written by
 * us.  What comes back on the channel (outputs, D and I records) is
 * parsed as each record ends and turned into events on cfg->stdout_fd:
 * every event is built by us from parsed values, never the sandbox's
 * bytes passed on.  The verdicts (a cell killed, the session's status)
 * come from host evidence, as for a run (verdict.c).  The poll loop that
 * feeds this file is the run's (sc_supervise).
 */
#include "run.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SESS_GRACE 5.0		/* after an interrupt at a cell limit, after close */
#define SESS_PROBLEMS_MAX 32
static sc_session_hook session_hook;

void sc_set_session_hook(sc_session_hook hook)
{
	session_hook = hook;
}

#define SESS_ADDS_MAX 1024	/* files added to a session (docs/sessions.md) */

void sc_sess_emit(struct sess *ss, json_t *ev)
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
	sc_write_all(ss->ev_fd, text, strlen(text));
	sc_write_all(ss->ev_fd, "\n", 1);
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
	sc_sess_emit(ss, json_pack("{s:s,s:o,s:s}", "ev", "refused", "id", id_or_null(id), "reason",
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
	sc_sess_emit(ss, json_pack("{s:s,s:s,s:o}", "ev", "output", "id", ss->id, "output", o));
}

void sc_sess_raw(struct sess *ss, int which, const char *buf, size_t n, bool final)
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
		sc_sess_emit(ss, json_pack("{s:s,s:o,s:{s:s,s:s,s:s%}}", "ev", "output", "id",
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
		sc_sess_emit(ss, json_pack("{s:s,s:s,s:o}", "ev", "output", "id", ss->id, "output",
					sc_chan_error_output(co.exception)));
	} else if (killed) {
		sc_sess_emit(ss, json_pack("{s:s,s:s,s:o}", "ev", "output", "id", ss->id, "output",
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
	sc_sess_emit(ss, json_pack("{s:s,s:s,s:s,s:o,s:o,s:O,s:o,s:o}", "ev", "done", "id", ss->id,
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
		sc_sess_emit(ss, json_pack("{s:s,s:s,s:s}", "ev", "dataset_request", "id", ss->id,
					"name", ss->request_name));
		return;
	}
	if (ss->input_pending) {
		sess_problem(ss, "cell %s: a second input request while one was pending was dropped", id);
		return;
	}
	ss->input_pending = true;
	sc_sess_emit(ss, json_pack("{s:s,s:s,s:O,s:O}", "ev", "input_request", "id", ss->id, "prompt",
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
			sc_sess_emit(ss, json_pack("{s:s,s:n,s:s,s:s,s:s}", "ev", "refused", "id", "kind",
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
		sc_sess_emit(ss, json_pack("{s:s,s:s,s:s}", "ev", "added", "kind", kind, "name",
					cmd->name));
		return;
	}
	sc_sess_emit(ss, json_pack("{s:s,s:n,s:s,s:s,s:s}", "ev", "refused", "id", "kind", kind, "name",
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
void sc_sess_commands(struct sess *ss, const char *buf, size_t n, bool eof)
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
void sc_sess_tick(struct sess *ss, double now)
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
int sc_sess_timeout(struct sess *ss, double now, int timeout)
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

struct sess *sc_sess_new(struct run *rn)
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

void sc_sess_free(struct sess *ss)
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

/* After classify(): the cell that was running when the session ended
 * gets its done (killed, with the stop's cause; what it collected is
 * kept), the reason names a stop of the session's own, and the report
 * gets its session object. */
void sc_sess_settle(struct sess *ss)
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
void sc_sess_end(struct sess *ss)
{
	struct sandcell_result *r = ss->rn->r;
	char *text = sc_report_render(r);
	json_t *doc = text ? json_loads(text, JSON_ALLOW_NUL, NULL) : NULL;

	free(text);
	/* The listing drops it before its caller can hear it ended. */
	if (session_hook)
		session_hook(SC_SESSION_ENDED, ss->seq);
	sc_sess_emit(ss, json_pack("{s:s,s:s,s:s,s:o}", "ev", "end", "status",
				sandcell_status_name(r->status), "reason", r->stop_reason, "report",
				doc ? doc : json_null()));
}
