/* Fuzzes the warm server's side of the wire protocol (src/lib/request.c, frame.c):
 * the bytes a peer sends on `sandcell serve`'s socket.
 *
 * First byte (control):
 *   bit 0      0: the rest is one request text for sc_request_parse;
 *              1: the rest goes through a socketpair into sc_frame_recv
 *                 first (raw: 4-byte LE length, then the body), and a
 *                 frame it accepts is parsed as a request.
 *   bits 2-4   frame mode: how many fds (0-7) ride along as SCM_RIGHTS.
 *
 * Invariants: a refusal has a clean message that a report-shaped answer
 * can carry (terminated, no control bytes, valid UTF-8: send_refusal()
 * json-encodes it); an accepted request is fully validated (absolute
 * paths, valid names, limits in range, values an object) and survives
 * sc_request_build() -> sc_request_parse() unchanged; the frame reader
 * never keeps more fds than asked for, marks the ones it keeps
 * close-on-exec, leaks none and never returns more bytes than its cap.
 */
#include "internal.h"
#include "fuzz_common.h"

#include <fcntl.h>
#include <jansson.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME_MAX (64u << 10)

static void check_refusal(const struct sandcell_error *err)
{
	json_t *s;

	/* Show the message (escaped) before an invariant aborts on it. */
	for (size_t i = 0; i < strnlen(err->msg, sizeof(err->msg)); i++) {
		unsigned char ch = (unsigned char)err->msg[i];
		if (ch < 0x20 || ch == 0x7f) {
			fprintf(stderr, "refusal message: ");
			for (i = 0; i < strnlen(err->msg, sizeof(err->msg)); i++) {
				ch = (unsigned char)err->msg[i];
				fprintf(stderr, ch < 0x20 || ch >= 0x7f ? "\\x%02x" : "%c", ch);
			}
			fputc('\n', stderr);
			break;
		}
	}
	fuzz_check_msg(err);
	s = json_string(err->msg);
	FUZZ_ASSERT(s != NULL); /* else the server can send no answer at all */
	json_decref(s);
}

static bool str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool json_text_eq(const char *a, const char *b)
{
	json_t *x, *y;
	bool eq;

	if (a == NULL || b == NULL)
		return a == b;
	x = json_loads(a, JSON_DECODE_ANY, NULL);
	y = json_loads(b, JSON_DECODE_ANY, NULL);
	eq = x != NULL && y != NULL && json_equal(x, y);
	json_decref(x);
	json_decref(y);
	return eq;
}

static void check_accepted(const struct sc_request *q)
{
	const struct sandcell_config *c = &q->cfg;
	const struct sandcell_limits *l = &c->limits;
	struct sc_request q2;
	struct sandcell_error err = { 0, "" };
	char *text;
	size_t i;

	FUZZ_ASSERT(c->code != NULL);
	FUZZ_ASSERT(c->python != NULL);
	FUZZ_ASSERT(c->n_args <= 256 && c->n_inputs <= 1024);
	FUZZ_ASSERT(c->output_dir == NULL || c->output_dir[0] == '/');
	FUZZ_ASSERT(l->wall_sec > 0 && l->wall_sec <= 1e7);
	FUZZ_ASSERT(l->cpu_sec > 0 && l->cpu_sec <= 1e7);
	/* A session takes no code; only a session has its three limits. */
	if (c->flags & SANDCELL_SESSION)
		FUZZ_ASSERT(c->code_len == 0 && c->code_name == NULL && c->n_args == 0 &&
			    (c->flags & SANDCELL_CELL));
	else
		FUZZ_ASSERT(l->cell_wall_sec == 0 && l->cell_cpu_sec == 0 && l->idle_sec == 0);
	for (i = 0; i < c->n_args; i++)
		FUZZ_ASSERT(c->args[i] != NULL);
	FUZZ_ASSERT(c->n_args == 0 || c->args[c->n_args] == NULL);
	for (i = 0; i < c->n_inputs; i++) {
		FUZZ_ASSERT(sandcell_check_name(c->inputs[i].name, NULL) == 0);
		FUZZ_ASSERT(c->inputs[i].path[0] == '/');
		FUZZ_ASSERT((c->inputs[i].flags & ~(unsigned)SANDCELL_INPUT_DATASET) == 0);
	}
	if (c->values_json) {
		json_t *v = NULL;
		FUZZ_ASSERT(sc_json_parse(c->values_json, strlen(c->values_json), SIZE_MAX,
					  SC_JSON_MAX_DEPTH + 1, &v, NULL) == 0);
		FUZZ_ASSERT(json_is_object(v));
		json_decref(v);
	}
	/* The fds never come from the text. */
	FUZZ_ASSERT(c->stdin_fd == -1 && c->cancel_fd == -1);

	/* What the client library would send for this configuration parses
	 * back to the same configuration. */
	text = sc_request_build(c);
	FUZZ_ASSERT(text != NULL);
	if (sc_request_parse(text, strlen(text), &q2, &err) < 0) {
		fprintf(stderr, "rebuilt request refused: %s\n%s\n", err.msg, text);
		FUZZ_ASSERT(!"rebuilt request parses");
	}
	FUZZ_ASSERT(q2.cfg.code_len == c->code_len && memcmp(q2.cfg.code, c->code, c->code_len) == 0);
	FUZZ_ASSERT(str_eq(q2.cfg.code_name, c->code_name));
	FUZZ_ASSERT(str_eq(q2.cfg.python, c->python));
	FUZZ_ASSERT(str_eq(q2.cfg.output_dir, c->output_dir));
	FUZZ_ASSERT(str_eq(q2.cfg.cgroup_parent, c->cgroup_parent));
	FUZZ_ASSERT(q2.cfg.flags == c->flags);
	FUZZ_ASSERT(q2.cfg.n_args == c->n_args && q2.cfg.n_inputs == c->n_inputs);
	for (i = 0; i < c->n_args; i++)
		FUZZ_ASSERT(strcmp(q2.cfg.args[i], c->args[i]) == 0);
	for (i = 0; i < c->n_inputs; i++) {
		FUZZ_ASSERT(strcmp(q2.cfg.inputs[i].name, c->inputs[i].name) == 0);
		FUZZ_ASSERT(strcmp(q2.cfg.inputs[i].path, c->inputs[i].path) == 0);
		FUZZ_ASSERT(q2.cfg.inputs[i].flags == c->inputs[i].flags);
	}
	FUZZ_ASSERT(json_text_eq(q2.cfg.values_json, c->values_json));
	FUZZ_ASSERT(memcmp(&q2.cfg.limits, l, sizeof(*l)) == 0);
	sc_request_free(&q2);
	free(text);
}

