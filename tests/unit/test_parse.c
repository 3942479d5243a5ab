/* Parsers for sizes, durations, counts, names and --value texts. */
#include "internal.h"
#include "unit.h"

#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <stdbool.h>

static struct sandcell_error err;

static void msg_has(const char *want, int line)
{
	if (strstr(err.msg, want) == NULL) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: message \"%s\" lacks \"%s\"\n", line, err.msg, want);
	}
}
#define MSG_HAS(want) msg_has(want, __LINE__)

static void size_ok(const char *s, uint64_t want, int line)
{
	uint64_t v = 12345;

	memset(&err, 0, sizeof(err));
	unit_checks++;
	if (sandcell_parse_size(s, &v, &err) != 0 || v != want) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: size '%s' -> %llu (%s), want %llu\n", line, s,
			(unsigned long long)v, err.msg, (unsigned long long)want);
	}
}
#define SIZE_OK(s, want) size_ok(s, want, __LINE__)

static void size_bad(const char *s, const char *want, int line)
{
	uint64_t v = 12345;

	memset(&err, 0, sizeof(err));
	unit_checks++;
	if (sandcell_parse_size(s, &v, &err) != -1 || v != 12345 || err.code != EINVAL) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: size '%s' accepted\n", line, s ? s : "(null)");
	}
	msg_has(want, line);
}
#define SIZE_BAD(s, want) size_bad(s, want, __LINE__)

static void test_size(void)
{
	SIZE_OK("0", 0);
	SIZE_OK("512", 512);
	SIZE_OK("007", 7);
	SIZE_OK("512B", 512);
	SIZE_OK("1K", 1024);
	SIZE_OK("1k", 1024);
	SIZE_OK("1KB", 1024);
	SIZE_OK("1kib", 1024);
	SIZE_OK("64MiB", 64ull << 20);
	SIZE_OK("64m", 64ull << 20);
	SIZE_OK("1G", 1ull << 30);
	SIZE_OK("2GiB", 2ull << 30);
	SIZE_OK("3gB", 3ull << 30);
	SIZE_OK("1T", 1ull << 40);
	SIZE_OK("0G", 0);
	SIZE_OK("18446744073709551615", UINT64_MAX);
	SIZE_OK("17179869183G", 17179869183ull << 30);
	SIZE_OK("16777215T", 16777215ull << 40);

	SIZE_BAD("", "empty size");
	SIZE_BAD(NULL, "empty size");
	SIZE_BAD("-1", "cannot be negative");
	SIZE_BAD("-0", "cannot be negative");
	SIZE_BAD("18446744073709551616", "too large");
	SIZE_BAD("99999999999999999999999", "too large");
	SIZE_BAD("17179869184G", "too large");
	SIZE_BAD("16777216T", "too large");
	SIZE_BAD("1.5K", "fractional sizes are not supported");
	SIZE_BAD("1e3", "'1e3' is not a size");
	SIZE_BAD(" 5", "is not a size");
	SIZE_BAD("5 ", "is not a size");
	SIZE_BAD("0x10", "is not a size");
	SIZE_BAD("+5", "is not a size");
	SIZE_BAD("K", "is not a size");
	SIZE_BAD("1KK", "is not a size");
	SIZE_BAD("1iB", "is not a size");
	SIZE_BAD("1Ki", "is not a size");
	SIZE_BAD("1KiBB", "is not a size");
	SIZE_BAD("1P", "is not a size");
	SIZE_BAD("1 K", "is not a size");
	SIZE_BAD("١٢", "is not a size");
	SIZE_BAD("5\n", "'5\\x0a' is not a size");
	SIZE_BAD("1\xff", "'1\\xff'");
}

static void seconds_ok(const char *s, double want, int line)
{
	double v = -1;

	memset(&err, 0, sizeof(err));
	unit_checks++;
	if (sandcell_parse_seconds(s, &v, &err) != 0 || v != want) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: seconds '%s' -> %g (%s), want %g\n", line, s, v,
			err.msg, want);
	}
}
#define SECONDS_OK(s, want) seconds_ok(s, want, __LINE__)

static void seconds_bad(const char *s, const char *want, int line)
{
	double v = -1;

	memset(&err, 0, sizeof(err));
	unit_checks++;
	if (sandcell_parse_seconds(s, &v, &err) != -1 || v != -1 || err.code != EINVAL) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: seconds '%s' accepted\n", line, s ? s : "(null)");
	}
	msg_has(want, line);
}
#define SECONDS_BAD(s, want) seconds_bad(s, want, __LINE__)

