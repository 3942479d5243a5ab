/*
 * The request objects of POST /v1/runs and /v1/sessions and the session
 * command bodies (docs/http.md).  Fields and names are the Python
 * client's (sandcell.run(), sandcell.Session()): a client that speaks to a
 * local server and one that speaks HTTP send the same things.  Nothing a
 * client sends here names a host path: inputs travel as parts.
 */
#include "http.h"
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum kind { SECONDS, SIZE, COUNT };

static const struct limit_key {
	const char *key, *option;
	enum kind kind;
	bool session_only;
} limit_keys[HT_LIM_COUNT] = {
	[HT_LIM_WALL] = { "wall_time", "--wall-time", SECONDS, false },
	[HT_LIM_CPU] = { "cpu_time", "--cpu-time", SECONDS, false },
	[HT_LIM_MEMORY] = { "memory", "--memory", SIZE, false },
	[HT_LIM_PIDS] = { "pids", "--pids", COUNT, false },
	[HT_LIM_DISK] = { "disk", "--disk", SIZE, false },
	[HT_LIM_FILES] = { "files", "--files", COUNT, false },
	[HT_LIM_STDOUT] = { "stdout_limit", "--stdout-limit", SIZE, false },
	[HT_LIM_RESULT] = { "result_limit", "--result-limit", SIZE, false },
	[HT_LIM_OUT_FILES] = { "output_files", "--output-files", COUNT, false },
	[HT_LIM_OUT_BYTES] = { "output_bytes", "--output-bytes", SIZE, false },
	[HT_LIM_CELL_WALL] = { "cell_wall_time", "--cell-wall-time", SECONDS, true },
	[HT_LIM_CELL_CPU] = { "cell_cpu_time", "--cell-cpu-time", SECONDS, true },
	[HT_LIM_IDLE] = { "idle_timeout", "--idle-timeout", SECONDS, true },
};

const char *ht_limit_option(unsigned which)
{
	return which < HT_LIM_COUNT ? limit_keys[which].option : NULL;
}

static double *secs_field(struct sandcell_limits *l, unsigned w)
{
	switch (w) {
	case HT_LIM_WALL: return &l->wall_sec;
	case HT_LIM_CPU: return &l->cpu_sec;
	case HT_LIM_CELL_WALL: return &l->cell_wall_sec;
	case HT_LIM_CELL_CPU: return &l->cell_cpu_sec;
	case HT_LIM_IDLE: return &l->idle_sec;
	default: return NULL;
	}
}

static uint64_t *u64_field(struct sandcell_limits *l, unsigned w)
{
	switch (w) {
	case HT_LIM_MEMORY: return &l->memory;
	case HT_LIM_PIDS: return &l->pids;
	case HT_LIM_DISK: return &l->disk;
	case HT_LIM_FILES: return &l->files;
	case HT_LIM_STDOUT: return &l->stream;
	case HT_LIM_RESULT: return &l->result_bytes;
	case HT_LIM_OUT_FILES: return &l->output_files;
	case HT_LIM_OUT_BYTES: return &l->output_bytes;
	default: return NULL;
	}
}

void ht_limit_text(const struct ht_request *q, unsigned w, char *buf, size_t size)
{
	struct sandcell_limits l = q->limits;
	double *d = secs_field(&l, w);
	uint64_t *u = u64_field(&l, w);

	if (d)
		snprintf(buf, size, "%.6f", *d);
	else if (u)
		snprintf(buf, size, "%llu", (unsigned long long)*u);
	else
		snprintf(buf, size, "0");
}

static int inval(struct sandcell_error *err, const char *fmt, const char *arg)
{
	char *esc = arg ? sc_escape_bytes(arg, strnlen(arg, 64), NULL) : NULL;

	sc_err(err, 0, fmt, esc ? esc : "");
	free(esc);
	if (err)
		err->code = EINVAL;
	return -1;
}

