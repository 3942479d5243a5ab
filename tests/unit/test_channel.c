/* The code's channel (channel.c): routing, caps, the result's old
 * semantics, the strict output/exception/location checks, value tags. */
#include "internal.h"
#include "unit.h"

#include <jansson.h>
#include <stdbool.h>

static const struct sc_chan_limits big = { 1 << 20, 16 << 20, 8 << 20, 10000 };

/* Feeds text (len bytes) in pieces of step bytes (0 = all at once). */
static struct sc_chan_out run_lim(const char *text, size_t len, size_t step,
				  const struct sc_chan_limits *lim)
{
	struct sandcell_error err = { 0, "" };
	struct sc_chan *c = sc_chan_new(lim);
	struct sc_chan_out o;

	CHECK(c != NULL);
	if (step == 0)
		step = len ? len : 1;
	for (size_t i = 0; i < len; i += step)
		sc_chan_feed(c, text + i, len - i < step ? len - i : step);
	CHECK_EQ_INT(sc_chan_finish(c, &o, &err), 0);
	sc_chan_free(c);
	return o;
}

static struct sc_chan_out run(const char *text)
{
	return run_lim(text, strlen(text), 0, &big);
}

/* The same outcome whatever the pieces the pipe delivered. */
static void same_in_pieces(const char *text, const struct sc_chan_limits *lim)
{
	struct sc_chan_out whole = run_lim(text, strlen(text), 0, lim);
	size_t steps[] = { 1, 2, 3, 7, 64 };

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct sc_chan_out o = run_lim(text, strlen(text), steps[k], lim);

		CHECK((o.result == NULL) == (whole.result == NULL));
		if (o.result && whole.result)
			CHECK(json_equal(o.result, whole.result));
		CHECK_STR(o.result_error, whole.result_error);
		CHECK(json_equal(o.outputs, whole.outputs));
		CHECK(json_equal(o.problems, whole.problems));
		CHECK_EQ_INT(o.dropped, whole.dropped);
		CHECK_EQ_INT(o.truncated, whole.truncated);
		CHECK((o.exception == NULL) == (whole.exception == NULL));
		CHECK((o.where == NULL) == (whole.where == NULL));
		sc_chan_out_free(&o);
	}
	sc_chan_out_free(&whole);
}

static char *repeat(const char *unit, size_t n, const char *head, const char *tail)
{
	size_t ul = strlen(unit), hl = strlen(head), tl = strlen(tail);
	char *s = unit_malloc(hl + ul * n + tl + 1);

	memcpy(s, head, hl);
	for (size_t i = 0; i < n; i++)
		memcpy(s + hl + i * ul, unit, ul);
	memcpy(s + hl + ul * n, tail, tl + 1);
	return s;
}

