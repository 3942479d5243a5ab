/*
 * Sessions (docs/sessions.md): the commands a caller sends to `sandcell
 * session` and the text helpers its events need.  The supervision itself
 * is in session_run.c.  A command line comes from the caller, who is
 * trusted with its own session but not with this process: every line is
 * parsed strictly and a bad one is refused, never half-obeyed.
 */
#include "internal.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

bool sc_session_id_ok(const char *s, size_t n)
{
	if (s == NULL || n == 0 || n > SC_SESSION_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* Messages are formatted clean (no strerror suffix): they go back to the
 * caller in a refused event. */
static int refuse(struct sandcell_error *err, const char *msg)
{
	sc_err(err, 0, "%s", msg);
	if (err)
		err->code = EINVAL;
	return -1;
}

void sc_session_cmd_free(struct sc_cmd *cmd)
{
	if (cmd == NULL)
		return;
	json_decref(cmd->text);
	memset(cmd, 0, sizeof(*cmd));
}

/* {"op":"add","kind":K,"name":N,"path":P} or {...,"refused":TEXT}: a
 * closed key set, a name as --input's, an absolute path without NULs. */
static int parse_add(json_t *root, struct sc_cmd *cmd, struct sandcell_error *err)
{
	struct sandcell_error ne = { 0, "" };
	const char *key, *kind_s;
	json_t *v, *kind, *name, *path, *refusal;
	char m[sizeof(ne.msg) + 64];

	json_object_foreach(root, key, v) {
		if (strcmp(key, "op") != 0 && strcmp(key, "kind") != 0 && strcmp(key, "name") != 0 &&
		    strcmp(key, "path") != 0 && strcmp(key, "refused") != 0) {
			char *k = sc_escape_bytes(key, strlen(key), NULL);

			snprintf(m, sizeof(m), "unknown key \"%.64s\" for op add", k ? k : "?");
			free(k);
			return refuse(err, m);
		}
	}
	kind = json_object_get(root, "kind");
	kind_s = json_string_value(kind);
	if (kind_s && strlen(kind_s) == json_string_length(kind) && strcmp(kind_s, "dataset") == 0)
		cmd->kind = SC_ADD_DATASET;
	else if (kind_s && strlen(kind_s) == json_string_length(kind) && strcmp(kind_s, "input") == 0)
		cmd->kind = SC_ADD_INPUT;
	else
		return refuse(err, "op add takes \"kind\": \"dataset\" or \"input\"");
	name = json_object_get(root, "name");
	if (!json_is_string(name) || strlen(json_string_value(name)) != json_string_length(name))
		return refuse(err, "op add takes \"name\" (a string)");
	if (sandcell_check_name(json_string_value(name), &ne) < 0) {
		snprintf(m, sizeof(m), "op add: %s", ne.msg);
		return refuse(err, m);
	}
	memcpy(cmd->name, json_string_value(name), json_string_length(name) + 1);
	path = json_object_get(root, "path");
	refusal = json_object_get(root, "refused");
	if ((path == NULL) == (refusal == NULL))
		return refuse(err, "op add takes either \"path\" or \"refused\"");
	if (path) {
		const char *p = json_string_value(path);

		if (p == NULL || strlen(p) != json_string_length(path) || p[0] != '/' ||
		    json_string_length(path) >= PATH_MAX)
			return refuse(err, "op add: \"path\" is an absolute host path (a string "
				      "without NUL, shorter than PATH_MAX)");
		cmd->text = json_incref(path);
		return 0;
	}
	if (cmd->kind != SC_ADD_DATASET)
		return refuse(err, "op add: \"refused\" answers a dataset request (kind dataset)");
	if (!json_is_string(refusal) || json_string_length(refusal) > SC_SESSION_REFUSAL_MAX) {
		snprintf(m, sizeof(m), "op add: \"refused\" is a string of at most %u bytes",
			 SC_SESSION_REFUSAL_MAX);
		return refuse(err, m);
	}
	cmd->refused = true;
	cmd->text = json_incref(refusal);
	return 0;
}

int sc_session_parse_cmd(const char *line, size_t len, struct sc_cmd *cmd,
			 struct sandcell_error *err)
{
	struct sandcell_error e = { 0, "" };
	const char *key, *op_s;
	json_t *root = NULL, *op, *id, *v;
	const char *text_key = NULL;
	size_t want = 1;

	memset(cmd, 0, sizeof(*cmd));
	if (len > SC_SESSION_LINE_MAX)
		return refuse(err, "the command line is longer than 64 MiB");
	/* Code and input values are the caller's text and may hold NULs. */
	if (sc_json_parse_ex(len ? line : "", len, SC_SESSION_LINE_MAX, 2, SC_JSON_ALLOW_NUL, &root,
			     &e) < 0) {
		char m[sizeof(e.msg) + 32];

		snprintf(m, sizeof(m), "not a JSON command: %.400s", e.msg);
		return refuse(err, m);
	}
	if (!json_is_object(root)) {
		json_decref(root);
		return refuse(err, "a command is a JSON object");
	}
	/* The id first, so that a refusal can name the cell it was about. */
	id = json_object_get(root, "id");
	if (json_is_string(id) && sc_session_id_ok(json_string_value(id), json_string_length(id)))
		memcpy(cmd->id, json_string_value(id), json_string_length(id) + 1);
	op = json_object_get(root, "op");
	op_s = json_string_value(op);
	if (op_s == NULL || strlen(op_s) != json_string_length(op)) {
		json_decref(root);
		return refuse(err, "a command has an \"op\" string");
	}
	if (strcmp(op_s, "run") == 0) {
		cmd->op = SC_CMD_RUN;
		text_key = "code";
		want = 3;
	} else if (strcmp(op_s, "input") == 0) {
		cmd->op = SC_CMD_INPUT;
		text_key = "value";
		want = 3;
	} else if (strcmp(op_s, "interrupt") == 0) {
		cmd->op = SC_CMD_INTERRUPT;
	} else if (strcmp(op_s, "close") == 0) {
		cmd->op = SC_CMD_CLOSE;
	} else if (strcmp(op_s, "add") == 0) {
		int rc;

		cmd->op = SC_CMD_ADD;
		rc = parse_add(root, cmd, err);
		json_decref(root);
		if (rc < 0) {
			json_decref(cmd->text);
			memset(cmd, 0, sizeof(*cmd));
		}
		return rc;
	} else {
		json_decref(root);
		cmd->op = 0;
		return refuse(err, "unknown op (run, input, interrupt, add or close)");
	}
	/* A closed key set: a key this version does not know could mean
	 * something the caller expects and we would silently not do. */
	json_object_foreach(root, key, v) {
		if (strcmp(key, "op") != 0 && !(text_key && (strcmp(key, "id") == 0 ||
							     strcmp(key, text_key) == 0))) {
			char *k = sc_escape_bytes(key, strlen(key), NULL);
			char m[160];

			snprintf(m, sizeof(m), "unknown key \"%.64s\" for op %s", k ? k : "?", op_s);
			free(k);
			json_decref(root);
			cmd->op = 0;
			return refuse(err, m);
		}
	}
	if (text_key) {
		v = json_object_get(root, text_key);
		if (json_object_size(root) != want || cmd->id[0] == '\0' || !json_is_string(v)) {
			char m[160];

			snprintf(m, sizeof(m), "op %s takes \"id\" (1 to %d characters of "
				 "[A-Za-z0-9._:-]) and \"%s\" (a string)", op_s, SC_SESSION_ID_MAX,
				 text_key);
			json_decref(root);
			cmd->op = 0;
			return refuse(err, m);
		}
		cmd->text = json_incref(v);
	}
	json_decref(root);
	return 0;
}

/* Length of the valid UTF-8 sequence at s (1 to 4), 0 if invalid, or
 * -1 if it is a valid beginning cut off by the end. */
static int utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char b = s[0];
	int len;
	unsigned lo = 0x80, hi = 0xbf;

	if (b < 0x80)
		return 1;
	if (b >= 0xc2 && b <= 0xdf)
		len = 2;
	else if (b >= 0xe0 && b <= 0xef)
		len = 3;
	else if (b >= 0xf0 && b <= 0xf4)
		len = 4;
	else
		return 0;
	/* The second byte's range excludes overlongs and surrogates. */
	if (b == 0xe0)
		lo = 0xa0;
	else if (b == 0xed)
		hi = 0x9f;
	else if (b == 0xf0)
		lo = 0x90;
	else if (b == 0xf4)
		hi = 0x8f;
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf))
			return 0;
	}
	return len;
}

char *sc_utf8_replace(const char *s, size_t len, bool final, size_t *used, size_t *out_len)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out;
	size_t i = 0, o = 0;

	/* Each input byte becomes at most 3 output bytes (U+FFFD). */
	if (len > (SIZE_MAX - 1) / 3 || (out = malloc(len * 3 + 1)) == NULL)
		return NULL;
	while (i < len) {
		int k = utf8_seq(p + i, len - i);

		if (k < 0 && !final)
			break;
		if (k <= 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, p + i, (size_t)k);
		o += (size_t)k;
		i += (size_t)k;
	}
	out[o] = '\0';
	*used = i;
	*out_len = o;
	return out;
}
