/* The run report: schema, types, null handling and hostile strings. */
#include "internal.h"
#include "unit.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>

static json_t *render(const struct sandcell_result *r)
{
	char *text = sandcell_report_json(r);
	json_error_t jerr;
	json_t *doc;

	CHECK(text != NULL);
	if (text == NULL)
		return NULL;
	doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	CHECK(doc != NULL);
	if (doc == NULL)
		fprintf(stderr, "report does not parse: %s\n%s\n", jerr.text, text);
	free(text);
	return doc;
}

static json_t *at(json_t *doc, const char *path)
{
	char buf[128], *save = NULL, *tok;

	snprintf(buf, sizeof(buf), "%s", path);
	for (tok = strtok_r(buf, ".", &save); tok != NULL && doc != NULL;
	     tok = strtok_r(NULL, ".", &save))
		doc = json_object_get(doc, tok);
	return doc;
}

static const char *str_at(json_t *doc, const char *path)
{
	return json_string_value(at(doc, path));
}

static long long int_at(json_t *doc, const char *path)
{
	json_t *v = at(doc, path);

	CHECK(json_is_integer(v));
	return json_integer_value(v);
}

static void test_status_names(void)
{
	static const char *const want[] = {
		"ok", "exited", "signaled", "timeout", "cpu-time", "memory", "disk",
		"output-limit", "sandbox-error", "usage-error", "busy", "unreachable", "cancelled",
	};

	for (int s = SANDCELL_OK; s <= SANDCELL_CANCELLED; s++)
		CHECK_STR(sandcell_status_name((enum sandcell_status)s), want[s]);
	CHECK_STR(sandcell_status_name((enum sandcell_status)99), "unknown");
	CHECK_STR(sandcell_status_name((enum sandcell_status)-1), "unknown");
	CHECK_EQ_INT(sandcell_result_status(NULL), SANDCELL_SANDBOX_ERROR);
	CHECK_EQ_INT(sandcell_result_exit_code(NULL), SANDCELL_EXIT_SANDBOX);
	CHECK(sandcell_report_json(NULL) == NULL);
	sandcell_result_free(NULL);
}

/* A zeroed result: every pointer NULL, every string empty. */
static void test_empty(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r));
	static const char *const top[] = {
		"schema", "sandcell_version", "status", "reason", "exit_code", "script",
		"time", "memory", "streams", "result", "result_error", "cell", "outputs",
		"truncations", "limits", "isolation", "error", "stopped_at", "left_behind",
	};
	const char *key;
	json_t *doc, *v;
	size_t i = 0;

	r->script_exit = -1;
	doc = render(r);
	CHECK_EQ_INT(sandcell_result_status(r), SANDCELL_OK);
	CHECK_EQ_INT(sandcell_result_exit_code(r), 0);

	/* Every documented key, in documented order. */
	json_object_foreach(doc, key, v) {
		CHECK(i < sizeof(top) / sizeof(top[0]));
		if (i < sizeof(top) / sizeof(top[0]))
			CHECK_STR(key, top[i]);
		i++;
	}
	CHECK_EQ_INT(i, sizeof(top) / sizeof(top[0]));

	CHECK_EQ_INT(int_at(doc, "schema"), SANDCELL_REPORT_SCHEMA);
	CHECK_STR(str_at(doc, "sandcell_version"), "0.1.0");
	CHECK_STR(str_at(doc, "status"), "ok");
	CHECK_STR(str_at(doc, "reason"), "");
	CHECK(json_is_false(at(doc, "script.started")));
	CHECK(json_is_null(at(doc, "script.exit_code")));
	CHECK(json_is_null(at(doc, "script.signal")));
	CHECK(json_is_null(at(doc, "script.signal_name")));
	CHECK(json_is_real(at(doc, "time.wall_sec")));
	CHECK(json_is_null(at(doc, "result")));
	CHECK(json_is_null(at(doc, "result_error")));
	CHECK(json_is_null(at(doc, "error")));
	CHECK(json_is_null(at(doc, "stopped_at")));
	CHECK_STR(str_at(doc, "cell.mode"), "script");
	CHECK(json_is_array(at(doc, "cell.outputs")));
	CHECK_EQ_INT(json_array_size(at(doc, "cell.outputs")), 0);
	CHECK_EQ_INT(int_at(doc, "cell.bytes"), 0);
	CHECK_EQ_INT(int_at(doc, "cell.dropped"), 0);
	CHECK_EQ_INT(json_array_size(at(doc, "cell.problems")), 0);
	CHECK_EQ_INT(json_object_size(at(doc, "cell")), 5);
	CHECK_EQ_INT(json_array_size(at(doc, "left_behind")), 0);
	CHECK(json_is_false(at(doc, "outputs.collected")));
	CHECK_EQ_INT(json_array_size(at(doc, "outputs.files")), 0);
	CHECK(json_is_array(at(doc, "outputs.files")));
	CHECK(json_is_array(at(doc, "outputs.skipped")));
	CHECK_EQ_INT(int_at(doc, "outputs.skipped_total"), 0);
	CHECK(json_is_array(at(doc, "truncations")));
	CHECK_EQ_INT(json_array_size(at(doc, "truncations")), 0);
	CHECK_STR(str_at(doc, "isolation.mode"), "none");
	CHECK_STR(str_at(doc, "isolation.cgroup.version"), "none");
	CHECK(json_is_array(at(doc, "isolation.not_held")));
	CHECK_EQ_INT(json_object_size(at(doc, "limits")), 15);
	CHECK_EQ_INT(json_object_size(at(doc, "isolation.namespaces")), 7);
	CHECK_EQ_INT(json_object_size(at(doc, "isolation.landlock")), 5);
	json_decref(doc);
	sandcell_result_free(r);
}

