/* Sessions (docs/sessions.md): the command parser (session.c), the UTF-8
 * decoding of raw streams, and the streamed channel with its D and I
 * records (channel.c, sc_chan_stream). */
#include "internal.h"
#include "unit.h"

#include <jansson.h>
#include <stdbool.h>

static int parse(const char *line, struct sc_cmd *cmd, struct sandcell_error *err)
{
	return sc_session_parse_cmd(line, strlen(line), cmd, err);
}

static void refused(const char *line, const char *id, const char *needle)
{
	struct sandcell_error err = { 0, "" };
	struct sc_cmd cmd;

	CHECK_EQ_INT(parse(line, &cmd, &err), -1);
	CHECK_STR(cmd.id, id);
	CHECK(cmd.text == NULL);
	if (strstr(err.msg, needle) == NULL) {
		fprintf(stderr, "for %s: message '%s' lacks '%s'\n", line, err.msg, needle);
		CHECK(0);
	}
	sc_session_cmd_free(&cmd);
}

static void test_commands(void)
{
	struct sandcell_error err = { 0, "" };
	struct sc_cmd cmd;

	CHECK_EQ_INT(parse("{\"op\":\"run\",\"id\":\"c-1.a:b_2\",\"code\":\"x = 1\\u0000\"}", &cmd, &err), 0);
	CHECK_EQ_INT(cmd.op, SC_CMD_RUN);
	CHECK_STR(cmd.id, "c-1.a:b_2");
	CHECK_EQ_INT(json_string_length(cmd.text), 6); /* NULs are the caller's text */
	sc_session_cmd_free(&cmd);
	CHECK_EQ_INT(parse("{\"id\":\"i\",\"value\":\"\",\"op\":\"input\"}", &cmd, &err), 0);
	CHECK_EQ_INT(cmd.op, SC_CMD_INPUT);
	CHECK_STR(json_string_value(cmd.text), "");
	sc_session_cmd_free(&cmd);
	CHECK_EQ_INT(parse("{\"op\":\"interrupt\"}", &cmd, &err), 0);
	CHECK_EQ_INT(cmd.op, SC_CMD_INTERRUPT);
	sc_session_cmd_free(&cmd);
	CHECK_EQ_INT(parse(" {\"op\" : \"close\"} ", &cmd, &err), 0);
	CHECK_EQ_INT(cmd.op, SC_CMD_CLOSE);
	sc_session_cmd_free(&cmd);

	refused("", "", "not a JSON command");
	refused("{\"op\":\"close\"} {}", "", "not a JSON command");
	refused("[\"run\"]", "", "JSON object");
	refused("{\"op\":\"close\",\"op\":\"close\"}", "", "uplicate");
	refused("{\"op\":\"explode\",\"id\":\"a\"}", "a", "unknown op");
	refused("{\"op\":1}", "", "\"op\" string");
	refused("{\"op\":\"clo\\u0000se\"}", "", "\"op\" string");
	refused("{\"op\":\"close\",\"id\":\"a\"}", "a", "unknown key \"id\"");
	refused("{\"op\":\"interrupt\",\"now\":true}", "", "unknown key");
	refused("{\"op\":\"run\",\"id\":\"a\"}", "a", "takes \"id\"");
	refused("{\"op\":\"run\",\"id\":\"a\",\"code\":1}", "a", "takes \"id\"");
	refused("{\"op\":\"run\",\"id\":\"a\",\"value\":\"1\"}", "a", "unknown key \"value\"");
	refused("{\"op\":\"run\",\"id\":\"a b\",\"code\":\"1\"}", "", "takes \"id\"");
	refused("{\"op\":\"run\",\"id\":\"\",\"code\":\"1\"}", "", "takes \"id\"");
	refused("{\"op\":\"run\",\"id\":\"\\u00e9\",\"code\":\"1\"}", "", "takes \"id\"");
	refused("{\"op\":\"input\",\"id\":\"a\",\"value\":null}", "a", "takes \"id\"");
	refused("{\"op\":\"run\",\"id\":\"a\",\"code\":{\"x\":1}}", "a", "takes \"id\"");
	refused("{\"op\":\"run\",\"id\":\"a\",\"code\":\"\\ud800\"}", "", "not a JSON command");
	{
		char id[80];

		memset(id, 'a', 64);
		id[64] = '\0';
		CHECK(sc_session_id_ok(id, 64));
		CHECK(!sc_session_id_ok(id, 65));
		CHECK(!sc_session_id_ok(id, 0));
		CHECK(!sc_session_id_ok("a/b", 3));
		CHECK(!sc_session_id_ok("a\0b", 3));
	}
}

