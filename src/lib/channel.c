/*
 * The code's channel (fd 3 in the sandbox): what sandcell.result(),
 * display(), cell mode and the bootstrap send, as newline-framed records.
 *
 *   <JSON value>\n      the result; the last complete one wins (as always)
 *   O <JSON object>\n   one output, an nbformat v4 stream, display_data or
 *                       execute_result
 *   E <JSON object>\n   the uncaught exception: ename, evalue, traceback
 *   W <JSON object>\n   where the code was when the supervisor asked
 *   \n                  nothing: empty lines are skipped
 *
 * Sessions (docs/sessions.md) stream the channel instead: sc_chan_stream()
 * hands each output to a sink as soon as its record is complete (parsed
 * and capped as below, per cell), and admits two more tags, each record
 * parsed strictly the moment it ends:
 *   D <JSON object>\n   a cell is done: id, execution_count, status
 *   I <JSON object>\n   input() waits for an answer: id, prompt, password
 *
 * Every byte is hostile.  The supervisor feeds what it reads to
 * sc_chan_feed(), which only splits lines and routes them by their first
 * two bytes into bounded buffers (no JSON is parsed inside the supervision
 * loop, and one kind of record cannot crowd out another: outputs have
 * their own byte and count caps, the result keeps only its last record).
 * sc_chan_finish() then parses each kept record strictly: jansson with the
 * depth pre-scan of json.c, a closed set of output types and keys, MIME
 * bundles whose values are strings (base64 for binary types) except JSON
 * types, and only the documented value tags (docs/values.md).  What is
 * dropped is counted and marked where it was, never lost silently.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The exception and the location: enough for a deep traceback (the
 * in-sandbox side keeps at most 200 entries of 16 KiB). */
#define SIDE_MAX_ERROR (1u << 20)
#define SIDE_MAX_WHERE (256u << 10)
#define PROBLEMS_MAX 16
/* Every record is the code's data: strings may hold NULs (print("\\0")). */
#define PARSE(buf, len, max, depth, out, err) \
	sc_json_parse_ex(buf, len, max, depth, SC_JSON_ALLOW_NUL, out, err)
/* Depth of an output object inside the report (doc.cell.outputs[i]). */
#define OUTPUT_DEPTH 3
/* Sessions' control records: a D record is a few dozen bytes; an I
 * record's prompt is at most SC_SESSION_PROMPT_MAX bytes of text, which
 * JSON escaping may make up to six times longer. */
#define SIDE_MAX_DONE (4u << 10)
#define SIDE_MAX_INPUT (6 * SC_SESSION_PROMPT_MAX + 256)
/* A Q record (a dataset asked for on demand): an id and a name. */
#define SIDE_MAX_REQUEST 1024

struct buf {
	char *p;
	size_t len, cap;
};

/* A record kind of which only the last complete record counts. */
struct slot {
	struct buf cur, last;
	size_t max;
	bool cur_over;	  /* the record in progress passed max */
	bool have_last;
	bool last_over;	  /* the last complete record passed max */
	bool in_progress; /* a record was started and not ended */
	uint64_t count;
};

enum ent_what { ENT_KEPT, ENT_TOO_BIG, ENT_OVER_COUNT, ENT_OVER_TOTAL, ENT_CUT };

/* One output record, or a run of records dropped for the same reason. */
struct ent {
	enum ent_what what;
	size_t off, len;     /* ENT_KEPT: where its bytes are in out */
	uint64_t n, bytes;   /* records and bytes it stands for */
	uint64_t first;      /* 1-based number of its (first) output record */
};

enum kind { K_START, K_PREFIX, K_RESULT, K_OUT, K_ERROR, K_WHERE, K_DONE, K_INPUT, K_REQUEST };

struct problems {
	json_t *list;
	uint64_t more;
};

struct sc_chan {
	struct sc_chan_limits lim;
	enum kind kind;	     /* of the line in progress */
	char prefix;	     /* K_PREFIX: the first byte, the second decides */
	struct slot res, err, where;
	struct buf out;	     /* the kept output records, back to back */
	struct ent *ents;
	size_t n_ents, cap_ents;
	uint64_t n_out;	     /* output records seen */
	size_t n_kept;
	size_t line_start;   /* K_OUT: offset of the record in progress in out */
	uint64_t line_bytes; /* K_OUT: its length so far */
	enum ent_what line_what; /* K_OUT: dropped from its start, or ENT_KEPT (undecided) */
	bool line_stored;    /* K_OUT: its bytes so far are in out */
	bool out_full;	     /* the total cap was reached: the rest is dropped */
	bool oom;
	/* Streaming (sessions): outputs go to sink as they end; the running
	 * cell's totals are here, reset by sc_chan_cell_end(). */
	const struct sc_chan_sink *sink;
	struct slot done, input, request;
	uint64_t s_bytes, s_dropped;  /* report bytes of the outputs passed on; drops */
	uint64_t stop_n, stop_bytes, stop_first; /* over the count or total cap */
	struct problems s_pr;
};

static bool buf_add(struct buf *b, const char *p, size_t n, size_t max)
{
	if (n == 0)
		return true;
	if (n > max - b->len)
		return false;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *q;

		while (cap < b->len + n)
			cap = cap > max / 2 ? max : cap * 2;
		q = realloc(b->p, cap);
		if (q == NULL)
			return false;
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return true;
}

struct sc_chan *sc_chan_new(const struct sc_chan_limits *lim)
{
	struct sc_chan *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->lim = *lim;
	/* A cap of 0 would make every record "too big"; 1 byte is the least. */
	if (c->lim.result_bytes == 0)
		c->lim.result_bytes = 1;
	if (c->lim.out_one == 0)
		c->lim.out_one = 1;
	c->res.max = c->lim.result_bytes;
	c->err.max = SIDE_MAX_ERROR;
	c->where.max = SIDE_MAX_WHERE;
	c->done.max = SIDE_MAX_DONE;
	c->input.max = SIDE_MAX_INPUT;
	c->request.max = SIDE_MAX_REQUEST;
	return c;
}

static void slot_free(struct slot *s)
{
	free(s->cur.p);
	free(s->last.p);
}

void sc_chan_free(struct sc_chan *c)
{
	if (c == NULL)
		return;
	slot_free(&c->res);
	slot_free(&c->err);
	slot_free(&c->where);
	slot_free(&c->done);
	slot_free(&c->input);
	slot_free(&c->request);
	json_decref(c->s_pr.list);
	free(c->out.p);
	free(c->ents);
	free(c);
}

static void slot_add(struct sc_chan *c, struct slot *s, const char *p, size_t n)
{
	s->in_progress = true;
	if (s->cur_over || n == 0)
		return;
	if (s->cur.len + n > s->max) {
		s->cur_over = true;
		return;
	}
	if (!buf_add(&s->cur, p, n, s->max)) {
		c->oom = true;
		s->cur_over = true;
	}
}