static struct sc_out_file file(const char *path, uint64_t size, char hexc)
{
	struct sc_out_file f = { .path = strdup(path), .size = size };

	memset(f.sha256, hexc, 64);
	f.sha256[64] = '\0';
	return f;
}

static void test_full(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r));
	json_error_t jerr;
	json_t *doc, *f;

	r->status = SANDCELL_TIMEOUT;
	r->exit_code = SANDCELL_EXIT_TIMEOUT;
	r->script_exit = -1;
	r->script_signal = SIGKILL;
	r->wall_sec = 5.0002134;
	r->cpu_sec = 4.98;
	r->peak_memory = 31457280;
	r->code_started = true;
	snprintf(r->stop_reason, sizeof(r->stop_reason), "wall-clock limit of 5 s reached");
	r->stdout_bytes = 1000;
	r->stdout_truncated = true;
	r->stderr_bytes = 3;
	r->result_truncated = true;
	r->result = json_loads("{\"answer\": 42, \"list\": [1.5, \"x\"]}", 0, &jerr);
	r->outputs_collected = true;
	r->outputs.files = unit_calloc(2, sizeof(*r->outputs.files));
	r->outputs.files[0] = file("plot.png", 1234, 'a');
	r->outputs.files[1] = file("sub/dir/data.csv", 0, 'b');
	r->outputs.n_files = 2;
	r->outputs.skips = unit_calloc(2, sizeof(*r->outputs.skips));
	r->outputs.skips[0].path = strdup("link");
	r->outputs.skips[0].reason = "symlink";
	/* Invalid UTF-8 the collector should have escaped: still no crash. */
	r->outputs.skips[1].path = strdup("bad\xff\xfename\x1b");
	r->outputs.skips[1].reason = NULL;
	r->outputs.n_skips = 2;
	r->outputs.bytes = 1234;
	r->outputs.limit_hit = true;
	r->limits = (struct sandcell_limits){
		.wall_sec = 5, .cpu_sec = 30.5, .memory = 512ull << 20, .pids = 64,
		.disk = 64ull << 20, .disk_inodes = 4096, .files = 256, .stream = 1 << 20,
		.output_files = 100, .output_bytes = 64ull << 20, .output_depth = 8,
		.result_bytes = UINT64_MAX, .cell_bytes = 16 << 20, .cell_outputs = 7,
		.cell_output_bytes = 1 << 20,
	};
	r->cell_mode = true;
	r->cell_outputs = json_loads("[{\"output_type\": \"stream\", \"name\": \"stdout\", \"text\": \"hi\\n\"}]",
				     0, &jerr);
	r->cell_bytes = 99;
	r->cell_dropped = 2;
	r->cell_truncated = true;
	r->cell_problems = json_loads("[\"output 3 was rejected: line 1\"]", 0, &jerr);
	r->stopped_at = json_loads("{\"traceback\": [\"  File \\\"<cell>\\\", line 2\"]}", 0, &jerr);
	r->iso.mode = "reduced";
	r->iso.userns = true;
	r->iso.pidns = true;
	r->iso.seccomp = true;
	r->iso.nnp = true;
	r->iso.landlock = (struct sc_landlock_info){ .abi = 4, .fs = true, .net = true };
	r->iso.cgroup_version = "v2";
	r->iso.cg_mem = true;
	r->iso.host_uid = 100000;
	r->iso.not_held[0] = "no network namespace";
	r->iso.not_held[1] = NULL;
	r->iso.not_held[2] = "no cgroup: memory limit is RLIMIT_AS only";
	r->iso.n_not_held = 3;

	doc = render(r);
	CHECK_STR(str_at(doc, "status"), "timeout");
	CHECK_STR(str_at(doc, "reason"), "wall-clock limit of 5 s reached");
	CHECK_EQ_INT(int_at(doc, "exit_code"), 124);
	CHECK(json_is_true(at(doc, "script.started")));
	CHECK(json_is_null(at(doc, "script.exit_code")));
	CHECK_EQ_INT(int_at(doc, "script.signal"), SIGKILL);
	CHECK_STR(str_at(doc, "script.signal_name"), "SIGKILL");
	CHECK(json_real_value(at(doc, "time.wall_sec")) == 5.000213);
	CHECK(json_real_value(at(doc, "time.cpu_sec")) == 4.98);
	CHECK_EQ_INT(int_at(doc, "memory.peak_bytes"), 31457280);
	CHECK_EQ_INT(int_at(doc, "streams.stdout.bytes"), 1000);
	CHECK(json_is_true(at(doc, "streams.stdout.truncated")));
	CHECK(json_is_false(at(doc, "streams.stderr.truncated")));
	CHECK_EQ_INT(int_at(doc, "result.answer"), 42);
	CHECK(json_equal(at(doc, "result"), r->result));
	CHECK(json_is_true(at(doc, "outputs.collected")));
	f = json_array_get(at(doc, "outputs.files"), 1);
	CHECK_STR(str_at(f, "path"), "sub/dir/data.csv");
	CHECK_EQ_INT(int_at(f, "size"), 0);
	CHECK_EQ_INT(strlen(str_at(f, "sha256")), 64);
	f = json_array_get(at(doc, "outputs.skipped"), 0);
	CHECK_STR(str_at(f, "reason"), "symlink");
	f = json_array_get(at(doc, "outputs.skipped"), 1);
	CHECK_STR(str_at(f, "path"), "bad\\xff\\xfename\\x1b");
	CHECK(json_is_null(at(f, "reason")));
	CHECK(json_is_true(at(doc, "outputs.limit_hit")));
	{
		json_t *t = at(doc, "truncations");

		CHECK_EQ_INT(json_array_size(t), 4);
		CHECK_STR(json_string_value(json_array_get(t, 0)), "stdout");
		CHECK_STR(json_string_value(json_array_get(t, 1)), "result");
		CHECK_STR(json_string_value(json_array_get(t, 2)), "cell");
		CHECK_STR(json_string_value(json_array_get(t, 3)), "outputs");
	}
	CHECK_STR(str_at(doc, "cell.mode"), "cell");
	CHECK(json_equal(at(doc, "cell.outputs"), r->cell_outputs));
	CHECK_EQ_INT(int_at(doc, "cell.bytes"), 99);
	CHECK_EQ_INT(int_at(doc, "cell.dropped"), 2);
	CHECK_STR(json_string_value(json_array_get(at(doc, "cell.problems"), 0)),
		  "output 3 was rejected: line 1");
	CHECK_STR(json_string_value(json_array_get(at(doc, "stopped_at.traceback"), 0)),
		  "  File \"<cell>\", line 2");
	CHECK_STR(str_at(doc, "stopped_at.reported_by"), "code");
	CHECK_EQ_INT(int_at(doc, "limits.cell_bytes"), 16 << 20);
	CHECK_EQ_INT(int_at(doc, "limits.cell_outputs"), 7);
	CHECK_EQ_INT(int_at(doc, "limits.cell_output_bytes"), 1 << 20);
	CHECK(json_real_value(at(doc, "limits.cpu_sec")) == 30.5);
	CHECK(json_is_real(at(doc, "limits.wall_sec")));
	CHECK_EQ_INT(int_at(doc, "limits.memory_bytes"), 512ll << 20);
	CHECK_EQ_INT(int_at(doc, "limits.open_files"), 256);
	CHECK_EQ_INT(int_at(doc, "limits.result_bytes"), INT64_MAX);
	CHECK_STR(str_at(doc, "isolation.mode"), "reduced");
	CHECK(json_is_true(at(doc, "isolation.namespaces.user")));
	CHECK(json_is_false(at(doc, "isolation.namespaces.net")));
	CHECK(json_is_true(at(doc, "isolation.seccomp")));
	CHECK(json_is_false(at(doc, "isolation.capabilities_dropped")));
	CHECK_EQ_INT(int_at(doc, "isolation.landlock.abi"), 4);
	CHECK(json_is_true(at(doc, "isolation.landlock.net")));
	CHECK_STR(str_at(doc, "isolation.cgroup.version"), "v2");
	CHECK(json_is_true(at(doc, "isolation.cgroup.memory")));
	CHECK_EQ_INT(int_at(doc, "isolation.host_uid"), 100000);
	CHECK_EQ_INT(json_array_size(at(doc, "isolation.not_held")), 2);
	CHECK(json_is_null(at(doc, "error")));
	json_decref(doc);

	/* The result is shared, not stolen: rendering twice works. */
	doc = render(r);
	CHECK_EQ_INT(int_at(doc, "result.answer"), 42);
	json_decref(doc);
	sandcell_result_free(r);
}

