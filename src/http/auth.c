/*
 * Who may use the front end, and how much (docs/http.md, Authentication):
 * bearer tokens from a file the operator keeps private, a concurrency cap
 * and a token-bucket rate per token, so one tenant cannot starve another.
 */
#include "http.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TOKEN_FILE_MAX (1u << 20)

struct tenant {
	uint32_t active;
	double bucket, at;
};

static struct ht_tokens tokens;
static struct tenant *tenants;
static bool enabled;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The file holds secrets: refused unless only its owner (us, or root)
 * can read or write it, and read through an fd checked with fstat. */
static char *read_private(const char *path, size_t *len, struct sandcell_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf;
	ssize_t n;

	if (fd < 0)
		return sc_err(err, errno, "token file %s", path), NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > TOKEN_FILE_MAX) {
		close(fd);
		return sc_err(err, EINVAL, "token file %s: not a regular file of at most 1 MiB", path), NULL;
	}
	if ((st.st_mode & 077) != 0 || (st.st_uid != geteuid() && st.st_uid != 0)) {
		close(fd);
		return sc_err(err, EPERM, "token file %s: must be owned by this uid or root and not "
			      "accessible to group or others (chmod 600)", path), NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		free(buf);
		return sc_err(err, EIO, "token file %s: short read", path), NULL;
	}
	*len = (size_t)n;
	return buf;
}

int ht_auth_init(const char *path, uint32_t dc, uint32_t dr, struct sandcell_error *err)
{
	size_t len = 0;
	char *text;
	int rc;

	if (path == NULL) {
		tokens.t = calloc(1, sizeof(*tokens.t));
		if (tokens.t == NULL)
			return sc_err(err, ENOMEM, "tokens");
		strcpy(tokens.t[0].name, "anonymous");
		tokens.t[0].max_concurrent = dc;
		tokens.t[0].rate_per_min = dr;
		tokens.n = 1;
	} else {
		text = read_private(path, &len, err);
		if (text == NULL)
			return -1;
		rc = ht_tokens_parse(text, len, dc, dr, &tokens, err);
		explicit_bzero(text, len);
		free(text);
		if (rc < 0)
			return -1;
		enabled = true;
	}
	tenants = calloc(tokens.n, sizeof(*tenants));
	if (tenants == NULL)
		return sc_err(err, ENOMEM, "tokens");
	for (size_t i = 0; i < tokens.n; i++) {
		tenants[i].bucket = tokens.t[i].rate_per_min;
		tenants[i].at = mono();
	}
	return 0;
}

bool ht_auth_enabled(void)
{
	return enabled;
}

long ht_auth_tenant(const char *authorization)
{
	return enabled ? ht_tokens_find(&tokens, authorization) : 0;
}

const char *ht_auth_name(long t)
{
	return t >= 0 && (size_t)t < tokens.n ? tokens.t[t].name : "?";
}

/* The bucket holds at most a minute's worth and refills continuously. */
static void refill(struct tenant *s, const struct ht_token *t, double now)
{
	s->bucket += (now - s->at) * t->rate_per_min / 60.0;
	if (s->bucket > t->rate_per_min)
		s->bucket = t->rate_per_min;
	s->at = now;
}

int ht_auth_acquire(long tenant, bool take_slot, const char **reason, unsigned *retry_after)
{
	struct tenant *s = &tenants[tenant];
	const struct ht_token *t = &tokens.t[tenant];
	int rc = 0;

	pthread_mutex_lock(&mu);
	refill(s, t, mono());
	if (take_slot && s->active >= t->max_concurrent) {
		*reason = "concurrency";
		*retry_after = 1;
		rc = -1;
	} else if (s->bucket < 1.0) {
		*reason = "rate";
		*retry_after = (unsigned)ceil((1.0 - s->bucket) * 60.0 / t->rate_per_min);
		rc = -1;
	} else {
		s->bucket -= 1.0;
		if (take_slot)
			s->active++;
	}
	pthread_mutex_unlock(&mu);
	return rc;
}

void ht_auth_release(long tenant)
{
	pthread_mutex_lock(&mu);
	if (tenants[tenant].active > 0)
		tenants[tenant].active--;
	pthread_mutex_unlock(&mu);
}
