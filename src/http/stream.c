/*
 * A response produced by a worker thread while MHD sends it (server.h).
 * The one lock here is the stream's; it is held across MHD_suspend_
 * connection (so a producer never sees "suspended" before it is true) and
 * never across MHD_resume_connection (MHD may call back into us).
 */
#include "server.h"

#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct ht_stream {
	pthread_mutex_t mu;
	pthread_cond_t drained;
	int refs;
	struct MHD_Connection *conn;
	int client_fd;
	bool suspended, closed, started, done, behind;
	char *buf;
	size_t len, off, cap, max_pending;
	unsigned code, retry_after;
	char *body;
	char session[HT_ID_LEN + 1];	/* X-Sandcell-Session, when a session's */
	char run[HT_ID_LEN + 1];	/* X-Sandcell-Run, when a one-shot run's */
	void (*on_gone)(void *);
	void *gone_arg;
};

struct ht_stream *ht_stream_new(struct MHD_Connection *c, size_t max_pending)
{
	struct ht_stream *s = calloc(1, sizeof(*s));
	const union MHD_ConnectionInfo *ci;

	if (s == NULL)
		return NULL;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->drained, NULL);
	s->refs = 1;
	s->conn = c;
	s->max_pending = max_pending;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	s->client_fd = ci ? ci->connect_fd : -1;
	return s;
}

void ht_stream_ref(struct ht_stream *s)
{
	pthread_mutex_lock(&s->mu);
	s->refs++;
	pthread_mutex_unlock(&s->mu);
}

void ht_stream_unref(struct ht_stream *s)
{
	int left;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	left = --s->refs;
	pthread_mutex_unlock(&s->mu);
	if (left > 0)
		return;
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->drained);
	free(s->buf);
	free(s->body);
	free(s);
}

void ht_stream_on_gone(struct ht_stream *s, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&s->mu);
	s->on_gone = fn;
	s->gone_arg = arg;
	pthread_mutex_unlock(&s->mu);
}

/* With the lock held: whether the producer must resume the connection
 * (it is suspended and there is something for the handler or reader). */
static bool take_resume(struct ht_stream *s)
{
	if (!s->suspended || s->closed || !(s->started || s->done))
		return false;
	s->suspended = false;
	return true;
}

static void kick(struct ht_stream *s, bool resume)
{
	if (resume)
		MHD_resume_connection(s->conn);
}

static bool append(struct ht_stream *s, const char *p, size_t n)
{
	if (s->len + n + 1 > s->cap && s->off > 0) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	}
	if (s->len + n + 1 > s->cap) {
		size_t cap = (s->len + n + 1) * 2;
		char *b = realloc(s->buf, cap);
		if (b == NULL)
			return false;
		s->buf = b;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->buf[s->len + n] = '\n';
	s->len += n + 1;
	return true;
}

void ht_stream_session(struct ht_stream *s, const char *id)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->session, sizeof(s->session), "%s", id);
	pthread_mutex_unlock(&s->mu);
}

void ht_stream_run(struct ht_stream *s, const char *id)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->run, sizeof(s->run), "%s", id);
	pthread_mutex_unlock(&s->mu);
}

/* Appends text that ends with a newline (n > 0): one or more lines. */
static bool add_text(struct ht_stream *s, const char *text, size_t n)
{
	void (*gone)(void *) = NULL;
	bool ok = false, resume = false;

	pthread_mutex_lock(&s->mu);
	if (!s->closed && !s->behind && !s->done) {
		/* Checked before this line: one large event (a file) after
		 * ht_stream_room is fine, a client not reading is not. */
		ok = s->len - s->off <= s->max_pending && append(s, text, n - 1);
		if (!ok) {
			/* A client this far behind is not reading: stop
			 * producing for it rather than buffer without end. */
			s->behind = true;
			gone = s->on_gone;
		}
		resume = take_resume(s);
	}
	pthread_mutex_unlock(&s->mu);
	if (gone)
		gone(s->gone_arg);
	kick(s, resume);
	return ok;
}

bool ht_stream_event(struct ht_stream *s, json_t *ev)
{
	char *line = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
	size_t n = line ? strlen(line) : 0;
	bool ok;

	json_decref(ev);
	if (line == NULL)
		return !ht_stream_gone(s);
	line[n] = '\n'; /* append() writes the newline itself: n + 1 bytes, the last one dropped */
	ok = add_text(s, line, n + 1);
	free(line);
	return ok;
}

bool ht_stream_lines(struct ht_stream *s, const char *lines, size_t n)
{
	return n == 0 || add_text(s, lines, n);
}

void ht_stream_start(struct ht_stream *s)
{
	bool resume;

	pthread_mutex_lock(&s->mu);
	s->started = true;
	resume = take_resume(s);
	pthread_mutex_unlock(&s->mu);
	kick(s, resume);
}