static void test_sandbox_error(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r));
	json_t *doc;

	r->status = SANDCELL_SANDBOX_ERROR;
	r->exit_code = SANDCELL_EXIT_SANDBOX;
	r->script_exit = -1;
	snprintf(r->error, sizeof(r->error), "cgroup: cannot create run cgroup: Permission denied");
	snprintf(r->result_error, sizeof(r->result_error), "incomplete result record");
	r->wall_sec = NAN;
	r->cpu_sec = INFINITY;
	r->limits.wall_sec = -INFINITY;
	r->iso.n_not_held = 1000; /* corrupt count must stay inside the array */
	r->n_left_behind = 1000;
	memset(r->left_behind, '\xff', sizeof(r->left_behind));

	doc = render(r);
	CHECK_STR(str_at(doc, "status"), "sandbox-error");
	CHECK_EQ_INT(int_at(doc, "exit_code"), 126);
	CHECK_STR(str_at(doc, "error"), "cgroup: cannot create run cgroup: Permission denied");
	CHECK_STR(str_at(doc, "result_error"), "incomplete result record");
	CHECK(json_is_null(at(doc, "time.wall_sec")));
	CHECK(json_is_null(at(doc, "time.cpu_sec")));
	CHECK(json_is_null(at(doc, "limits.wall_sec")));
	CHECK_EQ_INT(json_array_size(at(doc, "isolation.not_held")), 0);
	CHECK_EQ_INT(json_array_size(at(doc, "left_behind")), 8);
	CHECK_EQ_INT(strlen(json_string_value(json_array_get(at(doc, "left_behind"), 7))),
		     4 * sizeof(r->left_behind[7]));
	json_decref(doc);

	/* Unterminated fixed buffers and invalid UTF-8 in them. */
	memset(r->error, 'e', sizeof(r->error));
	memset(r->stop_reason, '\xff', sizeof(r->stop_reason));
	memset(r->result_error, '\n', sizeof(r->result_error));
	r->status = (enum sandcell_status)77;
	doc = render(r);
	CHECK_EQ_INT(strlen(str_at(doc, "error")), sizeof(r->error));
	CHECK_EQ_INT(strlen(str_at(doc, "reason")), 4 * sizeof(r->stop_reason));
	CHECK_EQ_INT(strlen(str_at(doc, "result_error")), sizeof(r->result_error));
	CHECK_STR(str_at(doc, "status"), "unknown");
	json_decref(doc);
	sandcell_result_free(r);
}

