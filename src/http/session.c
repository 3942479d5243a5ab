/*
 * Sessions over HTTP (docs/http.md, "Sessions").  The front end holds each
 * session as a warm session (docs/warm.md, "Sessions"): a runner thread
 * sits in sandcell_run_remote() with a command pipe as the session's
 * stdin and an event pipe as its stdout; a pump thread writes the queued
 * commands and reads the events, each parsed strictly and re-serialized,
 * never passed through raw.  The HTTP calls only queue commands and hang
 * streams or waiters on the session; the pump answers them.
 *
 * One lock (mu) covers the registry and every session's state.  Nothing
 * that may call into libmicrohttpd runs under it, except events appended
 * to a stream nobody has suspended yet (a cell's stream while its handler
 * still holds it): a suspended stream is written by the pump only, with
 * the lock released.
 */
#include "server.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EVENT_MAX ((size_t)80 << 20)	/* one event line (an output is at most 32 MiB) */
#define QUEUE_MAX ((size_t)8 << 20)	/* events between cells kept for the next cell */
#define CELL_MAX_PENDING (48u << 20)	/* as a run's: a client this far behind is dropped */
#define FILE_ROOM (8u << 20)
#define ENDED_KEEP_SEC 3600.0		/* an ended session's report waits this long for its 410 */
#define ADD_MAX 64			/* files in one add call */
#define ADDS_MAX 4			/* add calls waiting at once on one session */

enum state { STARTING, READY, ENDED };

/* An add call waiting for its files' added or refused events.  Kept in
 * the session (no list of mallocs: gcc's analyzer loses those). */
struct add {
	bool used;
	struct ht_upload u;		/* the files, removed once answered */
	struct ht_stream *s;
	bool settled[ADD_MAX];
	json_t *why;			/* per file: null (added) or the refusal */
};

struct sess {
	char id[HT_ID_LEN + 1];
	long tenant;
	int refs;			/* the registry's, the runner's */
	bool listed;
	enum state state;
	double t0, ended_at;
	unsigned long cells;
	bool running, dying, acked;	/* a cell runs; it was killed; it was seen */
	char cell[65];
	char input_for[65];		/* a cell's pending input_request */
	char dataset_for[129];		/* a pending dataset_request's name */
	struct ht_stream *create_s, *cell_s, *delete_s;
	struct add adds[ADDS_MAX];
	char *queued;			/* NDJSON lines while no cell stream is attached */
	size_t queued_len;
	json_t *cmdq;			/* command lines not yet written (strings) */
	size_t cmd_off;			/* bytes of the first one written */
	bool closing;			/* close the command pipe once cmd is written */
	json_t *end;			/* the end event */
	int cmd_w, cmd_r, ev_r, ev_w, wake[2], cancel[2], null_fd;
	struct ht_upload u;		/* the start's inputs and the outbox (u.dir/out) */
	struct ht_request q;
	struct sess *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gone_cv = PTHREAD_COND_INITIALIZER;
static struct sess *registry;
static unsigned live;			/* sessions not ended: --max-sessions counts these */

/* ---- small helpers ---- */

static void wake(struct sess *x)
{
	if (write(x->wake[1], "w", 1) < 0) {
		/* full: the pump is awake already */
	}
}

static void cancel_sess(struct sess *x)
{
	if (write(x->cancel[1], "c", 1) < 0) {
		/* full: a cancel is pending already */
	}
}

/* With mu held: a command line for the pump. */
static int queue_cmd(struct sess *x, const char *line)
{
	if (x->closing || json_array_append_new(x->cmdq, json_pack("s+", line, "\n")) < 0)
		return -1;
	wake(x);
	return 0;
}

static void add_free(struct add *a)
{
	ht_stream_unref(a->s);
	ht_upload_free(&a->u, true);
	json_decref(a->why);
	a->used = false;
}

static void sess_free(struct sess *x)
{
	int fds[] = { x->cmd_w, x->cmd_r, x->ev_r, x->ev_w, x->wake[0], x->wake[1], x->cancel[0],
		      x->cancel[1], x->null_fd };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	for (size_t i = 0; i < ADDS_MAX; i++)
		if (x->adds[i].used)
			add_free(&x->adds[i]);
	ht_upload_free(&x->u, true);
	ht_request_free(&x->q);
	json_decref(x->end);
	json_decref(x->cmdq);
	free(x->queued);
	free(x);
}

/* With mu held. */
static void unref_locked(struct sess *x)
{
	if (--x->refs == 0)
		sess_free(x);
}

/* With mu held: out of the registry (a 404 from now on). */
static void forget(struct sess *x)
{
	if (!x->listed)
		return;
	for (struct sess **p = &registry; *p; p = &(*p)->next)
		if (*p == x) {
			*p = x->next;
			break;
		}
	x->listed = false;
	unref_locked(x);
}

/* With mu held: ended sessions whose 410 nobody came for. */
static void reap(double now)
{
	struct sess *x = registry, *next;

	for (; x; x = next) {
		next = x->next;
		if (x->state == ENDED && now - x->ended_at > ENDED_KEEP_SEC)
			forget(x);
	}
}

static struct sess *lookup(const char *id, long tenant)
{
	for (struct sess *x = registry; x; x = x->next)
		if (x->tenant == tenant && strcmp(x->id, id) == 0)
			return x;
	return NULL;
}

/* ---- answers ---- */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned code, char *body, unsigned retry,
			      const char *sid)
{
	struct MHD_Response *r = body ? MHD_create_response_from_buffer(strlen(body), body,
									 MHD_RESPMEM_MUST_FREE) : NULL;
	enum MHD_Result rc;
	char ra[16];

	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	if (sid)
		MHD_add_response_header(r, "X-Sandcell-Session", sid);
	if (retry) {
		snprintf(ra, sizeof(ra), "%u", retry);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	ht_metric_response(code);
	return rc;
}

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned code, const char *status,
			      const char *msg, const char *sid)
{
	return answer(c, code, ht_refusal_body(status, msg, NULL), 0, sid);
}