/* One limit: a JSON number, or text in the CLI's grammar ("512M", "0.5"). */
static int set_limit(struct ht_request *q, unsigned w, json_t *v, struct sandcell_error *err)
{
	const struct limit_key *k = &limit_keys[w];
	struct sandcell_error pe;
	double d = -1;
	uint64_t u = 0;

	if (k->kind == SECONDS) {
		if (json_is_string(v) && sandcell_parse_seconds(json_string_value(v), &d, &pe) < 0)
			d = -1;
		else if (json_is_number(v))
			d = json_number_value(v);
		double *f = secs_field(&q->limits, w);
		if (!(d > 0 && d <= 1e7) || f == NULL)
			return inval(err, "limits['%s']: seconds in (0, 1e7], as a number or text", k->key);
		*f = d;
	} else {
		int rc = -1;
		if (json_is_string(v))
			rc = k->kind == SIZE ? sandcell_parse_size(json_string_value(v), &u, &pe)
					     : sandcell_parse_count(json_string_value(v), &u, &pe);
		else if (json_is_integer(v) && json_integer_value(v) >= 0)
			u = (uint64_t)json_integer_value(v), rc = 0;
		uint64_t *f = u64_field(&q->limits, w);
		if (rc < 0 || u > (uint64_t)INT64_MAX || f == NULL)
			return inval(err, "limits['%s']: a non-negative whole number (sizes also as "
				     "text like '512M')", k->key);
		*f = u;
	}
	q->limits_set |= 1u << w;
	return 0;
}

static int parse_limits(struct ht_request *q, json_t *lim, bool session, struct sandcell_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(lim))
		return inval(err, "'limits' must be an object%s", "");
	json_object_foreach(lim, key, v) {
		unsigned w;
		for (w = 0; w < HT_LIM_COUNT; w++)
			if (strcmp(key, limit_keys[w].key) == 0 && (session || !limit_keys[w].session_only))
				break;
		if (w == HT_LIM_COUNT)
			return inval(err, "limits: unknown key '%s'", key);
		if (set_limit(q, w, v, err) < 0)
			return -1;
	}
	/* The CLI's rule, which the Python client applies for the warm
	 * server too: collected bytes never exceed the scratch space. */
	if ((q->limits_set & (1u << HT_LIM_DISK)) && q->limits.output_bytes > q->limits.disk)
		q->limits.output_bytes = q->limits.disk;
	return 0;
}

/* The strings live in the same block as the pointers: one free(). */
static int parse_args(struct ht_request *q, json_t *arr, struct sandcell_error *err)
{
	size_t n = json_array_size(arr), bytes = 0;
	char *p;

	if (!json_is_array(arr) || n > 256)
		return inval(err, "'args' must be an array of at most 256 strings%s", "");
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(arr, i);
		if (!json_is_string(s))
			return inval(err, "'args' must hold strings%s", "");
		bytes += json_string_length(s) + 1;
	}
	q->args = malloc((n + 1) * sizeof(char *) + bytes);
	if (q->args == NULL)
		return sc_err(err, ENOMEM, "request");
	p = (char *)(q->args + n + 1);
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_array_get(arr, i);
		memcpy(p, json_string_value(s), json_string_length(s) + 1);
		q->args[i] = p;
		p += json_string_length(s) + 1;
	}
	q->args[n] = NULL;
	q->n_args = n;
	return 0;
}

static int parse_values(struct ht_request *q, json_t *v, struct sandcell_error *err)
{
	char *text;
	int rc;

	if (json_is_null(v))
		return 0;
	if (!json_is_object(v))
		return inval(err, "'values' must be an object or null%s", "");
	text = json_dumps(v, JSON_COMPACT);
	if (text == NULL)
		return sc_err(err, ENOMEM, "request");
	/* The CLI's checks (names, depth), by the CLI's own function. */
	rc = sandcell_values_merge(&q->values, text, strlen(text), err);
	free(text);
	return rc;
}

static int parse_bool(json_t *v, const char *key, bool *out, struct sandcell_error *err)
{
	if (!json_is_boolean(v))
		return inval(err, "'%s' must be a boolean", key);
	*out = json_is_true(v);
	return 0;
}

static int parse_field(struct ht_request *q, const char *key, json_t *v, bool session,
		       struct sandcell_error *err)
{
	if (!session && strcmp(key, "code") == 0) {
		if (!json_is_string(v))
			return inval(err, "'code' must be a string%s", "");
		q->code_len = json_string_length(v);
		q->code = strdup(json_string_value(v));
		return q->code ? 0 : sc_err(err, ENOMEM, "request");
	}
	if (!session && strcmp(key, "args") == 0)
		return parse_args(q, v, err);
	if (!session && strcmp(key, "cell") == 0)
		return parse_bool(v, key, &q->cell, err);
	if (strcmp(key, "values") == 0)
		return parse_values(q, v, err);
	if (strcmp(key, "limits") == 0)
		return parse_limits(q, v, session, err);
	if (strcmp(key, "allow_reduced") == 0)
		return parse_bool(v, key, &q->allow_reduced, err);
	return inval(err, "request: unknown field '%s' (docs/http.md)", key);
}