static void test_script_exit(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r));
	json_t *doc;

	r->status = SANDCELL_EXITED;
	r->exit_code = 3;
	r->script_exit = 3;
	r->code_started = true;
	r->result = json_integer(7);
	doc = render(r);
	CHECK_STR(str_at(doc, "status"), "exited");
	CHECK(json_is_null(at(doc, "error")));
	CHECK_EQ_INT(int_at(doc, "script.exit_code"), 3);
	CHECK(json_is_null(at(doc, "script.signal_name")));
	CHECK_EQ_INT(int_at(doc, "result"), 7);
	json_decref(doc);

	r->status = SANDCELL_SIGNALED;
	r->script_exit = -1;
	r->script_signal = SIGSEGV;
	doc = render(r);
	CHECK_STR(str_at(doc, "script.signal_name"), "SIGSEGV");
	json_decref(doc);

	r->script_signal = SIGRTMIN + 3;
	doc = render(r);
	CHECK_STR(str_at(doc, "script.signal_name"), "SIGRTMIN+3");
	json_decref(doc);

	r->script_signal = 200;
	doc = render(r);
	CHECK_EQ_INT(int_at(doc, "script.signal"), 200);
	CHECK(json_is_null(at(doc, "script.signal_name")));
	json_decref(doc);
	sandcell_result_free(r);
}

