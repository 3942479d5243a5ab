/*
 * The warm server's worker table (table.h).
 *
 * The template never reads a client's request: each worker reads its own
 * (G6: no request reaches the template, whose memory every run inherits).
 * So a worker that finds its request is a session tells the template over
 * its status socket, and the template, which owns the counts, grants a
 * session slot or refuses (--max-sessions).  The worker then reports each
 * cell's start and end, counters its supervisor keeps; a listing request
 * is read by a worker too, which asks the template for the table.  What
 * the table holds comes from supervisors only: nothing from inside any
 * sandbox.
 *
 * What the template handles here (other sessions' ids and limits) would
 * stay in its memory and so in every later fork: the fork zeroes the table
 * (dispatch.c, fork_worker), and the template scrubs the heap blocks jansson
 * frees while it works on session data and zeroes its stack buffers.
 */
#include "table.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 4096
#define LIST_MAX (256u << 10)
#define CLAIM_TIMEOUT_MS 30000
#define STATE_MAX (4u << 20)

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends j on sock as one datagram; never blocks. */
static int send_json(int sock, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	int rc = -1;

	if (s)
		rc = send(sock, s, strlen(s), MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)strlen(s) ? 0 : -1;
	free(s);
	json_decref(j);
	return rc;
}

/* ---- template side ---- */

static json_t *lim_json(const struct sess_lim *l)
{
	return json_pack("{s:f,s:f,s:I,s:f,s:f,s:f}", "wall_sec", l->wall, "cpu_sec", l->cpu,
			 "memory_bytes", (json_int_t)l->memory, "cell_wall_sec", l->cell_wall,
			 "cell_cpu_sec", l->cell_cpu, "idle_sec", l->idle);
}

static int lim_parse(json_t *j, struct sess_lim *l)
{
	json_int_t mem = 0;

	if (json_unpack_ex(j, NULL, JSON_STRICT, "{s:F,s:F,s:I,s:F,s:F,s:F}", "wall_sec", &l->wall,
			   "cpu_sec", &l->cpu, "memory_bytes", &mem, "cell_wall_sec", &l->cell_wall,
			   "cell_cpu_sec", &l->cell_cpu, "idle_sec", &l->idle) < 0 || mem < 0)
		return -1;
	l->memory = (uint64_t)mem;
	return 0;
}

static void iso_time(double t, char out[32])
{
	time_t s = (time_t)t;
	struct tm tm;

	if (gmtime_r(&s, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "%.0f", t);
}

static json_t *listing(const struct table *t)
{
	json_t *arr = json_array(), *doc;
	double now = wall_now();
	long i, live = 0;

	for (i = 0; arr && i < t->n; i++) {
		const struct worker *w = &t->w[i];
		char at[32];

		if (!w->session || w->ended)
			continue;
		live++;
		iso_time(w->started, at);
		/* Milliseconds: the clocks say no more. */
		json_array_append_new(arr, json_pack("{s:s,s:i,s:s,s:f,s:s,s:f,s:I,s:o}", "id", w->id,
						     "pid", (int)w->pid, "started", at, "age_sec",
						     round((now - w->started) * 1e3) / 1e3, "state", w->running ? "running" : "idle",
						     "state_sec", round((now - w->since) * 1e3) / 1e3, "cells", (json_int_t)w->cells,
						     "limits", lim_json(&w->lim)));
	}
	doc = json_pack("{s:o,s:I,s:I,s:I,s:I,s:I,s:I}", "sessions", arr ? arr : json_array(), "max_sessions",
			(json_int_t)t->max_sessions, "slots", (json_int_t)t->slots, "runs",
			/* The listing's own worker is not a run. */
			(json_int_t)(t->n - t->n_sessions - 1), "sessions_live", (json_int_t)live,
			"spares", (json_int_t)t->spares, "queued", (json_int_t)t->queued);
	return doc;
}

static void new_id(char id[SESSION_ID_LEN + 1])
{
	unsigned char b[SESSION_ID_LEN / 2];
	size_t k;

	/* getrandom on a few bytes only fails before the pool is seeded;
	 * the clock keeps ids distinct then (they are names, not secrets:
	 * only the server's uid can reach the server). */
	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		uint64_t v = (uint64_t)(wall_now() * 1e6);
		memcpy(b, &v, sizeof(b) < sizeof(v) ? sizeof(b) : sizeof(v));
	}
	for (k = 0; k < sizeof(b); k++)
		snprintf(id + 2 * k, 3, "%02x", b[k]);
	explicit_bzero(b, sizeof(b));
}