int ht_request_parse(const char *buf, size_t len, bool session, struct ht_request *q,
		     struct sandcell_error *err)
{
	struct sandcell_config defaults;
	const char *key;
	json_t *root, *v;

	memset(q, 0, sizeof(*q));
	sandcell_config_init(&defaults);
	q->limits = defaults.limits;
	if (session) {
		/* A session's budgets when the request leaves them out, as
		 * `sandcell session` and the warm server have them
		 * (docs/sessions.md): a day of wall clock, an hour of CPU.  The
		 * one-shot defaults (30 s) would end every session 30 s after
		 * its start, idle or not. */
		q->limits.wall_sec = 86400;
		q->limits.cpu_sec = 3600;
	}
	q->cell = !session; /* the Python client's default where cell mode exists */
	if (sc_json_parse(buf, len, len, SC_JSON_MAX_DEPTH + 2, &root, err) < 0)
		return sc_err_wrap(err, "request");
	if (!json_is_object(root)) {
		json_decref(root);
		return inval(err, "request: not a JSON object%s", "");
	}
	json_object_foreach(root, key, v)
		if (parse_field(q, key, v, session, err) < 0) {
			json_decref(root);
			ht_request_free(q);
			return -1;
		}
	json_decref(root);
	if (!session && q->code == NULL) {
		ht_request_free(q);
		return inval(err, "request: 'code' is required%s", "");
	}
	if (q->code != NULL && strlen(q->code) != q->code_len) {
		ht_request_free(q);
		return inval(err, "request: 'code' holds a NUL byte%s", "");
	}
	return 0;
}

void ht_request_free(struct ht_request *q)
{
	free(q->args);
	free(q->code);
	free(q->values);
	memset(q, 0, sizeof(*q));
}

/* ---- session command bodies ---- */

static json_t *load_object(const char *buf, size_t len, struct sandcell_error *err)
{
	json_t *root;

	if (sc_json_parse(buf, len, len, 2, &root, err) < 0) {
		sc_err_wrap(err, "body");
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		inval(err, "body: not a JSON object%s", "");
		return NULL;
	}
	return root;
}

/* Keys of root outside the NULL-terminated list: refused. */
static int closed_keys(json_t *root, const char *const *known, struct sandcell_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(root, key, v) {
		size_t i;
		for (i = 0; known[i] && strcmp(known[i], key) != 0; i++)
			;
		if (known[i] == NULL)
			return inval(err, "body: unknown field '%s'", key);
	}
	return 0;
}

static char *dump_free(json_t *cmd, struct sandcell_error *err)
{
	char *s = cmd ? json_dumps(cmd, JSON_COMPACT) : NULL;

	json_decref(cmd);
	if (s == NULL)
		sc_err(err, ENOMEM, "command");
	return s;
}

static int cell_id(json_t *root, unsigned long seq, char id[65], struct sandcell_error *err)
{
	json_t *i = json_object_get(root, "id"), *s = json_object_get(root, "silent");
	bool silent = false;

	if (s != NULL && parse_bool(s, "silent", &silent, err) < 0)
		return -1;
	if (i == NULL) {
		snprintf(id, 65, "%sc%lu", silent ? "_" : "", seq);
		return 0;
	}
	if (!json_is_string(i) || !sc_session_id_ok(json_string_value(i), json_string_length(i)))
		return inval(err, "'id': 1-64 of [A-Za-z0-9._:-]%s", "");
	if ((json_string_value(i)[0] == '_') != silent)
		return inval(err, "'id': an id starting with '_' is a silent cell, and silent "
			     "cells need one%s", "");
	snprintf(id, 65, "%s", json_string_value(i));
	return 0;
}

char *ht_cell_command(const char *buf, size_t len, unsigned long seq, char id[65],
		      struct sandcell_error *err)
{
	static const char *const known[] = { "code", "id", "silent", NULL };
	json_t *root = load_object(buf, len, err), *code;
	char *out = NULL;

	if (root == NULL)
		return NULL;
	code = json_object_get(root, "code");
	if (closed_keys(root, known, err) == 0 && cell_id(root, seq, id, err) == 0) {
		if (!json_is_string(code))
			inval(err, "'code' must be a string%s", "");
		else
			out = dump_free(json_pack("{s:s,s:s,s:O}", "op", "run", "id", id, "code", code), err);
	}
	json_decref(root);
	return out;
}

