/*
 * fd layer: nothing the supervisor had open may reach the code (the
 * CVE-2024-21626 class: a leaked directory fd is a way out of any mount
 * namespace).  Everything above 2 is closed except the declared fds.
 */
#include "internal.h"

#include <errno.h>
#include <linux/close_range.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

int sc_fds_close_except(const int *keep, size_t n_keep, struct sandcell_error *err)
{
	int sorted[16];
	unsigned int lo = 3;
	size_t i;

	if (n_keep > sizeof(sorted) / sizeof(sorted[0]))
		return sc_err(err, EINVAL, "fds: too many kept fds");
	for (i = 0; i < n_keep; i++)
		sorted[i] = keep[i];
	qsort(sorted, n_keep, sizeof(int), cmp_int);
	for (i = 0; i < n_keep; i++) {
		if (sorted[i] < (int)lo)
			continue;
		if ((unsigned int)sorted[i] > lo &&
		    syscall(SYS_close_range, lo, (unsigned int)sorted[i] - 1, 0) < 0)
			return sc_err(err, errno, "fds: close_range");
		lo = (unsigned int)sorted[i] + 1;
	}
	if (syscall(SYS_close_range, lo, ~0u, 0) < 0)
		return sc_err(err, errno, "fds: close_range");
	return 0;
}
