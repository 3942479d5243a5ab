/* Fuzzes every parser of bytes an HTTP client (or the token file) gives
 * sandcell-http (src/http/parse.c, request.c).
 *
 * First byte selects the parser: 0 token file, 1 route, 2 part name,
 * 3 run request, 4 session request, 5 cell body, 6 input body, 7 refusal
 * body, 8 Authorization header against a fixed token file, 9 a warm
 * session's event line (what the front end reads from its event pipe).
 *
 * Invariants: refusals carry a clean message; an accepted route has a
 * kind and, where it has one, a 32-hex id; an accepted part name is a
 * valid CLI name; every accepted session body becomes a command line that
 * the session's own parser (sc_session_parse_cmd) accepts with the same
 * op; a token is found only by its exact secret; an accepted event is an
 * object whose "ev" is the kind returned, and its re-serialization (what
 * the front end sends on) parses again to the same kind.
 */
#include "http.h"
#include "internal.h"
#include "fuzz_common.h"

#include <jansson.h>

static void check_cmd(char *line, enum sc_cmd_op op, struct sandcell_error *e)
{
	struct sc_cmd cmd;

	if (line == NULL) {
		fuzz_check_msg(e);
		return;
	}
	FUZZ_ASSERT(sc_session_parse_cmd(line, strlen(line), &cmd, e) == 0);
	FUZZ_ASSERT(cmd.op == op);
	sc_session_cmd_free(&cmd);
	free(line);
}

static void fuzz_tokens(const char *s, size_t n)
{
	struct sandcell_error e = { 0, "" };
	struct ht_tokens t;

	if (ht_tokens_parse(s, n, 4, 120, &t, &e) < 0) {
		fuzz_check_msg(&e);
		return;
	}
	FUZZ_ASSERT(t.n > 0);
	for (size_t i = 0; i < t.n; i++)
		FUZZ_ASSERT(sandcell_check_name(t.t[i].name, &e) == 0 && t.t[i].max_concurrent > 0);
	ht_tokens_free(&t);
}

static void fuzz_route(const char *s)
{
	struct ht_route r;

	if (ht_route_parse(s, &r) < 0)
		return;
	FUZZ_ASSERT(r.kind >= HR_HEALTHZ && r.kind <= HR_SESSION_DATASETS);
	FUZZ_ASSERT(r.id[0] == '\0' || strlen(r.id) == HT_ID_LEN);
	FUZZ_ASSERT(ht_route_allow(r.kind) != NULL);
}

static void fuzz_event(const char *s, size_t n)
{
	const char *kind = NULL, *again = NULL;
	json_t *ev = ht_event_parse(s, n, &kind), *ev2;
	char *out;

	if (ev == NULL)
		return;
	FUZZ_ASSERT(kind != NULL && strcmp(json_string_value(json_object_get(ev, "ev")), kind) == 0);
	out = json_dumps(ev, JSON_COMPACT);
	FUZZ_ASSERT(out != NULL && strchr(out, '\n') == NULL);
	ev2 = ht_event_parse(out, strlen(out), &again);
	FUZZ_ASSERT(ev2 != NULL && again == kind);
	json_decref(ev2);
	free(out);
	json_decref(ev);
}

static void fuzz_auth(const char *s)
{
	static const char file[] = "a:0123456789abcdef0123456789abcdef\nb:ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ:1:1\n";
	struct ht_tokens t;
	long k;

	FUZZ_ASSERT(ht_tokens_parse(file, sizeof(file) - 1, 4, 120, &t, NULL) == 0);
	k = ht_tokens_find(&t, s);
	if (k == 0)
		FUZZ_ASSERT(strcasecmp(s, "Bearer 0123456789abcdef0123456789abcdef") == 0 ||
			    strncasecmp(s, "bearer ", 7) == 0);
	if (k >= 0)
		FUZZ_ASSERT(strcmp(s + 7, k == 0 ? "0123456789abcdef0123456789abcdef"
						 : "ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ") == 0);
	ht_tokens_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sandcell_error e = { 0, "" };
	struct ht_request q;
	enum ht_part_kind kind;
	const char *name;
	char id[65], rname[129], *s;

	if (size == 0)
		return 0;
	s = fuzz_strndup(data + 1, size - 1);
	switch (data[0] % 10) {
	case 0: fuzz_tokens(s, size - 1); break;
	case 1: fuzz_route(s); break;
	case 2:
		if (ht_part_parse(s, &kind, &name, &e) < 0)
			fuzz_check_msg(&e);
		else
			FUZZ_ASSERT(name == NULL || sandcell_check_name(name, &e) == 0);
		break;
	case 3: case 4:
		if (ht_request_parse(s, size - 1, data[0] % 10 == 4, &q, &e) < 0) {
			fuzz_check_msg(&e);
		} else {
			FUZZ_ASSERT(data[0] % 10 == 4 || q.code != NULL);
			FUZZ_ASSERT(q.limits.wall_sec > 0 && q.limits.output_bytes <= INT64_MAX);
			ht_request_free(&q);
		}
		break;
	case 5: check_cmd(ht_cell_command(s, size - 1, 7, id, &e), SC_CMD_RUN, &e); break;
	case 6: check_cmd(ht_input_command(s, size - 1, &e), SC_CMD_INPUT, &e); break;
	case 7: check_cmd(ht_refuse_command(s, size - 1, rname, &e), SC_CMD_ADD, &e); break;
	case 8: fuzz_auth(s); break;
	default: fuzz_event(s, size - 1); break;
	}
	free(s);
	return 0;
}
