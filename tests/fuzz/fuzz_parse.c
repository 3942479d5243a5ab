/* Fuzzes the limit and name parsers.  The first byte picks the parser, the
 * rest is the NUL-terminated text.  Each parser is checked against a
 * simple independent oracle in both directions: what it accepts must be
 * valid with the right value, and what is valid must be accepted. */
#include "internal.h"
#include "fuzz_common.h"

#include <ctype.h>
#include <math.h>
#include <stdbool.h>

/* Value of a digit run, saturated to "too big" instead of wrapping. */
static bool digits_value(const char *s, size_t n, unsigned __int128 *v)
{
	unsigned __int128 acc = 0;

	for (size_t i = 0; i < n; i++) {
		acc = acc * 10 + (unsigned)(s[i] - '0');
		if (acc > UINT64_MAX)
			return false;
	}
	*v = acc;
	return true;
}

static void check_size(const char *s)
{
	static const char *const suffixes[] = { "", "b", "k", "kb", "kib", "m", "mb", "mib",
						"g", "gb", "gib", "t", "tb", "tib" };
	struct sandcell_error err = { 0 };
	size_t n = strspn(s, "0123456789");
	unsigned __int128 v = 0;
	bool valid = false;
	unsigned shift = 0;
	uint64_t got = 0;
	int rc = sandcell_parse_size(s, &got, &err);

	for (size_t i = 0; n > 0 && i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcasecmp(s + n, suffixes[i]) == 0) {
			valid = true;
			shift = i == 0 || i == 1 ? 0 : 10 * (unsigned)((i - 2) / 3 + 1);
		}
	}
	if (valid)
		valid = digits_value(s, n, &v) && (v << shift) <= UINT64_MAX;
	FUZZ_ASSERT((rc == 0) == valid);
	if (rc == 0)
		FUZZ_ASSERT(got == (uint64_t)(v << shift));
	else
		fuzz_check_msg(&err);
}

static void check_seconds(const char *s)
{
	struct sandcell_error err = { 0 };
	size_t n = strspn(s, "0123456789");
	bool grammar = n > 0;
	double got = -1;
	int rc = sandcell_parse_seconds(s, &got, &err);

	if (grammar && s[n] == '.') {
		size_t f = strspn(s + n + 1, "0123456789");

		grammar = f > 0 && s[n + 1 + f] == '\0';
	} else if (grammar) {
		grammar = s[n] == '\0';
	}
	if (rc == 0) {
		FUZZ_ASSERT(grammar);
		FUZZ_ASSERT(isfinite(got) && got > 0 && got <= 1e7);
	} else {
		fuzz_check_msg(&err);
		FUZZ_ASSERT(got == -1);
		/* Anything in the grammar that is rejected must be out of range. */
		if (grammar) {
			double v = strtod(s, NULL);

			FUZZ_ASSERT(!(v > 0 && v <= 1e7));
		}
	}
}

static void check_count(const char *s)
{
	struct sandcell_error err = { 0 };
	size_t n = strspn(s, "0123456789");
	unsigned __int128 v = 0;
	bool valid = n > 0 && s[n] == '\0' && digits_value(s, n, &v);
	uint64_t got = 0;
	int rc = sandcell_parse_count(s, &got, &err);

	FUZZ_ASSERT((rc == 0) == valid);
	if (rc == 0)
		FUZZ_ASSERT(got == (uint64_t)v);
	else
		fuzz_check_msg(&err);
}

static void check_name(const char *s)
{
	struct sandcell_error err = { 0 };
	size_t n = strlen(s);
	bool valid = n >= 1 && n <= 128 && s[0] != '-' && s[0] != '.';
	int rc = sandcell_check_name(s, &err);

	for (size_t i = 0; valid && i < n; i++)
		valid = isascii((unsigned char)s[i]) &&
			(isalnum((unsigned char)s[i]) || strchr("._-", s[i]) != NULL);
	FUZZ_ASSERT((rc == 0) == valid);
	if (rc != 0)
		fuzz_check_msg(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size == 0)
		return 0;
	s = fuzz_strndup(data + 1, size - 1);
	switch (data[0] % 4) {
	case 0:
		check_size(s);
		break;
	case 1:
		check_seconds(s);
		break;
	case 2:
		check_count(s);
		break;
	default:
		check_name(s);
		break;
	}
	free(s);
	return 0;
}
