/* The JSON run report (schema in docs/report.md) and the result accessors.
 *
 * The report is the one artefact every caller reads, including after a
 * sandbox error, so rendering never trusts a field to be set: NULL strings
 * become null or a default, counts are clamped to the arrays they describe
 * and text that is not valid UTF-8 is escaped rather than dropped.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SANDCELL_VERSION
#define SANDCELL_VERSION "0.1.0"
#endif

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const status_names[] = {
	[SANDCELL_OK] = "ok",
	[SANDCELL_EXITED] = "exited",
	[SANDCELL_SIGNALED] = "signaled",
	[SANDCELL_TIMEOUT] = "timeout",
	[SANDCELL_CPU_TIME] = "cpu-time",
	[SANDCELL_MEMORY] = "memory",
	[SANDCELL_DISK] = "disk",
	[SANDCELL_OUTPUT_LIMIT] = "output-limit",
	[SANDCELL_SANDBOX_ERROR] = "sandbox-error",
	[SANDCELL_USAGE_ERROR] = "usage-error",
	[SANDCELL_BUSY] = "busy",
	[SANDCELL_UNREACHABLE] = "unreachable",
	[SANDCELL_CANCELLED] = "cancelled",
};

const char *sandcell_status_name(enum sandcell_status s)
{
	if ((unsigned)s < ARRAY_LEN(status_names) && status_names[s] != NULL)
		return status_names[s];
	return "unknown";
}

enum sandcell_status sandcell_result_status(const struct sandcell_result *r)
{
	return r != NULL ? r->status : SANDCELL_SANDBOX_ERROR;
}

int sandcell_result_exit_code(const struct sandcell_result *r)
{
	return r != NULL ? r->exit_code : SANDCELL_EXIT_SANDBOX;
}

const char *sandcell_result_mode(const struct sandcell_result *r)
{
	return r->iso.mode ? r->iso.mode : "none";
}

const char *const *sandcell_result_not_held(const struct sandcell_result *r)
{
	return r->iso.not_held;
}

const char *sandcell_result_reason(const struct sandcell_result *r)
{
	return r->stop_reason;
}

const char *sandcell_result_error(const struct sandcell_result *r)
{
	return r->error;
}

bool sandcell_result_started(const struct sandcell_result *r)
{
	return r->code_started;
}

long long sandcell_result_host_uid(const struct sandcell_result *r)
{
	return r->iso.host_uid;
}

int sandcell_result_landlock_abi(const struct sandcell_result *r)
{
	return r->iso.landlock.abi;
}

const char *sandcell_result_cgroup_version(const struct sandcell_result *r)
{
	return r->iso.cgroup_version ? r->iso.cgroup_version : "none";
}

size_t sandcell_result_skipped_outputs(const struct sandcell_result *r)
{
	return r->outputs.n_skipped_total > r->outputs.n_skips ? r->outputs.n_skipped_total
							       : r->outputs.n_skips;
}

void sandcell_result_free(struct sandcell_result *r)
{
	if (r == NULL)
		return;
	json_decref(r->result);
	json_decref(r->cell_outputs);
	json_decref(r->cell_problems);
	json_decref(r->exception);
	json_decref(r->stopped_at);
	json_decref(r->session);
	json_decref(r->doc);
	sc_collect_free(&r->outputs);
	free(r);
}

bool sandcell_result_is_session(const struct sandcell_result *r)
{
	return r->session != NULL;
}

static int status_of(const char *name, enum sandcell_status *out)
{
	for (int s = SANDCELL_OK; s <= SANDCELL_CANCELLED; s++) {
		if (name != NULL && strcmp(name, sandcell_status_name((enum sandcell_status)s)) == 0) {
			*out = (enum sandcell_status)s;
			return 0;
		}
	}
	return -1;
}

/* isolation.*: what the accessors give.  Strings stay in r->doc. */
static int read_isolation(struct sandcell_result *r, json_t *iso)
{
	json_t *nh = json_object_get(iso, "not_held"), *v;
	size_t i;

	r->iso.mode = json_string_value(json_object_get(iso, "mode"));
	if (r->iso.mode == NULL || !json_is_array(nh) ||
	    json_array_size(nh) >= ARRAY_LEN(r->iso.not_held))
		return -1;
	json_array_foreach(nh, i, v) {
		if ((r->iso.not_held[i] = json_string_value(v)) == NULL)
			return -1;
	}
	r->iso.n_not_held = json_array_size(nh);
	r->iso.host_uid = (uid_t)json_integer_value(json_object_get(iso, "host_uid"));
	r->iso.landlock.abi = (int)json_integer_value(
		json_object_get(json_object_get(iso, "landlock"), "abi"));
	r->iso.cgroup_version = json_string_value(
		json_object_get(json_object_get(iso, "cgroup"), "version"));
	return 0;
}

