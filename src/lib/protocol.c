/*
 * The warm server's wire protocol (docs/warm.md).  A request is one
 * frame: a 4-byte little-endian length, then a JSON object describing the
 * run; it arrives with exactly three fds (stdin, stdout, stderr) as
 * SCM_RIGHTS on the header's bytes.  The answer is one frame holding the JSON report.  Requests
 * come from other processes, so parsing is strict: size and depth caps,
 * duplicate keys and unknown fields rejected, every type checked.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define LIMIT_KEYS                                                              \
	X(wall_sec, real) X(cpu_sec, real) X(memory_bytes, u64) X(pids, u64)    \
	X(disk_bytes, u64) X(disk_inodes, u64) X(open_files, u64)               \
	X(stream_bytes, u64) X(output_files, u64) X(output_bytes, u64)          \
	X(output_depth, u64) X(result_bytes, u64) X(cell_bytes, u64)          \
	X(cell_outputs, u64) X(cell_output_bytes, u64)

static uint64_t *lim_u64(struct sandcell_limits *l, const char *k)
{
	if (!strcmp(k, "memory_bytes")) return &l->memory;
	if (!strcmp(k, "pids")) return &l->pids;
	if (!strcmp(k, "disk_bytes")) return &l->disk;
	if (!strcmp(k, "disk_inodes")) return &l->disk_inodes;
	if (!strcmp(k, "open_files")) return &l->files;
	if (!strcmp(k, "stream_bytes")) return &l->stream;
	if (!strcmp(k, "output_files")) return &l->output_files;
	if (!strcmp(k, "output_bytes")) return &l->output_bytes;
	if (!strcmp(k, "output_depth")) return &l->output_depth;
	if (!strcmp(k, "result_bytes")) return &l->result_bytes;
	if (!strcmp(k, "cell_bytes")) return &l->cell_bytes;
	if (!strcmp(k, "cell_outputs")) return &l->cell_outputs;
	if (!strcmp(k, "cell_output_bytes")) return &l->cell_output_bytes;
	return NULL;
}

/* The time limits: the session's three only in a session request (in a
 * run they would be ignored, so they are unknown there). */
static double *lim_time(struct sandcell_limits *l, const char *k, bool session)
{
	if (!strcmp(k, "wall_sec")) return &l->wall_sec;
	if (!strcmp(k, "cpu_sec")) return &l->cpu_sec;
	if (!session) return NULL;
	if (!strcmp(k, "cell_wall_sec")) return &l->cell_wall_sec;
	if (!strcmp(k, "cell_cpu_sec")) return &l->cell_cpu_sec;
	if (!strcmp(k, "idle_sec")) return &l->idle_sec;
	return NULL;
}

/* Sets lim[k] to the limit named k.  Every u64 key of LIMIT_KEYS has a
 * field, so the lookup cannot fail; should a key ever lack one, the
 * request is not built rather than sent without that limit (the server
 * would then apply its default). */
static int put_u64(json_t *lim, const struct sandcell_limits *l, const char *k)
{
	const uint64_t *u = lim_u64((struct sandcell_limits *)l, k);

	if (u == NULL)
		return -1;
	json_object_set_new(lim, k, json_integer((json_int_t)*u));
	return 0;
}