static void test_add_commands(void)
{
	struct sandcell_error err = { 0, "" };
	struct sc_cmd cmd;
	char line[6000];

	CHECK_EQ_INT(parse("{\"op\":\"add\",\"kind\":\"dataset\",\"name\":\"sales-2.x\","
			   "\"path\":\"/h/sales.scf\"}", &cmd, &err), 0);
	CHECK_EQ_INT(cmd.op, SC_CMD_ADD);
	CHECK_EQ_INT(cmd.kind, SC_ADD_DATASET);
	CHECK_STR(cmd.name, "sales-2.x");
	CHECK(!cmd.refused);
	CHECK_STR(json_string_value(cmd.text), "/h/sales.scf");
	CHECK_STR(cmd.id, "");
	sc_session_cmd_free(&cmd);
	CHECK_EQ_INT(parse("{\"name\":\"a\",\"path\":\"/a\",\"kind\":\"input\",\"op\":\"add\"}",
			   &cmd, &err), 0);
	CHECK_EQ_INT(cmd.kind, SC_ADD_INPUT);
	sc_session_cmd_free(&cmd);
	CHECK_EQ_INT(parse("{\"op\":\"add\",\"kind\":\"dataset\",\"name\":\"a\",\"refused\":\"no\"}",
			   &cmd, &err), 0);
	CHECK(cmd.refused);
	CHECK_STR(json_string_value(cmd.text), "no");
	sc_session_cmd_free(&cmd);

	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\",\"path\":\"/a\",\"id\":\"c\"}", "",
		"unknown key \"id\"");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\",\"path\":\"/a\",\"mode\":1}", "",
		"unknown key \"mode\"");
	refused("{\"op\":\"add\",\"kind\":\"file\",\"name\":\"a\",\"path\":\"/a\"}", "", "\"kind\"");
	refused("{\"op\":\"add\",\"kind\":\"in\\u0000put\",\"name\":\"a\",\"path\":\"/a\"}", "",
		"\"kind\"");
	refused("{\"op\":\"add\",\"name\":\"a\",\"path\":\"/a\"}", "", "\"kind\"");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"path\":\"/a\"}", "", "\"name\"");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a/b\",\"path\":\"/a\"}", "",
		"contains '/'");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"..\",\"path\":\"/a\"}", "", "'..'");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"-a\",\"path\":\"/a\"}", "",
		"starts with '-'");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\\u0000b\",\"path\":\"/a\"}", "",
		"\"name\"");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\",\"path\":\"a\"}", "", "absolute");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\",\"path\":\"/a\\u0000\"}", "",
		"absolute");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\",\"path\":1}", "", "absolute");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\"}", "", "either");
	refused("{\"op\":\"add\",\"kind\":\"dataset\",\"name\":\"a\",\"path\":\"/a\",\"refused\":\"\"}",
		"", "either");
	refused("{\"op\":\"add\",\"kind\":\"input\",\"name\":\"a\",\"refused\":\"no\"}", "",
		"dataset request");
	refused("{\"op\":\"add\",\"kind\":\"dataset\",\"name\":\"a\",\"refused\":null}", "", "4096");
	{
		/* A name of 128 bytes is one; 129 is not. */
		char name[130];

		memset(name, 'n', 129);
		name[128] = '\0';
		snprintf(line, sizeof(line), "{\"op\":\"add\",\"kind\":\"input\",\"name\":\"%s\","
			 "\"path\":\"/a\"}", name);
		CHECK_EQ_INT(parse(line, &cmd, &err), 0);
		sc_session_cmd_free(&cmd);
		name[128] = 'n';
		name[129] = '\0';
		snprintf(line, sizeof(line), "{\"op\":\"add\",\"kind\":\"input\",\"name\":\"%s\","
			 "\"path\":\"/a\"}", name);
		refused(line, "", "longer than 128");
	}
	{
		/* A refusal's text: 4096 bytes, not one more. */
		int n = snprintf(line, sizeof(line), "{\"op\":\"add\",\"kind\":\"dataset\","
				 "\"name\":\"a\",\"refused\":\"");

		memset(line + n, 'r', 4096);
		strcpy(line + n + 4096, "\"}");
		CHECK_EQ_INT(parse(line, &cmd, &err), 0);
		CHECK_EQ_INT(json_string_length(cmd.text), 4096);
		sc_session_cmd_free(&cmd);
		memset(line + n, 'r', 4097);
		strcpy(line + n + 4097, "\"}");
		refused(line, "", "4096");
	}
}