static void slot_end(struct slot *s)
{
	struct buf t = s->last;

	s->count++;
	s->have_last = true;
	s->last_over = s->cur_over;
	s->last = s->cur;
	s->cur = t;
	s->cur.len = 0;
	s->cur_over = false;
	s->in_progress = false;
}

/* Appends an entry, or widens the last one when it is a drop of the
 * same kind (so a flood of dropped records costs one entry). */
static void ent_add(struct sc_chan *c, enum ent_what what, size_t off, size_t len, uint64_t bytes)
{
	struct ent *e;

	if (what != ENT_KEPT && what != ENT_TOO_BIG && c->n_ents > 0 &&
	    c->ents[c->n_ents - 1].what == what) {
		c->ents[c->n_ents - 1].n++;
		c->ents[c->n_ents - 1].bytes += bytes;
		return;
	}
	if (c->n_ents == c->cap_ents) {
		size_t cap = c->cap_ents ? c->cap_ents * 2 : 64;
		struct ent *q = reallocarray(c->ents, cap, sizeof(*q));

		if (q == NULL) {
			c->oom = true;
			return;
		}
		c->ents = q;
		c->cap_ents = cap;
	}
	e = &c->ents[c->n_ents++];
	e->what = what;
	e->off = off;
	e->len = len;
	e->n = 1;
	e->bytes = bytes;
	e->first = c->n_out;
}

static void out_start(struct sc_chan *c)
{
	c->n_out++;
	c->line_start = c->out.len;
	c->line_bytes = 0;
	c->line_stored = true;
	if (c->out_full)
		c->line_what = ENT_OVER_TOTAL;
	else if (c->n_kept >= c->lim.out_count)
		c->line_what = ENT_OVER_COUNT;
	else
		c->line_what = ENT_KEPT;
}

/* Stores a record's bytes while it can still be kept; whether it is is
 * decided at its end from its length alone, so the pieces in which the
 * pipe delivered it do not matter. */
static void out_add(struct sc_chan *c, const char *p, size_t n)
{
	c->line_bytes += n;
	if (c->line_what != ENT_KEPT || !c->line_stored)
		return;
	if (c->line_bytes > c->lim.out_one || c->line_start + c->line_bytes > c->lim.out_bytes ||
	    !buf_add(&c->out, p, n, c->lim.out_bytes)) {
		if (c->line_bytes <= c->lim.out_one && c->line_start + c->line_bytes <= c->lim.out_bytes)
			c->oom = true; /* it fitted: buf_add found no memory */
		c->line_stored = false;
		c->out.len = c->line_start; /* the record's bytes so far go */
	}
}

static void stream_output(struct sc_chan *c, enum ent_what what);

static void out_end(struct sc_chan *c, bool complete)
{
	enum ent_what what = c->line_what;

	if (!complete) {
		what = ENT_CUT;
	} else if (what == ENT_KEPT && c->line_bytes > c->lim.out_one) {
		what = ENT_TOO_BIG;
	} else if (what == ENT_KEPT && (c->line_start + c->line_bytes > c->lim.out_bytes ||
					!c->line_stored)) {
		what = ENT_OVER_TOTAL;
		c->out_full = true;
	}
	if (what != ENT_KEPT)
		c->out.len = c->line_start;
	if (what == ENT_KEPT || what == ENT_TOO_BIG)
		c->n_kept++; /* a too-big record counts against the count cap too */
	if (c->sink) {
		stream_output(c, what);
		return;
	}
	ent_add(c, what, c->line_start, what == ENT_KEPT ? (size_t)c->line_bytes : 0,
		c->line_bytes);
}

static struct slot *slot_of(struct sc_chan *c, enum kind k)
{
	return k == K_RESULT ? &c->res : k == K_ERROR ? &c->err : k == K_DONE ? &c->done
		: k == K_INPUT ? &c->input : k == K_REQUEST ? &c->request : &c->where;
}

static void control_end(struct sc_chan *c, enum kind k);

void sc_chan_feed(struct sc_chan *c, const char *buf, size_t len)
{
	size_t i = 0;

	if (c == NULL || buf == NULL)
		return;
	while (i < len) {
		const char *nl;
		size_t seg;

		if (c->kind == K_START) {
			char b = buf[i];

			if (b == '\n') {
				i++;
				continue;
			}
			if (b == 'O' || b == 'E' || b == 'W' ||
			    (c->sink != NULL && (b == 'D' || b == 'I' || b == 'Q'))) {
				c->kind = K_PREFIX;
				c->prefix = b;
				i++;
				continue;
			}
			c->kind = K_RESULT;
		}
		if (c->kind == K_PREFIX) {
			if (buf[i] == ' ') {
				c->kind = c->prefix == 'O' ? K_OUT : c->prefix == 'E' ? K_ERROR
					  : c->prefix == 'D' ? K_DONE : c->prefix == 'I' ? K_INPUT
					  : c->prefix == 'Q' ? K_REQUEST : K_WHERE;
				i++;
				if (c->kind == K_OUT)
					out_start(c);
				else
					slot_of(c, c->kind)->in_progress = true;
				continue;
			}
			/* Not a tagged record: its first byte belongs to a
			 * result record (which will not parse as JSON). */
			c->kind = K_RESULT;
			slot_add(c, &c->res, &c->prefix, 1);
		}
		nl = memchr(buf + i, '\n', len - i);
		seg = nl ? (size_t)(nl - (buf + i)) : len - i;
		if (c->kind == K_OUT)
			out_add(c, buf + i, seg);
		else
			slot_add(c, slot_of(c, c->kind), buf + i, seg);
		i += seg;
		if (nl) {
			enum kind k = c->kind;

			/* K_START first: a sink may end the cell from here. */
			c->kind = K_START;
			if (k == K_OUT)
				out_end(c, true);
			else
				slot_end(slot_of(c, k));
			if (k == K_DONE || k == K_INPUT || k == K_REQUEST)
				control_end(c, k);
			i++;
		}
	}
}

/* ------------------------------------------------------------ parsing */

/* Messages are formatted clean (no strerror suffix). */
static int __attribute__((format(printf, 2, 3))) bad(struct sandcell_error *err, const char *fmt, ...)
{
	char b[sizeof(err->msg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	sc_err(err, 0, "%s", b);
	err->code = EINVAL;
	return -1;
}

/* The object has exactly the keys in want (n of them). */
static int exact_keys(json_t *o, const char *const *want, size_t n, const char *what,
		      struct sandcell_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o))
		return bad(err, "%s is not an object", what);
	json_object_foreach(o, key, v) {
		size_t i;

		for (i = 0; i < n && strcmp(key, want[i]) != 0; i++)
			;
		if (i == n) {
			char *e = sc_escape_bytes(key, strlen(key), NULL);
			int rc = bad(err, "%s has an unknown key \"%.64s\"", what, e ? e : "?");

			free(e);
			return rc;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (json_object_get(o, want[i]) == NULL)
			return bad(err, "%s lacks \"%s\"", what, want[i]);
	return 0;
}

static bool all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return n > 0;
}

/* Strict base64: the standard alphabet, padded, no whitespace, and the
 * canonical encoding (unused bits zero), as Python's b2a_base64 writes. */
bool sc_base64_ok(const char *s, size_t n)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t pad = 0;
	const char *last;

	if (n % 4 != 0)
		return false;
	if (n == 0)
		return true;
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (size_t i = 0; i < n - pad; i++)
		if (s[i] == '\0' || s[i] == '=' || strchr(alpha, s[i]) == NULL)
			return false;
	if (pad == 0)
		return true;
	last = strchr(alpha, s[n - pad - 1]);
	return pad == 2 ? ((last - alpha) & 0x0f) == 0 : ((last - alpha) & 0x03) == 0;
}

