/* Minimal unit-test harness: each test binary prints TAP-like lines and
 * exits non-zero when any check fails. */
#ifndef SANDCELL_UNIT_H
#define SANDCELL_UNIT_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond)                                                            \
	do {                                                                   \
		unit_checks++;                                                 \
		if (!(cond)) {                                                 \
			unit_failures++;                                       \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
		}                                                              \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                     \
	do {                                                                   \
		long long _a = (long long)(a), _b = (long long)(b);            \
		unit_checks++;                                                 \
		if (_a != _b) {                                                \
			unit_failures++;                                       \
			fprintf(stderr, "FAIL %s:%d: %s == %s (%lld != %lld)\n", __FILE__, \
				__LINE__, #a, #b, _a, _b);                     \
		}                                                              \
	} while (0)

/* Two tests, not "a == NULL || b == NULL": gcc folds that into one branch,
 * and -fanalyzer then cannot see that strcmp never gets a NULL. */
static inline int unit_str_eq(const char *a, const char *b)
{
	if (a == NULL)
		return 0;
	if (b == NULL)
		return 0;
	return strcmp(a, b) == 0;
}

#define CHECK_STR(a, b)                                                        \
	do {                                                                   \
		const char *_a = (a), *_b = (b);                               \
		unit_checks++;                                                 \
		if (!unit_str_eq(_a, _b)) {                                    \
			unit_failures++;                                       \
			fprintf(stderr, "FAIL %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
				_a ? _a : "(null)", _b ? _b : "(null)");       \
		}                                                              \
	} while (0)

/* Allocations for test data: a test cannot go on without them, and a
 * NULL dereference would be a crash rather than a clear failure. */
static inline void *unit_calloc(size_t n, size_t size)
{
	void *p = calloc(n, size);

	if (p == NULL) {
		fprintf(stderr, "FAIL out of memory allocating %zu x %zu bytes\n", n, size);
		exit(1);
	}
	return p;
}
#define unit_malloc(n) unit_calloc(1, (n))

static inline int unit_done(const char *name)
{
	printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
	return unit_failures ? 1 : 0;
}
#endif
