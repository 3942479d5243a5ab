/*
 * The warm server's requests (docs/warm.md): the JSON object a client
 * builds from a sandcell_config, and the strict parser the server reads
 * it with.  Requests come from other processes: size and depth caps,
 * duplicate keys and unknown fields rejected, every type checked.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Strings, booleans and the session flag. */
static int parse_scalars(json_t *root, struct sc_request *q, struct sandcell_error *err)
{
	json_t *v;
	int rc = 0;

	v = json_object_get(root, "code");
	if (!json_is_string(v))
		return bad(err, "'code' must be a string");
	q->cfg.code = json_string_value(v);
	q->cfg.code_len = json_string_length(v);
	q->cfg.code_name = get_str(root, "code_name", true, &rc, err);
	if (rc == 0)
		q->cfg.python = get_str(root, "python", false, &rc, err);
	if (rc == 0)
		q->cfg.output_dir = get_str(root, "output_dir", true, &rc, err);
	if (rc == 0)
		q->cfg.cgroup_parent = get_str(root, "cgroup_parent", true, &rc, err);
	if (rc < 0)
		return rc;
	if (q->cfg.output_dir && q->cfg.output_dir[0] != '/')
		return bad(err, "'output_dir' must be an absolute path");
	v = json_object_get(root, "allow_reduced");
	if (!json_is_boolean(v))
		return bad(err, "'allow_reduced' must be a boolean");
	if (json_is_true(v))
		q->cfg.flags |= SANDCELL_ALLOW_REDUCED;
	/* Optional (added within protocol v1): absent means a plain run. */
	v = json_object_get(root, "cell");
	if (v != NULL && !json_is_boolean(v))
		return bad(err, "'cell' must be a boolean");
	if (json_is_true(v))
		q->cfg.flags |= SANDCELL_CELL;
	v = json_object_get(root, "session");
	if (v != NULL && !json_is_boolean(v))
		return bad(err, "'session' must be a boolean");
	if (json_is_true(v)) {
		q->cfg.flags |= SANDCELL_SESSION | SANDCELL_CELL;
		/* A session's budgets when the request leaves them out, as
		 * `sandcell session` has them (docs/sessions.md). */
		q->cfg.limits.wall_sec = 86400;
		q->cfg.limits.cpu_sec = 3600;
	}
	return 0;
}

static int parse_args(json_t *root, struct sc_request *q, struct sandcell_error *err)
{
	json_t *v = json_object_get(root, "args");
	size_t i;

	if (!json_is_array(v) || json_array_size(v) > 256)
		return bad(err, "'args' must be an array of at most 256 strings");
	q->args = calloc(json_array_size(v) + 1, sizeof(char *));
	if (q->args == NULL)
		return sc_err(err, ENOMEM, "request");
	for (i = 0; i < json_array_size(v); i++) {
		json_t *a = json_array_get(v, i);
		if (!json_is_string(a) || strlen(json_string_value(a)) != json_string_length(a))
			return bad(err, "'args' must hold strings without NUL bytes");
		q->args[i] = json_string_value(a);
	}
	q->cfg.args = q->args;
	q->cfg.n_args = json_array_size(v);
	return 0;
}

static int parse_inputs(json_t *root, struct sc_request *q, struct sandcell_error *err)
{
	json_t *v = json_object_get(root, "inputs");
	size_t i;

	if (!json_is_array(v) || json_array_size(v) > 1024)
		return bad(err, "'inputs' must be an array of at most 1024 objects");
	q->inputs = calloc(json_array_size(v) + 1, sizeof(*q->inputs));
	if (q->inputs == NULL)
		return sc_err(err, ENOMEM, "request");
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
		    strlen(json_string_value(p)) != json_string_length(p))
			return bad(err, "each input must be {\"name\": NAME, \"path\": ABSOLUTE PATH} "
				   "with an optional \"dataset\": BOOLEAN");
		if (d != NULL && !json_is_boolean(d))
			return bad(err, "an input's 'dataset' must be a boolean");
		if (sandcell_check_name(json_string_value(n), err) < 0)
			return sc_err_wrap(err, json_is_true(d) ? "request: dataset" : "request: input");
		q->inputs[i].name = json_string_value(n);
		q->inputs[i].path = json_string_value(p);
		q->inputs[i].flags = json_is_true(d) ? SANDCELL_INPUT_DATASET : 0;
	}
	q->cfg.inputs = q->inputs;
	q->cfg.n_inputs = json_array_size(v);
	return 0;
}

