/* A spare's PREP and GO (spare.c): what the supervisor sends arrives
 * whole, a GO with its four streams; a malformed or truncated one, a
 * message without its fds or of the other kind, a PREP that carries a run
 * or a GO that carries layers, and a closed channel are refused, never
 * half read. */
#include "internal.h"
#include "proto.h"
#include "unit.h"

#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const argv_[] = { "/usr/bin/python3", "-I", "-B", "/.sandcell/_sandcell_boot.py",
				      "code", "/code/__main__.py", "an arg", NULL };
static const char *const env_[] = { "HOME=/tmp", "SANDCELL_RESULT_FD=3", NULL };
static const char *const ro_exec[] = { "/usr", NULL };
static const char *const ro[] = { "/etc", "/code", "/input", NULL };
static const char *const rw[] = { "/tmp", "/output", NULL };
static uint64_t insns[3] = { 0x1111111111111111ull, 0x2222222222222222ull, 0x3333333333333333ull };

/* The layers and the root (a PREP's part). */
static struct sc_go sample_prep(void)
{
	struct sc_go g;

	memset(&g, 0, sizeof(g));
	g.ll.abi = 7;
	g.ll.scope_signal = true;
	g.rules.ro_exec = ro_exec;
	g.rules.n_ro_exec = 1;
	g.rules.ro = ro;
	g.rules.n_ro = 3;
	g.rules.rw = rw;
	g.rules.n_rw = 2;
	g.rules.list_root = true;
	g.bpf.insns = insns;
	g.bpf.len = 3;
	g.drop_groups = true;
	g.root_dev = 42;
	g.root_ino = 4242;
	return g;
}

/* The run (a GO's part). */
static struct sc_go sample(struct sandcell_limits *l)
{
	struct sc_go g;

	memset(&g, 0, sizeof(g));
	memset(l, 0, sizeof(*l));
	l->memory = 123456789;
	l->files = 77;
	l->wall_sec = 2.5;
	g.limits = l;
	g.argv = argv_;
	g.envp = env_;
	return g;
}

static void pipes(int fds[4], int ends[8])
{
	for (int i = 0; i < 4; i++) {
		if (pipe(ends + 2 * i) < 0)
			abort();
		fds[i] = ends[2 * i + 1];
	}
}