/* The end event's report as text (for a 410 or DELETE's answer). */
static char *end_body(const struct sess *x, bool refusal)
{
	json_t *rep = json_object_get(x->end, "report");
	const char *st = json_string_value(json_object_get(x->end, "status"));
	const char *why = json_string_value(json_object_get(x->end, "reason"));
	json_t *o;
	char *s;

	if (refusal)
		o = json_pack("{s:s,s:s,s:O}", "status", "session-ended", "message",
			      why ? why : "the session ended", "report", rep ? rep : json_null());
	else
		o = json_pack("{s:s,s:s,s:O}", "status", st ? st : "sandbox-error", "reason",
			      why ? why : "", "report", rep ? rep : json_null());
	s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return s;
}

static json_t *info(const struct sess *x, double now)
{
	const char *st = x->state == ENDED ? "ended" : x->running ? "running" : "idle";

	return json_pack("{s:s,s:s,s:I,s:f}", "session", x->id, "state", st, "cells",
			 (json_int_t)x->cells, "age_sec", now - x->t0);
}

enum MHD_Result ht_sessions_get(struct MHD_Connection *c, long tenant, const char *id)
{
	double now = ht_now();
	json_t *o = NULL, *arr;
	char *body;

	pthread_mutex_lock(&mu);
	reap(now);
	if (id != NULL) {
		struct sess *x = lookup(id, tenant);
		if (x == NULL) {
			pthread_mutex_unlock(&mu);
			return refuse(c, 404, "not-found", "no such session", NULL);
		}
		o = info(x, now);
	} else {
		arr = json_array();
		for (struct sess *x = registry; x; x = x->next)
			if (x->tenant == tenant)
				json_array_append_new(arr, info(x, now));
		o = json_pack("{s:o}", "sessions", arr);
	}
	pthread_mutex_unlock(&mu);
	body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return answer(c, 200, body, 0, id);
}

unsigned ht_sessions_live(void)
{
	unsigned n;

	pthread_mutex_lock(&mu);
	n = live;
	pthread_mutex_unlock(&mu);
	return n;
}

/* ---- the pump: commands out, events in ---- */

/* With mu held: where an event goes.  A cell's stream (ref'd for the
 * caller), or the queue between cells; dropped while a cell runs whose
 * client left (docs/http.md: its remaining events are dropped). */
static struct ht_stream *route_locked(struct sess *x, json_t *ev)
{
	char *line;

	if (x->cell_s != NULL && !ht_stream_gone(x->cell_s)) {
		ht_stream_ref(x->cell_s);
		return x->cell_s;
	}
	if (x->running)
		return NULL;
	line = json_dumps(ev, JSON_COMPACT);
	if (line != NULL && x->queued_len + strlen(line) + 1 <= QUEUE_MAX) {
		char *b = realloc(x->queued, x->queued_len + strlen(line) + 2);
		if (b != NULL) {
			x->queued = b;
			x->queued_len += (size_t)sprintf(b + x->queued_len, "%s\n", line);
		}
	}
	free(line);
	return NULL;
}

static void send_to(struct ht_stream *s, json_t *ev)
{
	if (s != NULL) {
		ht_stream_event(s, json_incref(ev));
		ht_stream_unref(s);
	}
}

/* The cell's outbox files as file events, before its done. */
static void emit_files(struct sess *x, struct ht_stream *s, json_t *done)
{
	char out[4200];
	json_t *f;
	size_t i;
	int dirfd;

	snprintf(out, sizeof(out), "%s/out", x->u.dir);
	dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dirfd < 0)
		return;
	json_array_foreach(json_object_get(done, "files"), i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));
		if (path == NULL || !ht_stream_room(s, FILE_ROOM))
			break;
		ht_stream_event(s, ht_file_event(dirfd, path, json_integer_value(json_object_get(f, "size")),
						 json_string_value(json_object_get(f, "sha256"))));
	}
	close(dirfd);
}