/* Reads n digits at *p (advancing it). */
static bool digits(const char **p, const char *end, size_t n)
{
	if ((size_t)(end - *p) < n || !all_digits(*p, n))
		return false;
	*p += n;
	return true;
}

/* ".f" with 1 to max digits, if present. */
static bool fraction(const char **p, const char *end, size_t max)
{
	size_t n = 0;

	if (*p == end || **p != '.')
		return true;
	(*p)++;
	while (*p + n < end && n <= max && (*p)[n] >= '0' && (*p)[n] <= '9')
		n++;
	if (n == 0 || n > max)
		return false;
	*p += n;
	return true;
}

/* A UTC offset: Z or [+-]HH:MM[:SS[.ffffff]]. */
static bool offset(const char **p, const char *end)
{
	if (*p == end)
		return true;
	if (**p == 'Z') {
		(*p)++;
		return true;
	}
	if (**p != '+' && **p != '-')
		return false;
	(*p)++;
	if (!digits(p, end, 2) || *p == end || **p != ':')
		return false;
	(*p)++;
	if (!digits(p, end, 2))
		return false;
	if (*p < end && **p == ':') {
		(*p)++;
		if (!digits(p, end, 2) || !fraction(p, end, 6))
			return false;
	}
	return true;
}

/* HH[:MM[:SS[.f]]][offset]; need_seconds for a bare time of day. */
static bool time_part(const char **p, const char *end, bool need_seconds)
{
	int parts = 1;

	if (!digits(p, end, 2))
		return false;
	while (parts < 3 && *p < end && **p == ':') {
		(*p)++;
		if (!digits(p, end, 2))
			return false;
		parts++;
	}
	if (need_seconds && parts < 3)
		return false;
	if (parts == 3 && !fraction(p, end, 18))
		return false;
	return offset(p, end);
}

/* $datetime: NaT, or [+-]YYYY[-MM[-DD[THH[:MM[:SS[.f]]][offset]]]]
 * (Python's and pandas' isoformat, numpy's datetime_as_string). */
static bool datetime_ok(const char *s, size_t n)
{
	const char *p = s, *end = s + n;
	size_t y = 0;

	if (n == 3 && memcmp(s, "NaT", 3) == 0)
		return true;
	if (p < end && (*p == '+' || *p == '-'))
		p++;
	while (p + y < end && p[y] >= '0' && p[y] <= '9')
		y++;
	if (y < 4 || y > 12)
		return false;
	p += y;
	for (int i = 0; i < 2 && p < end && *p == '-'; i++) {
		p++;
		if (!digits(&p, end, 2))
			return false;
	}
	if (p < end && *p == 'T') {
		p++;
		if (!time_part(&p, end, false))
			return false;
	}
	return p == end;
}

static bool date_ok(const char *s, size_t n)
{
	return n == 10 && all_digits(s, 4) && s[4] == '-' && all_digits(s + 5, 2) && s[7] == '-' &&
	       all_digits(s + 8, 2);
}

static bool time_ok(const char *s, size_t n)
{
	const char *p = s;

	return time_part(&p, s + n, true) && p == s + n;
}

/* $timedelta: NaT or [-]P<d>DT<h>H<m>M<s>[.<f>]S, the one form the
 * in-sandbox side writes. */
static bool timedelta_ok(const char *s, size_t n)
{
	const char *p = s, *end = s + n;
	static const char units[] = "DHMS";

	if (n == 3 && memcmp(s, "NaT", 3) == 0)
		return true;
	if (p < end && *p == '-')
		p++;
	if (p == end || *p++ != 'P')
		return false;
	for (int u = 0; u < 4; u++) {
		size_t k = 0;

		if (u == 1) {
			if (p == end || *p++ != 'T')
				return false;
		}
		while (p + k < end && k <= 24 && p[k] >= '0' && p[k] <= '9')
			k++;
		if (k == 0 || k > 24)
			return false;
		p += k;
		if (u == 3 && !fraction(&p, end, 18))
			return false;
		if (p == end || *p++ != units[u])
			return false;
	}
	return p == end;
}

/* $int: an integer in decimal, no leading zeros, at most 4300 digits
 * (CPython's default limit for int <-> str). */
static bool bigint_ok(const char *s, size_t n)
{
	if (n > 0 && s[0] == '-')
		s++, n--;
	return n > 0 && n <= 4300 && all_digits(s, n) && !(n > 1 && s[0] == '0');
}

/* $decimal: what str(Decimal) writes: [-](digits[.digits]|.digits)[E[+-]digits],
 * Infinity, NaN or sNaN with an optional payload. */
static bool decimal_ok(const char *s, size_t n)
{
	const char *p = s, *end = s + n;
	size_t k = 0, f = 0;

	if (n > 10000)
		return false;
	if (p < end && *p == '-')
		p++;
	if ((size_t)(end - p) == 8 && memcmp(p, "Infinity", 8) == 0)
		return true;
	if (end - p >= 3 && memcmp(p, "NaN", 3) == 0)
		return end - p == 3 || all_digits(p + 3, (size_t)(end - p - 3));
	if (end - p >= 4 && memcmp(p, "sNaN", 4) == 0)
		return end - p == 4 || all_digits(p + 4, (size_t)(end - p - 4));
	while (p + k < end && p[k] >= '0' && p[k] <= '9')
		k++;
	p += k;
	if (p < end && *p == '.') {
		p++;
		while (p + f < end && p[f] >= '0' && p[f] <= '9')
			f++;
		p += f;
	}
	if (k + f == 0)
		return false;
	if (p < end && (*p == 'E' || *p == 'e')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		k = 0;
		while (p + k < end && p[k] >= '0' && p[k] <= '9')
			k++;
		if (k == 0)
			return false;
		p += k;
	}
	return p == end;
}

static int check_value(json_t *v, struct sandcell_error *err);

/* v is the string s exactly (a string value may hold NULs). */
static bool str_is(json_t *v, const char *s)
{
	return json_is_string(v) && json_string_length(v) == strlen(s) &&
	       memcmp(json_string_value(v), s, json_string_length(v)) == 0;
}