static void on_claim(struct table *t, struct worker *w, json_t *msg)
{
	struct sess_lim l;
	char why[128];

	if (w->session || lim_parse(json_object_get(msg, "limits"), &l) < 0 ||
	    json_object_size(msg) != 2) {
		send_json(w->sock, json_pack("{s:b,s:s}", "ok", 0, "why", "server: a malformed session claim"));
		return;
	}
	if (t->n_sessions >= t->max_sessions) {
		snprintf(why, sizeof(why), "server busy: %ld sessions are live (--max-sessions %ld)",
			 t->n_sessions, t->max_sessions);
		send_json(w->sock, json_pack("{s:b,s:s}", "ok", 0, "why", why));
		return;
	}
	w->session = true;
	w->running = false;
	w->cells = 0;
	w->lim = l;
	w->started = w->since = wall_now();
	new_id(w->id);
	t->n_sessions++;
	send_json(w->sock, json_pack("{s:b,s:s}", "ok", 1, "id", w->id));
}

static void on_cell(struct worker *w, json_t *msg)
{
	int running = 0;
	json_int_t cells = 0;

	if (!w->session || json_unpack_ex(msg, NULL, JSON_STRICT, "{s:s,s:b,s:I}", "t", &(const char *){ NULL },
					  "running", &running, "cells", &cells) < 0 || cells < 0)
		return;
	if ((bool)running != w->running)
		w->since = wall_now();
	w->running = running;
	w->cells = (uint64_t)cells;
}

static void drain_all(struct table *t, struct worker *asking);

int table_on_msg(struct table *t, struct worker *w)
{
	char buf[MSG_MAX];
	ssize_t n = recv(w->sock, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
	json_t *msg;
	const char *type;

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		close(w->sock);
		w->sock = -1;
		return -1;
	}
	if (n < 0 || n > (ssize_t)sizeof(buf))
		return 0; /* nothing, or a datagram no worker sends: dropped */
	scrub_heap = true;
	msg = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
	explicit_bzero(buf, sizeof(buf));
	type = json_string_value(json_object_get(msg, "t"));
	if (type && strcmp(type, "session") == 0)
		on_claim(t, w, msg);
	else if (type && strcmp(type, "cell") == 0)
		on_cell(w, msg);
	else if (type && strcmp(type, "ended") == 0 && json_object_size(msg) == 1)
		w->ended = w->session;
	else if (type && strcmp(type, "list") == 0 && json_object_size(msg) == 1) {
		/* What every worker said before this request is in the
		 * listing: a session its caller saw end is gone from it. */
		drain_all(t, w);
		send_json(w->sock, listing(t));
	}
	json_decref(msg);
	scrub_heap = false;
	return 0;
}

/* Every message the other workers have queued, taken now (a list request
 * among them is answered too, without a drain of its own). */
static void drain_all(struct table *t, struct worker *asking)
{
	static bool draining;
	long i;

	if (draining)
		return;
	draining = true;
	for (i = 0; i < t->n; i++) {
		struct worker *w = &t->w[i];
		int k;

		/* A bound: a worker cannot keep the template here. */
		for (k = 0; w != asking && w->sock >= 0 && k < 64; k++) {
			char b;
			if (recv(w->sock, &b, 1, MSG_DONTWAIT | MSG_PEEK) < 0)
				break;
			if (table_on_msg(t, w) < 0)
				break;
		}
	}
	draining = false;
}