struct sandcell_result *sandcell_result_from_report(const char *json, size_t len,
						    struct sandcell_error *err)
{
	struct sandcell_result *r;
	json_t *doc = NULL, *v;
	enum sandcell_status st;
	json_int_t code;

	if (sc_json_parse_ex(json, len, SC_REQUEST_MAX, SC_JSON_MAX_DEPTH, SC_JSON_ALLOW_NUL, &doc,
			     err) < 0)
		return NULL;
	code = json_integer_value(json_object_get(doc, "exit_code"));
	if (!json_is_object(doc) ||
	    status_of(json_string_value(json_object_get(doc, "status")), &st) < 0 ||
	    !json_is_integer(json_object_get(doc, "exit_code")) || code < 0 || code > 255 ||
	    !json_is_string(json_object_get(doc, "reason")) ||
	    !json_is_boolean(json_object_get(json_object_get(doc, "script"), "started"))) {
		json_decref(doc);
		sc_err(err, EINVAL, "not a report: status, exit_code, reason or script.started is "
				    "missing or out of range");
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		json_decref(doc);
		sc_err(err, ENOMEM, "reading a report");
		return NULL;
	}
	r->doc = doc;
	r->status = st;
	r->exit_code = (int)code;
	r->script_exit = -1;
	r->code_started = json_is_true(json_object_get(json_object_get(doc, "script"), "started"));
	snprintf(r->stop_reason, sizeof(r->stop_reason), "%s",
		 json_string_value(json_object_get(doc, "reason")));
	if (json_is_string(v = json_object_get(doc, "error")))
		snprintf(r->error, sizeof(r->error), "%s", json_string_value(v));
	if (json_is_object(v = json_object_get(doc, "session")))
		r->session = json_incref(v);
	if (read_isolation(r, json_object_get(doc, "isolation")) < 0) {
		sandcell_result_free(r);
		sc_err(err, EINVAL, "not a report: isolation.mode or isolation.not_held is missing");
		return NULL;
	}
	return r;
}

char *sandcell_report_json(const struct sandcell_result *r)
{
	return sc_report_render(r);
}

