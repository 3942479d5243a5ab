/*
 * Every parser of bytes an HTTP client sends (docs/http.md): the token
 * file (the operator's, but it holds secrets), routes, multipart part
 * names, request objects and session command bodies.  Strict on purpose,
 * as the warm protocol is: closed key sets, duplicate keys, NaN and
 * trailing bytes refused, every type and range checked, messages that
 * quote client bytes escaped.  Fuzzed by tests/fuzz/fuzz_http.c.
 */
#include "http.h"
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static int bad(struct sandcell_error *err, const char *fmt, const char *arg)
{
	char *esc = arg ? sc_escape_bytes(arg, strnlen(arg, 64), NULL) : NULL;

	sc_err(err, 0, fmt, esc ? esc : "?");
	free(esc);
	if (err)
		err->code = EINVAL;
	return -1;
}

/* ---- the token file ---- */

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
	       c == '_' || c == '-';
}

static bool secret_char(char c)
{
	return name_char(c) || c == '~' || c == '+' || c == '/' || c == '=';
}

static bool all_of(const char *s, size_t n, bool (*ok)(char))
{
	for (size_t i = 0; i < n; i++)
		if (!ok(s[i]))
			return false;
	return true;
}

/* A decimal in [1, 1000000] without sign, spaces or leading zeros. */
static bool small_count(const char *s, size_t n, uint32_t *out)
{
	uint32_t v = 0;

	if (n == 0 || n > 7 || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(s[i] - '0');
	}
	*out = v;
	return v <= 1000000;
}

static void digest(const char *s, size_t n, unsigned char out[32])
{
	SHA2_CTX c;

	SHA256Init(&c);
	SHA256Update(&c, (const uint8_t *)s, n);
	SHA256Final(out, &c);
}

/* One line "NAME:SECRET[:CONC[:RATE]]" into t; false if malformed. */
static bool token_line(const char *s, size_t n, uint32_t dc, uint32_t dr, struct ht_token *t)
{
	const char *f[5] = { NULL };
	size_t len[5] = { 0 }, nf = 0, start = 0;

	for (size_t i = 0; i <= n && nf < 5; i++)
		if (i == n || s[i] == ':') {
			f[nf] = s + start;
			len[nf++] = i - start;
			start = i + 1;
		}
	if (nf < 2 || nf > 4 || start <= n)
		return false;
	if (len[0] == 0 || len[0] > HT_NAME_MAX || !all_of(f[0], len[0], name_char) || f[0][0] == '.' ||
	    f[0][0] == '-')
		return false;
	if (len[1] < HT_SECRET_MIN || len[1] > HT_SECRET_MAX || !all_of(f[1], len[1], secret_char))
		return false;
	t->max_concurrent = dc;
	t->rate_per_min = dr;
	if (nf >= 3 && !small_count(f[2], len[2], &t->max_concurrent))
		return false;
	if (nf == 4 && !small_count(f[3], len[3], &t->rate_per_min))
		return false;
	memcpy(t->name, f[0], len[0]);
	t->name[len[0]] = '\0';
	digest(f[1], len[1], t->digest);
	return true;
}

static int token_add(struct ht_tokens *out, const struct ht_token *t, unsigned line,
		     struct sandcell_error *err)
{
	for (size_t k = 0; k < out->n; k++)
		if (strcmp(out->t[k].name, t->name) == 0 || memcmp(out->t[k].digest, t->digest, 32) == 0)
			return sc_err(err, EINVAL, "token file line %u: a name or secret used twice", line);
	if (out->n == HT_MAX_TOKENS)
		return sc_err(err, EINVAL, "token file: more than %d tokens", HT_MAX_TOKENS);
	out->t[out->n++] = *t;
	return 0;
}

int ht_tokens_parse(const char *text, size_t len, uint32_t dc, uint32_t dr, struct ht_tokens *out,
		    struct sandcell_error *err)
{
	size_t pos = 0;
	unsigned line = 0;

	out->n = 0;
	out->t = calloc(HT_MAX_TOKENS, sizeof(*out->t));
	if (out->t == NULL)
		return sc_err(err, ENOMEM, "token file");
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		const char *s = text + pos;
		struct ht_token t;

		pos += n + 1;
		line++;
		if (n == 0 || s[0] == '#')
			continue;
		memset(&t, 0, sizeof(t));
		if (memchr(s, '\0', n) || !token_line(s, n, dc, dr, &t)) {
			explicit_bzero(&t, sizeof(t));
			ht_tokens_free(out);
			return sc_err(err, EINVAL, "token file line %u: not NAME:SECRET[:MAX_CONCURRENT"
				      "[:RATE_PER_MINUTE]] (docs/http.md)", line);
		}
		if (token_add(out, &t, line, err) < 0) {
			ht_tokens_free(out);
			return -1;
		}
	}
	if (out->n == 0) {
		ht_tokens_free(out);
		return sc_err(err, EINVAL, "token file: no tokens");
	}
	return 0;
}