int table_save(const struct table *t, const struct pending *q, long nq)
{
	json_t *ws = json_array(), *qs = json_array(), *doc;
	char *s;
	int fd;
	long i;

	for (i = 0; ws && i < t->n; i++) {
		const struct worker *w = &t->w[i];
		json_array_append_new(ws, json_pack("{s:i,s:i,s:i,s:i,s:b,s:b,s:I,s:s,s:f,s:f,s:o}", "pid",
						    (int)w->pid, "pidfd", w->pidfd, "sock", w->sock, "relay", w->relay,
						    "session", w->session, "running", w->running, "cells",
						    (json_int_t)w->cells, "id", w->id, "started", w->started,
						    "since", w->since, "limits", lim_json(&w->lim)));
		fcntl(w->pidfd, F_SETFD, 0);
		if (w->sock >= 0)
			fcntl(w->sock, F_SETFD, 0);
		if (w->relay >= 0)
			fcntl(w->relay, F_SETFD, 0);
	}
	for (i = 0; qs && i < nq; i++) {
		json_array_append_new(qs, json_pack("{s:i,s:f}", "fd", q[i].fd, "since", q[i].since));
		fcntl(q[i].fd, F_SETFD, 0);
	}
	doc = json_pack("{s:i,s:o,s:o}", "v", 1, "workers", ws, "queue", qs);
	s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	fd = s ? memfd_create("sandcell-warm-state", 0) : -1;
	if (fd >= 0 && (write(fd, s, strlen(s)) != (ssize_t)strlen(s) || lseek(fd, 0, SEEK_SET) < 0)) {
		close(fd);
		fd = -1;
	}
	free(s);
	return fd;
}

/* An fd named by the state must be open, and becomes close-on-exec. */
static bool take_fd(int fd)
{
	return fd > 2 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0;
}

static int load_worker(json_t *o, struct worker *w)
{
	const char *id;
	int pid, running, session;
	json_int_t cells;
	json_t *lim;

	memset(w, 0, sizeof(*w));
	if (json_unpack_ex(o, NULL, JSON_STRICT, "{s:i,s:i,s:i,s:i,s:b,s:b,s:I,s:s,s:F,s:F,s:o}", "pid", &pid,
			   "pidfd", &w->pidfd, "sock", &w->sock, "relay", &w->relay, "session", &session, "running",
			   &running, "cells", &cells, "id", &id, "started", &w->started, "since",
			   &w->since, "limits", &lim) < 0 ||
	    pid <= 0 || cells < 0 || strlen(id) > SESSION_ID_LEN || lim_parse(lim, &w->lim) < 0 ||
	    !take_fd(w->pidfd) || (w->sock != -1 && !take_fd(w->sock)) ||
	    (w->relay != -1 && !take_fd(w->relay)))
		return -1;
	w->pid = pid;
	w->session = session;
	w->running = running;
	w->cells = (uint64_t)cells;
	memcpy(w->id, id, strlen(id) + 1);
	return 0;
}

static int load_doc(json_t *doc, struct table *t, struct pending *q, long *nq, long q_max)
{
	json_t *ws = NULL, *qs = NULL, *o;
	size_t i;
	int v = 0;

	if (json_unpack_ex(doc, NULL, JSON_STRICT, "{s:i,s:o,s:o}", "v", &v, "workers", &ws, "queue", &qs) < 0 ||
	    v != 1 || !json_is_array(ws) || !json_is_array(qs) || json_array_size(ws) > MAX_WORKERS ||
	    (long)json_array_size(qs) > q_max)
		return -1;
	json_array_foreach(ws, i, o) {
		if (load_worker(o, &t->w[t->n]) < 0)
			return -1;
		t->n_sessions += t->w[t->n].session;
		t->n++;
	}
	json_array_foreach(qs, i, o) {
		if (json_unpack_ex(o, NULL, JSON_STRICT, "{s:i,s:F}", "fd", &q[*nq].fd, "since", &q[*nq].since) < 0 ||
		    !take_fd(q[*nq].fd))
			return -1;
		(*nq)++;
	}
	return 0;
}