struct sandcell_result *sandcell_result_refused(enum sandcell_status status, const char *reason,
						const struct sandcell_limits *limits)
{
	struct sandcell_result *r;
	struct sandcell_config defaults;
	int code;

	switch (status) {
	case SANDCELL_USAGE_ERROR: code = SANDCELL_EXIT_USAGE; break;
	case SANDCELL_BUSY: code = SANDCELL_EXIT_BUSY; break;
	case SANDCELL_UNREACHABLE: code = SANDCELL_EXIT_UNREACHABLE; break;
	case SANDCELL_SANDBOX_ERROR: code = SANDCELL_EXIT_SANDBOX; break;
	case SANDCELL_CANCELLED: code = SANDCELL_EXIT_CANCELLED; break;
	default: return NULL; /* the other statuses need a run */
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	if (limits == NULL) {
		sandcell_config_init(&defaults);
		limits = &defaults.limits;
	}
	r->status = status;
	r->exit_code = code;
	r->script_exit = -1;
	r->limits = *limits;
	/* Nothing ran, so no layer confined anything (as after a failed
	 * setup): every layer reads false or "none". */
	r->iso.mode = "none";
	r->iso.cgroup_version = "none";
	r->iso.swap = "none";
	if (reason == NULL || reason[0] == '\0')
		reason = "request refused";
	snprintf(r->stop_reason, sizeof(r->stop_reason), "%s", reason);
	if (status == SANDCELL_SANDBOX_ERROR)
		snprintf(r->error, sizeof(r->error), "%s", reason);
	return r;
}

/*
 * Builders.  Each returns the new value or NULL on allocation failure;
 * set() consumes the value and records any failure in *bad, so the render
 * code below stays a flat list of fields and checks once at the end.
 */
static void set(json_t *obj, const char *key, json_t *val, bool *bad)
{
	if (val == NULL || json_object_set_new(obj, key, val) < 0)
		*bad = true;
}

static void push(json_t *arr, json_t *val, bool *bad)
{
	if (val == NULL || json_array_append_new(arr, val) < 0)
		*bad = true;
}

/* Strings may come from the sandbox (paths, parser messages quoting its
 * bytes); jansson refuses invalid UTF-8, so fall back to the escaped form
 * instead of losing the field. */
static json_t *str_n(const char *s, size_t len)
{
	json_t *v;
	char *e;

	if (s == NULL)
		return json_null();
	v = json_stringn(s, len);
	if (v != NULL)
		return v;
	e = sc_escape_bytes(s, len, NULL);
	if (e == NULL)
		return NULL;
	v = json_string(e);
	free(e);
	return v;
}

static json_t *str(const char *s)
{
	return s != NULL ? str_n(s, strlen(s)) : json_null();
}

/* Fixed-size buffers: never read past them even if unterminated; an empty
 * buffer means "no value". */
static json_t *buf_or_null(const char *buf, size_t size)
{
	size_t len = strnlen(buf, size);

	return len > 0 ? str_n(buf, len) : json_null();
}

/* JSON integers here are signed 64-bit; a u64 above that can only be an
 * "unlimited" sentinel, reported as the largest representable value. */
static json_t *u64(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* Rounded to the microsecond; jansson cannot encode NaN or infinity, and a
 * bogus measurement must not cost the whole report.  Rounded by hand: the
 * library does not link libm.  Beyond 2^52 us a double has no fraction of
 * a microsecond left to round. */
static json_t *seconds(double v)
{
	double us;

	if (!isfinite(v))
		return json_null();
	us = v * 1e6;
	if (us > -4503599627370496.0 && us < 4503599627370496.0)
		v = (double)(long long)(us + (us < 0 ? -0.5 : 0.5)) / 1e6;
	return json_real(v);
}

static json_t *signal_name(int sig)
{
	const char *abbrev;
	char buf[32];

	if (sig <= 0)
		return json_null();
	abbrev = sigabbrev_np(sig);
	if (abbrev != NULL)
		snprintf(buf, sizeof(buf), "SIG%s", abbrev);
	else if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(buf, sizeof(buf), "SIGRTMIN+%d", sig - SIGRTMIN);
	else
		return json_null();
	return json_string(buf);
}

static json_t *render_script(const struct sandcell_result *r, bool *bad)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	set(o, "started", json_boolean(r->code_started), bad);
	set(o, "exit_code", r->script_exit >= 0 ? json_integer(r->script_exit) : json_null(), bad);
	set(o, "signal", r->script_signal > 0 ? json_integer(r->script_signal) : json_null(), bad);
	set(o, "signal_name", signal_name(r->script_signal), bad);
	return o;
}

static json_t *render_stream(uint64_t bytes, bool truncated, bool *bad)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	set(o, "bytes", u64(bytes), bad);
	set(o, "truncated", json_boolean(truncated), bad);
	return o;
}