/* The error key: a sandbox error's message, else the code's exception as
 * an object, else null. */
static void test_error_kinds(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r));
	json_error_t jerr;
	json_t *doc;

	r->status = SANDCELL_EXITED;
	r->exit_code = 1;
	r->script_exit = 1;
	r->code_started = true;
	r->exception = json_loads("{\"ename\": \"KeyError\", \"evalue\": \"'k'\", "
				  "\"traceback\": [\"Traceback (most recent call last):\", \"KeyError: 'k'\"]}",
				  0, &jerr);
	doc = render(r);
	CHECK_STR(str_at(doc, "error.ename"), "KeyError");
	CHECK_STR(str_at(doc, "error.evalue"), "'k'");
	CHECK_EQ_INT(json_array_size(at(doc, "error.traceback")), 2);
	CHECK_EQ_INT(json_object_size(at(doc, "error")), 3);
	json_decref(doc);

	snprintf(r->error, sizeof(r->error), "sandbox setup failed: x");
	r->status = SANDCELL_SANDBOX_ERROR;
	doc = render(r);
	CHECK_STR(str_at(doc, "error"), "sandbox setup failed: x");
	json_decref(doc);
	sandcell_result_free(r);
}

/* Report text is indented, and a deep result still renders. */
static void test_text(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r));
	struct sandcell_error err;
	char *text, deep[129];

	memset(deep, '[', 64);
	memset(deep + 64, ']', 64);
	deep[128] = '\0';
	CHECK_EQ_INT(sc_json_parse(deep, 128, 128, SC_JSON_MAX_DEPTH, &r->result, &err), 0);
	text = sc_report_render(r);
	CHECK(text != NULL);
	CHECK(text != NULL && strncmp(text, "{\n  \"schema\": 2,\n  \"sandcell_version\"", 37) == 0);
	free(text);
	sandcell_result_free(r);
}

