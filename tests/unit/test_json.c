/* Strict JSON parsing and byte escaping (the channel: test_channel.c). */
#include "internal.h"
#include "unit.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>

static struct sandcell_error err;

static int parse(const char *s, json_t **out)
{
	memset(&err, 0, sizeof(err));
	return sc_json_parse(s, strlen(s), 1 << 20, SC_JSON_MAX_DEPTH, out, &err);
}

/* Parses s and expects a rejection whose message contains want. */
static void rejects(const char *s, const char *want, int line)
{
	json_t *v = (json_t *)1;
	int rc = parse(s, &v);

	CHECK_EQ_INT(rc, -1);
	CHECK(v == NULL);
	CHECK_EQ_INT(err.code, EINVAL);
	if (strstr(err.msg, want) == NULL) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: message \"%s\" lacks \"%s\"\n", line, err.msg, want);
	}
}
#define REJECTS(s, want) rejects(s, want, __LINE__)

static char *repeat(const char *unit, size_t n, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail);
	char *s = unit_malloc(ul * n + tl + 1);

	for (size_t i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	memcpy(s + ul * n, tail, tl + 1);
	return s;
}

static bool no_control_bytes(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void test_parse_ok(void)
{
	json_t *v;

	CHECK_EQ_INT(parse("{\"a\": [1, 2.5, \"x\", null, true]}", &v), 0);
	CHECK(json_is_object(v));
	CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(v, "a"), 0)), 1);
	json_decref(v);

	/* Any value at top level, and trailing whitespace is fine. */
	CHECK_EQ_INT(parse("5", &v), 0);
	CHECK_EQ_INT(json_integer_value(v), 5);
	json_decref(v);
	CHECK_EQ_INT(parse("\"s\" \r\n\t", &v), 0);
	CHECK_STR(json_string_value(v), "s");
	json_decref(v);
	CHECK_EQ_INT(parse("\"\xc3\xa9\xf0\x9f\x98\x80\"", &v), 0);
	json_decref(v);
}

static void test_parse_hostile(void)
{
	json_t *v;
	char *s;

	REJECTS("{\"a\": 1, \"a\": 2}", "duplicate object key");
	REJECTS("{\"o\": {\"k\": 1, \"k\": 1}}", "duplicate object key");
	REJECTS("NaN", "line 1 column");
	REJECTS("[Infinity]", "invalid token");
	REJECTS("-Infinity", "line 1");
	REJECTS("[nan]", "invalid token");
	REJECTS("1 x", "line 1 column 3: end of file expected");
	REJECTS("{} {}", "end of file expected");
	REJECTS("[1]]", "end of file expected");
	REJECTS("\"\xff\"", "unable to decode byte 0xff");
	REJECTS("\"\xc0\xaf\"", "unable to decode");
	REJECTS("\"\xed\xa0\x80\"", "unable to decode");
	REJECTS("\"\\u0000\"", "\\u0000 is not allowed");
	REJECTS("{\"\\u0000\": 1}", "NUL byte in object key");
	REJECTS("\"\\ud800\"", "invalid Unicode");
	REJECTS("9223372036854775808", "too big integer");
	REJECTS("1e400", "real number overflow");
	REJECTS("", "empty JSON text");
	REJECTS("   ", "line 1");
	REJECTS("[1,]", "line 1");
	REJECTS("{'a': 1}", "line 1");
	REJECTS("// c\n1", "line 1");

	/* Bytes the input quotes back must not reach a terminal raw. */
	REJECTS("\x1b[31m", "line 1");
	CHECK(no_control_bytes(err.msg));
	REJECTS("\"abc\x01\"", "control character 0x1");
	CHECK(no_control_bytes(err.msg));

	/* Embedded NUL bytes count, they do not end the text. */
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(sc_json_parse("1\0 2", 4, 100, 64, &v, &err), -1);
	CHECK(v == NULL);

	/* Size cap is checked before anything is parsed. */
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(sc_json_parse("[1, 2, 3]", 9, 8, 64, &v, &err), -1);
	CHECK(strstr(err.msg, "over the 8-byte limit") != NULL);
	CHECK_EQ_INT(sc_json_parse("[1, 2, 3]", 9, 9, 64, &v, &err), 0);
	json_decref(v);

	CHECK_EQ_INT(sc_json_parse(NULL, 0, 10, 64, &v, &err), -1);
	CHECK_EQ_INT(sc_json_parse("1", 1, 10, 64, NULL, &err), -1);
	CHECK_EQ_INT(sc_json_parse("1", 1, 10, 64, &v, NULL), 0);
	json_decref(v);
	CHECK_EQ_INT(sc_json_parse("x", 1, 10, 64, &v, NULL), -1);

	/* A long string is not deep. */
	s = repeat("a", 100000, "\"");
	s[0] = '"';
	CHECK_EQ_INT(parse(s, &v), 0);
	json_decref(v);
	free(s);
}

/* open x n, then mid, then close x n. */
static char *nest(const char *open, size_t n, const char *mid, const char *close)
{
	size_t ol = strlen(open), ml = strlen(mid), cl = strlen(close);
	char *s = unit_malloc((ol + cl) * n + ml + 1), *p = s;

	for (size_t i = 0; i < n; i++, p += ol)
		memcpy(p, open, ol);
	memcpy(p, mid, ml);
	p += ml;
	for (size_t i = 0; i < n; i++, p += cl)
		memcpy(p, close, cl);
	*p = '\0';
	return s;
}