static void test_seconds(void)
{
	SECONDS_OK("30", 30);
	SECONDS_OK("0.5", 0.5);
	SECONDS_OK("00.25", 0.25);
	SECONDS_OK("1.000", 1);
	SECONDS_OK("0.001", 0.001);
	SECONDS_OK("10000000", 1e7);
	SECONDS_OK("10000000.0", 1e7);

	SECONDS_BAD("", "empty duration");
	SECONDS_BAD(NULL, "empty duration");
	SECONDS_BAD("0", "must be greater than 0");
	SECONDS_BAD("0.000", "must be greater than 0");
	SECONDS_BAD("-1", "cannot be negative");
	SECONDS_BAD("-0.5", "cannot be negative");
	SECONDS_BAD("10000000.1", "over the maximum of 10000000 seconds");
	SECONDS_BAD("99999999999999999999999999999999", "over the maximum");
	SECONDS_BAD("nan", "is not a duration");
	SECONDS_BAD("NaN", "is not a duration");
	SECONDS_BAD("inf", "is not a duration");
	SECONDS_BAD("Infinity", "is not a duration");
	SECONDS_BAD("1e3", "is not a duration");
	SECONDS_BAD("0x10", "is not a duration");
	SECONDS_BAD(" 5", "is not a duration");
	SECONDS_BAD("5 ", "is not a duration");
	SECONDS_BAD("+5", "is not a duration");
	SECONDS_BAD(".5", "is not a duration");
	SECONDS_BAD("5.", "is not a duration");
	SECONDS_BAD("1,5", "is not a duration");
	SECONDS_BAD("1.2.3", "is not a duration");
	SECONDS_BAD("5s", "is not a duration");

	/* A program that set a locale with a decimal comma still gets '.'. */
	if (setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL ||
	    setlocale(LC_NUMERIC, "fr_FR.UTF-8") != NULL) {
		SECONDS_OK("0.5", 0.5);
		SECONDS_BAD("0,5", "is not a duration");
		setlocale(LC_NUMERIC, "C");
	}
}

static void count_ok(const char *s, uint64_t want, int line)
{
	uint64_t v = 12345;

	memset(&err, 0, sizeof(err));
	unit_checks++;
	if (sandcell_parse_count(s, &v, &err) != 0 || v != want) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: count '%s' -> %llu (%s)\n", line, s,
			(unsigned long long)v, err.msg);
	}
}
#define COUNT_OK(s, want) count_ok(s, want, __LINE__)

static void count_bad(const char *s, const char *want, int line)
{
	uint64_t v = 12345;

	memset(&err, 0, sizeof(err));
	unit_checks++;
	if (sandcell_parse_count(s, &v, &err) != -1 || v != 12345 || err.code != EINVAL) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: count '%s' accepted\n", line, s ? s : "(null)");
	}
	msg_has(want, line);
}
#define COUNT_BAD(s, want) count_bad(s, want, __LINE__)

static void test_count(void)
{
	COUNT_OK("0", 0);
	COUNT_OK("64", 64);
	COUNT_OK("18446744073709551615", UINT64_MAX);

	COUNT_BAD("", "empty count");
	COUNT_BAD(NULL, "empty count");
	COUNT_BAD("-1", "cannot be negative");
	COUNT_BAD("18446744073709551616", "too large");
	COUNT_BAD("1e3", "is not a whole number");
	COUNT_BAD(" 5", "is not a whole number");
	COUNT_BAD("5 ", "is not a whole number");
	COUNT_BAD("0x10", "is not a whole number");
	COUNT_BAD("1K", "is not a whole number");
	COUNT_BAD("1.0", "is not a whole number");
	COUNT_BAD("+1", "is not a whole number");
}

static void name_bad(const char *s, const char *want, int line)
{
	memset(&err, 0, sizeof(err));
	unit_checks++;
	if (sandcell_check_name(s, &err) != -1 || err.code != EINVAL) {
		unit_failures++;
		fprintf(stderr, "FAIL line %d: name accepted\n", line);
	}
	msg_has(want, line);
}
#define NAME_BAD(s, want) name_bad(s, want, __LINE__)