/* A refused request's report: every key of a run's, nothing claimed. */
static void test_refused(void)
{
	static const struct {
		enum sandcell_status status;
		const char *name;
		int code;
	} cases[] = {
		{ SANDCELL_USAGE_ERROR, "usage-error", SANDCELL_EXIT_USAGE },
		{ SANDCELL_BUSY, "busy", SANDCELL_EXIT_BUSY },
		{ SANDCELL_UNREACHABLE, "unreachable", SANDCELL_EXIT_UNREACHABLE },
		{ SANDCELL_SANDBOX_ERROR, "sandbox-error", SANDCELL_EXIT_SANDBOX },
		{ SANDCELL_CANCELLED, "cancelled", SANDCELL_EXIT_CANCELLED },
	};
	struct sandcell_config cfg;
	struct sandcell_result *r;
	char *ref, *text;
	json_t *doc, *refdoc;
	const char *key;
	json_t *v;

	CHECK_EQ_INT(SANDCELL_EXIT_UNREACHABLE, 117);
	CHECK_EQ_INT(SANDCELL_EXIT_BUSY, 118);
	CHECK_EQ_INT(SANDCELL_EXIT_CANCELLED, 119);
	/* The keys of a run's report, to compare with. */
	r = unit_calloc(1, sizeof(*r));
	ref = sandcell_report_json(r);
	refdoc = ref ? json_loads(ref, 0, NULL) : NULL;
	free(ref);
	sandcell_result_free(r);
	CHECK(refdoc != NULL);
	sandcell_config_init(&cfg);
	cfg.limits.memory = 1u << 20;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = sandcell_result_refused(cases[i].status, "the reason", i % 2 ? &cfg.limits : NULL);
		CHECK(r != NULL);
		if (r == NULL)
			continue;
		CHECK_EQ_INT(sandcell_result_status(r), cases[i].status);
		CHECK_EQ_INT(sandcell_result_exit_code(r), cases[i].code);
		CHECK_STR(sandcell_result_mode(r), "none");
		doc = render(r);
		CHECK_EQ_INT(json_object_size(doc), json_object_size(refdoc));
		json_object_foreach(refdoc, key, v)
			CHECK(json_object_get(doc, key) != NULL);
		CHECK_STR(str_at(doc, "status"), cases[i].name);
		CHECK_EQ_INT(int_at(doc, "exit_code"), cases[i].code);
		CHECK_STR(str_at(doc, "reason"), "the reason");
		if (cases[i].status == SANDCELL_SANDBOX_ERROR)
			CHECK_STR(str_at(doc, "error"), "the reason");
		else
			CHECK(json_is_null(at(doc, "error")));
		CHECK(json_is_false(at(doc, "script.started")));
		CHECK(json_is_null(at(doc, "script.exit_code")));
		CHECK(json_is_false(at(doc, "outputs.collected")));
		CHECK_STR(str_at(doc, "isolation.mode"), "none");
		CHECK(json_is_false(at(doc, "isolation.seccomp")));
		CHECK_EQ_INT(int_at(doc, "limits.memory_bytes"), i % 2 ? 1 << 20 : 1 << 30);
		json_decref(doc);
		sandcell_result_free(r);
	}
	/* No reason: still one. */
	r = sandcell_result_refused(SANDCELL_BUSY, NULL, NULL);
	text = r ? sandcell_report_json(r) : NULL;
	CHECK(text != NULL && strstr(text, "\"reason\": \"request refused\"") != NULL);
	free(text);
	sandcell_result_free(r);
	/* Only refusals and a cancel can be made without a run. */
	CHECK(sandcell_result_refused(SANDCELL_OK, "x", NULL) == NULL);
	CHECK(sandcell_result_refused(SANDCELL_TIMEOUT, "x", NULL) == NULL);
	CHECK(sandcell_result_refused((enum sandcell_status)99, "x", NULL) == NULL);
	json_decref(refdoc);
}

/* The skip count covers what the listing cap left out. */
static void test_skipped_total(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r));
	json_t *doc;

	r->outputs.skips = unit_calloc(2, sizeof(*r->outputs.skips));
	r->outputs.skips[0].path = strdup("a");
	r->outputs.skips[0].reason = "file limit";
	r->outputs.skips[1].path = strdup("b");
	r->outputs.skips[1].reason = "file limit";
	r->outputs.n_skips = 2;
	r->outputs.n_skipped_total = 5000;
	doc = render(r);
	CHECK_EQ_INT(json_array_size(at(doc, "outputs.skipped")), 2);
	CHECK_EQ_INT(int_at(doc, "outputs.skipped_total"), 5000);
	json_decref(doc);
	/* A count below the list (a bogus result) never says fewer. */
	r->outputs.n_skipped_total = 1;
	doc = render(r);
	CHECK_EQ_INT(int_at(doc, "outputs.skipped_total"), 2);
	json_decref(doc);
	sandcell_result_free(r);
}