static void test_depth(void)
{
	json_t *v;
	char *s;

	/* Exactly 64 levels pass, 65 do not. */
	s = nest("[", 64, "", "]");
	CHECK_EQ_INT(parse(s, &v), 0);
	json_decref(v);
	free(s);
	s = nest("[", 65, "", "]");
	REJECTS(s, "JSON nesting deeper than 64");
	CHECK_STR(err.msg, "JSON nesting deeper than 64");
	free(s);
	s = nest("{\"a\":", 64, "1", "}");
	CHECK_EQ_INT(parse(s, &v), 0);
	json_decref(v);
	free(s);
	s = nest("{\"a\":[", 33, "1", "]}");
	REJECTS(s, "JSON nesting deeper than 64");
	free(s);

	/* 10^6 levels, balanced and unbalanced, objects and arrays: refused
	 * by the pre-scan before jansson recurses. */
	s = repeat("[", 1000000, "");
	REJECTS(s, "JSON nesting deeper than 64");
	free(s);
	s = repeat("{\"a\":[", 150000, "");
	REJECTS(s, "JSON nesting deeper than 64");
	free(s);
	s = nest("[", 1000000, "", "]");
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(sc_json_parse(s, 2000000, 2000000, 64, &v, &err), -1);
	CHECK_STR(err.msg, "JSON nesting deeper than 64");
	free(s);
	/* Deeper than jansson's own limit (2048) with a generous cap. */
	s = nest("[", 5000, "", "]");
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(sc_json_parse(s, 10000, 10000, 100000, &v, &err), -1);
	free(s);

	/* Brackets inside strings, also after escaped quotes, are text. */
	s = repeat("[", 1000, "\"]");
	{
		char *doc = unit_malloc(strlen(s) + 3);

		sprintf(doc, "[\"%s", s);
		CHECK_EQ_INT(parse(doc, &v), 0);
		json_decref(v);
		free(doc);
	}
	free(s);
	CHECK_EQ_INT(parse("[\"\\\"[[[[\\\\\", [[1]]]", &v), 0);
	json_decref(v);

	/* max_depth 0 admits only scalars. */
	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(sc_json_parse("1", 1, 10, 0, &v, &err), 0);
	json_decref(v);
	CHECK_EQ_INT(sc_json_parse("[]", 2, 10, 0, &v, &err), -1);
}

static void escapes(const char *in, size_t len, const char *want, bool want_changed)
{
	bool changed = !want_changed;
	char *out = sc_escape_bytes(in, len, &changed);

	CHECK_STR(out, want);
	CHECK_EQ_INT(changed, want_changed);
	free(out);
}

static void test_escape(void)
{
	char *out;

	escapes("hello world", 11, "hello world", false);
	escapes("", 0, "", false);
	escapes("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac", 14, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac",
		false);
	escapes("a\\b", 3, "a\\x5cb", true);
	escapes("a\nb\tc", 5, "a\\x0ab\\x09c", true);
	escapes("\x1b[2J", 4, "\\x1b[2J", true);
	escapes("\x7f", 1, "\\x7f", true);
	escapes("a\0b", 3, "a\\x00b", true);
	escapes("\xff\xfe", 2, "\\xff\\xfe", true);
	escapes("\xc0\xaf", 2, "\\xc0\\xaf", true);		/* overlong '/' */
	escapes("\xe0\x80\xaf", 3, "\\xe0\\x80\\xaf", true);	/* overlong */
	escapes("\xed\xa0\x80", 3, "\\xed\\xa0\\x80", true);	/* surrogate */
	escapes("\xf4\x90\x80\x80", 4, "\\xf4\\x90\\x80\\x80", true); /* > U+10FFFF */
	escapes("x\xe2\x82", 3, "x\\xe2\\x82", true);		/* cut sequence */
	escapes("\xe2\x82x", 3, "\\xe2\\x82x", true);
	escapes("\xc2\x9b" "31m", 5, "\\xc2\\x9b31m", true);	/* C1 CSI */
	escapes("a\xe2\x80\xae" "b", 5, "a\\xe2\\x80\\xaeb", true); /* RLO */
	escapes("\xe2\x81\xa6", 3, "\\xe2\\x81\\xa6", true);	/* LRI */
	escapes("\xc2\xa0", 2, "\xc2\xa0", false);		/* NBSP is fine */

	/* len bounds the input, NUL or not. */
	escapes("abcdef", 3, "abc", false);
	out = sc_escape_bytes(NULL, 0, NULL);
	CHECK_STR(out, "");
	free(out);

	/* Output is always valid for a JSON string. */
	{
		char all[256];
		json_t *j;

		for (int i = 0; i < 256; i++)
			all[i] = (char)i;
		out = sc_escape_bytes(all, sizeof(all), NULL);
		CHECK(out != NULL);
		j = json_string(out);
		CHECK(j != NULL);
		CHECK(no_control_bytes(out));
		json_decref(j);
		free(out);
	}
}

int main(void)
{
	test_parse_ok();
	test_parse_hostile();
	test_depth();
	test_escape();
	return unit_done("test_json");
}