static void on_done(struct sess *x, json_t *ev)
{
	const char *st = json_string_value(json_object_get(ev, "status"));
	struct ht_stream *s = NULL;
	bool killed = strcmp(st, "killed") == 0, mine;

	pthread_mutex_lock(&mu);
	mine = x->running && strcmp(x->cell, json_string_value(json_object_get(ev, "id"))) == 0;
	if (mine) {
		x->running = false;
		x->dying = killed;
		x->input_for[0] = x->dataset_for[0] = '\0';
		s = x->cell_s;
		if (s != NULL && ht_stream_gone(s))
			s = NULL;
		if (s != NULL)
			ht_stream_ref(s);
		if (!killed && x->cell_s != NULL) {
			/* The next cell may start once done is out. */
			ht_stream_unref(x->cell_s);
			x->cell_s = NULL;
		}
	} else {
		s = route_locked(x, ev);
	}
	pthread_mutex_unlock(&mu);
	if (mine)
		ht_metric_cell(st);
	if (s != NULL && mine)
		emit_files(x, s, ev);
	if (s != NULL)
		ht_stream_event(s, json_incref(ev));
	if (s != NULL && mine && !killed)
		ht_stream_end(s);
	ht_stream_unref(s);
}

/* With mu held: an add waiter's file of this kind and name, unsettled;
 * with name NULL, the oldest unsettled file (a refused add line names
 * nothing).  The waiter comes back in *out. */
static int add_slot(struct sess *x, const char *kind, const char *name, struct add **out)
{
	for (size_t w = 0; w < ADDS_MAX; w++) {
		struct add *a = &x->adds[w];
		for (size_t i = 0; a->used && i < a->u.n_files; i++) {
			const struct ht_file *f = &a->u.files[i];
			bool k = kind == NULL || strcmp(kind, f->kind == HP_DATASET ? "dataset" : "input") == 0;
			if (!a->settled[i] && k && (name == NULL || strcmp(name, f->name) == 0)) {
				*out = a;
				return (int)i;
			}
		}
	}
	return -1;
}

/* Answers a waiter taken out of its session (mu released). */
static void add_answer(struct add *a, unsigned code, char *body)
{
	ht_stream_fail(a->s, code, body ? body : "{}", 0);
	free(body);
	add_free(a);
}

/* With mu held: settles file i; once all are, the waiter is moved to
 * *out with its answer's body (true), to be answered with mu released. */
static bool add_settle(struct add *a, int i, const char *why, struct add *out, char **body)
{
	json_t *added = json_array(), *refused = json_array(), *o;

	a->settled[i] = true;
	json_array_set_new(a->why, (size_t)i, why ? json_string(why) : json_null());
	for (size_t k = 0; k < a->u.n_files; k++)
		if (!a->settled[k])
			return json_decref(added), json_decref(refused), false;
	for (size_t k = 0; k < a->u.n_files; k++) {
		json_t *w = json_array_get(a->why, k);
		if (json_is_string(w))
			json_array_append_new(refused, json_pack("{s:s,s:O}", "name", a->u.files[k].name,
								 "reason", w));
		else
			json_array_append_new(added, json_string(a->u.files[k].name));
	}
	o = json_pack("{s:o,s:o}", "added", added, "refused", refused);
	*body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	*out = *a;
	a->used = false;
	return true;
}

/* added, or refused: an add's answer goes to its waiter; a refused run
 * (before any event of the cell) ends the cell; the rest is routed. */
static void on_answer(struct sess *x, json_t *ev, bool added)
{
	const char *name = json_string_value(json_object_get(ev, "name"));
	const char *kind = json_string_value(json_object_get(ev, "kind"));
	const char *id = json_string_value(json_object_get(ev, "id"));
	struct ht_stream *s = NULL;
	struct add *a = NULL, done;
	char *body = NULL;
	bool end_cell = false, answered = false;
	int i;

	pthread_mutex_lock(&mu);
	if (name != NULL && strcmp(name, x->dataset_for) == 0)
		x->dataset_for[0] = '\0';
	i = name != NULL || id == NULL ? add_slot(x, kind, name, &a) : -1;
	if (i >= 0) {
		answered = add_settle(a, i, added ? NULL : json_string_value(json_object_get(ev, "reason")),
				      &done, &body);
	} else {
		end_cell = !added && name == NULL && id != NULL && x->running && !x->acked &&
			   strcmp(id, x->cell) == 0;
		s = route_locked(x, ev);
		if (end_cell) {
			x->running = false;
			if (x->cell_s != NULL)
				ht_stream_unref(x->cell_s);
			x->cell_s = NULL;
		}
	}
	pthread_mutex_unlock(&mu);
	if (answered)
		add_answer(&done, 200, body);
	if (s != NULL) {
		ht_stream_event(s, json_incref(ev));
		if (end_cell)
			ht_stream_end(s);
		ht_stream_unref(s);
	}
}

