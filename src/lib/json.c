/* Strict JSON parsing for every JSON byte that crosses a trust boundary
 * (the channel written by the sandbox, --value texts, values files).
 *
 * jansson does the grammar; this file adds the limits jansson does not
 * enforce the way we need them: a byte cap, a nesting cap that is checked
 * before jansson recurses, and messages that never carry raw bytes from the
 * input to a terminal.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *escape(const char *s, size_t len, bool *escaped, bool keep_backslash);

/*
 * Counts bracket nesting outside strings without building anything, so a
 * text like 10^6 '[' is refused in linear time and never reaches jansson's
 * recursive descent.  String tracking mirrors jansson's lexer (a backslash
 * always consumes the next byte), so for any text jansson accepts this is
 * exactly the depth of the parsed value.  For texts jansson would reject
 * the count may be off, which only changes which error is reported.
 */
static int prescan_depth(const char *buf, size_t len, size_t max_depth,
			 struct sandcell_error *err)
{
	size_t depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return sc_inval(err, "JSON nesting deeper than %zu", max_depth);
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return 0;
}

/* Second line of defence after the pre-scan; recursion is bounded by
 * max_depth + 1 frames because it stops as soon as the cap is crossed. */
static bool depth_ok(json_t *v, size_t depth, size_t max_depth)
{
	const char *key;
	json_t *child;
	size_t i;

	if (!json_is_object(v) && !json_is_array(v))
		return true;
	if (depth + 1 > max_depth)
		return false;
	if (json_is_object(v)) {
		json_object_foreach(v, key, child) {
			if (!depth_ok(child, depth + 1, max_depth))
				return false;
		}
	} else {
		json_array_foreach(v, i, child) {
			if (!depth_ok(child, depth + 1, max_depth))
				return false;
		}
	}
	return true;
}

int sc_json_parse(const char *buf, size_t len, size_t max_len, size_t max_depth,
		  struct json_t **out, struct sandcell_error *err)
{
	return sc_json_parse_ex(buf, len, max_len, max_depth, 0, out, err);
}

int sc_json_parse_ex(const char *buf, size_t len, size_t max_len, size_t max_depth, unsigned flags,
		     struct json_t **out, struct sandcell_error *err)
{
	json_error_t jerr;
	json_t *v;

	if (out == NULL)
		return sc_inval(err, "sc_json_parse: no output pointer");
	*out = NULL;
	if (len > max_len)
		return sc_inval(err, "JSON text is %zu bytes, over the %zu-byte limit", len, max_len);
	if (buf == NULL || len == 0)
		return sc_inval(err, "empty JSON text");
	if (prescan_depth(buf, len, max_depth, err) < 0)
		return -1;

	/* No JSON_DISABLE_EOF_CHECK: anything after the value but whitespace
	 * is an error, so "1 x" or two concatenated documents never pass. */
	v = json_loadb(buf, len,
		       JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
			       (flags & SC_JSON_ALLOW_NUL ? JSON_ALLOW_NUL : 0),
		       &jerr);
	if (v == NULL) {
		/* jansson quotes the offending token; it may hold control
		 * bytes from untrusted input, so escape before it can reach a
		 * terminal through a message. */
		char *text = escape(jerr.text, strnlen(jerr.text, sizeof(jerr.text) - 1), NULL, true);
		int rc;

		if (json_error_code(&jerr) == json_error_out_of_memory)
			rc = sc_err(err, ENOMEM, "JSON parser");
		else
			rc = sc_inval(err, "line %d column %d: %s", jerr.line, jerr.column,
				   text != NULL ? text : "invalid JSON");
		free(text);
		return rc;
	}
	if (!depth_ok(v, 0, max_depth)) {
		json_decref(v);
		return sc_inval(err, "JSON nesting deeper than %zu", max_depth);
	}
	*out = v;
	return 0;
}

/* Length of the well-formed UTF-8 sequence at s (shortest form, no
 * surrogates, at most U+10FFFF), or 0 if the byte at s starts none. */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t v, min;
	size_t len;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2, v = s[0] & 0x1f, min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3, v = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4, v = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return len;
}

/* Code points that are valid but can rewrite what a terminal or an editor
 * shows: C1 controls (0x9b is CSI on some terminals) and the bidi
 * overrides/isolates used for "Trojan Source" style spoofing. */
static bool cp_unsafe(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
	       (cp >= 0x2066 && cp <= 0x2069);
}

/* keep_backslash is for messages, where jansson's own text such as
 * "\u0000 is not allowed" must stay readable. */
static char *escape(const char *s, size_t len, bool *escaped, bool keep_backslash)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;
	bool changed = false;
	char *out, *p;

	if (escaped != NULL)
		*escaped = false;
	if (s == NULL)
		len = 0;
	if (len > (SIZE_MAX - 1) / 4)
		return NULL;
	out = malloc(len * 4 + 1);
	if (out == NULL)
		return NULL;
	p = out;
	for (size_t i = 0; i < len;) {
		uint32_t cp = 0;
		size_t n = utf8_seq(u + i, len - i, &cp);

		if (n > 0 && (keep_backslash || u[i] != '\\') && !cp_unsafe(cp)) {
			memcpy(p, u + i, n);
			p += n;
			i += n;
			continue;
		}
		/* Escape every byte of a rejected sequence so the output
		 * stays a faithful, unambiguous rendering of the input
		 * (which is why the backslash itself is escaped too). */
		if (n == 0)
			n = 1;
		for (size_t k = 0; k < n; k++, i++) {
			*p++ = '\\';
			*p++ = 'x';
			*p++ = hex[u[i] >> 4];
			*p++ = hex[u[i] & 0xf];
		}
		changed = true;
	}
	*p = '\0';
	if (escaped != NULL)
		*escaped = changed;
	return out;
}

char *sc_escape_bytes(const char *s, size_t len, bool *escaped)
{
	return escape(s, len, escaped, false);
}
