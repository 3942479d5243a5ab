/* Fuzzes the code's channel (channel.c), the bytes the sandboxed code
 * controls fully: routing in arbitrary pieces, the caps, the strict
 * parsing of result, outputs, exception and location records, and the
 * report they end up in.
 *
 * Layout: byte 0 picks the piece size the pipe delivers (1..32, or all at
 * once), byte 1 the caps (small ones reach every cap path), the rest is
 * the channel. */
#include "internal.h"
#include "fuzz_common.h"

#include <jansson.h>

static struct sc_chan_out feed(const uint8_t *data, size_t size, size_t step,
			       const struct sc_chan_limits *lim)
{
	struct sandcell_error err = { 0 };
	struct sc_chan *c = sc_chan_new(lim);
	struct sc_chan_out o;

	FUZZ_ASSERT(c != NULL);
	for (size_t i = 0; i < size; i += step)
		sc_chan_feed(c, (const char *)data + i, size - i < step ? size - i : step);
	FUZZ_ASSERT(sc_chan_finish(c, &o, &err) == 0);
	sc_chan_free(c);
	return o;
}

static void check_strings(json_t *a, size_t max)
{
	json_t *x;
	size_t i;

	FUZZ_ASSERT(json_is_array(a));
	FUZZ_ASSERT(json_array_size(a) <= max);
	json_array_foreach(a, i, x)
		FUZZ_ASSERT(json_is_string(x));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sc_chan_limits lim = { 1 << 20, 16 << 20, 8 << 20, 10000 };
	struct sc_chan_out o, whole;
	struct sandcell_result *r;
	json_t *x, *doc, *outputs;
	size_t step, i;
	char *text;

	if (size < 2)
		return 0;
	step = data[0] % 33 ? data[0] % 33 : size;
	if (data[1] & 1)
		lim.result_bytes = 8 + (data[1] >> 4);
	if (data[1] & 2)
		lim.out_bytes = 64 + 16 * (data[1] >> 4);
	if (data[1] & 4)
		lim.out_one = 48 + 8 * (data[1] >> 4);
	if (data[1] & 8)
		lim.out_count = data[1] >> 4;
	data += 2;
	size -= 2;

	o = feed(data, size, step ? step : 1, &lim);
	/* The pieces do not matter. */
	whole = feed(data, size, size ? size : 1, &lim);
	FUZZ_ASSERT(json_equal(o.outputs, whole.outputs));
	FUZZ_ASSERT(json_equal(o.problems, whole.problems));
	FUZZ_ASSERT((o.result == NULL) == (whole.result == NULL));
	FUZZ_ASSERT(strcmp(o.result_error, whole.result_error) == 0);
	FUZZ_ASSERT((o.exception == NULL) == (whole.exception == NULL));
	FUZZ_ASSERT((o.where == NULL) == (whole.where == NULL));
	FUZZ_ASSERT(o.dropped == whole.dropped && o.bytes == whole.bytes);
	sc_chan_out_free(&whole);

	/* What is kept is within its caps and of the closed set of shapes. */
	FUZZ_ASSERT(o.bytes <= lim.out_bytes);
	FUZZ_ASSERT(o.result == NULL || o.result_error[0] == '\0');
	FUZZ_ASSERT(!o.result_truncated || o.result == NULL);
	check_strings(o.problems, 17);
	json_array_foreach(o.problems, i, x) {
		const char *s = json_string_value(x);

		for (size_t k = 0; s[k]; k++)
			FUZZ_ASSERT((unsigned char)s[k] >= 0x20 && s[k] != 0x7f);
	}
	FUZZ_ASSERT(json_is_array(o.outputs));
	json_array_foreach(o.outputs, i, x) {
		const char *t = json_string_value(json_object_get(x, "output_type"));

		FUZZ_ASSERT(t != NULL);
		FUZZ_ASSERT(strcmp(t, "stream") == 0 || strcmp(t, "display_data") == 0 ||
			    strcmp(t, "execute_result") == 0);
		FUZZ_ASSERT(sc_chan_check_value(x, NULL) == 0);
	}
	if (o.result != NULL) {
		char *rt = json_dumps(o.result, JSON_ENCODE_ANY | JSON_COMPACT);
		json_t *back = NULL;

		FUZZ_ASSERT(rt != NULL);
		FUZZ_ASSERT(sc_json_parse_ex(rt, strlen(rt), SIZE_MAX, SC_JSON_MAX_DEPTH,
					     SC_JSON_ALLOW_NUL, &back, NULL) == 0);
		FUZZ_ASSERT(json_equal(o.result, back));
		free(rt);
		json_decref(back);
	}
	if (o.exception != NULL) {
		x = sc_chan_error_output(o.exception);
		FUZZ_ASSERT(x != NULL);
		json_decref(x);
	}
	x = sc_chan_stop_output("stopped", o.where);
	FUZZ_ASSERT(x != NULL);
	json_decref(x);

	/* And all of it renders as a report that parses back. */
	r = calloc(1, sizeof(*r));
	FUZZ_ASSERT(r != NULL);
	r->script_exit = 1;
	r->cell_mode = true;
	outputs = o.outputs;
	sc_result_set_channel(r, &o);
	text = sandcell_report_json(r);
	FUZZ_ASSERT(text != NULL);
	doc = json_loads(text, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	FUZZ_ASSERT(doc != NULL);
	FUZZ_ASSERT(json_equal(json_object_get(json_object_get(doc, "cell"), "outputs"), outputs));
	json_decref(doc);
	free(text);
	sandcell_result_free(r); /* frees what o held */
	return 0;
}
