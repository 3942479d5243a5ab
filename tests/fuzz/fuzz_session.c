/* Fuzzes a session's two hostile inputs (docs/sessions.md):
 *
 * First byte (control):
 *   bit 0  0: the rest is one command line for sc_session_parse_cmd (the
 *            caller's bytes, add included); 1: the rest is fed to a
 *            streamed channel (the sandbox's bytes, D, I and Q records) in
 *            pieces of (control >> 1) + 1 bytes, with tiny caps, and each
 *            D record ends the cell.
 *
 * Invariants: a refused command has a clean message and an id that is
 * empty or valid; an accepted one has the fields its op needs; every
 * output the channel hands on is a JSON object with an output_type, every
 * control value has a valid id; nothing leaks (ASan). */
#include "internal.h"
#include "fuzz_common.h"

#include <jansson.h>

static void on_output(void *ctx, json_t *o)
{
	(void)ctx;
	FUZZ_ASSERT(json_is_string(json_object_get(o, "output_type")));
	json_decref(o);
}

static struct sc_chan *chan;

static void on_control(void *ctx, char tag, json_t *v, const char *why)
{
	struct sc_chan_out o;
	json_t *id = json_object_get(v, "id");

	(void)ctx;
	FUZZ_ASSERT(tag == 'D' || tag == 'I' || tag == 'Q');
	if (v == NULL) {
		FUZZ_ASSERT(why != NULL && why[0] != '\0');
		return;
	}
	FUZZ_ASSERT(sc_session_id_ok(json_string_value(id), json_string_length(id)));
	if (tag == 'Q') {
		json_t *n = json_object_get(v, "name");

		FUZZ_ASSERT(json_object_size(v) == 2 && json_is_string(n) &&
			    strlen(json_string_value(n)) == json_string_length(n) &&
			    sandcell_check_name(json_string_value(n), NULL) == 0);
	}
	if (tag == 'D') {
		FUZZ_ASSERT(sc_chan_cell_end(chan, &o, NULL) == 0);
		sc_chan_out_free(&o);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		struct sandcell_error err = { 0, "" };
		struct sc_cmd cmd;

		if (sc_session_parse_cmd((const char *)data + 1, size - 1, &cmd, &err) < 0) {
			fuzz_check_msg(&err);
			FUZZ_ASSERT(cmd.id[0] == '\0' || sc_session_id_ok(cmd.id, strlen(cmd.id)));
			FUZZ_ASSERT(cmd.text == NULL);
		} else {
			FUZZ_ASSERT(cmd.op >= SC_CMD_RUN && cmd.op <= SC_CMD_ADD);
			if (cmd.op == SC_CMD_ADD) {
				/* A valid name; an absolute path, or a refusal of a
				 * dataset request within its cap. */
				FUZZ_ASSERT(sandcell_check_name(cmd.name, NULL) == 0 && cmd.id[0] == '\0');
				FUZZ_ASSERT(cmd.kind == SC_ADD_DATASET || cmd.kind == SC_ADD_INPUT);
				FUZZ_ASSERT(json_is_string(cmd.text));
				if (cmd.refused)
					FUZZ_ASSERT(cmd.kind == SC_ADD_DATASET &&
						    json_string_length(cmd.text) <= SC_SESSION_REFUSAL_MAX);
				else
					FUZZ_ASSERT(json_string_value(cmd.text)[0] == '/' &&
						    strlen(json_string_value(cmd.text)) ==
							    json_string_length(cmd.text));
			} else if (cmd.op == SC_CMD_RUN || cmd.op == SC_CMD_INPUT)
				FUZZ_ASSERT(json_is_string(cmd.text) &&
					    sc_session_id_ok(cmd.id, strlen(cmd.id)));
			else
				FUZZ_ASSERT(cmd.text == NULL && cmd.id[0] == '\0');
		}
		sc_session_cmd_free(&cmd);
		return 0;
	}
	{
		static const struct sc_chan_limits lim = { 256, 1024, 200, 4 };
		struct sc_chan_sink sink = { NULL, on_output, on_control };
		struct sc_chan_out o;
		size_t step = (size_t)(data[0] >> 1) + 1;

		chan = sc_chan_new(&lim);
		FUZZ_ASSERT(chan != NULL);
		sc_chan_stream(chan, &sink);
		for (size_t i = 1; i < size; i += step)
			sc_chan_feed(chan, (const char *)data + i, size - i < step ? size - i : step);
		FUZZ_ASSERT(sc_chan_cell_end(chan, &o, NULL) == 0);
		sc_chan_out_free(&o);
		sc_chan_free(chan);
		chan = NULL;
	}
	return 0;
}
