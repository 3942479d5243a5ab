/* The warm server's framing (sc_frame_recv): the fds may come with any of
 * the header's bytes, in as many writes as the client likes; too many fds,
 * fds with the body, a stall mid-header and a closed peer are refused and
 * leave no fd open. */
#include "internal.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
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
	return unit_done("test_protocol");
}