/* sandcell_result_from_report: what the CLI reads a warm server's answer
 * with.  A rendered report reads back to the same accessor values; text
 * that is not a report is refused, never half-read. */
static void test_read_back(void)
{
	struct sandcell_result *r = unit_calloc(1, sizeof(*r)), *b;
	struct sandcell_error err = { 0, "" };
	char *text;
	static const char *const bad[] = {
		"", "[]", "{\"status\": \"ok\"}", "not json",
		"{\"status\": \"fine\", \"exit_code\": 0, \"reason\": \"\", \"script\": {\"started\": true}, "
		"\"isolation\": {\"mode\": \"full\", \"not_held\": []}}",
		"{\"status\": \"ok\", \"exit_code\": 256, \"reason\": \"\", \"script\": {\"started\": true}, "
		"\"isolation\": {\"mode\": \"full\", \"not_held\": []}}",
		"{\"status\": \"ok\", \"exit_code\": 0, \"reason\": \"\", \"script\": {\"started\": true}, "
		"\"isolation\": {\"mode\": \"full\", \"not_held\": [1]}}",
		"{\"status\": \"ok\", \"status\": \"ok\", \"exit_code\": 0, \"reason\": \"\", "
		"\"script\": {\"started\": true}, \"isolation\": {\"mode\": \"full\", \"not_held\": []}}",
	};

	r->status = SANDCELL_MEMORY;
	r->exit_code = SANDCELL_EXIT_MEMORY;
	r->script_exit = -1;
	r->code_started = true;
	snprintf(r->stop_reason, sizeof(r->stop_reason), "memory limit of 64 MiB reached");
	r->iso.mode = "reduced";
	r->iso.not_held[0] = "no network namespace";
	r->iso.not_held[1] = "no cgroup";
	r->iso.n_not_held = 2;
	r->iso.host_uid = 12345;
	r->iso.landlock.abi = 7;
	r->iso.cgroup_version = "v1";
	r->session = json_pack("{s:i}", "cells", 3);
	text = sandcell_report_json(r);
	CHECK(text != NULL);
	b = text ? sandcell_result_from_report(text, strlen(text), &err) : NULL;
	CHECK(b != NULL);
	if (b != NULL) {
		CHECK_EQ_INT(sandcell_result_status(b), SANDCELL_MEMORY);
		CHECK_EQ_INT(sandcell_result_exit_code(b), SANDCELL_EXIT_MEMORY);
		CHECK_STR(sandcell_result_reason(b), "memory limit of 64 MiB reached");
		CHECK_STR(sandcell_result_mode(b), "reduced");
		CHECK_STR(sandcell_result_not_held(b)[0], "no network namespace");
		CHECK_STR(sandcell_result_not_held(b)[1], "no cgroup");
		CHECK(sandcell_result_not_held(b)[2] == NULL);
		CHECK(sandcell_result_started(b));
		CHECK_EQ_INT(sandcell_result_host_uid(b), 12345);
		CHECK_EQ_INT(sandcell_result_landlock_abi(b), 7);
		CHECK_STR(sandcell_result_cgroup_version(b), "v1");
		CHECK(sandcell_result_is_session(b));
	}
	sandcell_result_free(b);
	free(text);
	json_decref(r->session);
	r->session = NULL;
	text = sandcell_report_json(r);
	b = text ? sandcell_result_from_report(text, strlen(text), &err) : NULL;
	CHECK(b != NULL && !sandcell_result_is_session(b));
	sandcell_result_free(b);
	free(text);
	free(r);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.code = 0;
		b = sandcell_result_from_report(bad[i], strlen(bad[i]), &err);
		CHECK(b == NULL);
		CHECK(err.code != 0);
		sandcell_result_free(b);
	}
}

int main(void)
{
	test_status_names();
	test_refused();
	test_skipped_total();
	test_empty();
	test_full();
	test_sandbox_error();
	test_script_exit();
	test_error_kinds();
	test_text();
	test_read_back();
	return unit_done("test_report");
}
