/* Parsers for command-line and request values.  They are strict on purpose:
 * a limit that is silently misread (" 5" as 5, "1e3" as 1, "-1" as 2^64-1)
 * weakens the sandbox without anyone noticing, so anything but the
 * documented grammar is refused with a message naming what is wrong.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 128
#define SECONDS_MAX 1e7
/* Per --value text and per values file: both are copied into the sandbox. */
#define VALUES_MAX_LEN ((size_t)16 << 20)
/* Bytes of user text echoed in a message; the rest is elided. */
#define SHOW_MAX 64

/* User text is echoed escaped and shortened: it may hold terminal control
 * bytes or be megabytes long. */
struct shown {
	char text[SHOW_MAX * 4 + 4];
};

static const char *show(struct shown *sh, const char *s)
{
	size_t len = strnlen(s, SHOW_MAX + 1);
	bool cut = len > SHOW_MAX;
	char *e = sc_escape_bytes(s, cut ? SHOW_MAX : len, NULL);
	const char *t = e != NULL ? e : "?";
	size_t n = strlen(t);

	/* The escaped text is at most 4 * SHOW_MAX bytes, so this fits. */
	memcpy(sh->text, t, n);
	memcpy(sh->text + n, cut ? "..." : "", cut ? 4 : 1);
	free(e);
	return sh->text;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Accumulates the leading decimal digits of *p; false on overflow. */
static bool parse_digits(const char **p, uint64_t *out)
{
	uint64_t v = 0;

	for (; is_digit(**p); (*p)++) {
		unsigned d = (unsigned)(**p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

int sandcell_parse_size(const char *s, uint64_t *out, struct sandcell_error *err)
{
	static const char units[] = "kmgt";
	const char *p = s, *u;
	struct shown sh;
	unsigned shift = 0;
	uint64_t v;

	if (s == NULL || *s == '\0')
		return sc_inval(err, "empty size (expected e.g. 512M)");
	if (*s == '-')
		return sc_inval(err, "'%s': a size cannot be negative", show(&sh, s));
	if (!is_digit(*p))
		goto bad;
	if (!parse_digits(&p, &v))
		return sc_inval(err, "'%s': size too large (over 2^64-1 bytes)", show(&sh, s));
	if (*p == '.')
		return sc_inval(err, "'%s': fractional sizes are not supported, use a smaller unit "
			     "(e.g. 1536K instead of 1.5M)", show(&sh, s));
	if (*p != '\0' && (u = strchr(units, *p | 0x20)) != NULL) {
		shift = 10 * (unsigned)(u - units + 1);
		p++;
		if ((*p | 0x20) == 'i' && (p[1] | 0x20) == 'b')
			p += 2;
		else if ((*p | 0x20) == 'b')
			p++;
	} else if ((*p | 0x20) == 'b') {
		p++;
	}
	if (*p != '\0')
		goto bad;
	if (shift > 0 && v > (UINT64_MAX >> shift))
		return sc_inval(err, "'%s': size too large (over 2^64-1 bytes)", show(&sh, s));
	*out = v << shift;
	return 0;
bad:
	return sc_inval(err, "'%s' is not a size: expected a whole number of bytes with an optional "
		     "K, M, G or T suffix (powers of 1024), e.g. 512M or 2GiB", show(&sh, s));
}

int sandcell_parse_seconds(const char *s, double *out, struct sandcell_error *err)
{
	const char *p = s;
	struct shown sh;
	locale_t c_loc;
	double v;

	if (s == NULL || *s == '\0')
		return sc_inval(err, "empty duration (expected seconds, e.g. 30 or 0.5)");
	if (*s == '-')
		return sc_inval(err, "'%s': a duration cannot be negative", show(&sh, s));
	/* Grammar: digits ['.' digits].  Checked by hand so strtod never sees
	 * "nan", "inf", hex floats, exponents or leading blanks. */
	while (is_digit(*p))
		p++;
	if (p == s)
		goto bad;
	if (*p == '.') {
		const char *frac = ++p;

		while (is_digit(*p))
			p++;
		if (p == frac)
			goto bad;
	}
	if (*p != '\0')
		goto bad;

	/* The grammar uses '.', whatever LC_NUMERIC the program set. */
	c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (c_loc == (locale_t)0)
		return sc_err(err, errno, "parsing '%s'", show(&sh, s));
	v = strtod_l(s, NULL, c_loc);
	freelocale(c_loc);

	if (!(v > 0))
		return sc_inval(err, "'%s': a duration must be greater than 0", show(&sh, s));
	if (!isfinite(v) || v > SECONDS_MAX)
		return sc_inval(err, "'%s': duration over the maximum of %.0f seconds",
			     show(&sh, s), SECONDS_MAX);
	*out = v;
	return 0;
bad:
	return sc_inval(err, "'%s' is not a duration: expected seconds as a decimal number, "
		     "e.g. 30 or 0.5", show(&sh, s));
}

int sandcell_parse_count(const char *s, uint64_t *out, struct sandcell_error *err)
{
	const char *p = s;
	struct shown sh;
	uint64_t v;

	if (s == NULL || *s == '\0')
		return sc_inval(err, "empty count (expected a whole number, e.g. 64)");
	if (*s == '-')
		return sc_inval(err, "'%s': a count cannot be negative", show(&sh, s));
	if (!is_digit(*p))
		goto bad;
	if (!parse_digits(&p, &v))
		return sc_inval(err, "'%s': number too large (over 2^64-1)", show(&sh, s));
	if (*p != '\0')
		goto bad;
	*out = v;
	return 0;
bad:
	return sc_inval(err, "'%s' is not a whole number (expected digits only, e.g. 64)",
		     show(&sh, s));
}

/* what names the kind of name in messages ("name", "value name"). */
static int check_name(const char *what, const char *name, struct sandcell_error *err)
{
	struct shown sh;
	size_t len;

	if (name == NULL || *name == '\0')
		return sc_inval(err, "%s is empty", what);
	len = strnlen(name, NAME_MAX_LEN + 1);
	if (len > NAME_MAX_LEN)
		return sc_inval(err, "%s '%s': longer than %d bytes", what, show(&sh, name),
			     NAME_MAX_LEN);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (is_digit((char)c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '.' ||
		    c == '_' || c == '-')
			continue;
		if (c >= 0x20 && c < 0x7f)
			return sc_inval(err, "%s '%s': contains '%c' (allowed: letters, digits, "
				     "'.', '_', '-')", what, show(&sh, name), c);
		return sc_inval(err, "%s '%s': contains byte 0x%02x (allowed: letters, digits, "
			     "'.', '_', '-')", what, show(&sh, name), c);
	}
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return sc_inval(err, "%s '%s': '.' and '..' are not allowed", what, name);
	/* A leading '-' reads as an option to tools run on /input; a leading
	 * '.' makes a hidden file. */
	if (name[0] == '-' || name[0] == '.')
		return sc_inval(err, "%s '%s': starts with '%c'", what, name, name[0]);
	return 0;
}

int sandcell_check_name(const char *name, struct sandcell_error *err)
{
	return check_name("name", name, err);
}

/* Loads the current values object; NULL text starts an empty one.  Depth
 * is one more than a value may have, since the values sit inside it. */
static json_t *values_load(const char *text, struct sandcell_error *err)
{
	json_t *obj;

	if (text == NULL) {
		obj = json_object();
		if (obj == NULL)
			sc_err(err, ENOMEM, "values");
		return obj;
	}
	if (sc_json_parse(text, strlen(text), SIZE_MAX, SC_JSON_MAX_DEPTH + 1, &obj, err) < 0) {
		sc_err_wrap(err, "values");
		return NULL;
	}
	if (!json_is_object(obj)) {
		json_decref(obj);
		sc_inval(err, "values: not a JSON object");
		return NULL;
	}
	return obj;
}

/* Replaces *values by the compact text of obj; *values is untouched on
 * failure so the caller's state stays consistent. */
static int values_store(char **values, json_t *obj, struct sandcell_error *err)
{
	char *text = json_dumps(obj, JSON_COMPACT);

	if (text == NULL)
		return sc_err(err, ENOMEM, "values");
	free(*values);
	*values = text;
	return 0;
}

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "something else";
}

int sandcell_values_add(char **values, const char *name, const char *json,
			struct sandcell_error *err)
{
	json_t *obj, *v;
	int rc;

	if (values == NULL)
		return sc_inval(err, "sandcell_values_add: no values pointer");
	if (check_name("value name", name, err) < 0)
		return -1;
	if (json == NULL)
		return sc_inval(err, "value '%s': no JSON text", name);
	if (sc_json_parse(json, strlen(json), VALUES_MAX_LEN, SC_JSON_MAX_DEPTH, &v, err) < 0)
		return sc_err_wrap(err, "value '%s'", name);
	obj = values_load(*values, err);
	if (obj == NULL) {
		json_decref(v);
		return -1;
	}
	if (json_object_get(obj, name) != NULL) {
		json_decref(v);
		json_decref(obj);
		return sc_inval(err, "value '%s' given twice", name);
	}
	if (json_object_set_new(obj, name, v) < 0) {
		json_decref(obj);
		return sc_err(err, ENOMEM, "value '%s'", name);
	}
	rc = values_store(values, obj, err);
	json_decref(obj);
	return rc;
}

int sandcell_values_merge(char **values, const char *json_obj, size_t len,
			  struct sandcell_error *err)
{
	json_t *in, *obj, *v;
	const char *key;
	int rc;

	if (values == NULL)
		return sc_inval(err, "sandcell_values_merge: no values pointer");
	/* The cap applies to the text as written, so values in a file can be
	 * one level shallower than a --value; the message then matches what
	 * the user sees in the file. */
	if (sc_json_parse(json_obj, len, VALUES_MAX_LEN, SC_JSON_MAX_DEPTH, &in, err) < 0)
		return sc_err_wrap(err, "values");
	if (!json_is_object(in)) {
		rc = sc_inval(err, "values: expected a JSON object, got %s", json_type_name(in));
		json_decref(in);
		return rc;
	}
	obj = values_load(*values, err);
	if (obj == NULL) {
		json_decref(in);
		return -1;
	}
	rc = 0;
	json_object_foreach(in, key, v) {
		if (check_name("value name", key, err) < 0) {
			rc = -1;
			break;
		}
		if (json_object_get(obj, key) != NULL) {
			rc = sc_inval(err, "value '%s' given twice", key);
			break;
		}
		if (json_object_set(obj, key, v) < 0) {
			rc = sc_err(err, ENOMEM, "value '%s'", key);
			break;
		}
	}
	if (rc == 0)
		rc = values_store(values, obj, err);
	json_decref(obj);
	json_decref(in);
	return rc;
}