static void utf8(const char *in, size_t n, bool final, const char *want, size_t want_used)
{
	size_t used = 99, len = 0;
	char *out = sc_utf8_replace(in, n, final, &used, &len);

	CHECK(out != NULL);
	CHECK_STR(out, want);
	CHECK_EQ_INT(len, strlen(want));
	CHECK_EQ_INT(used, want_used);
	free(out);
}

static void test_utf8(void)
{
	utf8("abc", 3, false, "abc", 3);
	utf8("a\xc3\xa9", 3, false, "a\xc3\xa9", 3);
	utf8("a\xc3", 2, false, "a", 1);			 /* the rest comes later */
	utf8("a\xc3", 2, true, "a\xef\xbf\xbd", 2);
	utf8("\xff" "b", 2, false, "\xef\xbf\xbd" "b", 2);
	utf8("\xc0\xaf", 2, false, "\xef\xbf\xbd\xef\xbf\xbd", 2); /* overlong */
	utf8("\xed\xa0\x80", 3, false, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3); /* surrogate */
	utf8("\xf0\x9f\x98", 3, false, "", 0);
	utf8("\xf0\x9f\x98\x80", 4, false, "\xf0\x9f\x98\x80", 4);
	{
		/* A NUL is valid UTF-8 and kept (the event encodes it). */
		size_t used = 0, len = 0;
		char *out = sc_utf8_replace("x\0y", 3, false, &used, &len);

		CHECK(out != NULL && len == 3 && used == 3 && memcmp(out, "x\0y", 3) == 0);
		free(out);
	}
}

/* ------------------------------------------------------- streamed channel */

struct seen {
	json_t *outputs;
	json_t *controls; /* [tag, value-or-null, why] */
	struct sc_chan *c;
	bool end_on_done;
	json_t *ended;	  /* what sc_chan_cell_end gave at each D */
};

static void on_output(void *ctx, json_t *o)
{
	struct seen *s = ctx;

	json_array_append_new(s->outputs, o);
}

static void on_control(void *ctx, char tag, json_t *v, const char *why)
{
	struct seen *s = ctx;
	char t[2] = { tag, 0 };

	json_array_append_new(s->controls, json_pack("[s,O,s]", t, v ? v : json_null(), why));
	if (tag == 'D' && v != NULL && s->end_on_done) {
		struct sc_chan_out o;

		CHECK_EQ_INT(sc_chan_cell_end(s->c, &o, NULL), 0);
		json_array_append_new(s->ended, json_pack("{s:O,s:I,s:b}", "result",
							  o.result ? o.result : json_null(), "dropped",
							  (json_int_t)o.dropped, "truncated", o.truncated));
		sc_chan_out_free(&o);
	}
}

static void stream(struct seen *s, const char *text, size_t step, const struct sc_chan_limits *lim)
{
	static struct sc_chan_sink sink;
	size_t len = strlen(text);

	s->outputs = json_array();
	s->controls = json_array();
	s->ended = json_array();
	s->c = sc_chan_new(lim);
	CHECK(s->c != NULL);
	sink.ctx = s;
	sink.output = on_output;
	sink.control = on_control;
	sc_chan_stream(s->c, &sink);
	if (step == 0)
		step = len ? len : 1;
	for (size_t i = 0; i < len; i += step)
		sc_chan_feed(s->c, text + i, len - i < step ? len - i : step);
}

static void seen_free(struct seen *s)
{
	sc_chan_free(s->c);
	json_decref(s->outputs);
	json_decref(s->controls);
	json_decref(s->ended);
}

static const struct sc_chan_limits big = { 1 << 20, 16 << 20, 8 << 20, 10000 };