int table_load(int fd, struct table *t, struct pending *q, long *nq, long q_max, char *why, size_t why_len)
{
	char *buf = malloc(STATE_MAX + 1);
	size_t len = 0;
	ssize_t n;
	json_t *doc;
	int rc;

	if (buf == NULL) {
		snprintf(why, why_len, "out of memory");
		return -1;
	}
	while (len < STATE_MAX && (n = read(fd, buf + len, STATE_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	scrub_heap = true;
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	free(buf);
	rc = doc ? load_doc(doc, t, q, nq, q_max) : -1;
	json_decref(doc);
	scrub_heap = false;
	if (rc < 0)
		snprintf(why, why_len, "the previous template's worker table does not load");
	return rc;
}

/* ---- worker side ---- */

/* Waits for the template's answer to a request on sock (a datagram). */
static json_t *await_answer(int sock, size_t max)
{
	struct pollfd p = { sock, POLLIN, 0 };
	char *buf = malloc(max);
	json_t *j = NULL;
	ssize_t n;

	if (buf == NULL)
		return NULL;
	for (;;) {
		int r = poll(&p, 1, CLAIM_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n = recv(sock, buf, max, 0);
		if (n > 0 && (size_t)n < max)
			j = json_loadb(buf, (size_t)n, JSON_REJECT_DUPLICATES, NULL);
		break;
	}
	free(buf);
	return j;
}

int worker_claim(int sock, const struct sandcell_limits *l, char id[SESSION_ID_LEN + 1], char *why,
		 size_t why_len)
{
	struct sess_lim s = { l->wall_sec, l->cpu_sec, l->cell_wall_sec, l->cell_cpu_sec, l->idle_sec, l->memory };
	json_t *ans;
	const char *v;
	int rc = -1;

	if (send_json(sock, json_pack("{s:s,s:o}", "t", "session", "limits", lim_json(&s))) < 0)
		return -1;
	ans = await_answer(sock, MSG_MAX);
	if (json_is_true(json_object_get(ans, "ok")) &&
	    (v = json_string_value(json_object_get(ans, "id"))) != NULL && strlen(v) == SESSION_ID_LEN) {
		memcpy(id, v, SESSION_ID_LEN + 1);
		rc = 0;
	} else if (json_is_false(json_object_get(ans, "ok"))) {
		v = json_string_value(json_object_get(ans, "why"));
		snprintf(why, why_len, "%s", v ? v : "server busy");
		rc = 1;
	}
	json_decref(ans);
	return rc;
}

void worker_cell(int sock, enum sc_session_state state, uint64_t cells)
{
	char m[96];
	int n = state == SC_SESSION_ENDED
			? snprintf(m, sizeof(m), "{\"t\":\"ended\"}")
			: snprintf(m, sizeof(m), "{\"t\":\"cell\",\"running\":%s,\"cells\":%llu}",
				   state == SC_SESSION_RUNNING ? "true" : "false", (unsigned long long)cells);

	if (sock >= 0 && n > 0 && (size_t)n < sizeof(m))
		send(sock, m, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

char *worker_list(int sock)
{
	json_t *ans;
	char *s;

	if (send_json(sock, json_pack("{s:s}", "t", "list")) < 0)
		return NULL;
	ans = await_answer(sock, LIST_MAX);
	s = json_is_array(json_object_get(ans, "sessions")) ? json_dumps(ans, JSON_COMPACT) : NULL;
	json_decref(ans);
	return s;
}
