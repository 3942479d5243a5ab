/*
 * One-shot runs (POST /v1/runs, docs/http.md): the request goes to the
 * warm server through sandcell_run_remote(), in-process, with pipes for
 * stdout and stderr.  One thread waits for the answer; a pump thread
 * turns the pipes' bytes into stream events as they come and watches the
 * client's socket, so a client that leaves cancels its run (the cancel fd
 * of sandcell_run_remote, which half-closes towards the server).
 */
#include "server.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
/* Pending stream bytes of a run before its client counts as not reading:
 * above both streams' default caps (8 MiB each) after JSON escaping. */
#define RUN_MAX_PENDING (48u << 20)
#define FILE_ROOM (8u << 20)

struct run {
	struct ht_stream *s;
	struct ht_upload u;
	struct ht_request q;
	char id[HT_ID_LEN + 1];
	long tenant;
	int out[2], err[2], cancel[2], stop[2], acc[2];
	double t0;
	struct run *next;
};

struct hold {
	unsigned char b[4];
	size_t n;
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static struct run *registry;

static void cancel_run(void *arg)
{
	struct run *r = arg;

	if (write(r->cancel[1], "c", 1) < 0) {
		/* full: a cancel is pending already */
	}
}

int ht_run_cancel(const char *id, long tenant)
{
	int rc = -1;

	pthread_mutex_lock(&reg_mu);
	for (struct run *r = registry; r; r = r->next)
		if (r->tenant == tenant && strcmp(r->id, id) == 0) {
			cancel_run(r);
			rc = 0;
		}
	pthread_mutex_unlock(&reg_mu);
	return rc;
}

static void reg_remove(struct run *r)
{
	pthread_mutex_lock(&reg_mu);
	for (struct run **p = &registry; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	pthread_mutex_unlock(&reg_mu);
}

/* The length of the complete, valid UTF-8 prefix of p; *bad when an
 * invalid sequence follows it (else what follows is an incomplete tail). */
static size_t utf8_prefix(const unsigned char *p, size_t n, bool *bad)
{
	size_t i = 0;

	*bad = false;
	while (i < n) {
		unsigned c = p[i];
		size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
			   : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
		unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
		unsigned hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;

		if (len == 0) {
			*bad = true;
			return i;
		}
		for (size_t k = 1; k < len; k++) {
			if (i + k >= n)
				return i; /* incomplete: held back */
			if (p[i + k] < (k == 1 ? lo : 0x80) || p[i + k] > (k == 1 ? hi : 0xBF)) {
				*bad = true;
				return i;
			}
		}
		i += len;
	}
	return n;
}

static void emit_bytes(struct run *r, const char *name, const unsigned char *p, size_t n, bool text)
{
	json_t *ev;

	if (n == 0)
		return;
	if (text) {
		ev = json_pack("{s:s,s:s,s:s%}", "ev", "stream", "name", name, "text", (const char *)p, n);
	} else {
		char *b = ht_base64(p, n, NULL);
		ev = b ? json_pack("{s:s,s:s,s:s}", "ev", "stream", "name", name, "b64", b) : NULL;
		free(b);
	}
	ht_stream_start(r->s);
	if (!ht_stream_event(r->s, ev))
		cancel_run(r);
}

/* One read's bytes (after what was held back): text when valid UTF-8,
 * an incomplete character at the end held for the next read. */
static void emit_chunk(struct run *r, const char *name, struct hold *h, const char *data, size_t n,
		       bool eof)
{
	unsigned char buf[CHUNK + 4];
	size_t len = h->n + n, ok;
	bool bad;

	memcpy(buf, h->b, h->n);
	memcpy(buf + h->n, data, n);
	h->n = 0;
	ok = utf8_prefix(buf, len, &bad);
	if (bad || (eof && ok < len)) {
		emit_bytes(r, name, buf, len, false);
		return;
	}
	emit_bytes(r, name, buf, ok, true);
	memcpy(h->b, buf + ok, len - ok);
	h->n = len - ok;
}

/*
 * What is left in the pipes once the answer came: the worker wrote every
 * byte of the streams before its answer, but holds the pipes until it
 * exits (the teardown of a forked template takes milliseconds), so EOF
 * would come later than the bytes.  Read without blocking to the end.
 */
static void drain(struct run *r, struct hold hold[2], const bool open_[2], char *data)
{
	for (int i = 0; i < 2; i++) {
		int fd = i ? r->err[0] : r->out[0];
		ssize_t n = 0;

		if (!open_[i] || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
			continue;
		while ((n = read(fd, data, CHUNK)) > 0 || (n < 0 && errno == EINTR))
			if (n > 0)
				emit_chunk(r, i ? "stderr" : "stdout", &hold[i], data, (size_t)n, false);
		emit_chunk(r, i ? "stderr" : "stdout", &hold[i], data, 0, true);
	}
}

static void *pump_main(void *arg)
{
	struct run *r = arg;
	struct hold hold[2] = { { { 0 }, 0 }, { { 0 }, 0 } };
	bool open_[2] = { true, true }, watching = true;
	char data[CHUNK];

	while (open_[0] || open_[1]) {
		int cfd = watching ? ht_stream_client_fd(r->s) : -1;
		struct pollfd p[5] = { { open_[0] ? r->out[0] : -1, POLLIN, 0 },
				       { open_[1] ? r->err[0] : -1, POLLIN, 0 },
				       { cfd, POLLRDHUP, 0 }, { r->stop[0], POLLIN, 0 },
				       { r->acc[0], POLLIN, 0 } };

		if (poll(p, 5, -1) < 0 && errno != EINTR)
			break;
		if (p[4].revents) {
			/* The warm server's worker read the request: no busy
			 * refusal can come any more, so the headers (with
			 * X-Sandcell-Run) and the run event go now, and the
			 * run can be cancelled by id before it prints. */
			close(r->acc[0]);
			r->acc[0] = -1;
			ht_stream_start(r->s);
		}
		if (p[2].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
			/* The client left: cancel, keep draining the pipes. */
			cancel_run(r);
			watching = false;
		}
		for (int i = 0; i < 2; i++) {
			ssize_t n;
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(p[i].fd, data, sizeof(data));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				open_[i] = false;
			emit_chunk(r, i ? "stderr" : "stdout", &hold[i], data, n > 0 ? (size_t)n : 0, n <= 0);
		}
		if (p[3].revents) {
			drain(r, hold, open_, data);
			break;
		}
	}
	return NULL;
}

/* Reads one collected file beneath the output directory (no symlink, no
 * "..": RESOLVE_BENEATH) and checks it against the report. */
static char *read_output(int dirfd, const char *path, json_int_t size, const char *sha,
			 const char **why)
{
	struct open_how how = { .flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	char hex[SHA256_DIGEST_STRING_LENGTH], *buf, *b64;
	size_t got = 0;
	int fd;

	*why = "unreadable";
	if (size < 0 || (uint64_t)size > ht_opt.max_output)
		return NULL;
	fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0)
		return NULL;
	buf = malloc((size_t)size + 1);
	while (buf != NULL && got <= (size_t)size) {
		ssize_t n = read(fd, buf + got, (size_t)size + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*why = "changed since it was collected";
	if (buf == NULL || got != (size_t)size ||
	    strcmp(SHA256Data((const uint8_t *)buf, got, hex), sha ? sha : "") != 0) {
		free(buf);
		return NULL;
	}
	b64 = ht_base64((const unsigned char *)buf, got, NULL);
	free(buf);
	return b64;
}

json_t *ht_file_event(int dirfd, const char *path, json_int_t size, const char *sha)
{
	const char *why;
	char *b64 = read_output(dirfd, path, size, sha, &why);
	json_t *ev;

	if (b64)
		ev = json_pack("{s:s,s:s,s:I,s:s,s:s}", "ev", "file", "path", path, "size", size,
			       "sha256", sha, "b64", b64);
	else
		ev = json_pack("{s:s,s:s,s:I,s:s?,s:s}", "ev", "file", "path", path, "size", size,
			       "sha256", sha, "error", why);
	free(b64);
	return ev;
}

static void emit_files(struct run *r, json_t *report)
{
	json_t *files = json_object_get(json_object_get(report, "outputs"), "files"), *f;
	char out[4200];
	size_t i;
	int dirfd;

	snprintf(out, sizeof(out), "%s/out", r->u.dir);
	dirfd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dirfd < 0)
		return;
	json_array_foreach(files, i, f) {
		const char *path = json_string_value(json_object_get(f, "path"));

		if (path == NULL || !ht_stream_room(r->s, FILE_ROOM))
			break;
		ht_stream_event(r->s, ht_file_event(dirfd, path, json_integer_value(json_object_get(f, "size")),
						    json_string_value(json_object_get(f, "sha256"))));
	}
	close(dirfd);
}

char *ht_refusal_body(const char *status, const char *message, const char *report_json)
{
	json_t *rep = report_json ? json_loads(report_json, JSON_ALLOW_NUL, NULL) : NULL;
	json_t *o = json_pack("{s:s,s:s,s:o}", "status", status, "message", message ? message : "",
			      "report", rep ? rep : json_null());
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return s;
}

/* A refusal the warm server sent, before the run printed anything: its
 * own HTTP code (docs/http.md, "Errors and HTTP codes"); 0 otherwise. */
static unsigned refusal_code(const char *status, json_t *report, unsigned *retry)
{
	bool started = json_is_true(json_object_get(json_object_get(report, "script"), "started"));

	*retry = 0;
	if (strcmp(status, "usage-error") == 0)
		return 400;
	if (strcmp(status, "busy") == 0 || strcmp(status, "unreachable") == 0)
		return *retry = 1, 503;
	if (strcmp(status, "sandbox-error") == 0 && !started)
		return 500;
	return 0;
}

static void finish(struct run *r, const char *report_text)
{
	json_t *rep = json_loads(report_text, JSON_ALLOW_NUL, NULL);
	const char *status = json_string_value(json_object_get(rep, "status"));
	unsigned code, retry;

	if (status == NULL)
		status = "sandbox-error";
	if (strcmp(status, "unreachable") != 0)
		ht_warm_answered();
	code = refusal_code(status, rep, &retry);
	/* Counted before the response ends: a client that read the report
	 * and then reads /metrics sees its run there. */
	ht_metric_run(status, ht_now() - r->t0);
	/* Once the 200 went (the warm server's worker read the request, or
	 * the run printed), a later refusal (the worker's usage error, a
	 * sandbox that could not be set up) is the report's status. */
	if (code != 0 && !ht_stream_gone(r->s) && !ht_stream_started(r->s)) {
		const char *msg = json_string_value(json_object_get(rep, "reason"));
		char *body;
		if (json_is_string(json_object_get(rep, "error")))
			msg = json_string_value(json_object_get(rep, "error"));
		body = ht_refusal_body(status, msg, report_text);
		ht_stream_fail(r->s, code, body, retry);
		free(body);
	} else {
		ht_stream_start(r->s);
		emit_files(r, rep);
		ht_stream_event(r->s, json_pack("{s:s,s:O}", "ev", "report", "report", rep ? rep : json_null()));
		ht_stream_end(r->s);
	}
	json_decref(rep);
}

static void run_config(struct run *r, struct sandcell_config *cfg, struct sandcell_input *in,
		       char *outdir, size_t outsize)
{
	size_t n = 0;

	sandcell_config_init(cfg);
	cfg->python = ht_opt.python;
	cfg->code = r->q.code;
	cfg->code_len = r->q.code_len;
	/* As the local client's warm runs (python/sandcell/_warm.py): a cold
	 * run of the file cell.py, so tracebacks name the same file. */
	cfg->code_name = "cell.py";
	cfg->args = (const char *const *)r->q.args;
	cfg->n_args = r->q.n_args;
	cfg->values_json = r->q.values;
	cfg->limits = r->q.limits;
	if (cfg->limits.output_bytes > ht_opt.max_output)
		cfg->limits.output_bytes = ht_opt.max_output;
	cfg->flags = (r->q.cell ? SANDCELL_CELL : 0) | (r->q.allow_reduced ? SANDCELL_ALLOW_REDUCED : 0);
	cfg->stdout_fd = r->out[1];
	cfg->stderr_fd = r->err[1];
	cfg->cancel_fd = r->cancel[0];
	for (size_t i = 0; i < r->u.n_files; i++) {
		const struct ht_file *f = &r->u.files[i];
		if (f->kind == HP_STDIN) {
			cfg->stdin_fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			continue;
		}
		in[n].name = f->name;
		in[n].path = f->path;
		in[n].flags = f->kind == HP_DATASET ? SANDCELL_INPUT_DATASET : 0;
		n++;
	}
	cfg->inputs = in;
	cfg->n_inputs = n;
	snprintf(outdir, outsize, "%s/out", r->u.dir);
	cfg->output_dir = outdir;
}

static void run_free(struct run *r)
{
	for (int i = 0; i < 2; i++) {
		close(r->out[i]);
		close(r->err[i]);
		close(r->cancel[i]);
		close(r->stop[i]);
		close(r->acc[i]);
	}
	ht_upload_free(&r->u, true);
	ht_request_free(&r->q);
	ht_stream_unref(r->s);
	ht_auth_release(r->tenant);
	free(r);
}

static void *run_main(void *arg)
{
	struct run *r = arg;
	struct sandcell_input *in = calloc(r->u.n_files + 1, sizeof(*in));
	struct sandcell_config cfg;
	struct sandcell_error e = { 0, "" };
	char outdir[4200], *report = NULL;
	int exit_code, rc = -1;
	pthread_t pump;
	bool pumping;

	run_config(r, &cfg, in ? in : &(struct sandcell_input){ 0 }, outdir, sizeof(outdir));
	pumping = pthread_create(&pump, NULL, pump_main, r) == 0;
	if (in != NULL && pumping) {
		ht_metric_gauge(HG_RUNS_IN_FLIGHT, 1);
		rc = sc_run_remote(ht_opt.socket, &cfg, r->acc[1], &report, &exit_code, &e);
		ht_metric_gauge(HG_RUNS_IN_FLIGHT, -1);
	}
	/* The answer is in: so are the streams' bytes (drain()). */
	if (write(r->stop[1], "s", 1) < 0) {
		/* cannot fail on an empty pipe; EOF still ends the pump */
	}
	/* Our copies of the write ends: the pump sees EOF once the
	 * server's are closed too (the run is over). */
	close(r->out[1]);
	close(r->err[1]);
	r->out[1] = r->err[1] = -1;
	if (pumping)
		pthread_join(pump, NULL);
	if (cfg.stdin_fd >= 0)
		close(cfg.stdin_fd);
	if (rc == 0) {
		finish(r, report);
	} else {
		char *body = ht_refusal_body(e.code == ENOMEM ? "sandbox-error" : "usage-error",
					     in && pumping ? e.msg : "out of resources", NULL);
		ht_metric_run("usage-error", ht_now() - r->t0);
		ht_stream_fail(r->s, e.code == ENOMEM || !in || !pumping ? 500 : 400, body, 0);
		free(body);
	}
	free(report);
	free(in);
	reg_remove(r);
	run_free(r);
	return NULL;
}

struct ht_stream *ht_run_start(struct MHD_Connection *c, long tenant, struct ht_upload *u,
			       struct ht_request *q, struct sandcell_error *err)
{
	struct run *r = calloc(1, sizeof(*r));
	pthread_attr_t at;
	pthread_t th;

	if (r == NULL)
		return sc_err(err, ENOMEM, "run"), NULL;
	r->out[0] = r->out[1] = r->err[0] = r->err[1] = r->cancel[0] = r->cancel[1] = -1;
	r->stop[0] = r->stop[1] = r->acc[0] = r->acc[1] = -1;
	r->tenant = tenant;
	r->t0 = ht_now();
	r->s = ht_stream_new(c, RUN_MAX_PENDING);
	if (r->s == NULL || ht_new_id(r->id) < 0 || pipe2(r->out, O_CLOEXEC) < 0 ||
	    pipe2(r->err, O_CLOEXEC) < 0 || pipe2(r->cancel, O_CLOEXEC | O_NONBLOCK) < 0 ||
	    pipe2(r->stop, O_CLOEXEC | O_NONBLOCK) < 0 || pipe2(r->acc, O_CLOEXEC | O_NONBLOCK) < 0) {
		sc_err(err, errno ? errno : ENOMEM, "run");
		goto fail;
	}
	r->u = *u;
	r->q = *q;
	memset(u, 0, sizeof(*u));
	u->part_fd = -1; /* the run owns what was open */
	memset(q, 0, sizeof(*q));
	ht_stream_on_gone(r->s, cancel_run, r);
	ht_stream_event(r->s, json_pack("{s:s,s:s}", "ev", "run", "id", r->id));
	ht_stream_run(r->s, r->id);
	pthread_mutex_lock(&reg_mu);
	r->next = registry;
	registry = r;
	pthread_mutex_unlock(&reg_mu);
	ht_stream_ref(r->s); /* the connection's */
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &at, run_main, r) != 0) {
		pthread_attr_destroy(&at);
		reg_remove(r);
		ht_stream_unref(r->s);
		sc_err(err, EAGAIN, "run thread");
		*u = r->u;
		*q = r->q;
		memset(&r->u, 0, sizeof(r->u));
		memset(&r->q, 0, sizeof(r->q));
		r->tenant = -1;
		goto fail;
	}
	pthread_attr_destroy(&at);
	return r->s;
fail:
	for (int i = 0; i < 2; i++) {
		if (r->out[i] >= 0) close(r->out[i]);
		if (r->err[i] >= 0) close(r->err[i]);
		if (r->cancel[i] >= 0) close(r->cancel[i]);
		if (r->stop[i] >= 0) close(r->stop[i]);
		if (r->acc[i] >= 0) close(r->acc[i]);
	}
	ht_stream_unref(r->s);
	free(r);
	return NULL;
}