char *sc_request_build(const struct sandcell_config *cfg)
{
	json_t *r = json_object(), *in = json_array(), *args = json_array(), *lim = json_object();
	const struct sandcell_limits *l = &cfg->limits;
	json_t *vals = NULL;
	bool complete = true;
	char *out;
	size_t i;

	json_object_set_new(r, "v", json_integer(1));
	/* A session's code is NULL (its cells come as commands). */
	json_object_set_new(r, "code", json_stringn(cfg->code ? cfg->code : "", cfg->code ? cfg->code_len : 0));
	json_object_set_new(r, "code_name", cfg->code_name ? json_string(cfg->code_name) : json_null());
	for (i = 0; i < cfg->n_args; i++)
		json_array_append_new(args, json_string(cfg->args[i]));
	json_object_set_new(r, "args", args);
	for (i = 0; i < cfg->n_inputs; i++) {
		json_t *o = json_pack("{s:s,s:s}", "name", cfg->inputs[i].name, "path",
				      cfg->inputs[i].path);
		/* Only when set: a plain input stays readable by servers that
		 * predate datasets.  Any other flag cannot be sent: the request
		 * is not built rather than sent without it. */
		if (cfg->inputs[i].flags & ~(unsigned)SANDCELL_INPUT_DATASET)
			complete = false;
		/* A name or path that is not UTF-8: the entry would be left
		 * out of the array, and the run would lack it without a word. */
		if (o == NULL)
			complete = false;
		if (o != NULL && (cfg->inputs[i].flags & SANDCELL_INPUT_DATASET))
			json_object_set_new(o, "dataset", json_true());
		json_array_append_new(in, o);
	}
	json_object_set_new(r, "inputs", in);
	if (cfg->values_json)
		vals = json_loads(cfg->values_json, JSON_REJECT_DUPLICATES, NULL);
	json_object_set_new(r, "values", vals ? vals : json_null());
	json_object_set_new(r, "output_dir", cfg->output_dir ? json_string(cfg->output_dir) : json_null());
	json_object_set_new(r, "python", json_string(cfg->python));
	json_object_set_new(r, "cgroup_parent",
			    cfg->cgroup_parent ? json_string(cfg->cgroup_parent) : json_null());
	json_object_set_new(r, "allow_reduced", json_boolean(cfg->flags & SANDCELL_ALLOW_REDUCED));
	json_object_set_new(r, "cell", json_boolean(cfg->flags & SANDCELL_CELL));
	json_object_set_new(lim, "wall_sec", json_real(l->wall_sec));
	json_object_set_new(lim, "cpu_sec", json_real(l->cpu_sec));
	/* Only for a session, and only those set (0 = the server's default):
	 * a run request stays what every protocol-1 server reads. */
	if (cfg->flags & SANDCELL_SESSION) {
		json_object_set_new(r, "session", json_true());
		if (cfg->code_len > 0 || cfg->n_args > 0)
			complete = false;
#define S(k) if (l->k > 0) json_object_set_new(lim, #k, json_real(l->k));
		S(cell_wall_sec) S(cell_cpu_sec) S(idle_sec)
#undef S
	}
#define X(k, t) if (strcmp(#t, "u64") == 0 && put_u64(lim, l, #k) < 0) complete = false;
	LIMIT_KEYS
#undef X
	json_object_set_new(r, "limits", lim);
	if (!complete) {
		json_decref(r);
		return NULL;
	}
	/* Any string that is not valid UTF-8 made json_string return NULL
	 * above and the key is missing: the server will reject the request
	 * with a clear message rather than run something else. */
	out = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	return out;
}

static int bad(struct sandcell_error *err, const char *what)
{
	sc_err(err, 0, "request: %s", what);
	if (err)
		err->code = EINVAL;
	return -1;
}

/* Names from the peer are escaped (no control bytes, valid UTF-8) and cut
 * on a character boundary before they enter a message: at most 64 bytes of
 * the name, each at most 4 escaped bytes, so the message holds all of the
 * escaped text (cutting it would split a UTF-8 sequence, and a refusal
 * that is not valid UTF-8 cannot be sent as JSON). */
static int bad_name(struct sandcell_error *err, const char *what, const char *name)
{
	char m[64 + 4 * 64 + 8], *esc = sc_escape_bytes(name, strnlen(name, 64), NULL);

	snprintf(m, sizeof(m), "%s '%s'%s", what, esc ? esc : "?", strlen(name) > 64 ? "..." : "");
	free(esc);
	return bad(err, m);
}