static int parse_values(json_t *root, struct sc_request *q, struct sandcell_error *err)
{
	json_t *v = json_object_get(root, "values");

	if (v == NULL || !(json_is_null(v) || json_is_object(v)))
		return bad(err, "'values' must be an object or null");
	if (json_is_object(v)) {
		q->values = json_dumps(v, JSON_COMPACT);
		if (q->values == NULL)
			return sc_err(err, ENOMEM, "request");
		q->cfg.values_json = q->values;
	}
	return 0;
}

static int parse_limits(json_t *root, struct sc_request *q, struct sandcell_error *err)
{
	json_t *lim = json_object_get(root, "limits"), *v;
	const char *key;

	if (!json_is_object(lim))
		return bad(err, "'limits' must be an object");
	json_object_foreach(lim, key, v) {
		uint64_t *u = lim_u64(&q->cfg.limits, key);
		double *t = lim_time(&q->cfg.limits, key, (q->cfg.flags & SANDCELL_SESSION) != 0);
		if (t != NULL) {
			double d = json_is_number(v) ? json_number_value(v) : -1;
			if (!(d > 0 && d <= 1e7))
				return bad(err, "time limits must be numbers in (0, 1e7]");
			*t = d;
		} else if (u != NULL) {
			if (!json_is_integer(v) || json_integer_value(v) < 0)
				return bad(err, "limits other than wall_sec and cpu_sec must be non-negative integers");
			*u = (uint64_t)json_integer_value(v);
		} else {
			return bad_name(err, "unknown limit", key);
		}
	}
	return 0;
}

static int known_fields(json_t *root, struct sandcell_error *err)
{
	static const char *const known[] = { "v", "code", "code_name", "args", "inputs", "values",
					     "output_dir", "python", "cgroup_parent", "allow_reduced",
					     "cell", "limits", "session" };
	const char *key;
	json_t *v;
	size_t i;

	json_object_foreach(root, key, v) {
		bool ok = false;
		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			ok |= strcmp(key, known[i]) == 0;
		if (!ok)
			return bad_name(err, "unknown field", key);
	}
	v = json_object_get(root, "v");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
		return bad(err, "unsupported protocol version (want \"v\": 1)");
	return 0;
}

int sc_request_parse(const char *buf, size_t len, struct sc_request *q, struct sandcell_error *err)
{
	json_t *root = NULL;
	int rc;

	memset(q, 0, sizeof(*q));
	if (sc_json_parse(buf, len, SC_REQUEST_MAX, SC_JSON_MAX_DEPTH, &root, err) < 0)
		return sc_err_wrap(err, "request");
	q->root = root;
	if (!json_is_object(root)) {
		rc = bad(err, "not a JSON object");
	} else if (json_object_get(root, "op") != NULL) {
		rc = parse_op(root, q, err);
	} else {
		sandcell_config_init(&q->cfg);
		rc = known_fields(root, err);
		/* Limits after the scalars: a session's defaults come first. */
		if (rc == 0)
			rc = parse_scalars(root, q, err);
		if (rc == 0)
			rc = parse_args(root, q, err);
		if (rc == 0)
			rc = parse_inputs(root, q, err);
		if (rc == 0)
			rc = parse_values(root, q, err);
		if (rc == 0)
			rc = parse_limits(root, q, err);
		/* A session's cells come as commands (docs/sessions.md):
		 * code in the request would be silently ignored, so it is
		 * refused. */
		if (rc == 0 && (q->cfg.flags & SANDCELL_SESSION) &&
		    (q->cfg.code_len > 0 || q->cfg.code_name != NULL || q->cfg.n_args > 0))
			rc = bad(err, "a session takes no code, code_name or args: its cells come as commands");
	}
	if (rc < 0)
		sc_request_free(q);
	return rc < 0 ? rc : 0;
}
