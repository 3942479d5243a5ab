/* Error reporting: the library fills a struct sandcell_error and returns -1;
 * only the CLI decides to print or exit. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sc_err(struct sandcell_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	if (code != 0) {
		size_t n = strlen(err->msg);
		if (n < sizeof(err->msg) - 1)
			snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", strerror(code));
	}
	return -1;
}

/* Bad input: strerror(EINVAL) would only add noise ("...: Invalid
 * argument"), so the message stays clean and the code is still EINVAL. */
int sc_inval(struct sandcell_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	err->code = EINVAL;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int sc_err_wrap(struct sandcell_error *err, const char *fmt, ...)
{
	char prefix[256], old[sizeof(err->msg)];
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	snprintf(err->msg, sizeof(err->msg), "%.200s: %.300s", prefix, old);
	return -1;
}