static const char *get_str(json_t *o, const char *k, bool nullable, int *rc, struct sandcell_error *err)
{
	json_t *v = json_object_get(o, k);

	if (v == NULL || (json_is_null(v) && !nullable) || (!json_is_null(v) && !json_is_string(v))) {
		char m[96];
		snprintf(m, sizeof(m), "'%s' must be a string%s", k, nullable ? " or null" : "");
		*rc = bad(err, m);
		return NULL;
	}
	return json_is_null(v) ? NULL : json_string_value(v);
}

void sc_request_free(struct sc_request *q)
{
	free(q->inputs);
	free(q->args);
	free(q->values);
	json_decref(q->root);
	memset(q, 0, sizeof(*q));
}

/* A request for the server itself rather than a run: exactly
 * {"v": 1, "op": "sessions"} (the live sessions, docs/warm.md). */
static int parse_op(json_t *root, struct sc_request *q, struct sandcell_error *err)
{
	json_t *v = json_object_get(root, "v"), *op = json_object_get(root, "op");

	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return bad(err, "unsupported protocol version (want \"v\": 1)");
	if (json_object_size(root) != 2 || !json_is_string(op) || strcmp(json_string_value(op), "sessions") != 0)
		return bad(err, "an op request is exactly {\"v\": 1, \"op\": \"sessions\"}");
	q->op = SC_OP_SESSIONS;
	return 0;
}

