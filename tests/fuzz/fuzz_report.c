/* Fuzzes report rendering with a result built from the input: a fuzzed
 * result value (through sc_json_parse, as the supervisor does), fuzzed
 * output paths and messages (raw bytes, even ones the collector would
 * have escaped), and fuzzed scalar fields (NaN times, bogus status and
 * counts).  The report must always render and re-parse as strict JSON.
 *
 * Layout: CTL_LEN control bytes (zero-padded), then NUL-separated
 * segments: result JSON, stop reason, error, then alternating output file
 * and skipped paths. */
#include "internal.h"
#include "fuzz_common.h"

#include <jansson.h>

#define CTL_LEN 32
#define MAX_PATHS 256

static const char *const modes[] = { NULL, "full", "reduced" };
static const char *const cg_versions[] = { NULL, "v2", "v1", "hybrid", "none" };
static const char *const reasons[] = { NULL, "symlink", "special file", "file limit" };
static const char *const not_held[] = { "no user namespace", NULL, "no cgroup" };

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static double get_double(const uint8_t *p)
{
	double v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* Copies a segment into a fixed buffer, unterminated if it fills it. */
static void fill(char *dst, size_t size, const uint8_t *src, size_t n)
{
	memset(dst, 0, size);
	memcpy(dst, src, n < size ? n : size);
}

static void add_path(struct sc_collect *c, bool skip, const uint8_t *p, size_t n, uint8_t sel)
{
	if (skip) {
		struct sc_out_skip *s = &c->skips[c->n_skips++];

		s->path = fuzz_strndup(p, n);
		s->reason = reasons[sel % 4];
	} else {
		struct sc_out_file *f = &c->files[c->n_files++];

		f->path = fuzz_strndup(p, n);
		f->size = n;
		memset(f->sha256, "0123456789abcdef"[sel & 15], 64);
		f->sha256[64] = '\0';
	}
}

static void build(struct sandcell_result *r, const uint8_t *ctl, const uint8_t *rest, size_t n)
{
	struct sandcell_error err = { 0 };
	size_t seg = 0, paths = 0;

	r->status = (enum sandcell_status)(ctl[0] % 14);
	r->exit_code = (int8_t)ctl[1];
	r->script_exit = (int8_t)ctl[2];
	r->script_signal = ctl[3] % 80;
	r->code_started = ctl[4] & 1;
	r->stdout_truncated = ctl[4] & 2;
	r->stderr_truncated = ctl[4] & 4;
	r->result_truncated = ctl[4] & 8;
	r->outputs_collected = ctl[4] & 16;
	r->outputs.limit_hit = ctl[4] & 32;
	r->iso.seccomp = ctl[4] & 64;
	r->iso.nnp = ctl[4] & 128;
	r->iso.userns = ctl[5] & 1;
	r->iso.netns = ctl[5] & 2;
	r->iso.caps_dropped = ctl[5] & 4;
	r->iso.landlock.abi = (int8_t)ctl[5];
	r->iso.mode = modes[ctl[6] % 3];
	r->iso.cgroup_version = cg_versions[(ctl[6] >> 2) % 5];
	for (size_t i = 0; i < sizeof(r->iso.not_held) / sizeof(r->iso.not_held[0]); i++)
		r->iso.not_held[i] = not_held[i % 3];
	r->iso.n_not_held = ctl[7];
	r->wall_sec = get_double(ctl + 8);
	r->cpu_sec = get_double(ctl + 16);
	r->limits.wall_sec = get_double(ctl + 16);
	r->limits.cpu_sec = get_double(ctl + 8);
	r->peak_memory = get_u64(ctl + 24);
	r->limits.memory = get_u64(ctl + 24);
	r->limits.result_bytes = ~get_u64(ctl + 24);
	r->stdout_bytes = get_u64(ctl + 24) >> 1;
	r->iso.host_uid = (uid_t)get_u64(ctl + 24);

	r->outputs.files = calloc(MAX_PATHS, sizeof(*r->outputs.files));
	r->outputs.skips = calloc(MAX_PATHS, sizeof(*r->outputs.skips));
	FUZZ_ASSERT(r->outputs.files != NULL && r->outputs.skips != NULL);

	while (n > 0 || seg == 0) {
		const uint8_t *end = memchr(rest, '\0', n);
		size_t len = end != NULL ? (size_t)(end - rest) : n;

		switch (seg) {
		case 0:
			if (len > 0 && sc_json_parse((const char *)rest, len, len, SC_JSON_MAX_DEPTH,
						     &r->result, &err) < 0)
				fill(r->result_error, sizeof(r->result_error),
				     (const uint8_t *)err.msg, strlen(err.msg));
			break;
		case 1:
			fill(r->stop_reason, sizeof(r->stop_reason), rest, len);
			break;
		case 2:
			fill(r->error, sizeof(r->error), rest, len);
			break;
		default:
			if (paths < MAX_PATHS)
				add_path(&r->outputs, paths & 1, rest, len, (uint8_t)len);
			paths++;
			r->outputs.bytes += len;
			break;
		}
		seg++;
		if (end == NULL)
			break;
		n -= len + 1;
		rest += len + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sandcell_result *r = calloc(1, sizeof(*r));
	uint8_t ctl[CTL_LEN] = { 0 };
	size_t nctl = size < CTL_LEN ? size : CTL_LEN;
	json_error_t jerr;
	json_t *doc;
	char *text;

	FUZZ_ASSERT(r != NULL);
	memcpy(ctl, data, nctl);
	build(r, ctl, data + nctl, size - nctl);

	text = sandcell_report_json(r);
	FUZZ_ASSERT(text != NULL);
	doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (doc == NULL)
		fprintf(stderr, "report does not re-parse: %s\n", jerr.text);
	FUZZ_ASSERT(doc != NULL);
	FUZZ_ASSERT(json_integer_value(json_object_get(doc, "schema")) == SANDCELL_REPORT_SCHEMA);
	FUZZ_ASSERT(json_is_string(json_object_get(doc, "status")));
	FUZZ_ASSERT(json_is_string(json_object_get(doc, "reason")));
	FUZZ_ASSERT(json_array_size(json_object_get(doc, "truncations")) <= 5);
	FUZZ_ASSERT(json_array_size(json_object_get(json_object_get(doc, "isolation"),
						    "not_held")) <= 16);
	FUZZ_ASSERT(json_array_size(json_object_get(json_object_get(doc, "outputs"), "files")) ==
		    r->outputs.n_files);
	if (r->result != NULL)
		FUZZ_ASSERT(json_equal(json_object_get(doc, "result"), r->result));
	else
		FUZZ_ASSERT(json_is_null(json_object_get(doc, "result")));
	json_decref(doc);
	free(text);
	sandcell_result_free(r);
	return 0;
}