/* What sandcell.result() has always written: the old semantics hold. */
static void test_result(void)
{
	struct sc_chan_out o;

	o = run("");
	CHECK(o.result == NULL);
	CHECK_STR(o.result_error, "");
	CHECK_EQ_INT(json_array_size(o.outputs), 0);
	CHECK_EQ_INT(json_array_size(o.problems), 0);
	sc_chan_out_free(&o);

	o = run("{\"a\": 1}\n");
	CHECK_EQ_INT(json_integer_value(json_object_get(o.result, "a")), 1);
	sc_chan_out_free(&o);

	/* The last complete record wins; a partial one after it is ignored. */
	o = run("1\n2\n");
	CHECK_EQ_INT(json_integer_value(o.result), 2);
	sc_chan_out_free(&o);
	o = run("1\n2\n{\"partial");
	CHECK_EQ_INT(json_integer_value(o.result), 2);
	CHECK_STR(o.result_error, "");
	sc_chan_out_free(&o);
	o = run("null\n");
	CHECK(json_is_null(o.result));
	sc_chan_out_free(&o);
	o = run("\"x\"\r\n");
	CHECK_STR(json_string_value(o.result), "x");
	sc_chan_out_free(&o);

	/* An earlier bad record does not matter, a bad last one does. */
	o = run("garbage\n[1]\n");
	CHECK(json_is_array(o.result));
	sc_chan_out_free(&o);
	o = run("[1]\ngarbage\n");
	CHECK(o.result == NULL);
	CHECK(strncmp(o.result_error, "result record: line 1", 21) == 0);
	sc_chan_out_free(&o);
	o = run("{\"a\":1,\"a\":2}\n");
	CHECK(strstr(o.result_error, "duplicate") != NULL);
	sc_chan_out_free(&o);
	o = run("[NaN]\n");
	CHECK(o.result == NULL && o.result_error[0]);
	sc_chan_out_free(&o);
	o = run("1 2\n");
	CHECK(o.result == NULL && o.result_error[0]);
	sc_chan_out_free(&o);
	o = run("\"\xff\"\n");
	CHECK(o.result == NULL && o.result_error[0]);
	sc_chan_out_free(&o);
	/* A NUL is data (escaped again in the report). */
	o = run("\"a\\u0000b\"\n");
	CHECK_EQ_INT(json_string_length(o.result), 3);
	sc_chan_out_free(&o);

	/* Empty lines are no records (a signal handler's record starts with
	 * one when another thread was writing). */
	o = run("[1]\n\n\n");
	CHECK(json_is_array(o.result));
	CHECK_STR(o.result_error, "");
	sc_chan_out_free(&o);

	o = run("{\"partial");
	CHECK_STR(o.result_error, "incomplete result record");
	CHECK(o.result == NULL);
	sc_chan_out_free(&o);
	/* A lone prefix letter at the end is an unfinished result record. */
	o = run("O");
	CHECK_STR(o.result_error, "incomplete result record");
	sc_chan_out_free(&o);
	/* A letter without the space is no prefix: a (bad) result record. */
	o = run("O\n");
	CHECK(o.result == NULL && strstr(o.result_error, "result record") != NULL);
	sc_chan_out_free(&o);
	o = run("Ex\n");
	CHECK(o.result == NULL && o.result_error[0]);
	CHECK(o.exception == NULL);
	sc_chan_out_free(&o);

	/* The value tags are checked in the result too. */
	o = run("{\"x\": {\"$float\": \"NaN\"}}\n");
	CHECK(o.result != NULL);
	sc_chan_out_free(&o);
	o = run("{\"$float\": \"nan\"}\n");
	CHECK(o.result == NULL && strstr(o.result_error, "$float") != NULL);
	sc_chan_out_free(&o);

	{
		char *s = repeat("[", 1000000, "", "\n");

		o = run(s);
		CHECK_STR(o.result_error, "result record: JSON nesting deeper than 64");
		sc_chan_out_free(&o);
		free(s);
	}
}

/* One result record over the cap: rejected, flagged as truncated; a
 * later record within the cap wins again. */
static void test_result_cap(void)
{
	struct sc_chan_limits lim = big;
	struct sc_chan_out o;
	char *s;

	lim.result_bytes = 16;
	s = repeat("1", 40, "", "\n");
	o = run_lim(s, strlen(s), 0, &lim);
	CHECK(o.result == NULL);
	CHECK(o.result_truncated);
	CHECK(strstr(o.result_error, "limit of 16 bytes") != NULL);
	sc_chan_out_free(&o);
	same_in_pieces(s, &lim);
	free(s);

	s = repeat("1", 40, "", "\n[2]\n");
	o = run_lim(s, strlen(s), 0, &lim);
	CHECK(json_is_array(o.result));
	CHECK(!o.result_truncated);
	sc_chan_out_free(&o);
	free(s);

	/* Exactly at the cap is fine, one byte more is not. */
	o = run_lim("1234567890123456\n", 17, 0, &lim);
	CHECK_EQ_INT(json_integer_value(o.result), 1234567890123456LL);
	sc_chan_out_free(&o);
	o = run_lim("12345678901234567\n", 18, 0, &lim);
	CHECK(o.result_truncated);
	sc_chan_out_free(&o);
}

static const char *type_at(json_t *outs, size_t i)
{
	return json_string_value(json_object_get(json_array_get(outs, i), "output_type"));
}

static const char *text_at(json_t *outs, size_t i)
{
	return json_string_value(json_object_get(json_array_get(outs, i), "text"));
}