/* A refusal's HTTP code from a session's end before it was ready
 * (docs/http.md, "Errors and HTTP codes"). */
static unsigned start_code(const char *status, unsigned *retry)
{
	*retry = 0;
	if (strcmp(status, "usage-error") == 0)
		return 400;
	if (strcmp(status, "busy") == 0 || strcmp(status, "unreachable") == 0)
		return *retry = 1, 503;
	return 500;
}

struct parting {
	struct ht_stream *cell, *create, *del;
	struct add adds[ADDS_MAX];
};

/* With mu held: the session has ended; who is to be told. */
static void end_locked(struct sess *x, json_t *ev, struct parting *p)
{
	x->end = json_incref(ev);
	x->state = ENDED;
	x->ended_at = ht_now();
	x->running = x->dying = false;
	p->cell = x->cell_s;
	p->create = x->create_s;
	p->del = x->delete_s;
	for (size_t i = 0; i < ADDS_MAX; i++) {
		p->adds[i] = x->adds[i];
		x->adds[i].used = false;
	}
	x->cell_s = x->create_s = x->delete_s = NULL;
	x->closing = true;
	live--;
	pthread_cond_broadcast(&gone_cv);
}

static void on_end(struct sess *x, json_t *ev)
{
	static const struct parting none;
	struct parting p = none;
	const char *st = json_string_value(json_object_get(ev, "status"));
	unsigned retry, code = start_code(st, &retry);
	char *body;

	pthread_mutex_lock(&mu);
	if (x->state == ENDED) {
		pthread_mutex_unlock(&mu);
		return;
	}
	end_locked(x, ev, &p);
	body = p.del != NULL ? end_body(x, false) : NULL;
	pthread_mutex_unlock(&mu);
	ht_metric_gauge(HG_SESSIONS, -1);
	ht_auth_release(x->tenant);
	if (p.cell != NULL) {
		ht_stream_event(p.cell, json_incref(ev));
		ht_stream_end(p.cell);
		ht_stream_unref(p.cell);
	}
	if (p.create != NULL) {
		char *r = ht_refusal_body(st, json_string_value(json_object_get(ev, "reason")),
					  NULL);
		json_t *o = r ? json_loads(r, 0, NULL) : NULL;
		char *b;
		json_object_set(o, "report", json_object_get(ev, "report"));
		b = o ? json_dumps(o, JSON_COMPACT) : NULL;
		ht_stream_fail(p.create, code, b ? b : "{}", retry);
		ht_stream_unref(p.create);
		json_decref(o);
		free(r);
		free(b);
	}
	if (p.del != NULL) {
		ht_stream_fail(p.del, 200, body ? body : "{}", 0);
		ht_stream_unref(p.del);
	}
	for (size_t i = 0; i < ADDS_MAX; i++)
		if (p.adds[i].used)
			add_answer(&p.adds[i], 410, end_body(x, true));
	free(body);
	if (p.del != NULL) {
		/* DELETE asked: its answer was the report, nothing is owed. */
		pthread_mutex_lock(&mu);
		forget(x);
		pthread_mutex_unlock(&mu);
	}
}

static void on_ready(struct sess *x)
{
	struct ht_stream *s;
	char body[96];

	pthread_mutex_lock(&mu);
	if (x->state == STARTING)
		x->state = READY;
	s = x->create_s;
	x->create_s = NULL;
	pthread_mutex_unlock(&mu);
	if (s == NULL)
		return;
	/* The connection is suspended: MHD would not see it hang up. */
	if (ht_stream_gone(s) || ht_stream_client_gone(s, 0)) {
		/* Nobody learnt its id: nobody could use or close it. */
		ht_log("session %.8s...: its creator left before it was ready; cancelled", x->id);
		cancel_sess(x);
	} else {
		snprintf(body, sizeof(body), "{\"session\":\"%s\",\"ready\":true}", x->id);
		ht_stream_fail(s, 201, body, 0);
	}
	ht_stream_unref(s);
}

static void on_event(struct sess *x, json_t *ev, const char *kind)
{
	const char *id = json_string_value(json_object_get(ev, "id"));
	struct ht_stream *s;

	if (!strcmp(kind, "session"))
		return; /* the warm server's own id: not the client's business */
	if (!strcmp(kind, "ready"))
		return on_ready(x);
	if (!strcmp(kind, "done"))
		return on_done(x, ev);
	if (!strcmp(kind, "end"))
		return on_end(x, ev);
	if (!strcmp(kind, "added") || !strcmp(kind, "refused"))
		return on_answer(x, ev, kind[0] == 'a');
	pthread_mutex_lock(&mu);
	if (id != NULL && x->running && strcmp(id, x->cell) == 0) {
		x->acked = true;
		if (!strcmp(kind, "input_request"))
			snprintf(x->input_for, sizeof(x->input_for), "%s", id);
		if (!strcmp(kind, "dataset_request"))
			snprintf(x->dataset_for, sizeof(x->dataset_for), "%s",
				 json_string_value(json_object_get(ev, "name")));
	}
	s = route_locked(x, ev);
	pthread_mutex_unlock(&mu);
	send_to(s, ev);
}

