/* Shared helpers of the libFuzzer harnesses (not a harness itself). */
#ifndef SANDCELL_FUZZ_COMMON_H
#define SANDCELL_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken invariant is a finding: abort so libFuzzer keeps the input. */
#define FUZZ_ASSERT(cond)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
			abort();                                               \
		}                                                              \
	} while (0)

/* NUL-terminated copy of n bytes (libFuzzer data is not terminated). */
static inline char *fuzz_strndup(const uint8_t *data, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	if (n > 0)
		memcpy(s, data, n);
	s[n] = '\0';
	return s;
}

/* Messages may quote untrusted bytes; they must arrive escaped and
 * terminated, never raw control bytes for a terminal. */
static inline void fuzz_check_msg(const struct sandcell_error *err)
{
	size_t n = strnlen(err->msg, sizeof(err->msg));

	FUZZ_ASSERT(n > 0 && n < sizeof(err->msg));
	for (size_t i = 0; i < n; i++)
		FUZZ_ASSERT((unsigned char)err->msg[i] >= 0x20 && err->msg[i] != 0x7f);
}
#endif