static void test_outputs(void)
{
	const char *chan =
		"O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"a\"}\n"
		"O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"b\\n\"}\n"
		"O {\"output_type\":\"stream\",\"name\":\"stderr\",\"text\":\"w\\n\"}\n"
		"{\"k\": 1}\n"
		"O {\"output_type\":\"display_data\",\"data\":{\"text/html\":\"<b>x</b>\","
		"\"text/plain\":\"x\",\"image/png\":\"iVBORw0=\",\"application/json\":{\"v\":[1,{\"$float\":\"Infinity\"}]}},"
		"\"metadata\":{\"image/png\":{\"width\":10}}}\n"
		"O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"c\"}\n"
		"O {\"output_type\":\"execute_result\",\"data\":{\"text/plain\":\"3\"},\"metadata\":{},"
		"\"execution_count\":null}\n"
		"O {\"output_type\":\"execute_result\",\"data\":{\"text/plain\":\"4\"},\"metadata\":{},"
		"\"execution_count\":7}\n";
	struct sc_chan_out o = run(chan);

	CHECK_EQ_INT(json_array_size(o.outputs), 6);
	/* Consecutive chunks of one stream are merged, as nbformat does. */
	CHECK_STR(type_at(o.outputs, 0), "stream");
	CHECK_STR(text_at(o.outputs, 0), "ab\n");
	CHECK_STR(text_at(o.outputs, 1), "w\n");
	CHECK_STR(type_at(o.outputs, 2), "display_data");
	CHECK_STR(text_at(o.outputs, 3), "c");
	CHECK_STR(type_at(o.outputs, 4), "execute_result");
	CHECK(json_is_null(json_object_get(json_array_get(o.outputs, 4), "execution_count")));
	CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(o.outputs, 5), "execution_count")), 7);
	/* Outputs do not disturb the result. */
	CHECK_EQ_INT(json_integer_value(json_object_get(o.result, "k")), 1);
	CHECK_EQ_INT(o.dropped, 0);
	CHECK(!o.truncated);
	CHECK(o.bytes > 0);
	CHECK_EQ_INT(json_array_size(o.problems), 0);
	sc_chan_out_free(&o);
	same_in_pieces(chan, &big);
}

/* Each record that breaks a rule is rejected alone, with a marker in its
 * place and a problem saying why; its neighbours stay. */
static void rejected(const char *rec, const char *why, int line)
{
	char *chan = repeat(rec, 1, "O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"before\\n\"}\nO ",
			    "\nO {\"output_type\":\"execute_result\",\"data\":{},\"metadata\":{},\"execution_count\":0}\n");
	struct sc_chan_out o = run(chan);
	const char *p = json_string_value(json_array_get(o.problems, 0));

	CHECK_EQ_INT(o.dropped, 1);
	CHECK_EQ_INT(json_array_size(o.problems), 1);
	if (p == NULL || strstr(p, why) == NULL || strncmp(p, "output 2 was rejected", 21) != 0) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: problem \"%s\" lacks \"%s\"\n", line, p ? p : "(none)", why);
	}
	/* The marker joins the stream before it, on a line of its own. */
	CHECK_EQ_INT(json_array_size(o.outputs), 3);
	CHECK_STR(text_at(o.outputs, 0), "before\n");
	CHECK(strncmp(text_at(o.outputs, 1) ? text_at(o.outputs, 1) : "", "[sandcell: output 2 was rejected", 32) == 0);
	CHECK_STR(type_at(o.outputs, 2), "execute_result");
	sc_chan_out_free(&o);
	free(chan);
}
#define REJECTED(rec, why) rejected(rec, why, __LINE__)