static void close_all(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void test_round_trip(void)
{
	struct sandcell_error e = { 0, "" };
	struct sandcell_limits l;
	struct sc_go p = sample_prep(), g = sample(&l), q, r;
	int sv[2], fds[4], ends[8], got[4] = { -1, -1, -1, -1 };
	void *pmem = NULL, *mem = NULL;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	pipes(fds, ends);
	CHECK(sc_go_send(sv[0], SC_MSG_PREP, &p, NULL, &e) == 0);
	CHECK(sc_go_send(sv[0], SC_MSG_GO, &g, fds, &e) == 0);
	memset(&q, 0, sizeof(q));
	CHECK(sc_go_recv(sv[1], SC_MSG_PREP, &q, &pmem, NULL, &e) == 0);
	CHECK(pmem != NULL);
	memset(&r, 0, sizeof(r));
	CHECK(sc_go_recv(sv[1], SC_MSG_GO, &r, &mem, got, &e) == 0);
	CHECK(mem != NULL);
	if (mem == NULL || pmem == NULL)
		return;
	CHECK(q.argv[0] == NULL && q.envp[0] == NULL);
	CHECK_EQ_INT(q.rules.n_ro, 3);
	CHECK(unit_str_eq(q.rules.ro[2], "/input") && unit_str_eq(q.rules.rw[1], "/output"));
	CHECK(unit_str_eq(q.rules.ro_exec[0], "/usr") && q.rules.list_root);
	CHECK_EQ_INT(q.bpf.len, 3);
	CHECK(memcmp(q.bpf.insns, insns, sizeof(insns)) == 0);
	CHECK_EQ_INT(q.ll.abi, 7);
	CHECK(q.ll.scope_signal && q.drop_groups);
	CHECK_EQ_INT(q.root_dev, 42);
	CHECK_EQ_INT(q.root_ino, 4242);
	for (int i = 0; argv_[i]; i++)
		CHECK(unit_str_eq(r.argv[i], argv_[i]));
	CHECK(r.argv[7] == NULL);
	CHECK(unit_str_eq(r.envp[1], "SANDCELL_RESULT_FD=3") && r.envp[2] == NULL);
	CHECK(r.rules.n_ro == 0 && r.rules.n_rw == 0 && r.rules.n_ro_exec == 0 && r.bpf.len == 0);
	CHECK_EQ_INT(r.limits->memory, 123456789);
	CHECK_EQ_INT(r.limits->files, 77);
	CHECK(r.limits->wall_sec == 2.5);
	free((void *)q.argv);
	free(pmem);
	/* The streams are the very pipes: a byte written on the received
	 * stdout end comes out of the pipe's read end. */
	CHECK(write(got[1], "x", 1) == 1);
	{
		char b = 0;
		CHECK(read(ends[2], &b, 1) == 1 && b == 'x');
	}
	free((void *)r.argv);
	free(mem);
	close_all(got, 4);
	close_all(ends, 8);
	close_all(sv, 2);
}

/* A GO message whose memfd holds text (no header), then one without
 * fds, then EOF: refused, refused, "dropped" (code 0). */
static void test_refusals(void)
{
	struct sandcell_error e = { 0, "" };
	struct sc_go r;
	struct sc_msg m;
	int sv[2], all[5], ends[8], fds[4], got[4];
	void *mem = (void *)1;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	pipes(fds, ends);
	all[0] = memfd_create("bad", 0);
	CHECK(all[0] >= 0 && write(all[0], "not a GO at all, but long enough to read a header from it"
					   "................................................................"
					   "................................................................",
				   185) == 185);
	memcpy(all + 1, fds, sizeof(fds));
	memset(&m, 0, sizeof(m));
	m.type = SC_MSG_GO;
	CHECK(sc_send_fds(sv[0], &m, all, 5) == 0);
	e.code = 0;
	CHECK(sc_go_recv(sv[1], SC_MSG_GO, &r, &mem, got, &e) < 0 && e.code == EPROTO && mem == NULL);
	/* no fds */
	CHECK(send(sv[0], &m, sizeof(m), 0) == (ssize_t)sizeof(m));
	e.code = 0;
	CHECK(sc_go_recv(sv[1], SC_MSG_GO, &r, &mem, got, &e) < 0 && e.code == EPROTO);
	/* a GO where the PREP was due, a PREP where the GO was, a GO with
	 * layers, a PREP with a command line: each well formed otherwise */
	{
		struct sandcell_limits l;
		struct sc_go g = sample(&l), p = sample_prep(), both = sample(&l);
		both.rules = p.rules;
		both.bpf = p.bpf;
		CHECK(sc_go_send(sv[0], SC_MSG_GO, &g, fds, &e) == 0);
		CHECK(sc_go_recv(sv[1], SC_MSG_PREP, &r, &mem, NULL, &e) < 0 && e.code == EPROTO && mem == NULL);
		CHECK(sc_go_send(sv[0], SC_MSG_PREP, &p, NULL, &e) == 0);
		CHECK(sc_go_recv(sv[1], SC_MSG_GO, &r, &mem, got, &e) < 0 && e.code == EPROTO && mem == NULL);
		CHECK(sc_go_send(sv[0], SC_MSG_GO, &both, fds, &e) == 0);
		CHECK(sc_go_recv(sv[1], SC_MSG_GO, &r, &mem, got, &e) < 0 && e.code == EPROTO && mem == NULL);
		close_all(got, 4);
		CHECK(sc_go_send(sv[0], SC_MSG_PREP, &both, NULL, &e) == 0);
		CHECK(sc_go_recv(sv[1], SC_MSG_PREP, &r, &mem, NULL, &e) < 0 && e.code == EPROTO && mem == NULL);
	}
	/* the supervisor closed the channel */
	close(sv[0]);
	e.code = -1;
	CHECK(sc_go_recv(sv[1], SC_MSG_GO, &r, &mem, got, &e) < 0 && e.code == 0);
	close(all[0]);
	close(sv[1]);
	close_all(ends, 8);
}

/* A GO cut short: the header promises more strings than the memfd has. */
static void test_truncated(void)
{
	struct sandcell_error e = { 0, "" };
	struct sandcell_limits l;
	struct sc_go g = sample(&l), r;
	int sv[2], sv2[2], fds[4], ends[8], got[4], all[5];
	struct sc_msg m;
	void *mem = NULL;
	char buf[4096];
	ssize_t n;

	/* A good GO, read raw off one pair, its memfd cut by 3 bytes and sent
	 * on another. */
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv2) == 0);
	pipes(fds, ends);
	CHECK(sc_go_send(sv[0], SC_MSG_GO, &g, fds, &e) == 0);
	{
		union {
			char b[CMSG_SPACE(5 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { &m, sizeof(m) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		CHECK(recvmsg(sv[1], &mh, 0) == (ssize_t)sizeof(m));
		memcpy(all, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(all));
	}
	n = pread(all[0], buf, sizeof(buf), 0);
	CHECK(n > 3);
	close(all[0]);
	all[0] = memfd_create("cut", 0);
	CHECK(write(all[0], buf, (size_t)n - 3) == n - 3);
	CHECK(sc_send_fds(sv2[0], &m, all, 5) == 0);
	CHECK(sc_go_recv(sv2[1], SC_MSG_GO, &r, &mem, got, &e) < 0 && e.code == EPROTO && mem == NULL);
	close_all(all, 5);
	close_all(sv, 2);
	close_all(sv2, 2);
	close_all(ends, 8);
}

int main(void)
{
	test_round_trip();
	test_refusals();
	test_truncated();
	return unit_done("test_spare");
}