int sc_request_parse(const char *buf, size_t len, struct sc_request *q, struct sandcell_error *err)
{
	static const char *const known[] = { "v", "code", "code_name", "args", "inputs", "values",
					     "output_dir", "python", "cgroup_parent", "allow_reduced",
					     "cell", "limits", "session" };
	json_t *root = NULL, *v, *lim;
	const char *key;
	size_t i;
	int rc = 0;

	memset(q, 0, sizeof(*q));
	if (sc_json_parse(buf, len, SC_REQUEST_MAX, SC_JSON_MAX_DEPTH, &root, err) < 0)
		return sc_err_wrap(err, "request");
	q->root = root;
	if (!json_is_object(root)) {
		rc = bad(err, "not a JSON object");
		goto fail;
	}
	if (json_object_get(root, "op") != NULL) {
		rc = parse_op(root, q, err);
		if (rc < 0)
			goto fail;
		return 0;
	}
	json_object_foreach(root, key, v) {
		bool ok = false;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok |= strcmp(key, known[i]) == 0;
		if (!ok) {
			rc = bad_name(err, "unknown field", key);
			goto fail;
		}
	}
	v = json_object_get(root, "v");
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		rc = bad(err, "unsupported protocol version (want \"v\": 1)");
		goto fail;
	}
	sandcell_config_init(&q->cfg);
	v = json_object_get(root, "code");
	if (!json_is_string(v)) {
		rc = bad(err, "'code' must be a string");
		goto fail;
	}
	q->cfg.code = json_string_value(v);
	q->cfg.code_len = json_string_length(v);
	q->cfg.code_name = get_str(root, "code_name", true, &rc, err);
	if (rc < 0)
		goto fail;
	q->cfg.python = get_str(root, "python", false, &rc, err);
	if (rc < 0)
		goto fail;
	q->cfg.output_dir = get_str(root, "output_dir", true, &rc, err);
	if (rc < 0)
		goto fail;
	q->cfg.cgroup_parent = get_str(root, "cgroup_parent", true, &rc, err);
	if (rc < 0)
		goto fail;
	v = json_object_get(root, "allow_reduced");
	if (!json_is_boolean(v)) {
		rc = bad(err, "'allow_reduced' must be a boolean");
		goto fail;
	}
	if (json_is_true(v))
		q->cfg.flags |= SANDCELL_ALLOW_REDUCED;
	/* Optional (added within protocol v1): absent means a plain run. */
	v = json_object_get(root, "cell");
	if (v != NULL && !json_is_boolean(v)) {
		rc = bad(err, "'cell' must be a boolean");
		goto fail;
	}
	if (json_is_true(v))
		q->cfg.flags |= SANDCELL_CELL;
	v = json_object_get(root, "session");
	if (v != NULL && !json_is_boolean(v)) {
		rc = bad(err, "'session' must be a boolean");
		goto fail;
	}
	if (json_is_true(v)) {
		q->cfg.flags |= SANDCELL_SESSION | SANDCELL_CELL;
		/* A session's budgets when the request leaves them out, as
		 * `sandcell session` has them (docs/sessions.md). */
		q->cfg.limits.wall_sec = 86400;
		q->cfg.limits.cpu_sec = 3600;
	}

	v = json_object_get(root, "args");
	if (!json_is_array(v) || json_array_size(v) > 256) {
		rc = bad(err, "'args' must be an array of at most 256 strings");
		goto fail;
	}
	q->args = calloc(json_array_size(v) + 1, sizeof(char *));
	if (q->args == NULL) {
		rc = sc_err(err, ENOMEM, "request");
		goto fail;
	}
	for (i = 0; i < json_array_size(v); i++) {
		json_t *a = json_array_get(v, i);
		if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a)) {
			rc = bad(err, "'args' must hold strings without NUL bytes");
			goto fail;
		}
		q->args[i] = json_string_value(a);
	}
	q->cfg.args = q->args;
	q->cfg.n_args = json_array_size(v);

	v = json_object_get(root, "inputs");
	if (!json_is_array(v) || json_array_size(v) > 1024) {
		rc = bad(err, "'inputs' must be an array of at most 1024 objects");
		goto fail;
	}
	q->inputs = calloc(json_array_size(v) + 1, sizeof(*q->inputs));
	if (q->inputs == NULL) {
		rc = sc_err(err, ENOMEM, "request");
		goto fail;
	}
	for (i = 0; i < json_array_size(v); i++) {
		json_t *o = json_array_get(v, i), *n, *p, *d = NULL;
		/* "dataset" is optional (added within protocol v1): with
		 * name and path it makes three keys, and no other key. */
		if (json_is_object(o))
			d = json_object_get(o, "dataset");
		if (!json_is_object(o) || json_object_size(o) != (d != NULL ? 3u : 2u) ||
		    !json_is_string(n = json_object_get(o, "name")) ||
		    !json_is_string(p = json_object_get(o, "path")) ||
		    json_string_value(p)[0] != '/' ||
		    strlen(json_string_value(p)) != json_string_length(p)) {
			rc = bad(err, "each input must be {\"name\": NAME, \"path\": ABSOLUTE PATH} "
				 "with an optional \"dataset\": BOOLEAN");
			goto fail;
		}
		if (d != NULL && !json_is_boolean(d)) {
			rc = bad(err, "an input's 'dataset' must be a boolean");
			goto fail;
		}
		if (sandcell_check_name(json_string_value(n), err) < 0) {
			rc = sc_err_wrap(err, json_is_true(d) ? "request: dataset" : "request: input");
			goto fail;
		}
		q->inputs[i].name = json_string_value(n);
		q->inputs[i].path = json_string_value(p);
		q->inputs[i].flags = json_is_true(d) ? SANDCELL_INPUT_DATASET : 0;
	}
	q->cfg.inputs = q->inputs;
	q->cfg.n_inputs = json_array_size(v);

	v = json_object_get(root, "values");
	if (v == NULL || !(json_is_null(v) || json_is_object(v))) {
		rc = bad(err, "'values' must be an object or null");
		goto fail;
	}
	if (json_is_object(v)) {
		q->values = json_dumps(v, JSON_COMPACT);
		if (q->values == NULL) {
			rc = sc_err(err, ENOMEM, "request");
			goto fail;
		}
		q->cfg.values_json = q->values;
	}
	if (q->cfg.output_dir && q->cfg.output_dir[0] != '/') {
		rc = bad(err, "'output_dir' must be an absolute path");
		goto fail;
	}

	lim = json_object_get(root, "limits");
	if (!json_is_object(lim)) {
		rc = bad(err, "'limits' must be an object");
		goto fail;
	}
	json_object_foreach(lim, key, v) {
		uint64_t *u = lim_u64(&q->cfg.limits, key);
		double *t = lim_time(&q->cfg.limits, key, (q->cfg.flags & SANDCELL_SESSION) != 0);
		if (t != NULL) {
			double d = json_is_number(v) ? json_number_value(v) : -1;
			if (!(d > 0 && d <= 1e7)) {
				rc = bad(err, "time limits must be numbers in (0, 1e7]");
				goto fail;
			}
			*t = d;
		} else if (u != NULL) {
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				rc = bad(err, "limits other than wall_sec and cpu_sec must be non-negative integers");
				goto fail;
			}
			*u = (uint64_t)json_integer_value(v);
		} else {
			rc = bad_name(err, "unknown limit", key);
			goto fail;
		}
	}
	/* A session's cells come as commands (docs/sessions.md): code in
	 * the request would be silently ignored, so it is refused. */
	if ((q->cfg.flags & SANDCELL_SESSION) &&
	    (q->cfg.code_len > 0 || q->cfg.code_name != NULL || q->cfg.n_args > 0)) {
		rc = bad(err, "a session takes no code, code_name or args: its cells come as commands");
		goto fail;
	}
	return 0;
