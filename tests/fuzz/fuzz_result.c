/* Fuzzes the result channel, the bytes the sandboxed code controls fully.
 * First byte: bit 0 is the "truncated" flag; the rest is the channel. */
#include "internal.h"
#include "fuzz_common.h"

#include <jansson.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sandcell_error err = { 0 };
	json_t *out = (json_t *)&err, *back = NULL;
	bool truncated;
	char *text;
	int rc;

	if (size == 0)
		return 0;
	truncated = data[0] & 1;
	rc = sc_result_channel_parse((const char *)data + 1, size - 1, truncated, &out, &err);
	if (rc < 0) {
		FUZZ_ASSERT(out == NULL);
		fuzz_check_msg(&err);
		return 0;
	}
	FUZZ_ASSERT(!truncated);
	FUZZ_ASSERT((out == NULL) == (size == 1));
	if (out == NULL)
		return 0;

	/* What we accept must survive the trip into the report unchanged. */
	text = json_dumps(out, JSON_ENCODE_ANY | JSON_COMPACT);
	FUZZ_ASSERT(text != NULL);
	FUZZ_ASSERT(sc_json_parse(text, strlen(text), SIZE_MAX, SC_JSON_MAX_DEPTH, &back,
				  NULL) == 0);
	FUZZ_ASSERT(json_equal(out, back));
	free(text);
	json_decref(back);
	json_decref(out);
	return 0;
}