static json_t *render_outputs(const struct sandcell_result *r, bool *bad)
{
	const struct sc_collect *c = &r->outputs;
	json_t *o = json_object(), *files = json_array(), *skipped = json_array();

	if (o == NULL || files == NULL || skipped == NULL) {
		json_decref(o);
		json_decref(files);
		json_decref(skipped);
		return NULL;
	}
	for (size_t i = 0; c->files != NULL && i < c->n_files; i++) {
		const struct sc_out_file *f = &c->files[i];
		json_t *fo = json_object();

		if (fo == NULL) {
			*bad = true;
			break;
		}
		set(fo, "path", str(f->path), bad);
		set(fo, "size", u64(f->size), bad);
		set(fo, "sha256", buf_or_null(f->sha256, sizeof(f->sha256)), bad);
		push(files, fo, bad);
	}
	for (size_t i = 0; c->skips != NULL && i < c->n_skips; i++) {
		const struct sc_out_skip *s = &c->skips[i];
		json_t *so = json_object();

		if (so == NULL) {
			*bad = true;
			break;
		}
		set(so, "path", str(s->path), bad);
		set(so, "reason", str(s->reason), bad);
		push(skipped, so, bad);
	}
	set(o, "collected", json_boolean(r->outputs_collected), bad);
	set(o, "files", files, bad);
	set(o, "skipped", skipped, bad);
	set(o, "skipped_total", u64(c->n_skipped_total > c->n_skips ? c->n_skipped_total : c->n_skips), bad);
	set(o, "bytes", u64(c->bytes), bad);
	set(o, "limit_hit", json_boolean(c->limit_hit), bad);
	return o;
}

/* Copies of what channel.c parsed: it is already validated JSON. */
static json_t *copy_or(json_t *v, json_t *fallback)
{
	if (v == NULL)
		return fallback;
	json_decref(fallback);
	return json_deep_copy(v);
}

static json_t *render_cell(const struct sandcell_result *r, bool *bad)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	set(o, "mode", json_string(r->cell_mode ? "cell" : "script"), bad);
	set(o, "outputs", copy_or(r->cell_outputs, json_array()), bad);
	set(o, "bytes", u64(r->cell_bytes), bad);
	set(o, "dropped", u64(r->cell_dropped), bad);
	set(o, "problems", copy_or(r->cell_problems, json_array()), bad);
	return o;
}

/* A sandbox error's message (a string), else the code's uncaught
 * exception (an object), else null. */
static json_t *render_error(const struct sandcell_result *r)
{
	if (strnlen(r->error, sizeof(r->error)) > 0)
		return buf_or_null(r->error, sizeof(r->error));
	return copy_or(r->exception, json_null());
}

static json_t *render_stopped_at(const struct sandcell_result *r, bool *bad)
{
	json_t *o;

	if (r->stopped_at == NULL)
		return json_null();
	o = json_object();
	if (o == NULL)
		return NULL;
	set(o, "traceback", copy_or(json_object_get(r->stopped_at, "traceback"), json_array()), bad);
	set(o, "reported_by", json_string("code"), bad);
	return o;
}

static json_t *render_truncations(const struct sandcell_result *r, bool *bad)
{
	json_t *a = json_array();

	if (a == NULL)
		return NULL;
	if (r->stdout_truncated)
		push(a, json_string("stdout"), bad);
	if (r->stderr_truncated)
		push(a, json_string("stderr"), bad);
	if (r->result_truncated)
		push(a, json_string("result"), bad);
	if (r->cell_truncated)
		push(a, json_string("cell"), bad);
	if (r->outputs.limit_hit)
		push(a, json_string("outputs"), bad);
	return a;
}