fail:
	sc_request_free(q);
	return rc < 0 ? rc : -1;
}

/* ---- framing: 4-byte little-endian length, then the bytes ---- */

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sc_frame_send(int fd, const char *buf, size_t len, const int *fds, size_t n_fds)
{
	unsigned char hdr[4] = { (unsigned char)len, (unsigned char)(len >> 8),
				 (unsigned char)(len >> 16), (unsigned char)(len >> 24) };
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { hdr, sizeof(hdr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (len > UINT32_MAX || n_fds > 4)
		return -1;
	if (n_fds > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		/* Never NULL, msg_controllen holds a header; checked because
		 * gcc -fanalyzer cannot tell (at -O1). */
		if (c == NULL) {
			errno = EINVAL;
			return -1;
		}
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(hdr))
		return -1;
	return write_full(fd, buf, len);
}

/* Reads exactly len bytes, giving up after timeout_ms of silence. */
static int read_full(int fd, char *buf, size_t len, int timeout_ms)
{
	while (len > 0) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? EPIPE : errno;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Moves the SCM_RIGHTS fds of one received chunk into fds[] while fewer
 * than want have arrived; closes the rest.  *got counts every fd seen, kept
 * or not, so the caller can refuse a frame that carried too many. */
static void take_fds(struct msghdr *mh, int *fds, size_t want, size_t *got)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k, cnt;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (*got < want)
				fds[*got] = f;
			else
				close(f);
			(*got)++;
		}
	}
}

/*
 * The header is read with recvmsg until its 4 bytes are in, taking the fds
 * from whichever of those reads carry them.  A stream socket hands back at
 * most one sender's write that carries fds per recvmsg (the kernel never
 * joins it with the bytes that follow), so a client that sends the fds
 * with the first byte and the other three bytes in a later write is
 * served like one that sends the whole header in one sendmsg.  Fds sent
 * with the body are dropped by the kernel (recv has no control buffer),
 * so the frame then has too few and is refused by the caller.  Every read
 * waits at most timeout_ms: a client that stops mid-header is dropped.
 */