static void test_output_rules(void)
{
	REJECTED("not json", "line 1");
	REJECTED("[1]", "not an object");
	REJECTED("{}", "no output_type");
	REJECTED("{\"output_type\":\"error\",\"ename\":\"E\",\"evalue\":\"\",\"traceback\":[]}",
		 "is not stream, display_data or execute_result");
	REJECTED("{\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"x\",\"extra\":1}", "unknown key");
	REJECTED("{\"output_type\":\"stream\",\"name\":\"stdout\"}", "lacks \"text\"");
	REJECTED("{\"output_type\":\"stream\",\"name\":\"stdin\",\"text\":\"x\"}", "stdout\" or \"stderr");
	REJECTED("{\"output_type\":\"stream\",\"name\":\"stdout\\u0000\",\"text\":\"x\"}", "stdout\" or \"stderr");
	REJECTED("{\"output_type\":\"stream\\u0000x\",\"name\":\"stdout\",\"text\":\"x\"}", "is not stream");
	REJECTED("{\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":[\"a\"]}", "a string");
	REJECTED("{\"output_type\":\"stream\",\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"\"}",
		 "duplicate");
	REJECTED("{\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"\xc3\x28\"}", "line 1");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{},\"metadata\":[]}", "metadata is not an object");
	REJECTED("{\"output_type\":\"display_data\",\"data\":[],\"metadata\":{}}", "data is not an object");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"texthtml\":\"x\"},\"metadata\":{}}",
		 "not a MIME type");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"text/ht ml\":\"x\"},\"metadata\":{}}",
		 "not a MIME type");
	/* a one-key bundle would read as a tagged value (fuzz_channel found it) */
	REJECTED("{\"output_type\":\"execute_result\",\"data\":{\"$text/plain\":\"3\"},\"metadata\":{},"
		 "\"execution_count\":null}", "not a MIME type");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"text/$html\":\"x\"},\"metadata\":{}}",
		 "not a MIME type");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"text/html\":1},\"metadata\":{}}",
		 "text/html is not a string");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"image/png\":\"not base64!\"},\"metadata\":{}}",
		 "image/png is not a base64 string");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"image/png\":\"iVBORw0\"},\"metadata\":{}}",
		 "base64");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"image/png\":\"iVBO\\nRw0=\"},\"metadata\":{}}",
		 "base64");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"application/pdf\":\"====\"},\"metadata\":{}}",
		 "base64");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{\"application/json\":{\"$float\":1}},\"metadata\":{}}",
		 "$float is");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{},\"metadata\":{\"a\":{\"$nope\":1}}}",
		 "unknown value tag");
	REJECTED("{\"output_type\":\"display_data\",\"data\":{},\"metadata\":{}", "line 1");
	REJECTED("{\"output_type\":\"execute_result\",\"data\":{},\"metadata\":{}}",
		 "lacks \"execution_count\"");
	REJECTED("{\"output_type\":\"execute_result\",\"data\":{},\"metadata\":{},\"execution_count\":-1}",
		 "execution_count");
	REJECTED("{\"output_type\":\"execute_result\",\"data\":{},\"metadata\":{},\"execution_count\":\"1\"}",
		 "execution_count");
	{
		char *deep = repeat("[", 70, "{\"output_type\":\"display_data\",\"data\":{\"application/json\":",
				    "");
		REJECTED(deep, "nesting deeper than 64");
		free(deep);
	}

	/* JSON types take any JSON, the +json suffix too; image/svg+xml is
	 * text; the other image types are base64. */
	{
		struct sc_chan_out o = run(
			"O {\"output_type\":\"display_data\",\"data\":{\"application/vnd.x+json\":[1,\"a\",null],"
			"\"image/svg+xml\":\"<svg/>\",\"image/gif\":\"R0lGODlh\",\"text/markdown\":\"*m*\"},"
			"\"metadata\":{}}\n");

		CHECK_EQ_INT(json_array_size(o.outputs), 1);
		CHECK_EQ_INT(o.dropped, 0);
		sc_chan_out_free(&o);
	}
}

static void test_base64(void)
{
	CHECK(sc_base64_ok("", 0));
	CHECK(sc_base64_ok("QQ==", 4));
	CHECK(sc_base64_ok("QUI=", 4));
	CHECK(sc_base64_ok("QUJD", 4));
	CHECK(sc_base64_ok("+/+/", 4));
	CHECK(!sc_base64_ok("QR==", 4));   /* unused bits set: not canonical */
	CHECK(!sc_base64_ok("QUJ=", 4));
	CHECK(!sc_base64_ok("QQ=", 3));
	CHECK(!sc_base64_ok("Q===", 4));
	CHECK(!sc_base64_ok("=QQQ", 4));
	CHECK(!sc_base64_ok("QQ=A", 4));
	CHECK(!sc_base64_ok("QU-_", 4));   /* the URL alphabet is not base64 here */
	CHECK(!sc_base64_ok("QU J", 4));
	CHECK(!sc_base64_ok("QU\0J", 4));
}