bool ht_stream_room(struct ht_stream *s, size_t limit)
{
	bool ok;

	pthread_mutex_lock(&s->mu);
	while (!s->closed && !s->behind && s->len - s->off >= limit)
		pthread_cond_wait(&s->drained, &s->mu);
	ok = !s->closed && !s->behind;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

void ht_stream_fail(struct ht_stream *s, unsigned code, const char *body, unsigned retry_after)
{
	bool resume;

	pthread_mutex_lock(&s->mu);
	if (!s->started) {
		s->code = code;
		s->retry_after = retry_after;
		s->body = strdup(body ? body : "{}");
		s->len = s->off = 0;
	}
	s->done = true;
	resume = take_resume(s);
	pthread_mutex_unlock(&s->mu);
	kick(s, resume);
}

void ht_stream_end(struct ht_stream *s)
{
	bool resume;

	pthread_mutex_lock(&s->mu);
	s->done = true;
	resume = take_resume(s);
	pthread_mutex_unlock(&s->mu);
	kick(s, resume);
}

bool ht_stream_started(struct ht_stream *s)
{
	bool st;

	pthread_mutex_lock(&s->mu);
	st = s->started;
	pthread_mutex_unlock(&s->mu);
	return st;
}

bool ht_stream_gone(struct ht_stream *s)
{
	bool g;

	pthread_mutex_lock(&s->mu);
	g = s->closed || s->behind;
	pthread_mutex_unlock(&s->mu);
	return g;
}

int ht_stream_client_fd(struct ht_stream *s)
{
	int fd;

	pthread_mutex_lock(&s->mu);
	fd = s->closed ? -1 : s->client_fd;
	pthread_mutex_unlock(&s->mu);
	return fd;
}

bool ht_stream_client_gone(struct ht_stream *s, int timeout_ms)
{
	struct pollfd p = { -1, POLLRDHUP, 0 };

	pthread_mutex_lock(&s->mu);
	/* Only while MHD holds the connection: after closed the fd may be
	 * another connection's. */
	if (!s->closed)
		p.fd = s->client_fd;
	pthread_mutex_unlock(&s->mu);
	if (p.fd < 0)
		return ht_stream_gone(s);
	return poll(&p, 1, timeout_ms) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct ht_stream *s = cls;
	size_t n;

	(void)pos;
	pthread_mutex_lock(&s->mu);
	if (s->len > s->off) {
		n = s->len - s->off < max ? s->len - s->off : max;
		memcpy(buf, s->buf + s->off, n);
		s->off += n;
		if (s->off == s->len)
			s->off = s->len = 0;
		pthread_cond_broadcast(&s->drained);
		pthread_mutex_unlock(&s->mu);
		return (ssize_t)n;
	}
	if (s->done || s->behind) {
		bool err = s->behind;
		pthread_mutex_unlock(&s->mu);
		return err ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
	}
	/* Nothing yet: MHD would call again at once, so wait suspended. */
	s->suspended = true;
	MHD_suspend_connection(s->conn);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void reader_free(void *cls)
{
	ht_stream_unref(cls);
}

static enum MHD_Result queue_json(struct MHD_Connection *c, unsigned code, const char *body,
				  unsigned retry_after, const char *session)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
								 MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc;
	char ra[16];

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (session != NULL && session[0] != '\0')
		MHD_add_response_header(r, "X-Sandcell-Session", session);
	if (retry_after) {
		snprintf(ra, sizeof(ra), "%u", retry_after);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	ht_metric_response(code);
	return rc;
}

enum MHD_Result ht_stream_answer(struct ht_stream *s)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	pthread_mutex_lock(&s->mu);
	if (!s->started && !s->done) {
		s->suspended = true;
		MHD_suspend_connection(s->conn);
		pthread_mutex_unlock(&s->mu);
		return MHD_YES;
	}
	if (s->code != 0) {
		char *body = strdup(s->body), sid[HT_ID_LEN + 1];
		unsigned code = s->code, ra = s->retry_after;
		memcpy(sid, s->session, sizeof(sid));
		pthread_mutex_unlock(&s->mu);
		rc = body ? queue_json(s->conn, code, body, ra, sid) : MHD_NO;
		free(body);
		return rc;
	}
	s->refs++; /* the response's */
	pthread_mutex_unlock(&s->mu);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, reader, s, reader_free);
	if (r == NULL) {
		ht_stream_unref(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/x-ndjson");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (s->session[0] != '\0')
		MHD_add_response_header(r, "X-Sandcell-Session", s->session);
	if (s->run[0] != '\0')
		MHD_add_response_header(r, "X-Sandcell-Run", s->run);
	rc = MHD_queue_response(s->conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	ht_metric_response(MHD_HTTP_OK);
	return rc;
}

void ht_stream_closed(struct ht_stream *s)
{
	void (*gone)(void *);
	bool finished;

	pthread_mutex_lock(&s->mu);
	s->closed = true;
	finished = s->done && s->len == s->off;
	gone = finished ? NULL : s->on_gone;
	pthread_cond_broadcast(&s->drained);
	pthread_mutex_unlock(&s->mu);
	if (gone)
		gone(s->gone_arg);
}

enum MHD_Result ht_queue_json(struct MHD_Connection *c, unsigned code, const char *body,
			      unsigned retry_after)
{
	return queue_json(c, code, body, retry_after, NULL);
}