/* One event line: parsed and checked (ht_event_parse), re-serialized by
 * whoever sends it on. */
static void on_line(struct sess *x, const char *line, size_t n)
{
	const char *kind = NULL;
	json_t *ev = ht_event_parse(line, n, &kind);

	if (ev != NULL)
		on_event(x, ev, kind);
	else if (n > 0)
		ht_log("session %.8s...: an event that does not parse was dropped", x->id);
	json_decref(ev);
}

/* With mu held: writes what it can of the queued commands (the pipe is
 * non-blocking) and closes the pipe after the last one of a close. */
static void write_cmds(struct sess *x)
{
	while (x->cmd_w >= 0 && json_array_size(x->cmdq) > 0) {
		json_t *line = json_array_get(x->cmdq, 0);
		ssize_t w = write(x->cmd_w, json_string_value(line) + x->cmd_off,
				  json_string_length(line) - x->cmd_off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return;
		if (w > 0)
			x->cmd_off += (size_t)w;
		if (w <= 0 || x->cmd_off == json_string_length(line)) {
			/* written, or the session is gone (its end event says so) */
			json_array_remove(x->cmdq, 0);
			x->cmd_off = 0;
		}
	}
	if (x->closing && x->cmd_w >= 0 && json_array_size(x->cmdq) == 0) {
		close(x->cmd_w);
		x->cmd_w = -1;
	}
}

/* Splits what was read into lines; false once a line exceeds EVENT_MAX
 * (the stream is broken: the session is cancelled). */
static bool take_lines(struct sess *x, char *buf, size_t *len)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(buf + start, '\n', *len - start)) != NULL) {
		on_line(x, buf + start, (size_t)(nl - (buf + start)));
		start = (size_t)(nl - buf) + 1;
	}
	memmove(buf, buf + start, *len - start);
	*len -= start;
	return *len <= EVENT_MAX;
}

static void *pump_main(void *arg)
{
	struct sess *x = arg;
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap), junk[64];
	bool broken = buf == NULL;

	for (;;) {
		struct pollfd p[3] = { { x->ev_r, POLLIN, 0 }, { x->wake[0], POLLIN, 0 }, { -1, POLLOUT, 0 } };
		ssize_t n;

		pthread_mutex_lock(&mu);
		write_cmds(x);
		if (x->cmd_w >= 0 && json_array_size(x->cmdq) > 0)
			p[2].fd = x->cmd_w;
		pthread_mutex_unlock(&mu);
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			while (read(x->wake[0], junk, sizeof(junk)) > 0)
				;
		if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (!broken && len + (1 << 16) > cap) {
			char *b = realloc(buf, cap * 2);
			broken = b == NULL;
			buf = b ? b : buf;
			cap = b ? cap * 2 : cap;
		}
		n = broken ? read(x->ev_r, junk, sizeof(junk)) : read(x->ev_r, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (broken)
			continue;
		len += (size_t)n;
		if (!take_lines(x, buf, &len)) {
			ht_log("session %.8s...: an event line over %zu bytes: cancelled", x->id, EVENT_MAX);
			broken = true;
			cancel_sess(x);
		}
	}
	free(buf);
	return NULL;
}

/* ---- the runner: the session on the warm server ---- */

static void configure(struct sess *x, struct sandcell_config *cfg, struct sandcell_input *in,
		      char *outdir, size_t outsize)
{
	size_t n = 0;

	sandcell_config_init(cfg);
	cfg->python = ht_opt.python;
	cfg->values_json = x->q.values;
	cfg->limits = x->q.limits;
	if (cfg->limits.output_bytes > ht_opt.max_output)
		cfg->limits.output_bytes = ht_opt.max_output;
	cfg->flags = SANDCELL_SESSION | SANDCELL_CELL |
		     (x->q.allow_reduced ? SANDCELL_ALLOW_REDUCED : 0);
	cfg->stdin_fd = x->cmd_r;
	cfg->stdout_fd = x->ev_w;
	cfg->stderr_fd = x->null_fd;
	cfg->cancel_fd = x->cancel[0];
	for (size_t i = 0; i < x->u.n_files; i++, n++) {
		in[n].name = x->u.files[i].name;
		in[n].path = x->u.files[i].path;
		in[n].flags = x->u.files[i].kind == HP_DATASET ? SANDCELL_INPUT_DATASET : 0;
	}
	cfg->inputs = in;
	cfg->n_inputs = n;
	snprintf(outdir, outsize, "%s/out", x->u.dir);
	cfg->output_dir = outdir;
}

/* The session's end as the answer frame has it, when no end event came
 * (a refusal writes none; a server that hung up wrote none). */