static void tag(const char *json, bool ok, int line)
{
	json_error_t je;
	json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
	struct sandcell_error err = { 0, "" };
	int rc;

	CHECK(v != NULL);
	rc = sc_chan_check_value(v, &err);
	if ((rc == 0) != ok) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: %s %s (%s)\n", line, json, ok ? "rejected" : "accepted",
			err.msg);
	}
	unit_checks++;
	json_decref(v);
}
#define TAG_OK(j) tag(j, true, __LINE__)
#define TAG_BAD(j) tag(j, false, __LINE__)

/* Every tag of docs/values.md, in the forms the in-sandbox side writes,
 * and near misses. */
static void test_tags(void)
{
	TAG_OK("{\"$float\":\"NaN\"}");
	TAG_OK("{\"$float\":\"Infinity\"}");
	TAG_OK("{\"$float\":\"-Infinity\"}");
	TAG_BAD("{\"$float\":\"nan\"}");
	TAG_BAD("{\"$float\":\"inf\"}");
	TAG_BAD("{\"$float\":1.5}");

	TAG_OK("{\"$int\":\"123456789012345678901234567890\"}");
	TAG_OK("{\"$int\":\"-9223372036854775809\"}");
	TAG_OK("{\"$int\":\"0\"}");
	TAG_BAD("{\"$int\":\"0123\"}");
	TAG_BAD("{\"$int\":\"1e5\"}");
	TAG_BAD("{\"$int\":\"\"}");
	TAG_BAD("{\"$int\":\"-\"}");
	TAG_BAD("{\"$int\":12}");

	TAG_OK("{\"$decimal\":\"1.10\"}");
	TAG_OK("{\"$decimal\":\"-0\"}");
	TAG_OK("{\"$decimal\":\"1.2E+5\"}");
	TAG_OK("{\"$decimal\":\".5\"}");
	TAG_OK("{\"$decimal\":\"NaN\"}");
	TAG_OK("{\"$decimal\":\"sNaN12\"}");
	TAG_OK("{\"$decimal\":\"-Infinity\"}");
	TAG_BAD("{\"$decimal\":\"1.2.3\"}");
	TAG_BAD("{\"$decimal\":\"E5\"}");
	TAG_BAD("{\"$decimal\":\"1E\"}");
	TAG_BAD("{\"$decimal\":\"inf\"}");
	TAG_BAD("{\"$decimal\":1.5}");

	TAG_OK("{\"$datetime\":\"2024-01-02T03:04:05.123456+05:30\"}");
	TAG_OK("{\"$datetime\":\"2024-01-02T03:04:05.123456789+00:00\"}");
	TAG_OK("{\"$datetime\":\"2024-01-02T03:04:05\"}");
	TAG_OK("{\"$datetime\":\"2024-01-02\"}");
	TAG_OK("{\"$datetime\":\"2024-01\"}");
	TAG_OK("{\"$datetime\":\"-10000-01-01T00\"}");
	TAG_OK("{\"$datetime\":\"2024-01-02T03:04:05Z\"}");
	TAG_OK("{\"$datetime\":\"2024-01-02T03:04:05+05:30:15.5\"}");
	TAG_OK("{\"$datetime\":\"NaT\"}");
	TAG_BAD("{\"$datetime\":\"24-01-02\"}");
	TAG_BAD("{\"$datetime\":\"2024-1-02\"}");
	TAG_BAD("{\"$datetime\":\"2024-01-02 03:04\"}");
	TAG_BAD("{\"$datetime\":\"2024-01-02T03:04:05.\"}");
	TAG_BAD("{\"$datetime\":\"2024-01-02T03:04:05+0530\"}");
	TAG_BAD("{\"$datetime\":\"nat\"}");

	TAG_OK("{\"$date\":\"2024-01-02\"}");
	TAG_BAD("{\"$date\":\"2024-01-02T00\"}");
	TAG_OK("{\"$time\":\"03:04:05\"}");
	TAG_OK("{\"$time\":\"03:04:05.5+01:00\"}");
	TAG_BAD("{\"$time\":\"03:04\"}");

	TAG_OK("{\"$timedelta\":\"P1DT2H3M4S\"}");
	TAG_OK("{\"$timedelta\":\"-P0DT0H0M0.000000001S\"}");
	TAG_OK("{\"$timedelta\":\"NaT\"}");
	TAG_BAD("{\"$timedelta\":\"PT1S\"}");
	TAG_BAD("{\"$timedelta\":\"P1D\"}");
	TAG_BAD("{\"$timedelta\":\"P1DT2H3M4.S\"}");
	TAG_BAD("{\"$timedelta\":\"P1DT2H3M4S \"}");

	TAG_OK("{\"$bytes\":\"AP8=\"}");
	TAG_BAD("{\"$bytes\":\"AP8\"}");
	TAG_OK("{\"$complex\":[1,2.5]}");
	TAG_OK("{\"$complex\":[{\"$float\":\"NaN\"},0]}");
	TAG_BAD("{\"$complex\":[1]}");
	TAG_BAD("{\"$complex\":[1,\"2\"]}");
	TAG_BAD("{\"$complex\":[{\"$float\":\"x\"},0]}");
	TAG_OK("{\"$na\":null}");
	TAG_BAD("{\"$na\":0}");
	TAG_OK("{\"$repr\":\"<object>\"}");
	TAG_BAD("{\"$repr\":1}");
	TAG_OK("{\"$set\":[1,2]}");
	TAG_BAD("{\"$set\":{}}");
	TAG_OK("{\"$map\":[[1,\"a\"],[[1,2],{\"$float\":\"NaN\"}]]}");
	TAG_BAD("{\"$map\":[[1]]}");
	TAG_BAD("{\"$map\":[[1,2],[{\"$float\":\"nan\"},1]]}");

	TAG_OK("{\"$ndarray\":{\"dtype\":\"int64\",\"shape\":[2,3],\"data\":[[1,2,3],[4,5,6]]}}");
	TAG_OK("{\"$ndarray\":{\"dtype\":\"float64\",\"shape\":[],\"data\":1.5}}");
	TAG_OK("{\"$ndarray\":{\"dtype\":\"float64\",\"shape\":[0],\"data\":[]}}");
	TAG_BAD("{\"$ndarray\":{\"dtype\":\"int64\",\"shape\":[2,3],\"data\":[[1,2,3],[4,5]]}}");
	TAG_BAD("{\"$ndarray\":{\"dtype\":\"int64\",\"shape\":[-1],\"data\":[]}}");
	TAG_BAD("{\"$ndarray\":{\"dtype\":\"int64\",\"shape\":[1],\"data\":[1],\"x\":1}}");
	TAG_BAD("{\"$ndarray\":{\"dtype\":\"int64\",\"shape\":[1]}}");
	TAG_BAD("{\"$ndarray\":{\"dtype\":\"float64\",\"shape\":[1],\"data\":[{\"$float\":\"nan\"}]}}");

	TAG_OK("{\"$series\":{\"name\":\"s\",\"dtype\":\"float64\",\"index\":[0,1],\"data\":[1.5,{\"$float\":\"NaN\"}]}}");
	TAG_BAD("{\"$series\":{\"name\":\"s\",\"dtype\":\"float64\",\"index\":[0],\"data\":[1,2]}}");
	TAG_OK("{\"$dataframe\":{\"columns\":[\"a\",\"b\"],\"index\":[0],\"dtypes\":[\"int64\",\"object\"],"
	       "\"data\":[[1,\"x\"]]}}");
	TAG_BAD("{\"$dataframe\":{\"columns\":[\"a\",\"b\"],\"index\":[0],\"dtypes\":[\"int64\"],"
		"\"data\":[[1,\"x\"]]}}");
	TAG_BAD("{\"$dataframe\":{\"columns\":[\"a\",\"b\"],\"index\":[0],\"dtypes\":[\"int64\",\"object\"],"
		"\"data\":[[1]]}}");
	TAG_BAD("{\"$dataframe\":{\"columns\":[\"a\"],\"index\":[0,1],\"dtypes\":[\"int64\"],\"data\":[[1]]}}");

	/* Unknown tags are refused; objects of several keys are plain. */
	TAG_BAD("{\"$foo\":1}");
	TAG_BAD("[1,{\"x\":{\"$\":1}}]");
	TAG_OK("{\"$foo\":1,\"bar\":2}");
	TAG_OK("{\"plain\":{\"nested\":[1,\"$float\"]}}");
}