int sc_frame_recv(int fd, char **out, size_t *len, size_t max, int *fds, size_t *n_fds,
		  int timeout_ms, struct sandcell_error *err)
{
	unsigned char hdr[4];
	size_t want = n_fds ? *n_fds : 0, got = 0, have = 0, size;
	bool ctrunc = false;
	char *buf;

	*out = NULL;
	if (n_fds)
		*n_fds = 0;
	while (have < sizeof(hdr)) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { hdr + have, sizeof(hdr) - have };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;
		int r = poll(&p, 1, timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r == 0 ? ETIMEDOUT : errno;
			if (have == 0 && got == 0)
				sc_err(err, e, "protocol: no frame");
			else
				sc_err(err, e, "protocol: truncated frame header");
			goto fail;
		}
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		/* Keep the fds we were promised, close anything else. */
		take_fds(&mh, fds, want, &got);
		ctrunc |= (mh.msg_flags & MSG_CTRUNC) != 0;
		if (n < 0) {
			sc_err(err, errno, "protocol: reading the frame header");
			goto fail;
		}
		if (n == 0) {
			if (have == 0)
				sc_err(err, EPIPE, "protocol: connection closed before a frame");
			else
				sc_err(err, EPROTO, "protocol: truncated frame header");
			goto fail;
		}
		have += (size_t)n;
	}
	if (got > want) {
		sc_err(err, EPROTO, "protocol: %zu fds attached, %zu expected", got, want);
		goto fail;
	}
	if (ctrunc) {
		sc_err(err, EPROTO, "protocol: truncated control data with the frame header");
		goto fail;
	}
	size = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
	if (size > max) {
		sc_err(err, EMSGSIZE, "protocol: frame of %zu bytes exceeds the limit of %zu", size, max);
		goto fail;
	}
	buf = malloc(size + 1);
	if (buf == NULL) {
		sc_err(err, ENOMEM, "protocol");
		goto fail;
	}
	if (read_full(fd, buf, size, timeout_ms) < 0) {
		int e = errno;
		free(buf);
		sc_err(err, e, "protocol: truncated frame (%zu bytes announced)", size);
		goto fail;
	}
	buf[size] = '\0';
	*out = buf;
	*len = size;
	if (n_fds)
		*n_fds = got;
	return 0;
fail:
	/* No frame: the caller gets no fds either (*n_fds stays 0). */
	for (size_t k = 0; k < got && k < want; k++)
		close(fds[k]);
	return -1;
}

/* A report made here, for an outcome the server could not report: it
 * never answered (unreachable), or it hung up or answered garbage. */
static int local_report(enum sandcell_status st, const struct sandcell_config *cfg, const char *why,
			char **report, int *exit_code, struct sandcell_error *err)
{
	struct sandcell_result *r = sandcell_result_refused(st, why, &cfg->limits);

	*report = r ? sandcell_report_json(r) : NULL;
	if (r)
		*exit_code = sandcell_result_exit_code(r);
	sandcell_result_free(r);
	if (*report == NULL)
		return sc_err(err, ENOMEM, "%s", why);
	return 0;
}

/* Waits until the server's answer is readable.  cancel_fd becoming
 * readable first cancels the run: our side of the connection is shut
 * down for writing, which the server's supervisor sees (it watches the
 * connection), and the answer, the run's report, still comes. */
static void await_answer(int s, int cancel_fd)
{
	bool cancelled = cancel_fd < 0;

	for (;;) {
		struct pollfd p[2] = { { s, POLLIN, 0 }, { cancel_fd, POLLIN, 0 } };
		int r = poll(p, cancelled ? 1 : 2, -1);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[0].revents)
			return;
		if (p[1].revents) {
			shutdown(s, SHUT_WR);
			cancelled = true;
		}
	}
}