static void parse_one(const char *buf, size_t len)
{
	struct sc_request q;
	struct sandcell_error err = { 0, "" };

	if (sc_request_parse(buf, len, &q, &err) < 0) {
		check_refusal(&err);
		/* A refused request is freed by the parser. */
		FUZZ_ASSERT(q.root == NULL && q.args == NULL && q.inputs == NULL && q.values == NULL);
		return;
	}
	/* The listing request: nothing but that exact object. */
	if (q.op == SC_OP_SESSIONS) {
		json_t *j = json_loadb(buf, len, 0, NULL);
		FUZZ_ASSERT(json_object_size(j) == 2);
		json_decref(j);
		sc_request_free(&q);
		return;
	}
	check_accepted(&q);
	sc_request_free(&q);
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static void frame_one(const uint8_t *data, size_t size, unsigned n_send)
{
	int sp[2], send_fds[7], fds[3] = { -1, -1, -1 };
	size_t n_fds = 3, len = 0, i;
	struct sandcell_error err = { 0, "" };
	char *buf = NULL;
	int before = count_fds();

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		abort();
	for (i = 0; i < n_send; i++) {
		send_fds[i] = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
		FUZZ_ASSERT(send_fds[i] >= 0);
	}
	/* The fds ride on the first byte, as a client's do on the header. */
	if (size > 0 || n_send > 0) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 7)];
			struct cmsghdr align;
		} u;
		char zero = 0;
		struct iovec iov = { size > 0 ? (void *)data : &zero, 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (n_send > 0) {
			struct cmsghdr *c;
			memset(&u, 0, sizeof(u));
			mh.msg_control = u.b;
			mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_send);
			c = CMSG_FIRSTHDR(&mh);
			FUZZ_ASSERT(c != NULL);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * n_send);
			memcpy(CMSG_DATA(c), send_fds, sizeof(int) * n_send);
		}
		FUZZ_ASSERT(sendmsg(sp[1], &mh, 0) == 1);
		if (size > 1)
			FUZZ_ASSERT(write(sp[1], data + 1, size - 1) == (ssize_t)(size - 1));
	}
	for (i = 0; i < n_send; i++)
		close(send_fds[i]);
	close(sp[1]); /* the peer is gone: every read ends */

	if (sc_frame_recv(sp[0], &buf, &len, FRAME_MAX, fds, &n_fds, 1000, &err) == 0) {
		FUZZ_ASSERT(buf != NULL && len <= FRAME_MAX && buf[len] == '\0');
		FUZZ_ASSERT(len + 4 <= size);
		parse_one(buf, len);
	} else {
		FUZZ_ASSERT(buf == NULL);
		check_refusal(&err);
	}
	FUZZ_ASSERT(n_fds <= 3 && n_fds <= n_send);
	for (i = 0; i < n_fds; i++) {
		int fl = fcntl(fds[i], F_GETFD);
		FUZZ_ASSERT(fl >= 0 && (fl & FD_CLOEXEC));
		close(fds[i]);
	}
	free(buf);
	close(sp[0]);
	/* Fds beyond the three asked for were closed by the reader. */
	FUZZ_ASSERT(count_fds() == before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t ctl;

	if (size == 0)
		return 0;
	ctl = data[0];
	data++;
	size--;
	if (ctl & 1)
		frame_one(data, size, (ctl >> 2) & 7);
	else
		parse_one((const char *)data, size);
	return 0;
}