static void end_from_report(struct sess *x, const char *report, const char *why)
{
	json_t *rep = report ? json_loads(report, JSON_ALLOW_NUL, NULL) : NULL;
	const char *st = json_string_value(json_object_get(rep, "status"));
	const char *reason = json_string_value(json_object_get(rep, "reason"));
	json_t *ev;

	if (report != NULL && strcmp(st ? st : "", "unreachable") != 0)
		ht_warm_answered();
	if (json_is_string(json_object_get(rep, "error")) && json_string_length(json_object_get(rep, "error")))
		reason = json_string_value(json_object_get(rep, "error"));
	ev = json_pack("{s:s,s:s,s:s,s:O}", "ev", "end", "status", st ? st : "sandbox-error", "reason",
		       reason ? reason : why, "report", rep ? rep : json_null());
	if (ev != NULL)
		on_end(x, ev);
	json_decref(ev);
	json_decref(rep);
}

static void *runner_main(void *arg)
{
	struct sess *x = arg;
	struct sandcell_input *in = calloc(x->u.n_files + 1, sizeof(*in));
	struct sandcell_error e = { 0, "" };
	struct sandcell_config cfg;
	char outdir[4200], *report = NULL;
	int exit_code, rc = -1;
	pthread_t pump;
	bool pumping = pthread_create(&pump, NULL, pump_main, x) == 0;

	if (in != NULL && pumping) {
		configure(x, &cfg, in, outdir, sizeof(outdir));
		rc = sandcell_run_remote(ht_opt.socket, &cfg, &report, &exit_code, &e);
	}
	/* Our copies of the session's ends: the pump sees EOF once the
	 * warm server's are closed too. */
	close(x->ev_w);
	close(x->cmd_r);
	x->ev_w = x->cmd_r = -1;
	if (pumping)
		pthread_join(pump, NULL);
	end_from_report(x, rc == 0 ? report : NULL, rc == 0 ? "the warm server's answer" :
			in && pumping ? e.msg : "out of resources");
	free(report);
	free(in);
	pthread_mutex_lock(&mu);
	unref_locked(x);
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* ---- POST /v1/sessions ---- */

static int open_pipes(struct sess *x)
{
	int cmd[2], ev[2];

	if (pipe2(cmd, O_CLOEXEC) < 0)
		return -1;
	x->cmd_r = cmd[0], x->cmd_w = cmd[1];
	if (pipe2(ev, O_CLOEXEC) < 0)
		return -1;
	x->ev_r = ev[0], x->ev_w = ev[1];
	/* Commands are written by the pump, which must never block on them. */
	if (fcntl(x->cmd_w, F_SETFL, O_NONBLOCK) < 0 || pipe2(x->wake, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(x->cancel, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	x->null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	return x->null_fd < 0 ? -1 : 0;
}

static struct sess *sess_new(struct ht_call *k)
{
	struct sess *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->cmd_w = x->cmd_r = x->ev_r = x->ev_w = x->null_fd = -1;
	x->wake[0] = x->wake[1] = x->cancel[0] = x->cancel[1] = -1;
	x->u.part_fd = -1;
	x->refs = 1;
	x->tenant = k->tenant;
	x->t0 = ht_now();
	x->cmdq = json_array();
	if (x->cmdq == NULL || ht_new_id(x->id) < 0 || open_pipes(x) < 0 ||
	    (x->create_s = ht_stream_new(k->c, 4096)) == NULL) {
		sess_free(x);
		return NULL;
	}
	ht_stream_session(x->create_s, x->id);
	return x;
}

/* Out of the registry, before anyone could have seen it. */
static void unlist(struct sess *x)
{
	pthread_mutex_lock(&mu);
	for (struct sess **p = &registry; *p; p = &(*p)->next)
		if (*p == x) {
			*p = x->next;
			break;
		}
	pthread_mutex_unlock(&mu);
}

static bool files_ok(const struct ht_upload *u, enum ht_part_kind a, enum ht_part_kind b)
{
	for (size_t i = 0; i < u->n_files; i++)
		if (u->files[i].kind != a && u->files[i].kind != b)
			return false;
	return true;
}

enum MHD_Result ht_session_start(struct ht_call *k, struct ht_request *q)
{
	struct sess *x;
	pthread_attr_t at;
	pthread_t th;
	bool full;

	if (!files_ok(k->u, HP_INPUT, HP_DATASET))
		return refuse(k->c, 400, "usage-error", "a session takes input:NAME and dataset:NAME "
			      "parts (no stdin: cells come as commands)", NULL);
	pthread_mutex_lock(&mu);
	reap(ht_now());
	full = live >= ht_opt.max_sessions;
	if (!full)
		live++; /* held for this one from here */
	pthread_mutex_unlock(&mu);
	if (full) {
		ht_metric_reject("sessions");
		return answer(k->c, 503, ht_refusal_body("busy", "the front end holds --max-sessions "
							 "sessions", NULL), 1, NULL);
	}
	x = sess_new(k);
	if (x == NULL)
		goto fail;
	x->u = *k->u;
	x->q = *q;
	memset(k->u, 0, sizeof(*k->u));
	k->u->part_fd = -1;
	memset(q, 0, sizeof(*q));
	x->refs = 2; /* the registry's and the runner's */
	ht_stream_ref(x->create_s); /* the connection's, before the runner may answer */
	/* Listed first: the id may be in a client's hands once it runs. */
	pthread_mutex_lock(&mu);
	x->listed = true;
	x->next = registry;
	registry = x;
	pthread_mutex_unlock(&mu);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, runner_main, x) != 0) {
		pthread_attr_destroy(&at);
		unlist(x);
		ht_stream_unref(x->create_s);
		ht_stream_unref(x->create_s);
		sess_free(x);
		goto fail;
	}
	pthread_attr_destroy(&at);
	k->s = x->create_s;
	k->slot = false; /* the session's until it ends */
	ht_metric_gauge(HG_SESSIONS, 1);
	ht_log("session %.8s... started for token '%s'", x->id, ht_auth_name(k->tenant));
	return ht_stream_answer(k->s);
fail:
	pthread_mutex_lock(&mu);
	live--;
	pthread_mutex_unlock(&mu);
	return refuse(k->c, 500, "sandbox-error", "cannot set up the session (out of resources)", NULL);
}

/* ---- the calls on a session (mu held; a reply, or k->s) ---- */

struct reply {
	unsigned code;
	char *body;
};

static void say(struct reply *r, unsigned code, const char *status, const char *msg)
{
	r->code = code;
	r->body = status ? ht_refusal_body(status, msg, NULL) : strdup(msg);
}

static struct ht_stream *session_stream(struct ht_call *k, struct sess *x, size_t max_pending)
{
	struct ht_stream *s = ht_stream_new(k->c, max_pending);

	if (s != NULL)
		ht_stream_session(s, x->id);
	return s;
}

static void cell(struct ht_call *k, struct sess *x, struct reply *r)
{
	struct sandcell_error e = { 0, "" };
	char id[65], *cmd;
	struct ht_stream *s;

	if (x->running || x->dying)
		return say(r, 409, "usage-error", x->dying ? "the session is ending"
			   : "a cell is running in this session");
	cmd = ht_cell_command(k->u->request ? k->u->request : "", k->u->request_len, x->cells + 1, id, &e);
	if (cmd == NULL)
		return say(r, 400, "usage-error", e.msg);
	s = session_stream(k, x, CELL_MAX_PENDING);
	if (s == NULL || queue_cmd(x, cmd) < 0) {
		free(cmd);
		ht_stream_unref(s);
		return say(r, 500, "sandbox-error", "out of resources");
	}
	free(cmd);
	x->cells++;
	x->running = true;
	x->acked = false;
	snprintf(x->cell, sizeof(x->cell), "%s", id);
	/* Not suspended yet: appending cannot call into libmicrohttpd. */
	ht_stream_start(s);
	if (x->queued_len > 0)
		ht_stream_lines(s, x->queued, x->queued_len);
	free(x->queued);
	x->queued = NULL;
	x->queued_len = 0;
	ht_stream_ref(s);
	x->cell_s = s;
	k->s = s;
}

static void input(struct ht_call *k, struct sess *x, struct reply *r)
{
	struct sandcell_error e = { 0, "" };
	char *cmd = ht_input_command(k->u->request ? k->u->request : "", k->u->request_len, &e);
	json_t *o = cmd ? json_loads(cmd, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(o, "id"));

	if (cmd == NULL)
		say(r, 400, "usage-error", e.msg);
	else if (id == NULL || !x->running || strcmp(id, x->input_for) != 0)
		say(r, 409, "usage-error", "no input request of that cell is pending");
	else if (queue_cmd(x, cmd) < 0)
		say(r, 500, "sandbox-error", "out of resources");
	else {
		x->input_for[0] = '\0';
		say(r, 202, NULL, "{\"answered\":true}");
	}
	json_decref(o);
	free(cmd);
}

/* {"name", "refused"}: a pending dataset_request refused. */
static void refuse_dataset(struct ht_call *k, struct sess *x, struct reply *r)
{
	struct sandcell_error e = { 0, "" };
	char name[129], *cmd = ht_refuse_command(k->u->request ? k->u->request : "", k->u->request_len,
						 name, &e);
	json_t *o = cmd ? json_loads(cmd, 0, NULL) : NULL, *ans;

	if (cmd == NULL)
		say(r, 400, "usage-error", e.msg);
	else if (!x->running || strcmp(name, x->dataset_for) != 0)
		say(r, 409, "usage-error", "no dataset request of that name is pending");
	else if (queue_cmd(x, cmd) < 0)
		say(r, 500, "sandbox-error", "out of resources");
	else {
		x->dataset_for[0] = '\0';
		ans = json_pack("{s:[],s:[{s:s,s:O}]}", "added", "refused", "name", name, "reason",
				json_object_get(o, "refused"));
		r->code = 200;
		r->body = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
		json_decref(ans);
	}
	json_decref(o);
	free(cmd);
}

/* multipart input:NAME or dataset:NAME parts: each an add command; the
 * answer waits for every one's added or refused event. */
static void add_files(struct ht_call *k, struct sess *x, struct reply *r, bool dataset)
{
	enum ht_part_kind kind = dataset ? HP_DATASET : HP_INPUT;
	struct add *a = NULL;

	if (k->u->n_files == 0 || k->u->n_files > ADD_MAX || !files_ok(k->u, kind, kind))
		return say(r, 400, "usage-error", dataset ? "1 to 64 dataset:NAME parts"
			   : "1 to 64 input:NAME parts");
	for (size_t i = 0; i < ADDS_MAX && a == NULL; i++)
		a = x->adds[i].used ? NULL : &x->adds[i];
	if (a == NULL)
		return say(r, 409, "usage-error", "4 add calls wait on this session already");
	memset(a, 0, sizeof(*a));
	a->why = json_array();
	for (size_t i = 0; a->why != NULL && i < k->u->n_files; i++)
		json_array_append_new(a->why, json_null());
	if (a->why == NULL || (a->s = session_stream(k, x, 4096)) == NULL) {
		json_decref(a->why);
		return say(r, 500, "sandbox-error", "out of resources");
	}
	a->used = true;
	a->u = *k->u; /* the files stay until their adds are answered */
	memset(k->u, 0, sizeof(*k->u));
	k->u->part_fd = -1;
	for (size_t i = 0; i < a->u.n_files; i++) {
		const struct ht_file *f = &a->u.files[i];
		char *cmd = ht_add_command(dataset, f->name, f->path);
		if (cmd == NULL || queue_cmd(x, cmd) < 0) {
			a->settled[i] = true;
			json_array_set_new(a->why, i, json_string("the front end could not send it"));
		} else if (dataset && strcmp(f->name, x->dataset_for) == 0) {
			x->dataset_for[0] = '\0';
		}
		free(cmd);
	}
	ht_stream_ref(a->s);
	k->s = a->s;
}

static void close_session(struct ht_call *k, struct sess *x, struct reply *r)
{
	if (x->delete_s != NULL)
		return say(r, 409, "usage-error", "the session is being closed already");
	if ((x->delete_s = session_stream(k, x, 4096)) == NULL)
		return say(r, 500, "sandbox-error", "out of resources");
	/* close, then EOF: the session stops after the running cell, and
	 * is killed 5 s later if that cell does not end (docs/sessions.md). */
	queue_cmd(x, "{\"op\":\"close\"}");
	x->closing = true;
	wake(x);
	ht_stream_ref(x->delete_s);
	k->s = x->delete_s;
}

static void dispatch(struct ht_call *k, struct sess *x, struct reply *r)
{
	switch (k->route->kind) {
	case HR_SESSION_CELLS: return cell(k, x, r);
	case HR_SESSION_INPUT: return input(k, x, r);
	case HR_SESSION_INPUTS: return add_files(k, x, r, false);
	case HR_SESSION_DATASETS:
		if (k->u->json)
			return refuse_dataset(k, x, r);
		return add_files(k, x, r, true);
	case HR_SESSION: return close_session(k, x, r);
	case HR_SESSION_INTERRUPT:
		if (queue_cmd(x, "{\"op\":\"interrupt\"}") < 0)
			return say(r, 409, "usage-error", "the session is being closed");
		return say(r, 202, NULL, "{\"interrupted\":true}");
	default: return say(r, 404, "not-found", "no such path");
	}
}

enum MHD_Result ht_session_call(struct ht_call *k)
{
	struct reply r = { 0, NULL };
	char sid[HT_ID_LEN + 1] = "";
	struct sess *x;

	pthread_mutex_lock(&mu);
	x = lookup(k->route->id, k->tenant);
	if (x == NULL) {
		pthread_mutex_unlock(&mu);
		return refuse(k->c, 404, "not-found", "no such session", NULL);
	}
	memcpy(sid, x->id, sizeof(sid));
	if (x->state == ENDED) {
		r.code = 410;
		r.body = end_body(x, true);
		forget(x); /* told once: then forgotten (docs/http.md) */
	} else {
		dispatch(k, x, &r);
	}
	pthread_mutex_unlock(&mu);
	if (k->s != NULL) {
		free(r.body); /* a stream answers: no reply was made */
		return ht_stream_answer(k->s);
	}
	return answer(k->c, r.code, r.body, 0, sid);
}

void ht_sessions_stop(double grace)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += (time_t)grace;
	pthread_mutex_lock(&mu);
	for (struct sess *x = registry; x; x = x->next)
		if (x->state != ENDED)
			cancel_sess(x);
	while (live > 0)
		if (pthread_cond_timedwait(&gone_cv, &mu, &t) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&mu);
}