static bool is_number_or_float_tag(json_t *v)
{
	json_t *t;

	if (json_is_number(v))
		return true;
	if (!json_is_object(v) || json_object_size(v) != 1)
		return false;
	t = json_object_get(v, "$float");
	return t != NULL && check_value(v, NULL) == 0;
}

/* nested arrays whose lengths follow shape[dim..] */
static bool shape_ok(json_t *data, json_t *shape, size_t dim)
{
	json_t *x;
	size_t i;

	if (dim == json_array_size(shape))
		return true;
	if (!json_is_array(data) ||
	    json_array_size(data) != (size_t)json_integer_value(json_array_get(shape, dim)))
		return false;
	json_array_foreach(data, i, x) {
		if (!shape_ok(x, shape, dim + 1))
			return false;
	}
	return true;
}

static bool string_array(json_t *a)
{
	json_t *x;
	size_t i;

	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i, x) {
		if (!json_is_string(x))
			return false;
	}
	return true;
}

/* The payload of a tag (docs/values.md); children are checked by the caller's walk. */
static int check_tag(const char *tag, json_t *p, struct sandcell_error *err)
{
	const char *s = json_string_value(p);
	size_t n = json_string_length(p);

	if (strcmp(tag, "$float") == 0) {
		if (s && ((n == 3 && strcmp(s, "NaN") == 0) || (n == 8 && strcmp(s, "Infinity") == 0) ||
			  (n == 9 && strcmp(s, "-Infinity") == 0)))
			return 0;
		return bad(err, "$float is \"NaN\", \"Infinity\" or \"-Infinity\"");
	}
	if (strcmp(tag, "$int") == 0)
		return s && bigint_ok(s, n) ? 0 : bad(err, "$int is a decimal integer string");
	if (strcmp(tag, "$decimal") == 0)
		return s && decimal_ok(s, n) ? 0 : bad(err, "$decimal is a decimal number string");
	if (strcmp(tag, "$datetime") == 0)
		return s && datetime_ok(s, n) ? 0 : bad(err, "$datetime is an ISO 8601 date-time or NaT");
	if (strcmp(tag, "$date") == 0)
		return s && date_ok(s, n) ? 0 : bad(err, "$date is YYYY-MM-DD");
	if (strcmp(tag, "$time") == 0)
		return s && time_ok(s, n) ? 0 : bad(err, "$time is HH:MM:SS[.f][offset]");
	if (strcmp(tag, "$timedelta") == 0)
		return s && timedelta_ok(s, n) ? 0 : bad(err, "$timedelta is [-]PnDTnHnMn[.f]S or NaT");
	if (strcmp(tag, "$bytes") == 0)
		return s && sc_base64_ok(s, n) ? 0 : bad(err, "$bytes is strict base64");
	if (strcmp(tag, "$repr") == 0)
		return s ? 0 : bad(err, "$repr is a string");
	if (strcmp(tag, "$na") == 0)
		return json_is_null(p) ? 0 : bad(err, "$na is null");
	if (strcmp(tag, "$set") == 0)
		return json_is_array(p) ? 0 : bad(err, "$set is an array");
	if (strcmp(tag, "$complex") == 0) {
		if (json_is_array(p) && json_array_size(p) == 2 &&
		    is_number_or_float_tag(json_array_get(p, 0)) &&
		    is_number_or_float_tag(json_array_get(p, 1)))
			return 0;
		return bad(err, "$complex is [real, imag]");
	}
	if (strcmp(tag, "$map") == 0) {
		json_t *x;
		size_t i;

		if (!json_is_array(p))
			return bad(err, "$map is an array of [key, value] pairs");
		json_array_foreach(p, i, x) {
			if (!json_is_array(x) || json_array_size(x) != 2)
				return bad(err, "$map is an array of [key, value] pairs");
		}
		return 0;
	}
	if (strcmp(tag, "$ndarray") == 0) {
		static const char *const keys[] = { "dtype", "shape", "data" };
		json_t *shape, *x;
		size_t i;

		if (exact_keys(p, keys, 3, "$ndarray", err) < 0)
			return -1;
		shape = json_object_get(p, "shape");
		if (!json_is_string(json_object_get(p, "dtype")) ||
		    json_string_length(json_object_get(p, "dtype")) > 64 || !json_is_array(shape) ||
		    json_array_size(shape) > 64)
			return bad(err, "$ndarray: dtype is a string, shape an array of sizes");
		json_array_foreach(shape, i, x) {
			if (!json_is_integer(x) || json_integer_value(x) < 0)
				return bad(err, "$ndarray: shape is an array of sizes");
		}
		return shape_ok(json_object_get(p, "data"), shape, 0)
			       ? 0 : bad(err, "$ndarray: data does not have the shape");
	}
	if (strcmp(tag, "$series") == 0) {
		static const char *const keys[] = { "name", "dtype", "index", "data" };

		if (exact_keys(p, keys, 4, "$series", err) < 0)
			return -1;
		if (!json_is_string(json_object_get(p, "dtype")) ||
		    !json_is_array(json_object_get(p, "index")) ||
		    !json_is_array(json_object_get(p, "data")) ||
		    json_array_size(json_object_get(p, "index")) !=
			    json_array_size(json_object_get(p, "data")))
			return bad(err, "$series: dtype a string, index and data arrays of one length");
		return 0;
	}
	if (strcmp(tag, "$dataframe") == 0) {
		static const char *const keys[] = { "columns", "index", "dtypes", "data" };
		json_t *cols, *rows, *row;
		size_t i;

		if (exact_keys(p, keys, 4, "$dataframe", err) < 0)
			return -1;
		cols = json_object_get(p, "columns");
		rows = json_object_get(p, "data");
		if (!json_is_array(cols) || !string_array(json_object_get(p, "dtypes")) ||
		    json_array_size(json_object_get(p, "dtypes")) != json_array_size(cols) ||
		    !json_is_array(json_object_get(p, "index")) || !json_is_array(rows) ||
		    json_array_size(rows) != json_array_size(json_object_get(p, "index")))
			return bad(err, "$dataframe: columns, dtypes, index and data do not match");
		json_array_foreach(rows, i, row) {
			if (!json_is_array(row) || json_array_size(row) != json_array_size(cols))
				return bad(err, "$dataframe: a row is not an array of one value per column");
		}
		return 0;
	}
	{
		char *e = sc_escape_bytes(tag, strlen(tag), NULL);
		int rc = bad(err, "unknown value tag \"%.64s\"", e ? e : "?");

		free(e);
		return rc;
	}
}

/* Walks a JSON value from the sandbox: every tag must be a known one with
 * its documented payload.  Recursion is bounded by the parse depth cap. */