static void test_stream_records(void)
{
	const char *text =
		"O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"a\"}\n"
		"O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"b\"}\n"
		"{\"v\":1}\n"
		"I {\"id\":\"c1\",\"prompt\":\"p\",\"password\":true}\n"
		"Q {\"id\":\"c1\",\"name\":\"sales\"}\n"
		"D {\"id\":\"c1\",\"execution_count\":3,\"status\":\"ok\"}\n"
		"O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"c\"}\n"
		"{\"v\":2}\n"
		"D {\"id\":\"c2\",\"execution_count\":4,\"status\":\"interrupted\"}\n";
	size_t steps[] = { 0, 1, 3, 17 };

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct seen s = { 0 };

		s.end_on_done = true;
		stream(&s, text, steps[k], &big);
		/* Streams are not merged: each record is its own event. */
		CHECK_EQ_INT(json_array_size(s.outputs), 3);
		CHECK_STR(json_string_value(json_object_get(json_array_get(s.outputs, 1), "text")), "b");
		CHECK_EQ_INT(json_array_size(s.controls), 4);
		CHECK_STR(json_string_value(json_array_get(json_array_get(s.controls, 0), 0)), "I");
		CHECK(json_is_true(json_object_get(json_array_get(json_array_get(s.controls, 0), 1),
						   "password")));
		CHECK_STR(json_string_value(json_array_get(json_array_get(s.controls, 1), 0)), "Q");
		CHECK_STR(json_string_value(json_object_get(json_array_get(json_array_get(s.controls, 1), 1),
							    "name")), "sales");
		CHECK_STR(json_string_value(json_array_get(json_array_get(s.controls, 3), 0)), "D");
		/* Each D ended its own cell: its own result. */
		CHECK_EQ_INT(json_array_size(s.ended), 2);
		CHECK_EQ_INT(json_integer_value(json_object_get(
				     json_object_get(json_array_get(s.ended, 0), "result"), "v")), 1);
		CHECK_EQ_INT(json_integer_value(json_object_get(
				     json_object_get(json_array_get(s.ended, 1), "result"), "v")), 2);
		seen_free(&s);
	}
}

static void rejected(const char *record, const char *needle)
{
	struct seen s = { 0 };
	json_t *c;

	stream(&s, record, 0, &big);
	CHECK_EQ_INT(json_array_size(s.controls), 1);
	c = json_array_get(s.controls, 0);
	CHECK(json_is_null(json_array_get(c, 1)));
	if (strstr(json_string_value(json_array_get(c, 2)) ?: "", needle) == NULL) {
		fprintf(stderr, "for %s: '%s' lacks '%s'\n", record, json_string_value(json_array_get(c, 2)),
			needle);
		CHECK(0);
	}
	seen_free(&s);
}

