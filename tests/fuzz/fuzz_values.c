/* Fuzzes --value NAME=JSON and values files.  First byte: bit 0 selects
 * sandcell_values_add (0, the rest split at the first '=') or
 * sandcell_values_merge (1, the rest is the file text); bit 1 starts from
 * an existing values object instead of none. */
#include "internal.h"
#include "fuzz_common.h"

#include <jansson.h>

#define PRE_TEXT "{\"pre\":[1,{\"x\":null}]}"

/* Parses our own output back: it must be a strict JSON object. */
static json_t *load_values(const char *text)
{
	struct sandcell_error err = { 0 };
	json_t *v = NULL;

	FUZZ_ASSERT(text != NULL);
	FUZZ_ASSERT(sc_json_parse(text, strlen(text), SIZE_MAX, SC_JSON_MAX_DEPTH + 1, &v,
				  &err) == 0);
	FUZZ_ASSERT(json_is_object(v));
	return v;
}

static void fuzz_add(char *values, const uint8_t *data, size_t size)
{
	struct sandcell_error err = { 0 };
	const uint8_t *eq = memchr(data, '=', size);
	size_t name_len = eq != NULL ? (size_t)(eq - data) : size;
	char *name = fuzz_strndup(data, name_len);
	char *json = eq != NULL ? fuzz_strndup(eq + 1, size - name_len - 1) : NULL;
	char *before = values != NULL ? strdup(values) : NULL;
	json_t *obj, *want = NULL;

	if (sandcell_values_add(&values, name, json, &err) < 0) {
		fuzz_check_msg(&err);
		/* Failure leaves the caller's text alone. */
		FUZZ_ASSERT(values == NULL ? before == NULL
					   : before != NULL && strcmp(values, before) == 0);
		goto out;
	}
	/* Without '=' there is no JSON text, and nothing to add. */
	FUZZ_ASSERT(json != NULL);
	FUZZ_ASSERT(sandcell_check_name(name, NULL) == 0);
	FUZZ_ASSERT(sc_json_parse(json, strlen(json), 16 << 20, SC_JSON_MAX_DEPTH, &want,
				  NULL) == 0);
	obj = load_values(values);
	FUZZ_ASSERT(json_equal(json_object_get(obj, name), want));
	FUZZ_ASSERT(json_object_size(obj) == (before != NULL ? 2u : 1u));
	json_decref(obj);

	/* The same name again is always refused. */
	FUZZ_ASSERT(sandcell_values_add(&values, name, "0", &err) == -1);
	FUZZ_ASSERT(strstr(err.msg, "given twice") != NULL);
out:
	json_decref(want);
	free(values);
	free(before);
	free(name);
	free(json);
}

static void fuzz_merge(char *values, const uint8_t *data, size_t size)
{
	struct sandcell_error err = { 0 };
	char *before = values != NULL ? strdup(values) : NULL;
	json_t *obj, *in = NULL, *v;
	const char *key;

	if (sandcell_values_merge(&values, (const char *)data, size, &err) < 0) {
		fuzz_check_msg(&err);
		FUZZ_ASSERT(values == NULL ? before == NULL
					   : before != NULL && strcmp(values, before) == 0);
		goto out;
	}
	FUZZ_ASSERT(sc_json_parse((const char *)data, size, size, SC_JSON_MAX_DEPTH, &in,
				  NULL) == 0);
	obj = load_values(values);
	FUZZ_ASSERT(json_object_size(obj) == json_object_size(in) + (before != NULL ? 1u : 0u));
	json_object_foreach(in, key, v) {
		FUZZ_ASSERT(sandcell_check_name(key, NULL) == 0);
		FUZZ_ASSERT(json_equal(json_object_get(obj, key), v));
	}
	json_decref(obj);
out:
	json_decref(in);
	free(values);
	free(before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *values;

	if (size == 0)
		return 0;
	values = (data[0] & 2) ? strdup(PRE_TEXT) : NULL;
	if (data[0] & 1)
		fuzz_merge(values, data + 1, size - 1);
	else
		fuzz_add(values, data + 1, size - 1);
	return 0;
}