char *ht_input_command(const char *buf, size_t len, struct sandcell_error *err)
{
	static const char *const known[] = { "id", "value", NULL };
	json_t *root = load_object(buf, len, err), *id, *value;
	char *out = NULL;

	if (root == NULL)
		return NULL;
	id = json_object_get(root, "id");
	value = json_object_get(root, "value");
	if (closed_keys(root, known, err) < 0)
		;
	else if (!json_is_string(id) || !sc_session_id_ok(json_string_value(id), json_string_length(id)))
		inval(err, "'id': the cell's id, 1-64 of [A-Za-z0-9._:-]%s", "");
	else if (!json_is_string(value))
		inval(err, "'value' must be a string%s", "");
	else
		out = dump_free(json_pack("{s:s,s:O,s:O}", "op", "input", "id", id, "value", value), err);
	json_decref(root);
	return out;
}

char *ht_refuse_command(const char *buf, size_t len, char name[129], struct sandcell_error *err)
{
	static const char *const known[] = { "name", "refused", NULL };
	json_t *root = load_object(buf, len, err), *n, *why;
	struct sandcell_error ne;
	char *out = NULL;

	if (root == NULL)
		return NULL;
	n = json_object_get(root, "name");
	why = json_object_get(root, "refused");
	if (closed_keys(root, known, err) < 0)
		;
	else if (!json_is_string(n) || sandcell_check_name(json_string_value(n), &ne) < 0)
		inval(err, "'name': 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'%s", "");
	else if (!json_is_string(why) || json_string_length(why) > SC_SESSION_REFUSAL_MAX)
		inval(err, "'refused' must be a string of at most 4096 bytes%s", "");
	else {
		snprintf(name, 129, "%s", json_string_value(n));
		out = dump_free(json_pack("{s:s,s:s,s:O,s:O}", "op", "add", "kind", "dataset", "name", n,
					  "refused", why), err);
	}
	json_decref(root);
	return out;
}

char *ht_add_command(bool dataset, const char *name, const char *path)
{
	return dump_free(json_pack("{s:s,s:s,s:s,s:s}", "op", "add", "kind", dataset ? "dataset" : "input",
				   "name", name, "path", path), NULL);
}

/* The events of docs/sessions.md, each with the fields the front end
 * reads typed as it reads them; anything else is dropped (and logged). */
static bool event_ok(json_t *ev, const char **kind)
{
	static const char *const kinds[] = { "session", "ready", "output", "input_request",
					     "dataset_request", "done", "added", "refused", "end", NULL };
	json_t *id = json_object_get(ev, "id");
	const char *k = json_string_value(json_object_get(ev, "ev"));
	size_t i = 0;

	if (!json_is_object(ev) || k == NULL)
		return false;
	while (kinds[i] && strcmp(kinds[i], k) != 0)
		i++;
	if (kinds[i] == NULL || (id != NULL && !json_is_string(id) && !json_is_null(id)))
		return false;
	*kind = kinds[i];
	if (!strcmp(k, "output") || !strcmp(k, "session"))
		return true;
	if (!strcmp(k, "input_request") || !strcmp(k, "done"))
		return json_is_string(id) && (k[0] == 'i' || json_is_string(json_object_get(ev, "status")));
	if (!strcmp(k, "dataset_request") || !strcmp(k, "added"))
		return json_is_string(json_object_get(ev, "name"));
	if (!strcmp(k, "refused"))
		return json_is_string(json_object_get(ev, "reason"));
	if (!strcmp(k, "end"))
		return json_is_string(json_object_get(ev, "status"));
	return true;
}

json_t *ht_event_parse(const char *line, size_t n, const char **kind)
{
	json_t *ev = json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);

	if (ev != NULL && event_ok(ev, kind))
		return ev;
	json_decref(ev);
	return NULL;
}

int ht_new_id(char id[HT_ID_LEN + 1])
{
	unsigned char b[HT_ID_LEN / 2];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -1;
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(id + 2 * i, 3, "%02x", b[i]);
	return 0;
}

char *ht_base64(const unsigned char *p, size_t n, size_t *out_len)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = (n + 2) / 3 * 4, o = 0;
	char *s = malloc(len + 1);

	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		s[o++] = tab[(v >> 18) & 63];
		s[o++] = tab[(v >> 12) & 63];
		s[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		s[o++] = i + 2 < n ? tab[v & 63] : '=';
	}
	s[o] = '\0';
	if (out_len)
		*out_len = o;
	return s;
}