static const char stream_rec[] =
	"O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"0123456789\"}\n";

static void test_caps(void)
{
	struct sc_chan_limits lim = big;
	struct sc_chan_out o;
	char *s;

	/* Count: the first 3 are kept, the rest counted and marked once. */
	lim.out_count = 3;
	s = repeat(stream_rec, 10, "", "7\n");
	o = run_lim(s, strlen(s), 0, &lim);
	CHECK_EQ_INT(json_array_size(o.outputs), 2);
	CHECK_STR(text_at(o.outputs, 0), "012345678901234567890123456789");
	CHECK(strncmp(text_at(o.outputs, 1), "[sandcell: 7 more outputs", 25) == 0);
	CHECK(o.truncated);
	CHECK_EQ_INT(o.dropped, 7);
	CHECK_EQ_INT(json_integer_value(o.result), 7);
	CHECK(strstr(json_string_value(json_array_get(o.problems, 0)), "outputs 4 and later (7 of them") != NULL);
	sc_chan_out_free(&o);
	same_in_pieces(s, &lim);
	free(s);

	/* The total, as the report will hold the outputs: stops collection
	 * at the first output that no longer fits. */
	lim = big;
	lim.out_bytes = 250;
	s = repeat(stream_rec, 4, "", "");
	o = run_lim(s, strlen(s), 0, &lim);
	CHECK(o.truncated);
	CHECK_EQ_INT(o.dropped, 2);
	CHECK(o.bytes <= 250 && o.bytes > 100);
	sc_chan_out_free(&o);
	same_in_pieces(s, &lim);
	free(s);
	/* The total, as bytes held while the code runs (here padding that
	 * the report will not hold). */
	s = repeat(" ", 200, "O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"a\"}", "\n");
	{
		char *chan = repeat(s, 4, "", "");

		lim.out_bytes = 600;
		o = run_lim(chan, strlen(chan), 0, &lim);
		CHECK(o.truncated);
		CHECK_EQ_INT(o.dropped, 2);
		CHECK_STR(text_at(o.outputs, 0), "aa");
		CHECK(o.bytes < 300);
		sc_chan_out_free(&o);
		same_in_pieces(chan, &lim);
		free(chan);
	}
	free(s);

	/* Per output: only that record goes, marked where it was. */
	lim = big;
	lim.out_one = 200;
	s = repeat("x", 300, "O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"", "\"}\n");
	{
		char *chan = repeat(s, 1, stream_rec, stream_rec);

		o = run_lim(chan, strlen(chan), 0, &lim);
		CHECK(!o.truncated);
		CHECK_EQ_INT(o.dropped, 1);
		CHECK_EQ_INT(json_array_size(o.outputs), 3);
		CHECK_STR(text_at(o.outputs, 0), "0123456789");
		CHECK(strncmp(text_at(o.outputs, 1), "[sandcell: output 2 (", 21) == 0);
		CHECK(strstr(text_at(o.outputs, 1), "per-output limit of 200 bytes]\n") != NULL);
		CHECK_STR(text_at(o.outputs, 2), "0123456789");
		sc_chan_out_free(&o);
		same_in_pieces(chan, &lim);
		free(chan);
	}
	free(s);

	/* The report's size counts: deep tiny values cost their indentation. */
	lim = big;
	lim.out_one = 4000;
	s = repeat("[0,", 1, "O {\"output_type\":\"display_data\",\"data\":{\"application/json\":", "");
	{
		char *mid = repeat("0,", 900, s, "0]},\"metadata\":{}}\n");

		CHECK(strlen(mid) < 4000);
		o = run_lim(mid, strlen(mid), 0, &lim);
		CHECK_EQ_INT(o.dropped, 1);
		CHECK(strstr(json_string_value(json_array_get(o.problems, 0)), "bytes of the report") != NULL);
		sc_chan_out_free(&o);
		free(mid);
	}
	free(s);

	/* A record the code was still writing when it ended. */
	o = run("O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"a\"}\nO {\"output_type\":\"str");
	CHECK_EQ_INT(o.dropped, 1);
	CHECK_STR(text_at(o.outputs, 0), "a");
	CHECK_STR(text_at(o.outputs, 1), "[sandcell: output 2 was cut off when the code ended]\n");
	sc_chan_out_free(&o);
}