static void test_name(void)
{
	char long_name[200];

	CHECK_EQ_INT(sandcell_check_name("data.csv", &err), 0);
	CHECK_EQ_INT(sandcell_check_name("a", &err), 0);
	CHECK_EQ_INT(sandcell_check_name("A-b_c.9", &err), 0);
	CHECK_EQ_INT(sandcell_check_name("x..y", &err), 0);
	CHECK_EQ_INT(sandcell_check_name("a-", &err), 0);
	memset(long_name, 'n', sizeof(long_name));
	long_name[128] = '\0';
	CHECK_EQ_INT(sandcell_check_name(long_name, &err), 0);

	long_name[128] = 'n';
	long_name[129] = '\0';
	NAME_BAD(long_name, "longer than 128 bytes");
	CHECK(strstr(err.msg, "...") != NULL);
	NAME_BAD("", "name is empty");
	NAME_BAD(NULL, "name is empty");
	NAME_BAD("a/b", "name 'a/b': contains '/'");
	NAME_BAD("/etc", "contains '/'");
	NAME_BAD(".", "'.' and '..' are not allowed");
	NAME_BAD("..", "'.' and '..' are not allowed");
	NAME_BAD(".hidden", "name '.hidden': starts with '.'");
	NAME_BAD("-rf", "name '-rf': starts with '-'");
	NAME_BAD("a b", "name 'a b': contains ' '");
	NAME_BAD("a\nb", "name 'a\\x0ab': contains byte 0x0a");
	NAME_BAD("a\\b", "name 'a\\x5cb': contains '\\'");
	NAME_BAD("caf\xc3\xa9", "contains byte 0xc3");
	NAME_BAD("\x1b[31mred", "contains byte 0x1b");
	CHECK(strchr(err.msg, '\x1b') == NULL);
	NAME_BAD("a:b", "contains ':'");
	NAME_BAD("a*", "contains '*'");
}

static void test_values_add(void)
{
	char *values = NULL, *deep;
	size_t n;

	memset(&err, 0, sizeof(err));
	CHECK_EQ_INT(sandcell_values_add(&values, "x", "1", &err), 0);
	CHECK_STR(values, "{\"x\":1}");
	CHECK_EQ_INT(sandcell_values_add(&values, "y", " [1, 2.5, \"s\"] ", &err), 0);
	CHECK_STR(values, "{\"x\":1,\"y\":[1,2.5,\"s\"]}");
	CHECK_EQ_INT(sandcell_values_add(&values, "z", "{\"k\": null, \"t\": true}", &err), 0);
	CHECK_STR(values, "{\"x\":1,\"y\":[1,2.5,\"s\"],\"z\":{\"k\":null,\"t\":true}}");
	CHECK_EQ_INT(sandcell_values_add(&values, "s", "\"caf\xc3\xa9\"", &err), 0);

	/* Failures leave *values as it was. */
	{
		char *before = strdup(values);

		CHECK_EQ_INT(sandcell_values_add(&values, "x", "2", &err), -1);
		CHECK_STR(err.msg, "value 'x' given twice");
		CHECK_EQ_INT(err.code, EINVAL);
		CHECK_EQ_INT(sandcell_values_add(&values, "a/b", "2", &err), -1);
		CHECK_STR(err.msg, "value name 'a/b': contains '/' (allowed: letters, digits, "
				   "'.', '_', '-')");
		CHECK_EQ_INT(sandcell_values_add(&values, "w", "{", &err), -1);
		CHECK(strncmp(err.msg, "value 'w': line 1", 17) == 0);
		CHECK_EQ_INT(sandcell_values_add(&values, "w", "{\"a\":1,\"a\":2}", &err), -1);
		MSG_HAS("duplicate object key");
		CHECK_EQ_INT(sandcell_values_add(&values, "w", "NaN", &err), -1);
		CHECK_EQ_INT(sandcell_values_add(&values, "w", "[Infinity]", &err), -1);
		CHECK_EQ_INT(sandcell_values_add(&values, "w", "1 2", &err), -1);
		MSG_HAS("end of file expected");
		CHECK_EQ_INT(sandcell_values_add(&values, "w", "", &err), -1);
		CHECK_EQ_INT(sandcell_values_add(&values, "w", "\"\xff\"", &err), -1);
		CHECK_EQ_INT(sandcell_values_add(&values, "w", NULL, &err), -1);
		CHECK_EQ_INT(sandcell_values_add(&values, "", "1", &err), -1);
		CHECK_STR(values, before);
		free(before);
	}

	/* A --value may be 64 deep; the values object holding it is 65. */
	n = 64;
	deep = unit_malloc(2 * n + 2);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	CHECK_EQ_INT(sandcell_values_add(&values, "deep", deep, &err), 0);
	CHECK_EQ_INT(sandcell_values_add(&values, "after", "1", &err), 0);
	free(deep);
	n = 65;
	deep = unit_malloc(2 * n + 2);
	memset(deep, '[', n);
	memset(deep + n, ']', n);
	deep[2 * n] = '\0';
	CHECK_EQ_INT(sandcell_values_add(&values, "deeper", deep, &err), -1);
	CHECK_STR(err.msg, "value 'deeper': JSON nesting deeper than 64");
	free(deep);
	n = 1000000;
	deep = unit_malloc(n + 1);
	memset(deep, '{', n);
	deep[n] = '\0';
	CHECK_EQ_INT(sandcell_values_add(&values, "bomb", deep, &err), -1);
	CHECK_STR(err.msg, "value 'bomb': JSON nesting deeper than 64");
	free(deep);

	/* 16 MiB cap per value. */
	n = (16u << 20) + 1;
	deep = unit_malloc(n + 1);
	memset(deep, ' ', n);
	deep[0] = '1';
	deep[n] = '\0';
	CHECK_EQ_INT(sandcell_values_add(&values, "big", deep, &err), -1);
	MSG_HAS("over the 16777216-byte limit");
	free(deep);

	CHECK_EQ_INT(sandcell_values_add(NULL, "x", "1", &err), -1);
	free(values);

	/* An existing text that is not an object is refused, not replaced. */
	values = strdup("[1]");
	CHECK_EQ_INT(sandcell_values_add(&values, "x", "1", &err), -1);
	CHECK_STR(values, "[1]");
	free(values);
}

