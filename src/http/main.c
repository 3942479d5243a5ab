/*
 * sandcell-http: the HTTP front end of a warm server (docs/http.md).
 *
 * libmicrohttpd runs one internal polling thread; handlers never block
 * it: a run is handed to threads of its own (run.c) and its connection is
 * suspended until there is something to send.  Readiness is computed off
 * the request path (a selftest thread; a cached socket probe).  With
 * --serve the front end also starts the warm server and stops with it.
 */
#include "server.h"
#include "static.h"
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct ht_opts ht_opt = {
	.python = "/usr/bin/python3",
	.max_body = 256ull << 20, .max_file = 128ull << 20, .max_request = 32ull << 20,
	.max_output = 64ull << 20, .max_parts = 64, .max_conns = 256, .max_per_ip = 32,
	.max_sessions = 64, .body_timeout = 60, .idle_timeout = 30,
};

static double selftest_interval = 60;
static pthread_mutex_t ready_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lister_cv = PTHREAD_COND_INITIALIZER;
static double selftest_pass, warm_ok_at, warm_probe_at, watched_at = -1e9;
static bool selftest_ok, warm_ok;
static char selftest_why[160] = "the selftest has not finished yet";

double ht_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ht_log(const char *fmt, ...)
{
	va_list ap;

	fputs("sandcell-http: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void ht_warm_answered(void)
{
	pthread_mutex_lock(&ready_mu);
	warm_ok = true;
	warm_ok_at = ht_now();
	pthread_mutex_unlock(&ready_mu);
}

/* ---- readiness ---- */

static int run_quiet(const char *const argv[])
{
	sigset_t none;
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(null, 0), dup2(null, 1), dup2(null, 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void *selftest_main(void *arg)
{
	const char *const argv[] = { ht_opt.sandcell, "selftest", NULL };

	(void)arg;
	for (;;) {
		int rc = run_quiet(argv);
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		pthread_mutex_lock(&ready_mu);
		selftest_ok = rc == 0;
		if (rc == 0)
			selftest_pass = (double)t.tv_sec;
		snprintf(selftest_why, sizeof(selftest_why), "sandcell selftest failed on this host (exit %d)",
			 rc);
		pthread_mutex_unlock(&ready_mu);
		if (rc != 0)
			ht_log("selftest failed (exit %d): not ready", rc);
		t.tv_sec = (time_t)selftest_interval;
		t.tv_nsec = (long)((selftest_interval - (double)t.tv_sec) * 1e9);
		while (nanosleep(&t, &t) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

/* Connecting is enough: the server accepts only when it serves.  The
 * socket (or -1); non-blocking, so that a full backlog never blocks the
 * caller (it fails with EAGAIN: the server is alive but swamped, and a
 * run that came back within the second says so). */
static int connect_warm(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ht_opt.socket);
	if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(s);
		s = -1;
	}
	return s;
}

static void probed(double at, bool ok)
{
	pthread_mutex_lock(&ready_mu);
	warm_probe_at = at;
	warm_ok = ok || at - warm_ok_at <= 1.0;
	pthread_mutex_unlock(&ready_mu);
}

/* ---- the warm server's counts (sandcell_warm_* in /metrics) ----
 *
 * The template never reads a request (docs/warm.md), so its counts come
 * as any answer does: a listing request ({"v":1,"op":"sessions"}), read
 * by a worker that runs no code.  The lister thread sends one a second,
 * and only while someone looks (a /readyz or /metrics within WATCH_SEC):
 * its connect is the readiness probe too, so watching costs one worker
 * a second, as the connect-only probe did.  That worker takes a slot for
 * the milliseconds it answers in; on a server whose slots are all taken
 * it waits in the queue like a run (its answer then says so), at most
 * LIST_TIMEOUT_MS.  Nothing here is on a request's path: /metrics shows
 * the last answer, with its time. */
#define WATCH_SEC 30.0
#define LIST_TIMEOUT_MS 30000
#define LIST_MAX (1u << 20)

static bool list_field(json_t *j, const char *key, long *out)
{
	json_t *v = json_object_get(j, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
		return false;
	*out = (long)json_integer_value(v);
	return true;
}

static void fetch_listing(int s)
{
	static const char req[] = "{\"v\":1,\"op\":\"sessions\"}";
	static bool logged;
	struct sandcell_error e = { 0, "" };
	struct ht_warm_counts c;
	struct timespec now;
	char *buf = NULL;
	size_t len = 0;
	json_t *j = NULL;
	bool ok;

	ok = fcntl(s, F_SETFL, 0) == 0 && sc_frame_send(s, req, sizeof(req) - 1, NULL, 0) == 0 &&
	     sc_frame_recv(s, &buf, &len, LIST_MAX, NULL, NULL, LIST_TIMEOUT_MS, &e) == 0;
	if (ok)
		j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
	ok = ok && json_is_array(json_object_get(j, "sessions")) && list_field(j, "spares", &c.spares) &&
	     list_field(j, "runs", &c.runs) && list_field(j, "queued", &c.queued) &&
	     list_field(j, "sessions_live", &c.sessions);
	if (ok) {
		clock_gettime(CLOCK_REALTIME, &now);
		ht_metric_warm(&c, (double)now.tv_sec + (double)now.tv_nsec / 1e9);
		logged = false;
	} else if (!logged) {
		/* Once until a listing comes again: the gauges keep the last
		 * values, their timestamp says how old. */
		ht_log("the warm server's listing: %s", buf == NULL ? (e.msg[0] ? e.msg : "no answer")
			: json_is_string(json_object_get(j, "reason")) ? "refused"
			: "malformed (a server of another version?)");
		logged = true;
	}
	json_decref(j);
	free(buf);
}

static void *lister_main(void *arg)
{
	(void)arg;
	for (;;) {
		double t0;
		int s;

		pthread_mutex_lock(&ready_mu);
		while (ht_now() - watched_at > WATCH_SEC)
			pthread_cond_wait(&lister_cv, &ready_mu);
		pthread_mutex_unlock(&ready_mu);
		t0 = ht_now();
		s = connect_warm();
		probed(t0, s >= 0);
		if (s >= 0) {
			fetch_listing(s);
			close(s);
		}
		for (double left = t0 + 1.0 - ht_now(); left > 0; left = t0 + 1.0 - ht_now()) {
			struct timespec t = { 0, (long)(left * 1e9) };
			nanosleep(&t, NULL);
		}
	}
	return NULL;
}

static bool ready(char *why, size_t size)
{
	double now = ht_now();
	bool probe, r;

	pthread_mutex_lock(&ready_mu);
	if (now - watched_at > WATCH_SEC)
		pthread_cond_signal(&lister_cv);
	watched_at = now;
	/* The lister probes every second; when it has not for two (it was
	 * idle, or its listing waits in the warm server's queue), a connect
	 * here keeps the answer fresh. */
	probe = now - warm_ok_at > 1.0 && now - warm_probe_at > 2.0;
	if (probe)
		warm_probe_at = now;
	pthread_mutex_unlock(&ready_mu);
	if (probe) {
		int s = connect_warm();
		probed(now, s >= 0);
		if (s >= 0)
			close(s);
	}
	pthread_mutex_lock(&ready_mu);
	r = selftest_ok && warm_ok;
	snprintf(why, size, "%s", !selftest_ok ? selftest_why : !warm_ok ? "the warm server does not "
		 "accept connections" : "");
	ht_metric_ready(r, selftest_pass);
	pthread_mutex_unlock(&ready_mu);
	return r;
}

/* ---- routing ---- */

struct hc {
	struct ht_route route;
	long tenant;
	bool slot;		/* a concurrency slot of tenant, held until handed over */
	bool uploading;
	struct ht_upload u;
	struct ht_stream *s;
	double t0;
	bool lingering;		/* answered mid-body: the rest is read and dropped */
	uint64_t dropped;
};

static enum MHD_Result refuse(struct MHD_Connection *c, unsigned code, const char *status,
			      const char *msg, unsigned retry_after)
{
	char *body = ht_refusal_body(status, msg, NULL);
	enum MHD_Result rc = body ? ht_queue_json(c, code, body, retry_after) : MHD_NO;

	free(body);
	return rc;
}

/*
 * A refusal while the body still comes in.  libmicrohttpd queues a
 * response only before the body is read or after all of it was, and a
 * body over its cap or too slow must not be read to its end; so the
 * answer is written to the socket here (nothing else was sent on it for
 * this request), our side is shut for writing, and what the client still
 * sends is read and dropped for a moment (so that closing does not reset
 * the connection before it read the answer), then the connection closes.
 */
static enum MHD_Result refuse_early(struct hc *h, struct MHD_Connection *c, unsigned code,
				    const char *status, const char *msg)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	char *body = ht_refusal_body(status, msg, NULL), *resp = NULL;
	int n;

	h->uploading = false;
	h->lingering = true;
	h->t0 = ht_now();
	ht_metric_response(code);
	n = body ? asprintf(&resp, "HTTP/1.1 %u %s\r\nConnection: close\r\nContent-Type: application/json"
			    "\r\nContent-Length: %zu\r\n\r\n%s", code,
			    code == 408 ? "Request Timeout" : code == 413 ? "Content Too Large"
			    : code == 500 ? "Internal Server Error" : "Bad Request", strlen(body), body) : -1;
	if (n > 0 && ci != NULL) {
		if (send(ci->connect_fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) == n)
			shutdown(ci->connect_fd, SHUT_WR);
		else
			h->dropped = UINT64_MAX; /* could not answer: close at once */
	}
	free(resp);
	free(body);
	return h->dropped == UINT64_MAX ? MHD_NO : MHD_YES;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code, const char *type, char *body,
			    size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc;

	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	ht_metric_response(code);
	return rc;
}

static enum MHD_Result unauthorized(struct MHD_Connection *c)
{
	char *body = ht_refusal_body("unauthorized", "a valid 'Authorization: Bearer TOKEN' is required",
				     NULL);
	struct MHD_Response *r = body ? MHD_create_response_from_buffer(strlen(body), body,
									   MHD_RESPMEM_MUST_FREE) : NULL;
	enum MHD_Result rc;

	ht_metric_reject("auth");
	if (r == NULL) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"sandcell\"");
	rc = MHD_queue_response(c, MHD_HTTP_UNAUTHORIZED, r);
	MHD_destroy_response(r);
	ht_metric_response(MHD_HTTP_UNAUTHORIZED);
	return rc;
}

static enum MHD_Result get_simple(struct MHD_Connection *c, enum ht_route_kind k)
{
	char why[200], *body;
	size_t len;
	bool r;

	if (k == HR_HEALTHZ)
		return text(c, 200, "application/json", strdup("{\"status\":\"ok\"}"), 15);
	if (k == HR_METRICS) {
		ready(why, sizeof(why)); /* refreshes the gauge */
		body = ht_metrics_render(&len);
		return body ? text(c, 200, "text/plain; version=0.0.4", body, len) : MHD_NO;
	}
	r = ready(why, sizeof(why));
	{
		json_t *o = json_pack("{s:b,s:s}", "ready", r, "reason", why);
		body = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
	}
	return body ? text(c, r ? 200 : 503, "application/json", body, strlen(body)) : MHD_NO;
}

static enum MHD_Result limited(struct hc *h, struct MHD_Connection *c, bool slot)
{
	const char *reason;
	unsigned retry;
	char m[120];

	if (ht_auth_acquire(h->tenant, slot, &reason, &retry) == 0) {
		h->slot = slot;
		return MHD_YES;
	}
	snprintf(m, sizeof(m), "token '%s': %s limit reached", ht_auth_name(h->tenant), reason);
	ht_metric_reject(reason);
	return refuse(c, 429, "busy", m, retry);
}

/* A session route (docs/http.md, "Sessions"): GETs, DELETE and interrupt
 * are answered at once; the others read a body first. */
static enum MHD_Result begin_session(struct hc *h, struct MHD_Connection *c, const char *method)
{
	enum ht_route_kind k = h->route.kind;
	struct ht_call call = { c, h->tenant, &h->route, &h->u, NULL, false };
	enum MHD_Result rc;

	if (strcmp(method, "GET") == 0)
		return ht_sessions_get(c, h->tenant, k == HR_SESSION ? h->route.id : NULL);
	if (k == HR_SESSION || k == HR_SESSION_INTERRUPT) {
		rc = ht_session_call(&call);
		h->s = call.s;
		return rc;
	}
	if (k == HR_SESSIONS && ht_sessions_live() >= ht_opt.max_sessions) {
		ht_metric_reject("sessions");
		return refuse(c, 503, "busy", "the front end holds --max-sessions sessions", 1);
	}
	/* A session holds a concurrency slot while it lives; a cell takes
	 * a rate token (docs/http.md, "Authentication"). */
	if ((k == HR_SESSIONS || k == HR_SESSION_CELLS) && limited(h, c, k == HR_SESSIONS) != MHD_YES)
		return MHD_YES;
	h->uploading = true;
	if (ht_upload_begin(&h->u, c, k == HR_SESSIONS ? "session" : "call") < 0) {
		h->uploading = false;
		ht_metric_reject("caps");
		return refuse(c, h->u.code, h->u.status, h->u.msg, 0);
	}
	h->u.no_request = k == HR_SESSION_INPUTS || k == HR_SESSION_DATASETS;
	return MHD_YES;
}

/* The first call for a request: route, method, auth, limits, caps. */
static enum MHD_Result begin(struct hc *h, struct MHD_Connection *c, const char *url,
			     const char *method)
{
	const char *reason;
	unsigned retry;

	if (ht_static_route(url))
		return ht_static_answer(c, url, method);
	if (ht_route_parse(url, &h->route) < 0)
		return refuse(c, 404, "not-found", "no such path", 0);
	if (!ht_route_method_ok(h->route.kind, method)) {
		char *body = ht_refusal_body("usage-error", "method not allowed", NULL);
		struct MHD_Response *r = body ? MHD_create_response_from_buffer(
			strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
		enum MHD_Result rc;
		if (r == NULL)
			return free(body), MHD_NO;
		MHD_add_response_header(r, "Allow", ht_route_allow(h->route.kind));
		MHD_add_response_header(r, "Content-Type", "application/json");
		rc = MHD_queue_response(c, 405, r);
		MHD_destroy_response(r);
		ht_metric_response(405);
		return rc;
	}
	if (h->route.kind == HR_HEALTHZ || h->route.kind == HR_READYZ)
		return get_simple(c, h->route.kind);
	h->tenant = ht_auth_tenant(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"));
	if (h->tenant < 0)
		return unauthorized(c);
	if (h->route.kind == HR_METRICS)
		return get_simple(c, h->route.kind);
	if (h->route.kind == HR_RUN_CANCEL)
		return ht_run_cancel(h->route.id, h->tenant) == 0
			       ? text(c, 202, "application/json", strdup("{\"cancelled\":true}"), 18)
			       : refuse(c, 404, "not-found", "no such run", 0);
	if (h->route.kind != HR_RUNS)
		return begin_session(h, c, method);
	if (ht_auth_acquire(h->tenant, true, &reason, &retry) < 0) {
		char m[120];
		snprintf(m, sizeof(m), "token '%s': %s limit reached", ht_auth_name(h->tenant), reason);
		ht_metric_reject(reason);
		return refuse(c, 429, "busy", m, retry);
	}
	h->slot = true;
	h->uploading = true;
	if (ht_upload_begin(&h->u, c, "run") < 0) {
		h->uploading = false;
		ht_metric_reject("caps");
		return refuse(c, h->u.code, h->u.status, h->u.msg, 0);
	}
	return MHD_YES;
}

/* The body of a session call is in. */
static enum MHD_Result session_body(struct hc *h, struct MHD_Connection *c, struct ht_request *q)
{
	struct ht_call call = { c, h->tenant, &h->route, &h->u, NULL, h->slot };
	enum ht_route_kind k = h->route.kind;
	enum MHD_Result rc;

	if ((k == HR_SESSION_CELLS || k == HR_SESSION_INPUT) && !h->u.json)
		return refuse(c, 415, "usage-error", "this call takes an application/json body", 0);
	rc = k == HR_SESSIONS ? ht_session_start(&call, q) : ht_session_call(&call);
	h->slot = call.slot;
	h->s = call.s;
	return rc;
}

/* The body is in: check the request and start the run or session. */
static enum MHD_Result start_run(struct hc *h, struct MHD_Connection *c)
{
	struct sandcell_error e = { 0, "" };
	bool session = h->route.kind == HR_SESSIONS;
	struct ht_request q;
	enum MHD_Result rc;

	h->uploading = false;
	if (ht_upload_finish(&h->u) < 0) {
		ht_metric_reject("caps");
		return refuse(c, h->u.code, h->u.status, h->u.msg, 0);
	}
	if (h->route.kind != HR_RUNS && !session)
		return session_body(h, c, NULL);
	if (ht_request_parse(h->u.request ? h->u.request : "", h->u.request_len, session, &q, &e) < 0)
		return refuse(c, 400, "usage-error", e.msg, 0);
	if (q.allow_reduced && !ht_opt.allow_reduced) {
		ht_request_free(&q);
		return refuse(c, 403, "forbidden", "allow_reduced: this server does not run reduced "
			      "(sandcell-http --allow-reduced)", 0);
	}
	if (session) {
		rc = session_body(h, c, &q);
		ht_request_free(&q);
		return rc;
	}
	h->s = ht_run_start(c, h->tenant, &h->u, &q, &e);
	if (h->s == NULL) {
		ht_request_free(&q);
		return refuse(c, 500, "sandbox-error", e.msg, 0);
	}
	h->slot = false; /* the run releases it */
	ht_log("run started for token '%s'", ht_auth_name(h->tenant));
	return ht_stream_answer(h->s);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *data,
			       size_t *size, void **con_cls)
{
	struct hc *h = *con_cls;

	(void)cls, (void)version;
	if (h == NULL) {
		h = calloc(1, sizeof(*h));
		if (h == NULL)
			return MHD_NO;
		h->u.part_fd = -1;
		h->t0 = ht_now();
		*con_cls = h;
		return begin(h, c, url, method);
	}
	if (h->s != NULL)
		return ht_stream_answer(h->s);
	if (h->lingering) {
		/* At most 2 s and 1 MiB more, then the connection closes. */
		size_t n = *size;
		*size = 0;
		h->dropped += n;
		return n > 0 && h->dropped < (1u << 20) && ht_now() - h->t0 < 2.0 ? MHD_YES : MHD_NO;
	}
	if (!h->uploading) {
		*size = 0; /* answered already: the rest of the body is dropped */
		return MHD_YES;
	}
	if (*size > 0) {
		size_t n = *size;
		*size = 0;
		if (ht_now() - h->t0 > ht_opt.body_timeout) {
			ht_metric_reject("timeout");
			return refuse_early(h, c, 408, "usage-error", "the request body did not arrive in time");
		}
		if (ht_upload_feed(&h->u, data, n) < 0) {
			ht_metric_reject("caps");
			return refuse_early(h, c, h->u.code, h->u.status, h->u.msg);
		}
		return MHD_YES;
	}
	return start_run(h, c);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
		      enum MHD_RequestTerminationCode why)
{
	struct hc *h = *con_cls;

	(void)cls, (void)c, (void)why;
	if (h == NULL)
		return;
	if (h->s != NULL) {
		ht_stream_closed(h->s);
		ht_stream_unref(h->s);
	}
	if (h->slot)
		ht_auth_release(h->tenant);
	ht_upload_free(&h->u, true);
	free(h);
	*con_cls = NULL;
}

/* ---- start-up ---- */

static const char usage_text[] =
	"Usage: sandcell-http --socket WARM_SOCKET [--listen ADDR:PORT] [--token-file FILE | --no-auth]\n"
	"                     [--allow-remote] [--allow-reduced] [--python PATH] [--scratch DIR]\n"
	"                     [--max-body SIZE] [--max-file SIZE] [--max-request SIZE] [--max-output SIZE]\n"
	"                     [--max-parts N] [--max-connections N] [--max-per-ip N] [--max-sessions N]\n"
	"                     [--body-timeout SEC] [--idle-timeout SEC] [--selftest-interval SEC]\n"
	"                     [--token-concurrency N] [--token-rate N] [--serve -- WARM OPTIONS...]\n"
	"docs/http.md\n";

static void __attribute__((noreturn)) usage(const char *why)
{
	if (why)
		ht_log("%s", why);
	fputs(usage_text, stderr);
	exit(SANDCELL_EXIT_USAGE);
}

struct listen {
	struct sockaddr_storage sa;
	socklen_t len;
	bool v6, loopback;
};

/* "ADDR:PORT" or "[V6]:PORT", numeric only: a name would be resolved
 * once, silently, to whatever DNS said. */
static int parse_listen(const char *s, struct listen *l)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res;
	size_t hl;

	if (colon == NULL || colon == s || strlen(colon + 1) == 0)
		return -1;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']')
			return -1;
		s++, hl -= 2;
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
		return -1;
	memcpy(&l->sa, res->ai_addr, res->ai_addrlen);
	l->len = res->ai_addrlen;
	l->v6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	if (l->v6)
		l->loopback = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&l->sa)->sin6_addr);
	else
		l->loopback = (ntohl(((struct sockaddr_in *)&l->sa)->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

static uint64_t opt_size(const char *a)
{
	struct sandcell_error e;
	uint64_t v;

	if (sandcell_parse_size(a, &v, &e) < 0 || v == 0)
		usage(e.msg);
	return v;
}

static unsigned opt_count(const char *a)
{
	struct sandcell_error e;
	uint64_t v;

	if (sandcell_parse_count(a, &v, &e) < 0 || v == 0 || v > 1000000)
		usage("a count must be in 1..1000000");
	return (unsigned)v;
}

static double opt_secs(const char *a)
{
	struct sandcell_error e;
	double v;

	if (sandcell_parse_seconds(a, &v, &e) < 0)
		usage(e.msg);
	return v;
}

/* The binary beside ours (sandcell-warm, sandcell). */
static char *sibling(const char *name)
{
	char self[4096], *slash, *out;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (slash == NULL || asprintf(&out, "%.*s/%s", (int)(slash - self), self, name) < 0)
		return NULL;
	return out;
}

struct cli {
	struct listen l;
	const char *listen, *token_file;
	bool no_auth, allow_remote, serve;
	unsigned token_conc, token_rate;
	char **warm_argv;
};

static void parse_options(int argc, char **argv, struct cli *o)
{
	static const struct option lo[] = {
		{ "socket", 1, NULL, 's' }, { "listen", 1, NULL, 'l' }, { "token-file", 1, NULL, 't' },
		{ "no-auth", 0, NULL, 'N' }, { "allow-remote", 0, NULL, 'R' },
		{ "allow-reduced", 0, NULL, 'r' }, { "python", 1, NULL, 'y' },
		{ "scratch", 1, NULL, 'S' }, { "max-body", 1, NULL, 'B' }, { "max-file", 1, NULL, 'F' },
		{ "max-request", 1, NULL, 'Q' }, { "max-output", 1, NULL, 'O' },
		{ "max-parts", 1, NULL, 'P' }, { "max-connections", 1, NULL, 'C' },
		{ "max-per-ip", 1, NULL, 'I' }, { "max-sessions", 1, NULL, 'M' },
		{ "body-timeout", 1, NULL, 'b' }, { "idle-timeout", 1, NULL, 'i' },
		{ "selftest-interval", 1, NULL, 'T' }, { "token-concurrency", 1, NULL, 'c' },
		{ "token-rate", 1, NULL, 'a' }, { "serve", 0, NULL, 'v' }, { "help", 0, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "+h", lo, NULL)) != -1) {
		switch (ch) {
		case 's': ht_opt.socket = optarg; break;
		case 'l': o->listen = optarg; break;
		case 't': o->token_file = optarg; break;
		case 'N': o->no_auth = true; break;
		case 'R': o->allow_remote = true; break;
		case 'r': ht_opt.allow_reduced = true; break;
		case 'y': ht_opt.python = optarg; break;
		case 'S': ht_opt.scratch = optarg; break;
		case 'B': ht_opt.max_body = opt_size(optarg); break;
		case 'F': ht_opt.max_file = opt_size(optarg); break;
		case 'Q': ht_opt.max_request = opt_size(optarg); break;
		case 'O': ht_opt.max_output = opt_size(optarg); break;
		case 'P': ht_opt.max_parts = opt_count(optarg); break;
		case 'C': ht_opt.max_conns = opt_count(optarg); break;
		case 'I': ht_opt.max_per_ip = opt_count(optarg); break;
		case 'M': ht_opt.max_sessions = opt_count(optarg); break;
		case 'b': ht_opt.body_timeout = opt_secs(optarg); break;
		case 'i': ht_opt.idle_timeout = opt_count(optarg); break;
		case 'T': selftest_interval = opt_secs(optarg); break;
		case 'c': o->token_conc = opt_count(optarg); break;
		case 'a': o->token_rate = opt_count(optarg); break;
		case 'v': o->serve = true; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		default: usage(NULL);
		}
	}
	if (ht_opt.socket == NULL || ht_opt.socket[0] != '/')
		usage("--socket: the warm server's socket, an absolute path");
	if (parse_listen(o->listen, &o->l) < 0)
		usage("--listen: ADDR:PORT or [V6ADDR]:PORT, numeric");
	if (!o->l.loopback && !(o->allow_remote && o->token_file))
		usage("--listen: an address other than loopback needs --allow-remote and --token-file");
	if (!o->token_file && !o->no_auth)
		usage("--token-file FILE, or --no-auth (loopback only: any local user could run code)");
	if (o->token_file && o->no_auth)
		usage("--token-file and --no-auth exclude each other");
	if (o->serve != (optind < argc))
		usage("--serve takes the warm server's options after it (and only then)");
	o->warm_argv = argv + optind;
}

static pid_t start_warm(char **args)
{
	char *bin = sibling("sandcell-warm");
	size_t n = 0;
	char **argv;
	pid_t pid;

	while (args[n])
		n++;
	argv = calloc(n + 2, sizeof(char *));
	if (bin == NULL || argv == NULL) {
		free(bin);
		free(argv);
		return -1;
	}
	argv[0] = bin;
	memcpy(argv + 1, args, n * sizeof(char *));
	pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(bin, argv);
		_exit(SANDCELL_EXIT_SANDBOX);
	}
	free(argv);
	free(bin);
	return pid;
}

static struct MHD_Daemon *start_daemon(const struct cli *o)
{
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
			 (o->l.v6 ? MHD_USE_IPv6 : 0);

	return MHD_start_daemon(flags, 0, NULL, NULL, handler, NULL,
				MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&o->l.sa,
				MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
				MHD_OPTION_CONNECTION_LIMIT, ht_opt.max_conns,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, ht_opt.max_per_ip,
				MHD_OPTION_CONNECTION_TIMEOUT, ht_opt.idle_timeout,
				/* Headers and the post processor's buffer fit; a
				 * request with larger headers is refused by MHD. */
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
				MHD_OPTION_STRICT_FOR_CLIENT, 1,
				MHD_OPTION_END);
}

static int make_scratch(void)
{
	static char tmpl[4096];
	const char *t = getenv("TMPDIR");

	if (ht_opt.scratch != NULL)
		return mkdir(ht_opt.scratch, 0700) < 0 && errno != EEXIST ? -1 : 0;
	snprintf(tmpl, sizeof(tmpl), "%s/sandcell-http.XXXXXX", t && t[0] == '/' ? t : "/tmp");
	ht_opt.scratch = mkdtemp(tmpl);
	return ht_opt.scratch ? 0 : -1;
}

/* Blocks the signals every thread would otherwise take: main waits for
 * them with sigwaitinfo. */
static int wait_for_end(pid_t warm, const sigset_t *set)
{
	for (;;) {
		siginfo_t si;
		int st;

		if (sigwaitinfo(set, &si) < 0)
			continue;
		if (si.si_signo == SIGCHLD) {
			if (warm > 0 && waitpid(warm, &st, WNOHANG) == warm) {
				ht_log("the warm server exited (status %d): stopping", st);
				return SANDCELL_EXIT_SANDBOX;
			}
			continue;
		}
		ht_log("stopped by signal %d", si.si_signo);
		/* Sessions are cancelled (their reports are dropped: nobody
		 * is there to collect them) before the warm server goes. */
		ht_sessions_stop(3.0);
		if (warm > 0) {
			kill(warm, SIGTERM);
			waitpid(warm, &st, 0);
		}
		return 0;
	}
}

int main(int argc, char **argv)
{
	struct cli o = { .listen = "127.0.0.1:8080", .token_conc = 4, .token_rate = 120 };
	struct sandcell_error e = { 0, "" };
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *di;
	sigset_t set;
	pthread_t st;
	pid_t warm = -1;
	int rc;

	parse_options(argc, argv, &o);
	ht_opt.sandcell = sibling("sandcell");
	if (ht_auth_init(o.token_file, o.token_conc, o.token_rate, &e) < 0) {
		ht_log("%s", e.msg);
		return SANDCELL_EXIT_USAGE;
	}
	if (ht_opt.sandcell == NULL || make_scratch() < 0) {
		ht_log("cannot make the scratch directory: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (o.serve && (warm = start_warm(o.warm_argv)) < 0) {
		ht_log("cannot start sandcell-warm: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	d = start_daemon(&o);
	if (d == NULL) {
		ht_log("cannot listen on %s", o.listen);
		if (warm > 0)
			kill(warm, SIGTERM);
		return SANDCELL_EXIT_SANDBOX;
	}
	pthread_create(&st, NULL, selftest_main, NULL);
	pthread_detach(st);
	if (pthread_create(&st, NULL, lister_main, NULL) == 0)
		pthread_detach(st);
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	ht_log("listening on %.*s:%u (warm server %s, auth %s)", (int)(strrchr(o.listen, ':') - o.listen),
	       o.listen, di ? di->port : 0, ht_opt.socket, ht_auth_enabled() ? "on" : "off");
	rc = wait_for_end(warm, &set);
	/* Runs in flight are the warm server's: nothing to wait for here;
	 * the scratch directory goes with the process. */
	ht_rm_tree(ht_opt.scratch);
	_exit(rc);
}
