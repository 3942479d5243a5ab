/* The warm server's framing (sc_frame_recv): the fds may come with any of
 * the header's bytes, in as many writes as the client likes; too many fds,
 * fds with the body, a stall mid-header and a closed peer are refused and
 * leave no fd open.  And the client (sandcell_run_remote): a full report
 * for every outcome, the cancel as a half-close.  And an input's optional
 * "dataset" field: strict on the way in, sent only when set, round trip. */
#include "internal.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* One write of bytes [off, off+len) of msg, with n_fds copies of
 * /dev/null attached when n_fds > 0. */
static void send_piece(int s, const unsigned char *msg, size_t off, size_t len, size_t n_fds)
{
	union {
		char b[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	int fds[8];
	struct iovec iov = { (void *)(msg + off), len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t i;

	for (i = 0; i < n_fds; i++)
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (n_fds > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		if (c == NULL)
			abort();
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	CHECK_EQ_INT(sendmsg(s, &mh, MSG_NOSIGNAL), (ssize_t)len);
	for (i = 0; i < n_fds; i++)
		close(fds[i]);
}

/* A frame "{}" (4-byte header + 2 bytes) sent in writes: cuts[i] is the
 * offset where write i starts, fds[i] how many fds it carries. */
struct plan {
	const char *what;
	size_t cuts[6];
	size_t n_cuts;
	size_t fds[6];
	size_t upto;	  /* bytes sent in all, 0 = the whole frame */
	bool close_early; /* the peer hangs up after the writes */
	bool ok;	  /* expected outcome */
	const char *msg;  /* part of the refusal message */
};

static void run_plan(const struct plan *p)
{
	static const unsigned char frame[] = { 2, 0, 0, 0, '{', '}' };
	int sp[2], fds[3] = { -1, -1, -1 }, before = open_fds();
	size_t n_fds = 3, len = 0, i;
	struct sandcell_error err = { 0, "" };
	char *buf = NULL;
	int rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		abort();
	for (i = 0; i < p->n_cuts; i++) {
		size_t total = p->upto ? p->upto : sizeof(frame);
		size_t end = i + 1 < p->n_cuts ? p->cuts[i + 1] : total;
		send_piece(sp[1], frame, p->cuts[i], end - p->cuts[i], p->fds[i]);
	}
	if (p->close_early)
		close(sp[1]);
	rc = sc_frame_recv(sp[0], &buf, &len, 1024, fds, &n_fds, 200, &err);
	if (p->ok) {
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(n_fds, 3);
		CHECK_EQ_INT(len, 2);
		CHECK(buf != NULL && memcmp(buf, "{}", 3) == 0);
		for (i = 0; i < n_fds && i < 3; i++) {
			int fl = fcntl(fds[i], F_GETFD);
			CHECK(fl >= 0 && (fl & FD_CLOEXEC));
			close(fds[i]);
		}
	} else {
		CHECK_EQ_INT(rc, -1);
		CHECK_EQ_INT(n_fds, 0);
		CHECK(buf == NULL);
		if (strstr(err.msg, p->msg) == NULL) {
			unit_failures++;
			fprintf(stderr, "FAIL %s: message \"%s\" lacks \"%s\"\n", p->what, err.msg, p->msg);
		}
	}
	free(buf);
	close(sp[0]);
	if (!p->close_early)
		close(sp[1]);
	/* Kept fds were closed above, refused ones by the reader. */
	if (open_fds() != before) {
		unit_failures++;
		fprintf(stderr, "FAIL %s: %d fds open before, %d after\n", p->what, before, open_fds());
	}
	unit_checks++;
}

/* The kernel drops fds sent with bytes that recv() reads (no control
 * buffer): the frame arrives without them, nothing leaks, and the caller's
 * count of three refuses it. */
static void fds_with_the_body(void)
{
	static const unsigned char frame[] = { 2, 0, 0, 0, '{', '}' };
	int sp[2], fds[3] = { -1, -1, -1 }, before = open_fds();
	size_t n_fds = 3, len = 0;
	struct sandcell_error err = { 0, "" };
	char *buf = NULL;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
		abort();
	send_piece(sp[1], frame, 0, 4, 0);
	send_piece(sp[1], frame, 4, 2, 3);
	CHECK_EQ_INT(sc_frame_recv(sp[0], &buf, &len, 1024, fds, &n_fds, 200, &err), 0);
	CHECK_EQ_INT(n_fds, 0);
	CHECK_EQ_INT(len, 2);
	free(buf);
	close(sp[0]);
	close(sp[1]);
	CHECK_EQ_INT(open_fds(), before);
}

/* A one-connection server in a child: it reads the request, then per
 * mode hangs up, answers garbage, or waits for the client's half-close
 * and answers with a report saying it saw one. */
enum fake { HANG_UP, GARBAGE, AWAIT_CANCEL };

static pid_t fake_server(const char *path, enum fake mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pid_t pid;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0)
		abort();
	pid = fork();
	if (pid == 0) {
		/* A whole frame, but not JSON. */
		static const char garbage[] = "\x05\x00\x00\x00{\"ex\"";
		int fds[3] = { -1, -1, -1 }, c = accept(ls, NULL, NULL);
		size_t n_fds = 3, len;
		char *req = NULL, b;
		struct sandcell_error e;

		if (c < 0 || sc_frame_recv(c, &req, &len, 1 << 20, fds, &n_fds, 5000, &e) < 0 || n_fds != 3)
			_exit(2);
		if (mode == GARBAGE && write(c, garbage, sizeof(garbage) - 1) < 0)
			_exit(3);
		if (mode == AWAIT_CANCEL) {
			struct sandcell_result *r;
			char *rep;

			/* EOF, nothing more: the client shut its side down. */
			if (read(c, &b, 1) != 0)
				_exit(4);
			r = sandcell_result_refused(SANDCELL_CANCELLED, "saw the half-close", NULL);
			rep = r ? sandcell_report_json(r) : NULL;
			if (rep == NULL || sc_frame_send(c, rep, strlen(rep), NULL, 0) < 0)
				_exit(5);
		}
		_exit(0);
	}
	close(ls);
	return pid;
}

static json_t *remote(const char *path, int cancel_fd, int *code, int *rc)
{
	struct sandcell_config cfg;
	struct sandcell_error err = { 0, "" };
	char *report = NULL;
	json_t *doc;

	sandcell_config_init(&cfg);
	cfg.code = "pass";
	cfg.code_len = 4;
	cfg.cancel_fd = cancel_fd;
	cfg.stdout_fd = cfg.stderr_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	*rc = sandcell_run_remote(path, &cfg, &report, code, &err);
	close(cfg.stdout_fd);
	doc = report ? json_loads(report, JSON_REJECT_DUPLICATES, NULL) : NULL;
	free(report);
	return doc;
}

static void check_status(json_t *doc, const char *status, int code, const char *words)
{
	const char *reason = json_string_value(json_object_get(doc, "reason"));

	CHECK(doc != NULL);
	CHECK_STR(json_string_value(json_object_get(doc, "status")), status);
	CHECK_EQ_INT(json_integer_value(json_object_get(doc, "exit_code")), code);
	CHECK(json_is_false(json_object_get(json_object_get(doc, "script"), "started")));
	CHECK(json_object_get(doc, "limits") != NULL && json_object_get(doc, "isolation") != NULL);
	CHECK(reason != NULL && strstr(reason, words) != NULL);
	if (reason == NULL || strstr(reason, words) == NULL)
		fprintf(stderr, "reason: %s\n", reason ? reason : "(none)");
}

static void run_remote_outcomes(void)
{
	char path[64];
	int code, rc, st, p[2];
	json_t *doc;
	pid_t pid;

	snprintf(path, sizeof(path), "/tmp/sc_test_protocol.%d.sock", (int)getpid());
	/* Nobody there. */
	unlink(path);
	doc = remote(path, -1, &code, &rc);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(code, SANDCELL_EXIT_UNREACHABLE);
	check_status(doc, "unreachable", SANDCELL_EXIT_UNREACHABLE, "cannot reach the sandcell server");
	json_decref(doc);
	/* A server that hangs up, or answers garbage: a sandbox error. */
	pid = fake_server(path, HANG_UP);
	doc = remote(path, -1, &code, &rc);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ_INT(rc, 0);
	check_status(doc, "sandbox-error", SANDCELL_EXIT_SANDBOX, "without an answer");
	json_decref(doc);
	pid = fake_server(path, GARBAGE);
	doc = remote(path, -1, &code, &rc);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	check_status(doc, "sandbox-error", SANDCELL_EXIT_SANDBOX, "malformed report");
	json_decref(doc);
	/* A cancel: the connection is half-closed, and the report comes. */
	if (pipe(p) < 0 || write(p[1], "c", 1) != 1)
		abort();
	pid = fake_server(path, AWAIT_CANCEL);
	doc = remote(path, p[0], &code, &rc);
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CHECK_EQ_INT(rc, 0);
	CHECK_EQ_INT(code, SANDCELL_EXIT_CANCELLED);
	check_status(doc, "cancelled", SANDCELL_EXIT_CANCELLED, "saw the half-close");
	json_decref(doc);
	close(p[0]);
	close(p[1]);
	/* A request that cannot be sent is the caller's: -1. */
	{
		struct sandcell_config cfg;
		struct sandcell_error err = { 0, "" };
		char long_path[200], *report = NULL;

		memset(long_path, 'x', sizeof(long_path) - 1);
		long_path[sizeof(long_path) - 1] = '\0';
		sandcell_config_init(&cfg);
		cfg.code = "pass";
		cfg.code_len = 4;
		CHECK_EQ_INT(sandcell_run_remote(long_path, &cfg, &report, &code, &err), -1);
		CHECK(report == NULL && code == SANDCELL_EXIT_USAGE);
	}
	unlink(path);
}

/* A request around one inputs array (JSON text). */
static char *request_with_inputs(const char *inputs)
{
	static const char fmt[] =
		"{\"v\":1,\"code\":\"print(1)\",\"code_name\":null,\"args\":[],\"inputs\":%s,"
		"\"values\":null,\"output_dir\":null,\"python\":\"/usr/bin/python3\","
		"\"cgroup_parent\":null,\"allow_reduced\":false,\"limits\":{}}";
	char *out = NULL;

	if (asprintf(&out, fmt, inputs) < 0)
		abort();
	return out;
}

static void parse_inputs(const char *inputs, bool ok, const char *words, struct sc_request *q)
{
	struct sandcell_error err = { 0, "" };
	char *text = request_with_inputs(inputs);
	int rc = sc_request_parse(text, strlen(text), q, &err);

	free(text);
	CHECK_EQ_INT(rc, ok ? 0 : -1);
	if (!ok && (words == NULL || strstr(err.msg, words) == NULL)) {
		unit_failures++;
		fprintf(stderr, "FAIL inputs %s: message \"%s\" lacks \"%s\"\n", inputs, err.msg,
			words ? words : "");
	}
}

static void dataset_field(void)
{
	static const struct {
		const char *inputs, *words;
	} refused[] = {
		{ "[{\"name\":\"x\",\"path\":\"/a\",\"dataset\":\"true\"}]", "'dataset' must be a boolean" },
		{ "[{\"name\":\"x\",\"path\":\"/a\",\"dataset\":1}]", "'dataset' must be a boolean" },
		{ "[{\"name\":\"x\",\"path\":\"/a\",\"dataset\":null}]", "'dataset' must be a boolean" },
		{ "[{\"name\":\"x\",\"path\":\"/a\",\"dataset\":true,\"mode\":\"rw\"}]", "optional \"dataset\"" },
		{ "[{\"name\":\"x\",\"path\":\"/a\",\"mode\":\"rw\"}]", "optional \"dataset\"" },
		{ "[{\"name\":\"x\",\"dataset\":true,\"mode\":\"/a\"}]", "optional \"dataset\"" },
		{ "[{\"name\":\"x\",\"path\":\"a\",\"dataset\":true}]", "ABSOLUTE PATH" },
		{ "[{\"name\":\".x\",\"path\":\"/a\",\"dataset\":true}]", "request: dataset: name '.x'" },
		{ "[{\"name\":\".x\",\"path\":\"/a\"}]", "request: input: name '.x'" },
	};
	struct sandcell_input in[3] = {
		{ "sales", "/srv/sales.scf", SANDCELL_INPUT_DATASET },
		{ "sales", "/srv/sales.csv", 0 },
		{ "raw", "/srv/raw", 0 },
	};
	struct sandcell_config cfg;
	struct sc_request q, q2;
	struct sandcell_error err = { 0, "" };
	char *text;
	size_t i;

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		parse_inputs(refused[i].inputs, false, refused[i].words, &q);
		/* A refused request is freed by the parser. */
		CHECK(q.root == NULL && q.inputs == NULL);
	}

	parse_inputs("[{\"name\":\"a\",\"path\":\"/a\",\"dataset\":true},"
		     "{\"name\":\"a\",\"path\":\"/b\",\"dataset\":false},"
		     "{\"name\":\"b\",\"path\":\"/c\"}]", true, NULL, &q);
	CHECK_EQ_INT(q.cfg.n_inputs, 3);
	if (q.cfg.n_inputs == 3) {
		CHECK_EQ_INT(q.cfg.inputs[0].flags, SANDCELL_INPUT_DATASET);
		CHECK_EQ_INT(q.cfg.inputs[1].flags, 0);
		CHECK_EQ_INT(q.cfg.inputs[2].flags, 0);
		CHECK_STR(q.cfg.inputs[0].path, "/a");
	}
	sc_request_free(&q);

	/* What the client sends: "dataset" only on datasets (a server that
	 * predates them still reads plain inputs), and it parses back. */
	sandcell_config_init(&cfg);
	cfg.code = "print(1)";
	cfg.code_len = 8;
	cfg.inputs = in;
	cfg.n_inputs = 3;
	text = sc_request_build(&cfg);
	CHECK(text != NULL);
	if (text == NULL)
		return;
	CHECK(strstr(text, "{\"name\":\"sales\",\"path\":\"/srv/sales.scf\",\"dataset\":true}") != NULL);
	CHECK(strstr(text, "{\"name\":\"sales\",\"path\":\"/srv/sales.csv\"}") != NULL);
	CHECK(strstr(text, "{\"name\":\"raw\",\"path\":\"/srv/raw\"}") != NULL);
	CHECK_EQ_INT(sc_request_parse(text, strlen(text), &q2, &err), 0);
	free(text);
	CHECK_EQ_INT(q2.cfg.n_inputs, 3);
	for (i = 0; i < 3 && i < q2.cfg.n_inputs; i++) {
		CHECK_STR(q2.cfg.inputs[i].name, in[i].name);
		CHECK_STR(q2.cfg.inputs[i].path, in[i].path);
		CHECK_EQ_INT(q2.cfg.inputs[i].flags, in[i].flags);
	}
	sc_request_free(&q2);

	/* A flag the protocol cannot carry: no request rather than one
	 * without it. */
	in[2].flags = 1u << 5;
	CHECK(sc_request_build(&cfg) == NULL);
}

/* A session request: strict, its three limits only there, no code; the
 * listing request exactly {"v":1,"op":"sessions"}; round trip. */
static void parse_text(const char *text, bool ok, const char *words, struct sc_request *q)
{
	struct sandcell_error err = { 0, "" };
	int rc = sc_request_parse(text, strlen(text), q, &err);

	CHECK_EQ_INT(rc, ok ? 0 : -1);
	if (!ok)
		CHECK(strstr(err.msg, words) != NULL);
}

#define SESS_REQ(extra, limits)                                                         \
	"{\"v\":1,\"code\":\"\",\"code_name\":null,\"args\":[],\"inputs\":[],\"values\":null," \
	"\"output_dir\":null,\"python\":\"/usr/bin/python3\",\"cgroup_parent\":null,"      \
	"\"allow_reduced\":false" extra ",\"limits\":{" limits "}}"

static void session_requests(void)
{
	struct sc_request q;
	struct sandcell_config cfg;
	char *text;

	parse_text(SESS_REQ(",\"session\":true", "\"idle_sec\":5,\"cell_wall_sec\":2.5"), true, "", &q);
	CHECK(q.cfg.flags & SANDCELL_SESSION);
	CHECK(q.cfg.flags & SANDCELL_CELL);
	CHECK(q.cfg.limits.idle_sec == 5 && q.cfg.limits.cell_wall_sec == 2.5 && q.cfg.limits.cell_cpu_sec == 0);
	/* a session's budgets when left out */
	CHECK(q.cfg.limits.wall_sec == 86400 && q.cfg.limits.cpu_sec == 3600);
	cfg = q.cfg;
	text = sc_request_build(&cfg);
	if (text == NULL)
		abort();
	CHECK(strstr(text, "\"session\":true") != NULL && strstr(text, "\"idle_sec\"") != NULL);
	CHECK(strstr(text, "cell_cpu_sec") == NULL);
	sc_request_free(&q);
	parse_text(text, true, "", &q);
	CHECK(q.cfg.limits.idle_sec == 5 && (q.cfg.flags & SANDCELL_SESSION));
	sc_request_free(&q);
	free(text);

	parse_text(SESS_REQ(",\"session\":false", "\"idle_sec\":5"), false, "unknown limit 'idle_sec'", &q);
	parse_text(SESS_REQ("", "\"cell_cpu_sec\":5"), false, "unknown limit", &q);
	parse_text(SESS_REQ(",\"session\":\"yes\"", ""), false, "'session' must be a boolean", &q);
	parse_text(SESS_REQ(",\"session\":true", "\"idle_sec\":0"), false, "time limits", &q);
	parse_text(SESS_REQ(",\"session\":true", "\"idle_sec\":true"), false, "time limits", &q);
	parse_text(SESS_REQ(",\"session\":true,\"detachable\":true", ""), false, "unknown field", &q);
	parse_text("{\"v\":1,\"code\":\"x\",\"code_name\":null,\"args\":[],\"inputs\":[],\"values\":null,"
		   "\"output_dir\":null,\"python\":\"/p\",\"cgroup_parent\":null,\"allow_reduced\":false,"
		   "\"session\":true,\"limits\":{}}", false, "session takes no code", &q);
	parse_text("{\"v\":1,\"code\":\"\",\"code_name\":null,\"args\":[\"a\"],\"inputs\":[],\"values\":null,"
		   "\"output_dir\":null,\"python\":\"/p\",\"cgroup_parent\":null,\"allow_reduced\":false,"
		   "\"session\":true,\"limits\":{}}", false, "session takes no code", &q);

	parse_text("{\"v\":1,\"op\":\"sessions\"}", true, "", &q);
	CHECK(q.op == SC_OP_SESSIONS);
	sc_request_free(&q);
	parse_text("{\"v\":1,\"op\":\"sessions\",\"x\":1}", false, "op request", &q);
	parse_text("{\"v\":1,\"op\":\"kill\"}", false, "op request", &q);
	parse_text("{\"v\":2,\"op\":\"sessions\"}", false, "protocol version", &q);
	parse_text("{\"op\":\"sessions\"}", false, "protocol version", &q);
}

int main(void)
{
	static const struct plan plans[] = {
		{ "whole header in one write", { 0, 4 }, 2, { 3 }, 0, false, true, NULL },
		{ "header and body in one write", { 0 }, 1, { 3 }, 0, false, true, NULL },
		{ "fds with the first byte, then the rest", { 0, 1 }, 2, { 3 }, 0, false, true, NULL },
		{ "one byte per write, fds on the first", { 0, 1, 2, 3, 4 }, 5, { 3 }, 0, false, true,
		  NULL },
		{ "fds with the third header byte", { 0, 2, 3, 4 }, 4, { 0, 3 }, 0, false, true, NULL },
		{ "fds with the last header byte", { 0, 3, 4 }, 3, { 0, 3 }, 0, false, true, NULL },
		{ "fds split over two header writes", { 0, 1, 4 }, 3, { 1, 2 }, 0, false, true, NULL },
		{ "too many fds", { 0, 1 }, 2, { 4 }, 0, false, false, "4 fds attached, 3 expected" },
		{ "too many fds over two writes", { 0, 1, 2 }, 3, { 3, 2 }, 0, false, false,
		  "5 fds attached, 3 expected" },
		{ "peer gone mid-header", { 0 }, 1, { 3 }, 2, true, false, "truncated frame header" },
		{ "stall mid-header", { 0 }, 1, { 3 }, 2, false, false, "truncated frame header" },
		{ "peer gone mid-body", { 0 }, 1, { 3 }, 5, true, false, "truncated frame (2 bytes" },
		{ "nothing sent, peer gone", { 0 }, 0, { 0 }, 0, true, false,
		  "connection closed before a frame" },
	};

	for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++)
		run_plan(&plans[i]);
	fds_with_the_body();
	run_remote_outcomes();
	dataset_field();
	session_requests();
	return unit_done("test_protocol");
}