static void test_error_and_where(void)
{
	struct sc_chan_out o;
	json_t *eo;

	o = run("E {\"ename\":\"KeyError\",\"evalue\":\"'k'\",\"traceback\":[\"Traceback\",\"KeyError: 'k'\"]}\n"
		"W {\"traceback\":[\"  File \\\"<cell>\\\", line 3\"]}\n");
	CHECK_STR(json_string_value(json_object_get(o.exception, "ename")), "KeyError");
	CHECK_EQ_INT(json_array_size(json_object_get(o.where, "traceback")), 1);
	CHECK_EQ_INT(json_array_size(o.outputs), 0); /* the host adds the error output */
	eo = sc_chan_error_output(o.exception);
	CHECK_STR(json_string_value(json_object_get(eo, "output_type")), "error");
	CHECK_STR(json_string_value(json_object_get(eo, "evalue")), "'k'");
	CHECK_EQ_INT(json_array_size(json_object_get(eo, "traceback")), 2);
	json_decref(eo);
	eo = sc_chan_stop_output("wall-clock limit of 1 s reached", o.where);
	CHECK_STR(json_string_value(json_object_get(eo, "ename")), "SandcellStopped");
	CHECK_EQ_INT(json_array_size(json_object_get(eo, "traceback")), 3);
	CHECK(strstr(json_string_value(json_array_get(json_object_get(eo, "traceback"), 0)),
		     "as the code reported it") != NULL);
	json_decref(eo);
	eo = sc_chan_stop_output("killed", NULL);
	CHECK_EQ_INT(json_array_size(json_object_get(eo, "traceback")), 1);
	json_decref(eo);
	sc_chan_out_free(&o);

	/* The last complete one wins. */
	o = run("E {\"ename\":\"A\",\"evalue\":\"\",\"traceback\":[]}\nE {\"ename\":\"B\",\"evalue\":\"\",\"traceback\":[]}\nE {\"en");
	CHECK_STR(json_string_value(json_object_get(o.exception, "ename")), "B");
	sc_chan_out_free(&o);

	/* Strict shapes. */
	o = run("E {\"ename\":\"A\",\"evalue\":\"\",\"traceback\":[],\"x\":1}\n");
	CHECK(o.exception == NULL);
	CHECK(strstr(json_string_value(json_array_get(o.problems, 0)), "unknown key") != NULL);
	sc_chan_out_free(&o);
	o = run("E {\"ename\":1,\"evalue\":\"\",\"traceback\":[]}\n");
	CHECK(o.exception == NULL);
	sc_chan_out_free(&o);
	o = run("E {\"ename\":\"A\",\"evalue\":\"\",\"traceback\":[1]}\n");
	CHECK(o.exception == NULL);
	sc_chan_out_free(&o);
	o = run("W {\"traceback\":\"x\"}\n");
	CHECK(o.where == NULL);
	CHECK(strstr(json_string_value(json_array_get(o.problems, 0)), "location") != NULL);
	sc_chan_out_free(&o);
	o = run("E {\"ename\":\"A\",\"evalue\":\"\",\"trace");
	CHECK(o.exception == NULL);
	CHECK(strstr(json_string_value(json_array_get(o.problems, 0)), "cut off") != NULL);
	sc_chan_out_free(&o);
	{
		char *s = repeat("x", 2 << 20, "E {\"ename\":\"A\",\"evalue\":\"", "\",\"traceback\":[]}\n");

		o = run(s);
		CHECK(o.exception == NULL);
		CHECK(strstr(json_string_value(json_array_get(o.problems, 0)), "exceeded") != NULL);
		sc_chan_out_free(&o);
		free(s);
	}
}

/* At most 16 problems and a count of the rest. */
static void test_problem_cap(void)
{
	char *s = repeat("O x\n", 40, "", "");
	struct sc_chan_out o = run(s);

	CHECK_EQ_INT(o.dropped, 40);
	CHECK_EQ_INT(json_array_size(o.problems), 17);
	CHECK_STR(json_string_value(json_array_get(o.problems, 16)), "... and 24 more");
	sc_chan_out_free(&o);
	free(s);
}

int main(void)
{
	test_result();
	test_result_cap();
	test_outputs();
	test_output_rules();
	test_base64();
	test_tags();
	test_caps();
	test_error_and_where();
	test_problem_cap();
	return unit_done("test_channel");
}