int sandcell_run_remote(const char *socket_path, const struct sandcell_config *cfg,
			char **report, int *exit_code, struct sandcell_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fds[3] = { cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd };
	int s = -1, nullfd = -1, rc = -1;
	char *req = NULL, *resp = NULL, why[600];
	size_t rlen;
	bool sent;
	json_t *j = NULL;

	*report = NULL;
	*exit_code = SANDCELL_EXIT_USAGE;
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return sc_err(err, ENAMETOOLONG, "server socket %s", socket_path);
	strcpy(sa.sun_path, socket_path);
	req = sc_request_build(cfg);
	if (req == NULL)
		return sc_err(err, EINVAL, "cannot encode the request (names, paths and code must be "
				   "UTF-8, input flags known)");
	if (fds[0] < 0) {
		nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		fds[0] = nullfd;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		sc_err(err, errno, "socket");
		*exit_code = SANDCELL_EXIT_SANDBOX;
		goto out;
	}
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, sizeof(why), "cannot reach the sandcell server at %.400s: %s", socket_path,
			 strerror(errno));
		rc = local_report(SANDCELL_UNREACHABLE, cfg, why, report, exit_code, err);
		goto out;
	}
	/* A server that refuses early (another uid's) answers and hangs up,
	 * maybe before it read the request: its answer is still read. */
	sent = sc_frame_send(s, req, strlen(req), fds, 3) == 0;
	snprintf(why, sizeof(why), "sending the request to %.400s: %s", socket_path, strerror(errno));
	await_answer(s, cfg->cancel_fd);
	/* The answer comes when the run is over: no timeout of our own, the
	 * server enforces the wall clock and the queue timeout. */
	if (sc_frame_recv(s, &resp, &rlen, 64u << 20, NULL, NULL, -1, err) < 0) {
		char m[sizeof(why)];
		if (sent)
			snprintf(m, sizeof(m), "the server at %.300s closed the connection without an answer "
				 "(%.200s)", socket_path, err ? err->msg : "");
		else
			snprintf(m, sizeof(m), "%s", why);
		rc = local_report(SANDCELL_SANDBOX_ERROR, cfg, m, report, exit_code, err);
		goto out;
	}
	/* A report may carry NULs the code printed (as \u0000). */
	j = json_loadb(resp, rlen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	if (!json_is_object(j) || !json_is_integer(json_object_get(j, "exit_code")) ||
	    !json_is_string(json_object_get(j, "status"))) {
		snprintf(why, sizeof(why), "the server at %.400s sent a malformed report", socket_path);
		rc = local_report(SANDCELL_SANDBOX_ERROR, cfg, why, report, exit_code, err);
		goto out;
	}
	*exit_code = (int)json_integer_value(json_object_get(j, "exit_code"));
	*report = resp;
	resp = NULL;
	rc = 0;
out:
	json_decref(j);
	free(resp);
	free(req);
	if (s >= 0)
		close(s);
	if (nullfd >= 0)
		close(nullfd);
	return rc;
}

int sandcell_sessions_remote(const char *socket_path, char **listing, struct sandcell_error *err)
{
	static const char req[] = "{\"v\":1,\"op\":\"sessions\"}";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *resp = NULL;
	size_t rlen;
	json_t *j = NULL;
	int s, rc = -1;

	*listing = NULL;
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return sc_err(err, ENAMETOOLONG, "server socket %s", socket_path);
	strcpy(sa.sun_path, socket_path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return sc_err(err, errno, "socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		sc_err(err, errno, "cannot reach the sandcell server at %s", socket_path);
		goto out;
	}
	if (sc_frame_send(s, req, strlen(req), NULL, 0) < 0) {
		sc_err(err, errno, "sending the request to %s", socket_path);
		goto out;
	}
	if (sc_frame_recv(s, &resp, &rlen, 16u << 20, NULL, NULL, -1, err) < 0)
		goto out;
	/* The listing, or a refusal (a report: status and reason). */
	j = json_loadb(resp, rlen, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_array(json_object_get(j, "sessions"))) {
		*listing = resp;
		resp = NULL;
		rc = 0;
	} else if (json_is_string(json_object_get(j, "reason"))) {
		sc_err(err, EPROTO, "the server refused: %.400s", json_string_value(json_object_get(j, "reason")));
	} else {
		sc_err(err, EPROTO, "the server at %s sent a malformed listing", socket_path);
	}
out:
	json_decref(j);
	free(resp);
	close(s);
	return rc;
}
