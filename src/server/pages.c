/*
 * The pages a run is likely to write (server.h, docs/warm.md "Copy-on-write
 * in advance").  A spare's code process is a copy of the template: every
 * page of the template it writes while it runs is a copy-on-write fault
 * on the run's path, 3-6 us each here (a pandas cell takes over a
 * thousand).  The template learns which of its pages a run is likely to
 * write from a fork of its own that runs trusted work only (template.c,
 * learn_likely_pages): after each step of that work, the pages the fork
 * holds alone (/proc/self/pagemap, "exclusively mapped": it wrote them,
 * so they were copied) are the ones that step wrote.  A spare's code
 * process writes those pages in advance while it waits for its GO, in
 * the order the steps came and at most --write-ahead MiB of them, and stops as
 * soon as anything arrives on its channel: the supervisor's TAKEN notice
 * when it is handed a request (factory.c), else the GO.  MADV_POPULATE_WRITE takes the
 * write faults without changing a byte, and fails (instead of faulting)
 * on a range the template has unmapped since.  Nothing here depends on a
 * request, and nothing a sandbox wrote is ever read: the list comes from
 * the template's own fork.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

#define PAGE 4096u
#define PM_PRESENT (1ull << 63)
#define PM_EXCLUSIVE (1ull << 56)
/* Pages written in advance between two looks at the channel: about 0.2 ms
 * of faults, the most a GO waits for them. */
#define BATCH 64u

struct range {
	uintptr_t lo, hi;
};

/* The process's private writable mappings (where a copy-on-write fault can
 * happen), from /proc/self/maps: 0, or -1 with errno. */
static int writable_ranges(struct range **out, size_t *n)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	size_t cap = 0;

	*out = NULL;
	*n = 0;
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;
		char perms[8];
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s", &lo, &hi, perms) != 3)
			continue;
		if (perms[1] != 'w' || perms[3] != 'p')
			continue;
		if (*n == cap) {
			struct range *r = realloc(*out, (cap = cap ? 2 * cap : 256) * sizeof(**out));
			if (r == NULL) {
				fclose(f);
				return -1;
			}
			*out = r;
		}
		(*out)[(*n)++] = (struct range){ lo, hi };
	}
	fclose(f);
	return 0;
}

int pages_snapshot(struct page_set *s)
{
	struct range *r;
	size_t nr, cap = 0;
	uint64_t buf[512];
	int fd;

	s->addr = NULL;
	s->n = 0;
	if (writable_ranges(&r, &nr) < 0)
		return -1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(r);
		return -1;
	}
	for (size_t i = 0; i < nr; i++) {
		for (uintptr_t a = r[i].lo; a < r[i].hi;) {
			size_t want = (r[i].hi - a) / PAGE, got;
			ssize_t k;
			if (want > 512)
				want = 512;
			k = pread(fd, buf, want * 8, (off_t)(a / PAGE) * 8);
			if (k <= 0)
				break;
			got = (size_t)k / 8;
			for (size_t j = 0; j < got; j++) {
				if ((buf[j] & (PM_PRESENT | PM_EXCLUSIVE)) != (PM_PRESENT | PM_EXCLUSIVE))
					continue;
				if (s->n == cap) {
					uintptr_t *p = realloc(s->addr, (cap = cap ? 2 * cap : 4096) * sizeof(*p));
					if (p == NULL)
						goto fail;
					s->addr = p;
				}
				s->addr[s->n++] = a + j * PAGE;
			}
			a += got * PAGE;
		}
	}
	close(fd);
	free(r);
	return 0;
fail:
	close(fd);
	free(r);
	free(s->addr);
	s->addr = NULL;
	s->n = 0;
	errno = ENOMEM;
	return -1;
}

size_t pages_new(const struct page_set *now, const struct page_set *before, uintptr_t *out, size_t max)
{
	size_t i = 0, j = 0, n = 0;

	/* Both ascending (mappings in address order, pages in each). */
	while (i < now->n && n < max) {
		while (j < before->n && before->addr[j] < now->addr[i])
			j++;
		if (j < before->n && before->addr[j] == now->addr[i]) {
			i++;
			continue;
		}
		out[n++] = now->addr[i++];
	}
	return n;
}

void pages_free(struct page_set *s)
{
	free(s->addr);
	s->addr = NULL;
	s->n = 0;
}

/* The template's list, as spans of consecutive pages in the learnt
 * order; every fork inherits it. */
struct span {
	uintptr_t addr;
	size_t pages;
};
static struct span *likely;
static size_t n_likely, likely_pages;

int pages_keep(const uintptr_t *addr, size_t n)
{
	struct span *s = n ? malloc(n * sizeof(*s)) : NULL;
	size_t k = 0;

	if (n && s == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && s[k - 1].addr + s[k - 1].pages * PAGE == addr[i])
			s[k - 1].pages++;
		else
			s[k++] = (struct span){ addr[i], 1 };
	}
	free(likely);
	likely = s;
	n_likely = k;
	likely_pages = n;
	return 0;
}

size_t pages_kept(void)
{
	return likely_pages;
}

void pages_write_ahead(int chan)
{
	struct pollfd p = { chan, POLLIN, 0 };
	size_t since = 0;

	for (size_t i = 0; i < n_likely; i++) {
		for (size_t done = 0; done < likely[i].pages;) {
			size_t k = likely[i].pages - done;
			/* A request is here (or the channel's end): the run
			 * takes whatever faults are left. */
			if (since == 0 && poll(&p, 1, 0) != 0)
				return;
			if (k > BATCH - since)
				k = BATCH - since;
			if (madvise((void *)(likely[i].addr + done * PAGE), k * PAGE, MADV_POPULATE_WRITE) < 0 &&
			    errno == EINVAL)
				return; /* a kernel without it: nothing to gain */
			done += k;
			since = (since + k) % BATCH;
		}
	}
}