static int merge(char **values, const char *text)
{
	memset(&err, 0, sizeof(err));
	return sandcell_values_merge(values, text, strlen(text), &err);
}

static void test_values_merge(void)
{
	char *values = NULL;

	CHECK_EQ_INT(merge(&values, "{\"a\": 1, \"b\": {\"c\": [2]}}"), 0);
	CHECK_STR(values, "{\"a\":1,\"b\":{\"c\":[2]}}");
	CHECK_EQ_INT(sandcell_values_add(&values, "c", "3", &err), 0);
	CHECK_EQ_INT(merge(&values, "{}"), 0);
	CHECK_EQ_INT(merge(&values, "{\"d\": \"x\"}"), 0);
	CHECK_STR(values, "{\"a\":1,\"b\":{\"c\":[2]},\"c\":3,\"d\":\"x\"}");

	CHECK_EQ_INT(merge(&values, "{\"e\": 1, \"a\": 2}"), -1);
	CHECK_STR(err.msg, "value 'a' given twice");
	CHECK_EQ_INT(merge(&values, "[1]"), -1);
	CHECK_STR(err.msg, "values: expected a JSON object, got an array");
	CHECK_EQ_INT(merge(&values, "\"s\""), -1);
	CHECK_STR(err.msg, "values: expected a JSON object, got a string");
	CHECK_EQ_INT(merge(&values, "{\"a/b\": 1}"), -1);
	CHECK(strncmp(err.msg, "value name 'a/b': contains '/'", 30) == 0);
	CHECK_EQ_INT(merge(&values, "{\"..\": 1}"), -1);
	CHECK_EQ_INT(merge(&values, "{\"\": 1}"), -1);
	CHECK_STR(err.msg, "value name is empty");
	CHECK_EQ_INT(merge(&values, "{\"f\": 1, \"f\": 2}"), -1);
	MSG_HAS("duplicate object key");
	CHECK_EQ_INT(merge(&values, "{\"f\": NaN}"), -1);
	CHECK_EQ_INT(merge(&values, "{\"f\": 1} x"), -1);
	CHECK_EQ_INT(merge(&values, ""), -1);
	/* A key that failed must not have been half-merged. */
	CHECK_STR(values, "{\"a\":1,\"b\":{\"c\":[2]},\"c\":3,\"d\":\"x\"}");

	{
		char *deep = unit_malloc(1000001);

		memset(deep, '[', 1000000);
		deep[1000000] = '\0';
		memcpy(deep, "{\"z\":", 5);
		CHECK_EQ_INT(merge(&values, deep), -1);
		CHECK_STR(err.msg, "values: JSON nesting deeper than 64");
		free(deep);
	}
	/* len bounds the text: a values file may hold a NUL byte. */
	CHECK_EQ_INT(sandcell_values_merge(&values, "{\"g\":1}\0junk", 12, &err), -1);
	CHECK_EQ_INT(sandcell_values_merge(&values, "{\"g\":1}\0junk", 7, &err), 0);
	free(values);

	values = NULL;
	CHECK_EQ_INT(merge(&values, "{}"), 0);
	CHECK_STR(values, "{}");
	free(values);
}

int main(void)
{
	test_size();
	test_seconds();
	test_count();
	test_name();
	test_values_add();
	test_values_merge();
	return unit_done("test_parse");
}