static json_t *render_limits(const struct sandcell_limits *l, bool *bad)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	set(o, "wall_sec", seconds(l->wall_sec), bad);
	set(o, "cpu_sec", seconds(l->cpu_sec), bad);
	set(o, "memory_bytes", u64(l->memory), bad);
	set(o, "pids", u64(l->pids), bad);
	set(o, "disk_bytes", u64(l->disk), bad);
	set(o, "disk_inodes", u64(l->disk_inodes), bad);
	set(o, "open_files", u64(l->files), bad);
	set(o, "stream_bytes", u64(l->stream), bad);
	set(o, "output_files", u64(l->output_files), bad);
	set(o, "output_bytes", u64(l->output_bytes), bad);
	set(o, "output_depth", u64(l->output_depth), bad);
	set(o, "result_bytes", u64(l->result_bytes), bad);
	set(o, "cell_bytes", u64(l->cell_bytes), bad);
	set(o, "cell_outputs", u64(l->cell_outputs), bad);
	set(o, "cell_output_bytes", u64(l->cell_output_bytes), bad);
	return o;
}

static json_t *render_isolation(const struct sc_isolation *iso, bool *bad)
{
	json_t *o = json_object(), *ns = json_object(), *ll = json_object();
	json_t *cg = json_object(), *nh = json_array();
	size_t n_not_held = iso->n_not_held;

	if (o == NULL || ns == NULL || ll == NULL || cg == NULL || nh == NULL) {
		json_decref(o);
		json_decref(ns);
		json_decref(ll);
		json_decref(cg);
		json_decref(nh);
		return NULL;
	}
	set(ns, "user", json_boolean(iso->userns), bad);
	set(ns, "pid", json_boolean(iso->pidns), bad);
	set(ns, "mount", json_boolean(iso->mntns), bad);
	set(ns, "net", json_boolean(iso->netns), bad);
	set(ns, "ipc", json_boolean(iso->ipcns), bad);
	set(ns, "uts", json_boolean(iso->utsns), bad);
	set(ns, "cgroup", json_boolean(iso->cgroupns), bad);

	set(ll, "abi", json_integer(iso->landlock.abi), bad);
	set(ll, "fs", json_boolean(iso->landlock.fs), bad);
	set(ll, "net", json_boolean(iso->landlock.net), bad);
	set(ll, "scope_abstract_unix", json_boolean(iso->landlock.scope_abstract_unix), bad);
	set(ll, "scope_signal", json_boolean(iso->landlock.scope_signal), bad);

	set(cg, "version", json_string(iso->cgroup_version != NULL ? iso->cgroup_version : "none"),
	    bad);
	set(cg, "memory", json_boolean(iso->cg_mem), bad);
	set(cg, "pids", json_boolean(iso->cg_pids), bad);
	set(cg, "cpu", json_boolean(iso->cg_cpu), bad);
	set(cg, "swap", json_string(iso->swap != NULL ? iso->swap : "none"), bad);

	if (n_not_held > ARRAY_LEN(iso->not_held))
		n_not_held = ARRAY_LEN(iso->not_held);
	for (size_t i = 0; i < n_not_held; i++) {
		if (iso->not_held[i] != NULL)
			push(nh, str(iso->not_held[i]), bad);
	}

	set(o, "mode", json_string(iso->mode != NULL ? iso->mode : "none"), bad);
	set(o, "namespaces", ns, bad);
	set(o, "seccomp", json_boolean(iso->seccomp), bad);
	set(o, "no_new_privs", json_boolean(iso->nnp), bad);
	set(o, "capabilities_dropped", json_boolean(iso->caps_dropped), bad);
	set(o, "landlock", ll, bad);
	set(o, "cgroup", cg, bad);
	set(o, "host_uid", json_integer((json_int_t)iso->host_uid), bad);
	set(o, "not_held", nh, bad);
	return o;
}