void ht_tokens_free(struct ht_tokens *t)
{
	free(t->t);
	t->t = NULL;
	t->n = 0;
}

long ht_tokens_find(const struct ht_tokens *t, const char *authz)
{
	unsigned char d[32];
	size_t n;
	long found = -1;

	if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
		return -1;
	authz += 7;
	n = strnlen(authz, HT_SECRET_MAX + 1);
	if (n < HT_SECRET_MIN || n > HT_SECRET_MAX)
		return -1;
	digest(authz, n, d);
	/* Digests, not secrets, are compared, and every one of them: what
	 * time reveals is at most where a digest differs, which says
	 * nothing about a secret. */
	for (size_t k = 0; k < t->n; k++) {
		unsigned char diff = 0;
		for (size_t i = 0; i < 32; i++)
			diff |= (unsigned char)(t->t[k].digest[i] ^ d[i]);
		if (diff == 0)
			found = (long)k;
	}
	return found;
}

/* ---- routes ---- */

static bool is_id(const char *s, size_t n)
{
	if (n != HT_ID_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* "/PREFIX/<id>" or "/PREFIX/<id>/TAIL": the id into r, the tail out. */
static bool with_id(const char *url, const char *prefix, struct ht_route *r, const char **tail)
{
	size_t pl = strlen(prefix);
	const char *id, *slash;

	if (strncmp(url, prefix, pl) != 0)
		return false;
	id = url + pl;
	slash = strchr(id, '/');
	if (!is_id(id, slash ? (size_t)(slash - id) : strlen(id)))
		return false;
	memcpy(r->id, id, HT_ID_LEN);
	r->id[HT_ID_LEN] = '\0';
	*tail = slash ? slash : "";
	return true;
}

int ht_route_parse(const char *url, struct ht_route *r)
{
	static const struct { const char *path; enum ht_route_kind k; } fixed[] = {
		{ "/healthz", HR_HEALTHZ }, { "/readyz", HR_READYZ }, { "/metrics", HR_METRICS },
		{ "/v1/runs", HR_RUNS }, { "/v1/sessions", HR_SESSIONS },
	};
	static const struct { const char *tail; enum ht_route_kind k; } sess[] = {
		{ "", HR_SESSION }, { "/cells", HR_SESSION_CELLS }, { "/interrupt", HR_SESSION_INTERRUPT },
		{ "/input", HR_SESSION_INPUT }, { "/inputs", HR_SESSION_INPUTS },
		{ "/datasets", HR_SESSION_DATASETS },
	};
	const char *tail;

	memset(r, 0, sizeof(*r));
	if (url == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0) {
			r->kind = fixed[i].k;
			return 0;
		}
	if (with_id(url, "/v1/runs/", r, &tail) && strcmp(tail, "/cancel") == 0) {
		r->kind = HR_RUN_CANCEL;
		return 0;
	}
	if (with_id(url, "/v1/sessions/", r, &tail))
		for (size_t i = 0; i < sizeof(sess) / sizeof(sess[0]); i++)
			if (strcmp(tail, sess[i].tail) == 0) {
				r->kind = sess[i].k;
				return 0;
			}
	memset(r, 0, sizeof(*r));
	return -1;
}

const char *ht_route_allow(enum ht_route_kind k)
{
	switch (k) {
	case HR_HEALTHZ: case HR_READYZ: case HR_METRICS: return "GET";
	case HR_SESSIONS: return "GET, POST";
	case HR_SESSION: return "GET, DELETE";
	default: return "POST";
	}
}

bool ht_route_method_ok(enum ht_route_kind k, const char *method)
{
	const char *allow = ht_route_allow(k);
	size_t n = strlen(method);
	const char *p = strstr(allow, method);

	/* A whole word of the list only ("GE" is no method of ours). */
	return n > 0 && p != NULL && (p == allow || p[-1] == ' ') && (p[n] == '\0' || p[n] == ',');
}

/* ---- multipart part names ---- */

int ht_part_parse(const char *key, enum ht_part_kind *kind, const char **name,
		  struct sandcell_error *err)
{
	struct sandcell_error ne;

	*name = NULL;
	if (key == NULL)
		return bad(err, "a part without a name%s", "");
	if (strcmp(key, "request") == 0 || strcmp(key, "stdin") == 0) {
		*kind = key[0] == 'r' ? HP_REQUEST : HP_STDIN;
		return 0;
	}
	if (strncmp(key, "input:", 6) == 0) {
		*kind = HP_INPUT;
		*name = key + 6;
	} else if (strncmp(key, "dataset:", 8) == 0) {
		*kind = HP_DATASET;
		*name = key + 8;
	} else {
		return bad(err, "unknown part '%s' (request, stdin, input:NAME, dataset:NAME)", key);
	}
	if (sandcell_check_name(*name, &ne) < 0)
		return bad(err, "part '%s': names are 1-128 of [A-Za-z0-9._-], not starting with '.' or '-'",
			   key);
	return 0;
}