static int check_value(json_t *v, struct sandcell_error *err)
{
	struct sandcell_error scratch;
	const char *key;
	json_t *x;
	size_t i;

	if (err == NULL)
		err = &scratch;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			if (check_value(x, err) < 0)
				return -1;
		}
		return 0;
	}
	if (!json_is_object(v))
		return 0;
	if (json_object_size(v) == 1) {
		void *it = json_object_iter(v);

		key = json_object_iter_key(it);
		if (key[0] == '$' && check_tag(key, json_object_iter_value(it), err) < 0)
			return -1;
	}
	json_object_foreach(v, key, x) {
		if (check_value(x, err) < 0)
			return -1;
	}
	return 0;
}

int sc_chan_check_value(json_t *v, struct sandcell_error *err)
{
	return check_value(v, err);
}

static bool alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* type/subtype, each a letter or digit then [A-Za-z0-9!#$&^_.+-]* (RFC
 * 6838's restricted-name), at most 127 bytes.  So no MIME key starts with
 * '$': a bundle of one such key would read as a tagged value
 * (docs/values.md) to anything that decodes values. */
static bool mime_ok(const char *m)
{
	size_t n = strlen(m), slash = 0;

	if (n < 3 || n > 127 || !alnum(m[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = m[i];

		if (c == '/') {
			if (slash || i == n - 1 || !alnum(m[i + 1]))
				return false;
			slash = i;
		} else if (!alnum(c) && strchr("!#$&^_.+-", c) == NULL) {
			return false;
		}
	}
	return slash != 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The kinds the in-sandbox side uses too (_mime_kind in sandcell.py). */
enum mime_kind { MIME_TEXT, MIME_JSON, MIME_BINARY };
static enum mime_kind mime_kind(const char *m)
{
	if (strcmp(m, "application/json") == 0 ||
	    (strncmp(m, "application/", 12) == 0 && ends_with(m, "+json")))
		return MIME_JSON;
	if ((strncmp(m, "image/", 6) == 0 && !ends_with(m, "+xml")) ||
	    strcmp(m, "application/pdf") == 0)
		return MIME_BINARY;
	return MIME_TEXT;
}

static int check_bundle(json_t *data, struct sandcell_error *err)
{
	const char *mime;
	json_t *v;

	if (!json_is_object(data))
		return bad(err, "data is not an object");
	json_object_foreach(data, mime, v) {
		if (!mime_ok(mime)) {
			char *e = sc_escape_bytes(mime, strlen(mime), NULL);
			int rc = bad(err, "\"%.64s\" is not a MIME type", e ? e : "?");

			free(e);
			return rc;
		}
		switch (mime_kind(mime)) {
		case MIME_JSON:
			if (check_value(v, err) < 0)
				return -1;
			break;
		case MIME_BINARY:
			if (!json_is_string(v) || !sc_base64_ok(json_string_value(v), json_string_length(v)))
				return bad(err, "%s is not a base64 string", mime);
			break;
		case MIME_TEXT:
			if (!json_is_string(v))
				return bad(err, "%s is not a string", mime);
			break;
		}
	}
	return 0;
}

static int check_output(json_t *o, struct sandcell_error *err)
{
	static const char *const k_stream[] = { "output_type", "name", "text" };
	static const char *const k_display[] = { "output_type", "data", "metadata" };
	static const char *const k_result[] = { "output_type", "data", "metadata", "execution_count" };
	json_t *type = json_object_get(o, "output_type");

	if (!json_is_object(o))
		return bad(err, "not an object");
	if (!json_is_string(type))
		return bad(err, "no output_type");
	if (str_is(type, "stream")) {
		json_t *name = json_object_get(o, "name");

		if (exact_keys(o, k_stream, 3, "a stream output", err) < 0)
			return -1;
		if (!str_is(name, "stdout") && !str_is(name, "stderr"))
			return bad(err, "a stream's name is \"stdout\" or \"stderr\"");
		if (!json_is_string(json_object_get(o, "text")))
			return bad(err, "a stream's text is a string");
		return 0;
	}
	if (str_is(type, "display_data") || str_is(type, "execute_result")) {
		bool res = str_is(type, "execute_result");
		json_t *meta = json_object_get(o, "metadata"), *count;

		if (exact_keys(o, res ? k_result : k_display, res ? 4 : 3,
			       res ? "an execute_result" : "a display_data", err) < 0)
			return -1;
		if (res) {
			count = json_object_get(o, "execution_count");
			if (!json_is_null(count) && !(json_is_integer(count) && json_integer_value(count) >= 0))
				return bad(err, "execution_count is null or a non-negative integer");
		}
		if (!json_is_object(meta))
			return bad(err, "metadata is not an object");
		if (check_value(meta, err) < 0)
			return -1;
		return check_bundle(json_object_get(o, "data"), err);
	}
	{
		char *e = sc_escape_bytes(json_string_value(type), json_string_length(type), NULL);
		int rc = bad(err, "output_type \"%.32s\" is not stream, display_data or execute_result",
			     e ? e : "?");

		free(e);
		return rc;
	}
}

static int check_traceback(json_t *tb, struct sandcell_error *err)
{
	if (!string_array(tb))
		return bad(err, "traceback is not an array of strings");
	return 0;
}

/* A JSON string's length as jansson writes it (UTF-8 kept, quotes). */
static uint64_t escaped_len(const char *s, size_t len)
{
	uint64_t n = 2;

	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)s[i];

		n += b == '"' || b == '\\' || b == '\n' || b == '\t' || b == '\r' || b == '\b' ||
				     b == '\f' ? 2 : b < 0x20 ? 6 : 1;
	}
	return n;
}

/* Bytes v takes in the report (JSON_INDENT(2) at the given depth), a close
 * upper bound: an output's caps are on what it costs the report, so deep
 * tiny values cannot multiply the report's size through indentation. */
static uint64_t rendered(json_t *v, size_t depth)
{
	const char *key;
	json_t *x;
	size_t i;
	uint64_t n = 0;

	if (json_is_string(v))
		return escaped_len(json_string_value(v), json_string_length(v));
	if (json_is_array(v)) {
		/* "\n" + indent + element + "," each, then "\n" + indent + "]" */
		json_array_foreach(v, i, x)
			n += 2 * (depth + 1) + 2 + rendered(x, depth + 1);
		return n + 2 * depth + 3;
	}
	if (json_is_object(v)) {
		json_object_foreach(v, key, x)
			n += 2 * (depth + 1) + 4 + escaped_len(key, strlen(key)) + rendered(x, depth + 1);
		return n + 2 * depth + 3;
	}
	if (json_is_integer(v)) {
		char b[32];

		return (uint64_t)snprintf(b, sizeof(b), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	}
	return 24; /* a real (%.17g with an exponent), true, false or null */
}

static void __attribute__((format(printf, 2, 3))) problem(struct problems *p, const char *fmt, ...)
{
	char b[400];
	va_list ap;

	if (json_array_size(p->list) >= PROBLEMS_MAX) {
		p->more++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	json_array_append_new(p->list, json_string(b));
}

/* Appends a stream output, merged into the previous one when that is a
 * stream of the same name (as nbformat's own merging does). */
static int add_stream(json_t *outs, const char *name, const char *text, size_t len)
{
	json_t *prev = json_array_get(outs, json_array_size(outs) - 1);
	const char *ptype = json_string_value(json_object_get(prev, "output_type"));
	const char *pname = json_string_value(json_object_get(prev, "name"));
	json_t *o;

	if (ptype && strcmp(ptype, "stream") == 0 && pname && strcmp(pname, name) == 0) {
		json_t *t = json_object_get(prev, "text");
		size_t plen = json_string_length(t);
		char *cat = malloc(plen + len + 1);
		int rc;

		if (cat == NULL)
			return -1;
		memcpy(cat, json_string_value(t), plen);
		memcpy(cat + plen, text, len);
		cat[plen + len] = '\0';
		rc = json_object_set_new(prev, "text", json_stringn(cat, plen + len));
		free(cat);
		return rc;
	}
	o = json_pack("{s:s,s:s,s:s%}", "output_type", "stream", "name", name, "text", text, len);
	return o != NULL && json_array_append_new(outs, o) == 0 ? 0 : -1;
}

/* A host note among the outputs where something was dropped: a line on
 * the stderr stream, like the marker in a truncated stream. */
static void __attribute__((format(printf, 2, 3))) marker(json_t *outs, const char *fmt, ...)
{
	json_t *prev = json_array_get(outs, json_array_size(outs) - 1);
	const char *pname = json_string_value(json_object_get(prev, "name"));
	json_t *ptext = json_object_get(prev, "text");
	char b[512];
	size_t n = 0;
	va_list ap;

	/* On a line of its own, even after stderr text without a newline
	 * (which it joins). */
	if (pname && strcmp(pname, "stderr") == 0 && json_string_length(ptext) > 0 &&
	    json_string_value(ptext)[json_string_length(ptext) - 1] != '\n')
		b[n++] = '\n';
	va_start(ap, fmt);
	vsnprintf(b + n, sizeof(b) - n - 1, fmt, ap);
	va_end(ap);
	n = strlen(b);
	b[n++] = '\n';
	add_stream(outs, "stderr", b, n);
}

/* Parses one kept output record; *cost is what it takes in the report. */
static json_t *parse_output(const char *p, size_t len, const struct sc_chan_limits *lim,
			    uint64_t *cost, struct sandcell_error *err)
{
	json_t *o;

	if (PARSE(p, len, lim->out_one, SC_JSON_MAX_DEPTH, &o, err) < 0)
		return NULL;
	if (check_output(o, err) < 0) {
		json_decref(o);
		return NULL;
	}
	*cost = rendered(o, OUTPUT_DEPTH);
	if (*cost > lim->out_one) {
		bad(err, "it would take %llu bytes of the report, over the per-output limit of %zu",
		    (unsigned long long)*cost, lim->out_one);
		json_decref(o);
		return NULL;
	}
	return o;
}

static int append_output(json_t *outs, json_t *o)
{
	const char *type = json_string_value(json_object_get(o, "output_type"));
	int rc;

	if (strcmp(type, "stream") == 0) {
		json_t *t = json_object_get(o, "text");

		rc = add_stream(outs, json_string_value(json_object_get(o, "name")),
				json_string_value(t), json_string_length(t));
		json_decref(o);
		return rc;
	}
	return json_array_append_new(outs, o);
}

static json_t *parse_slot(const struct slot *s, const char *what, bool is_error,
			  struct problems *pr)
{
	static const char *const k_error[] = { "ename", "evalue", "traceback" };
	static const char *const k_where[] = { "traceback" };
	struct sandcell_error e = { 0, "" };
	json_t *v = NULL;

	if (!s->have_last) {
		if (s->in_progress)
			problem(pr, "the %s record was cut off when the code ended", what);
		return NULL;
	}
	if (s->last_over) {
		problem(pr, "the %s record exceeded %zu bytes", what, s->max);
		return NULL;
	}
	if (PARSE(s->last.len ? s->last.p : "", s->last.len, s->max, SC_JSON_MAX_DEPTH, &v,
			  &e) == 0 &&
	    exact_keys(v, is_error ? k_error : k_where, is_error ? 3 : 1, what, &e) == 0 &&
	    check_traceback(json_object_get(v, "traceback"), &e) == 0) {
		if (!is_error || (json_is_string(json_object_get(v, "ename")) &&
				  json_is_string(json_object_get(v, "evalue"))))
			return v;
		bad(&e, "ename and evalue are strings");
	}
	json_decref(v);
	problem(pr, "the %s record was rejected: %s", what, e.msg);
	return NULL;
}

static void parse_result(struct sc_chan *c, struct sc_chan_out *o)
{
	struct sandcell_error e = { 0, "" };

	if (!c->res.have_last) {
		/* Only a record the code was still writing when it ended. */
		if (c->res.in_progress)
			snprintf(o->result_error, sizeof(o->result_error), "incomplete result record");
		return;
	}
	if (c->res.last_over) {
		o->result_truncated = true;
		snprintf(o->result_error, sizeof(o->result_error),
			 "the result record exceeded the result limit of %zu bytes", c->res.max);
		return;
	}
	if (PARSE(c->res.last.len ? c->res.last.p : "", c->res.last.len, c->res.max,
			  SC_JSON_MAX_DEPTH, &o->result, &e) < 0 ||
	    check_value(o->result, &e) < 0) {
		json_decref(o->result);
		o->result = NULL;
		snprintf(o->result_error, sizeof(o->result_error), "result record: %.200s", e.msg);
	}
}

static void parse_outputs(struct sc_chan *c, struct sc_chan_out *o, struct problems *pr)
{
	uint64_t stop_n = 0, stop_bytes = 0, stop_first = 0;
	bool stop = false;

	for (size_t i = 0; i < c->n_ents; i++) {
		const struct ent *en = &c->ents[i];
		struct sandcell_error e = { 0, "" };
		uint64_t cost = 0;
		json_t *v;

		if (stop) {
			stop_n += en->n;
			stop_bytes += en->bytes;
			continue;
		}
		switch (en->what) {
		case ENT_KEPT:
			v = parse_output(en->len ? c->out.p + en->off : "", en->len, &c->lim, &cost, &e);
			if (v == NULL) {
				o->dropped++;
				problem(pr, "output %llu was rejected: %s", (unsigned long long)en->first,
					e.msg);
				marker(o->outputs, "[sandcell: output %llu was rejected: %.300s]",
				       (unsigned long long)en->first, e.msg);
			} else if (o->bytes + cost > c->lim.out_bytes) {
				json_decref(v);
				stop = true;
				stop_first = en->first;
				stop_n = 1;
				stop_bytes = en->bytes;
			} else if (append_output(o->outputs, v) < 0) {
				o->dropped++;
				problem(pr, "output %llu: out of memory", (unsigned long long)en->first);
			} else {
				o->bytes += cost;
			}
			break;
		case ENT_TOO_BIG:
			o->dropped++;
			problem(pr, "output %llu (%llu bytes) exceeded the per-output limit of %zu bytes",
				(unsigned long long)en->first, (unsigned long long)en->bytes, c->lim.out_one);
			marker(o->outputs, "[sandcell: output %llu (%llu bytes) was dropped: over the "
			       "per-output limit of %zu bytes]", (unsigned long long)en->first,
			       (unsigned long long)en->bytes, c->lim.out_one);
			break;
		case ENT_OVER_COUNT:
		case ENT_OVER_TOTAL:
			stop = true;
			stop_first = en->first;
			stop_n = en->n;
			stop_bytes = en->bytes;
			break;
		case ENT_CUT:
			o->dropped++;
			problem(pr, "output %llu was cut off when the code ended",
				(unsigned long long)en->first);
			marker(o->outputs, "[sandcell: output %llu was cut off when the code ended]",
			       (unsigned long long)en->first);
			break;
		}
	}
	if (stop) {
		o->truncated = true;
		o->dropped += stop_n;
		problem(pr, "outputs %llu and later (%llu of them, %llu bytes) were not kept: the "
			"limit of %zu outputs or %zu bytes was reached",
			(unsigned long long)stop_first, (unsigned long long)stop_n,
			(unsigned long long)stop_bytes, c->lim.out_count, c->lim.out_bytes);
		marker(o->outputs, "[sandcell: %llu more outputs (%llu bytes) were not kept: the "
		       "limit of %zu outputs or %zu bytes was reached]", (unsigned long long)stop_n,
		       (unsigned long long)stop_bytes, c->lim.out_count, c->lim.out_bytes);
	}
}

int sc_chan_finish(struct sc_chan *c, struct sc_chan_out *o, struct sandcell_error *err)
{
	struct problems pr = { NULL, 0 };

	memset(o, 0, sizeof(*o));
	if (c == NULL)
		return sc_err(err, EINVAL, "sc_chan_finish: no channel");
	pr.list = json_array();
	o->outputs = json_array();
	if (pr.list == NULL || o->outputs == NULL) {
		json_decref(pr.list);
		sc_chan_out_free(o);
		return sc_err(err, ENOMEM, "channel");
	}
	/* The line the code was writing when it ended. */
	if (c->kind == K_OUT)
		out_end(c, false);
	else if (c->kind == K_PREFIX)
		c->res.in_progress = true;
	c->kind = K_START;

	parse_result(c, o);
	parse_outputs(c, o, &pr);
	o->exception = parse_slot(&c->err, "error", true, &pr);
	o->where = parse_slot(&c->where, "location", false, &pr);
	if (c->oom)
		problem(&pr, "the host ran out of memory holding the channel: records were dropped");
	if (pr.more > 0) {
		char b[80];

		snprintf(b, sizeof(b), "... and %llu more", (unsigned long long)pr.more);
		json_array_append_new(pr.list, json_string(b));
	}
	o->problems = pr.list;
	return 0;
}

void sc_chan_out_free(struct sc_chan_out *o)
{
	if (o == NULL)
		return;
	json_decref(o->result);
	json_decref(o->outputs);
	json_decref(o->exception);
	json_decref(o->where);
	json_decref(o->problems);
	memset(o, 0, sizeof(*o));
}

json_t *sc_chan_error_output(json_t *exception)
{
	if (!json_is_object(exception))
		return NULL;
	return json_pack("{s:s,s:O,s:O,s:O}", "output_type", "error", "ename",
			 json_object_get(exception, "ename"), "evalue",
			 json_object_get(exception, "evalue"), "traceback",
			 json_object_get(exception, "traceback"));
}

json_t *sc_chan_stop_output(const char *reason, json_t *where)
{
	json_t *tb = json_array(), *line, *o;
	char b[400];
	size_t i;

	if (tb == NULL)
		return NULL;
	if (json_is_object(where)) {
		json_array_extend(tb, json_object_get(where, "traceback"));
		/* The code's own words: labelled so. */
		json_array_insert_new(tb, 0, json_string("The code was here when sandcell stopped it "
							 "(as the code reported it):"));
	}
	snprintf(b, sizeof(b), "SandcellStopped: %s", reason ? reason : "");
	json_array_append_new(tb, json_string(b));
	json_array_foreach(tb, i, line) {
		if (!json_is_string(line)) {
			json_decref(tb);
			return NULL;
		}
	}
	o = json_pack("{s:s,s:s,s:s,s:o}", "output_type", "error", "ename", "SandcellStopped",
		      "evalue", reason ? reason : "", "traceback", tb);
	return o;
}

/* ---------------------------------------------------------- streaming */

void sc_chan_stream(struct sc_chan *c, const struct sc_chan_sink *sink)
{
	c->sink = sink;
	if (c->s_pr.list == NULL)
		c->s_pr.list = json_array();
}

/* A host note (a stderr stream output, as marker() writes it) to the sink. */
static void sink_note(struct sc_chan *c, const char *text)
{
	json_t *tmp = json_array(), *o;

	if (tmp == NULL) {
		c->oom = true;
		return;
	}
	marker(tmp, "%s", text);
	o = json_array_get(tmp, 0);
	if (o != NULL)
		c->sink->output(c->sink->ctx, json_incref(o));
	else
		c->oom = true;
	json_decref(tmp);
}

static void stream_over(struct sc_chan *c, uint64_t bytes)
{
	if (c->stop_n == 0)
		c->stop_first = c->n_out;
	c->stop_n++;
	c->stop_bytes += bytes;
	c->s_dropped++;
}

/* One output record has ended (what out_end decided): passed on parsed,
 * or a marker in its place; nothing is kept after it. */
static void stream_output(struct sc_chan *c, enum ent_what what)
{
	unsigned long long n = (unsigned long long)c->n_out;
	struct sandcell_error e = { 0, "" };
	uint64_t cost = 0;
	char b[512];
	json_t *v;

	switch (what) {
	case ENT_KEPT:
		v = parse_output(c->line_bytes ? c->out.p + c->line_start : "", (size_t)c->line_bytes,
				 &c->lim, &cost, &e);
		if (v == NULL) {
			c->s_dropped++;
			problem(&c->s_pr, "output %llu was rejected: %s", n, e.msg);
			snprintf(b, sizeof(b), "[sandcell: output %llu was rejected: %.300s]", n, e.msg);
			sink_note(c, b);
		} else if (c->s_bytes + cost > c->lim.out_bytes) {
			/* As in one-shot mode: this one and every later one. */
			json_decref(v);
			c->out_full = true;
			stream_over(c, c->line_bytes);
		} else {
			c->s_bytes += cost;
			c->sink->output(c->sink->ctx, v);
		}
		break;
	case ENT_TOO_BIG:
		c->s_dropped++;
		problem(&c->s_pr, "output %llu (%llu bytes) exceeded the per-output limit of %zu bytes", n,
			(unsigned long long)c->line_bytes, c->lim.out_one);
		snprintf(b, sizeof(b), "[sandcell: output %llu (%llu bytes) was dropped: over the "
			 "per-output limit of %zu bytes]", n, (unsigned long long)c->line_bytes,
			 c->lim.out_one);
		sink_note(c, b);
		break;
	case ENT_OVER_COUNT:
	case ENT_OVER_TOTAL:
		stream_over(c, c->line_bytes);
		break;
	case ENT_CUT:
		c->s_dropped++;
		problem(&c->s_pr, "output %llu was cut off when the code ended", n);
		snprintf(b, sizeof(b), "[sandcell: output %llu was cut off when the code ended]", n);
		sink_note(c, b);
		break;
	}
	c->out.len = 0;
}

static bool str_max(json_t *v, size_t max)
{
	return json_is_string(v) && json_string_length(v) <= max;
}

/* A D, I or Q record has ended: parsed strictly now, handed to the sink
 * (NULL and the reason when it is rejected), then forgotten. */
static void control_end(struct sc_chan *c, enum kind k)
{
	static const char *const k_done[] = { "id", "execution_count", "status" };
	static const char *const k_input[] = { "id", "prompt", "password" };
	static const char *const k_request[] = { "id", "name" };
	struct slot *s = slot_of(c, k);
	const char *what = k == K_DONE ? "done" : k == K_INPUT ? "input request" : "dataset request";
	const char *const *keys = k == K_DONE ? k_done : k == K_INPUT ? k_input : k_request;
	struct sandcell_error e = { 0, "" };
	json_t *v = NULL, *id;

	if (s->last_over) {
		bad(&e, "over %zu bytes", s->max);
	} else if (PARSE(s->last.len ? s->last.p : "", s->last.len, s->max, 2, &v, &e) == 0 &&
		   exact_keys(v, keys, k == K_REQUEST ? 2 : 3, what, &e) == 0) {
		id = json_object_get(v, "id");
		if (!json_is_string(id) || !sc_session_id_ok(json_string_value(id), json_string_length(id)))
			bad(&e, "id is 1 to %d characters of [A-Za-z0-9._:-]", SC_SESSION_ID_MAX);
		else if (k == K_DONE) {
			json_t *n = json_object_get(v, "execution_count"), *st = json_object_get(v, "status");

			if (!json_is_integer(n) || json_integer_value(n) < 0 ||
			    json_integer_value(n) > (json_int_t)1 << 53)
				bad(&e, "execution_count is a non-negative integer");
			else if (!str_is(st, "ok") && !str_is(st, "error") && !str_is(st, "interrupted"))
				bad(&e, "status is \"ok\", \"error\" or \"interrupted\"");
		} else if (k == K_REQUEST) {
			json_t *n = json_object_get(v, "name");
			struct sandcell_error ne = { 0, "" };

			/* A name as the caller's --dataset names are checked: it
			 * becomes a file name on the host's side of an answer. */
			if (!json_is_string(n) || strlen(json_string_value(n)) != json_string_length(n) ||
			    sandcell_check_name(json_string_value(n), &ne) < 0)
				bad(&e, "name is a dataset name (letters, digits, '.', '_', '-', at most "
				    "128 bytes, not starting with '.' or '-')");
		} else if (!str_max(json_object_get(v, "prompt"), SC_SESSION_PROMPT_MAX)) {
			bad(&e, "prompt is a string of at most %u bytes", SC_SESSION_PROMPT_MAX);
		} else if (!json_is_boolean(json_object_get(v, "password"))) {
			bad(&e, "password is true or false");
		}
	}
	if (e.msg[0]) {
		json_decref(v);
		v = NULL;
		problem(&c->s_pr, "a %s record was rejected: %s", what, e.msg);
	}
	c->sink->control(c->sink->ctx, k == K_DONE ? 'D' : k == K_INPUT ? 'I' : 'Q', v, e.msg);
	json_decref(v);
	s->have_last = s->last_over = false;
	s->last.len = 0;
}

static void slot_reset(struct slot *s)
{
	s->cur.len = s->last.len = 0;
	s->cur_over = s->have_last = s->last_over = s->in_progress = false;
	s->count = 0;
}

int sc_chan_cell_end(struct sc_chan *c, struct sc_chan_out *o, struct sandcell_error *err)
{
	memset(o, 0, sizeof(*o));
	if (c == NULL || c->sink == NULL)
		return sc_err(err, EINVAL, "sc_chan_cell_end: not a streaming channel");
	/* The line the code was writing when it ended. */
	if (c->kind == K_OUT)
		out_end(c, false);
	else if (c->kind == K_PREFIX)
		c->res.in_progress = true;
	c->kind = K_START;
	if (c->stop_n > 0) {
		char b[512];

		o->truncated = true;
		problem(&c->s_pr, "outputs %llu and later (%llu of them, %llu bytes) were not kept: the "
			"limit of %zu outputs or %zu bytes was reached",
			(unsigned long long)c->stop_first, (unsigned long long)c->stop_n,
			(unsigned long long)c->stop_bytes, c->lim.out_count, c->lim.out_bytes);
		snprintf(b, sizeof(b), "[sandcell: %llu more outputs (%llu bytes) were not kept: the "
			 "limit of %zu outputs or %zu bytes was reached]", (unsigned long long)c->stop_n,
			 (unsigned long long)c->stop_bytes, c->lim.out_count, c->lim.out_bytes);
		sink_note(c, b);
	}
	o->outputs = json_array();
	parse_result(c, o);
	o->exception = parse_slot(&c->err, "error", true, &c->s_pr);
	o->where = parse_slot(&c->where, "location", false, &c->s_pr);
	if (c->oom)
		problem(&c->s_pr, "the host ran out of memory holding the channel: records were dropped");
	if (c->s_pr.more > 0) {
		char b[80];

		snprintf(b, sizeof(b), "... and %llu more", (unsigned long long)c->s_pr.more);
		json_array_append_new(c->s_pr.list, json_string(b));
	}
	o->problems = c->s_pr.list;
	o->bytes = c->s_bytes;
	o->dropped = c->s_dropped;
	c->s_pr.list = json_array();
	c->s_pr.more = 0;
	slot_reset(&c->res);
	slot_reset(&c->err);
	slot_reset(&c->where);
	slot_reset(&c->done);
	slot_reset(&c->input);
	slot_reset(&c->request);
	c->n_out = 0;
	c->n_kept = 0;
	c->out.len = 0;
	c->out_full = c->oom = false;
	c->s_bytes = c->s_dropped = c->stop_n = c->stop_bytes = c->stop_first = 0;
	if (o->outputs == NULL || o->problems == NULL) {
		sc_chan_out_free(o);
		return sc_err(err, ENOMEM, "channel");
	}
	return 0;
}