void sc_result_set_channel(struct sandcell_result *r, struct sc_chan_out *co)
{
	json_decref(r->result);
	json_decref(r->cell_outputs);
	json_decref(r->cell_problems);
	json_decref(r->exception);
	json_decref(r->stopped_at);
	r->result = co->result;
	snprintf(r->result_error, sizeof(r->result_error), "%s", co->result_error);
	r->result_truncated = co->result_truncated;
	r->cell_outputs = co->outputs;
	r->cell_bytes = co->bytes;
	r->cell_dropped = co->dropped;
	r->cell_truncated = co->truncated;
	r->cell_problems = co->problems;
	r->exception = co->exception;
	r->stopped_at = co->where;
	memset(co, 0, sizeof(*co));
}

char *sc_report_render(const struct sandcell_result *r)
{
	json_t *doc, *timing, *mem, *streams;
	bool bad = false;
	char *text;

	if (r == NULL)
		return NULL;
	doc = json_object();
	if (doc == NULL)
		return NULL;

	set(doc, "schema", json_integer(SANDCELL_REPORT_SCHEMA), &bad);
	set(doc, "sandcell_version", json_string(SANDCELL_VERSION), &bad);
	set(doc, "status", json_string(sandcell_status_name(r->status)), &bad);
	set(doc, "reason", str_n(r->stop_reason, strnlen(r->stop_reason, sizeof(r->stop_reason))),
	    &bad);
	set(doc, "exit_code", json_integer(r->exit_code), &bad);
	set(doc, "script", render_script(r, &bad), &bad);

	timing = json_object();
	if (timing != NULL) {
		set(timing, "wall_sec", seconds(r->wall_sec), &bad);
		set(timing, "cpu_sec", seconds(r->cpu_sec), &bad);
	}
	set(doc, "time", timing, &bad);

	mem = json_object();
	if (mem != NULL)
		set(mem, "peak_bytes", u64(r->peak_memory), &bad);
	set(doc, "memory", mem, &bad);

	streams = json_object();
	if (streams != NULL) {
		set(streams, "stdout", render_stream(r->stdout_bytes, r->stdout_truncated, &bad),
		    &bad);
		set(streams, "stderr", render_stream(r->stderr_bytes, r->stderr_truncated, &bad),
		    &bad);
	}
	set(doc, "streams", streams, &bad);

	set(doc, "result", r->result != NULL ? json_incref(r->result) : json_null(), &bad);
	set(doc, "result_error", buf_or_null(r->result_error, sizeof(r->result_error)), &bad);
	set(doc, "cell", render_cell(r, &bad), &bad);
	/* Sessions only (docs/sessions.md): a run's report is unchanged. */
	if (r->session != NULL)
		set(doc, "session", json_deep_copy(r->session), &bad);
	set(doc, "outputs", render_outputs(r, &bad), &bad);
	set(doc, "truncations", render_truncations(r, &bad), &bad);
	set(doc, "limits", render_limits(&r->limits, &bad), &bad);
	set(doc, "isolation", render_isolation(&r->iso, &bad), &bad);
	set(doc, "error", render_error(r), &bad);
	set(doc, "stopped_at", render_stopped_at(r, &bad), &bad);
	{
		json_t *left = json_array();
		size_t n = r->n_left_behind < 0 ? 0 : (size_t)r->n_left_behind;
		if (n > ARRAY_LEN(r->left_behind))
			n = ARRAY_LEN(r->left_behind);
		for (size_t i = 0; left != NULL && i < n; i++)
			push(left, str_n(r->left_behind[i], strnlen(r->left_behind[i], sizeof(r->left_behind[i]))),
			     &bad);
		set(doc, "left_behind", left, &bad);
	}

	/* Insertion order is kept (jansson >= 2.8), so the document reads in
	 * the order above: verdict first, details after. */
	text = bad ? NULL : json_dumps(doc, JSON_INDENT(2));
	json_decref(doc);
	return text;
}