static void test_stream_rejects(void)
{
	char *big_prompt, *huge;
	size_t n = SC_SESSION_PROMPT_MAX + 1;

	rejected("D {bad\n", "");
	rejected("D {\"id\":\"a\",\"execution_count\":1}\n", "lacks");
	rejected("D {\"id\":\"a\",\"execution_count\":1,\"status\":\"ok\",\"x\":1}\n", "unknown key");
	rejected("D {\"id\":\"a b\",\"execution_count\":1,\"status\":\"ok\"}\n", "id is");
	rejected("D {\"id\":\"a\",\"execution_count\":-1,\"status\":\"ok\"}\n", "execution_count");
	rejected("D {\"id\":\"a\",\"execution_count\":1.5,\"status\":\"ok\"}\n", "execution_count");
	rejected("D {\"id\":\"a\",\"execution_count\":1,\"status\":\"killed\"}\n", "status");
	rejected("D {\"id\":\"a\",\"execution_count\":1,\"status\":\"ok\\u0000\"}\n", "status");
	rejected("D {\"id\":\"a\",\"id\":\"a\",\"execution_count\":1,\"status\":\"ok\"}\n", "uplicate");
	rejected("D [[[[1]]]]\n", "");
	rejected("Q {bad\n", "");
	rejected("Q {\"id\":\"a\"}\n", "lacks");
	rejected("Q {\"id\":\"a\",\"name\":\"x\",\"path\":\"/etc\"}\n", "unknown key");
	rejected("Q {\"id\":\"a\",\"name\":\"../x\"}\n", "name is");
	rejected("Q {\"id\":\"a\",\"name\":\".x\"}\n", "name is");
	rejected("Q {\"id\":\"a\",\"name\":\"x\\u0000y\"}\n", "name is");
	rejected("Q {\"id\":\"a\",\"name\":1}\n", "name is");
	rejected("Q {\"id\":\"a b\",\"name\":\"x\"}\n", "id is");
	rejected("Q {\"id\":\"a\",\"name\":\"x\",\"name\":\"y\"}\n", "uplicate");
	{
		char q[2048];

		memcpy(q, "Q ", 2);
		memset(q + 2, 'x', 1500);
		strcpy(q + 1502, "\n");
		rejected(q, "over 1024");
	}
	rejected("I {\"id\":\"a\",\"prompt\":1,\"password\":false}\n", "prompt");
	rejected("I {\"id\":\"a\",\"prompt\":\"p\",\"password\":0}\n", "password");
	big_prompt = unit_malloc(n + 64);
	memcpy(big_prompt, "I {\"id\":\"a\",\"prompt\":\"", 22);
	memset(big_prompt + 22, 'p', n);
	strcpy(big_prompt + 22 + n, "\",\"password\":false}\n");
	rejected(big_prompt, "prompt");
	free(big_prompt);
	huge = unit_malloc(8 << 20);
	memcpy(huge, "D ", 2);
	memset(huge + 2, 'x', (8 << 20) - 4);
	strcpy(huge + (8 << 20) - 2, "\n");
	rejected(huge, "over");
	free(huge);
	{
		/* One-shot mode knows no D or I: such a line is a result
		 * record that does not parse, as before. */
		struct sandcell_error err = { 0, "" };
		struct sc_chan *c = sc_chan_new(&big);
		struct sc_chan_out o;
		const char *t = "D {\"id\":\"a\",\"execution_count\":1,\"status\":\"ok\"}\n";

		sc_chan_feed(c, t, strlen(t));
		CHECK_EQ_INT(sc_chan_finish(c, &o, &err), 0);
		CHECK(o.result == NULL);
		CHECK(strstr(o.result_error, "result record") != NULL);
		sc_chan_out_free(&o);
		sc_chan_free(c);
	}
}

static void test_stream_caps(void)
{
	struct sc_chan_limits lim = { 1 << 20, 16 << 20, 8 << 20, 2 };
	const char *out = "O {\"output_type\":\"stream\",\"name\":\"stdout\",\"text\":\"x\"}\n";
	const char *done = "D {\"id\":\"a\",\"execution_count\":1,\"status\":\"ok\"}\n";
	struct seen s = { 0 };
	char text[4096] = "";
	struct sc_chan_out o;

	for (int i = 0; i < 5; i++)
		strcat(text, out);
	strcat(text, "O {\"output_type\":\"nope\"}\n");
	stream(&s, text, 0, &lim);
	/* Two kept, then the count cap: nothing more until the cell ends. */
	CHECK_EQ_INT(json_array_size(s.outputs), 2);
	CHECK_EQ_INT(sc_chan_cell_end(s.c, &o, NULL), 0);
	CHECK_EQ_INT(json_array_size(s.outputs), 3); /* the marker, at the end */
	CHECK(strstr(json_string_value(json_object_get(json_array_get(s.outputs, 2), "text")),
		     "4 more outputs") != NULL);
	CHECK_EQ_INT(o.dropped, 4);
	CHECK(o.truncated);
	sc_chan_out_free(&o);
	/* The next cell starts afresh; a rejected output is marked at once. */
	sc_chan_feed(s.c, "O {\"output_type\":\"nope\"}\n", 25);
	CHECK_EQ_INT(json_array_size(s.outputs), 4);
	CHECK(strstr(json_string_value(json_object_get(json_array_get(s.outputs, 3), "text")),
		     "output 1 was rejected") != NULL);
	sc_chan_feed(s.c, out, strlen(out));
	sc_chan_feed(s.c, done, strlen(done));
	CHECK_EQ_INT(json_array_size(s.outputs), 5);
	/* A record cut off by the end of the session. */
	sc_chan_feed(s.c, "O {\"output_type\":", 17);
	CHECK_EQ_INT(sc_chan_cell_end(s.c, &o, NULL), 0);
	CHECK(strstr(json_string_value(json_object_get(json_array_get(s.outputs, 5), "text")),
		     "cut off") != NULL);
	sc_chan_out_free(&o);
	seen_free(&s);
}

int main(void)
{
	test_commands();
	test_add_commands();
	test_utf8();
	test_stream_records();
	test_stream_rejects();
	test_stream_caps();
	return unit_done("test_session");
}
