/*
 * A spare sandbox's PREP and GO (internal.h, "A spare sandbox"): what its
 * supervisor hands the code's process so that it confines itself as the
 * sandbox init confines the code of a cold run.  PREP, while the spare is
 * idle: the layers every run of the spare shares (Landlock rules, the
 * seccomp program, the root it must be in).  GO, with the run: its
 * limits, command line, environment and streams.  The supervisor builds
 * both with the functions that build a cold run's (spawn.c); nothing in
 * them is read from the sandbox.  Each travels as one memfd (argv and the
 * seccomp program can be large), a GO with the code's four streams, over
 * the spare's channel, whose ends only the supervisor, the template and
 * the waiting code's process hold.
 */
#include "internal.h"
#include "proto.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define GO_MAGIC 0x73634f47u /* "GOcs" */
#define GO_MAX (8u << 20)
#define GO_STRINGS_MAX 512

const struct sc_spare_ops *sc_spare;

void sc_set_spare(const struct sc_spare_ops *ops)
{
	sc_spare = ops;
}

/* The fixed part (a multiple of 8 bytes); the program's instructions and
 * then the strings (argv, envp, ro_exec, ro, rw, each NUL terminated)
 * follow it. */
struct go_hdr {
	uint32_t magic;
	uint32_t n_argv, n_env, n_ro_exec, n_ro, n_rw;
	uint64_t bpf_len;
	uint64_t root_dev, root_ino;
	struct sandcell_limits limits;
	struct sc_landlock_info ll;
	uint8_t drop_groups, list_root;
	uint8_t pad[6];
};
_Static_assert(sizeof(struct go_hdr) % 8 == 0, "the program after the header stays aligned");

static size_t count(const char *const *v)
{
	size_t n = 0;
	while (v && v[n])
		n++;
	return n;
}

/* The GO is assembled in memory and written with one call (a write per
 * string was forty system calls on the request's path). */
static size_t strings_len(const char *const *v, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	return len;
}

static char *put(char *p, const void *src, size_t n)
{
	if (n > 0)
		memcpy(p, src, n);
	return p + n;
}

static char *put_strings(char *p, const char *const *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p = put(p, v[i], strlen(v[i]) + 1);
	return p;
}

int sc_send_fds(int sock, const struct sc_msg *m, const int *fds, size_t n)
{
	struct iovec iov = { (void *)m, sizeof(*m) };
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(n * sizeof(int)) };
	struct cmsghdr *c;

	if (n > 8) {
		errno = EINVAL;
		return -1;
	}
	if (n == 0) {
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -1;
	}
	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	if (c == NULL) { /* cannot happen: the buffer holds 8 */
		errno = EINVAL;
		return -1;
	}
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n * sizeof(int));
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -1;
}

int sc_recv_fds(int sock, struct sc_msg *m, int *fds, size_t max, size_t *n, int flags)
{
	union {
		char buf[CMSG_SPACE(8 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	ssize_t r;

	*n = 0;
	memset(m, 0, sizeof(*m));
	do
		r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
	while (r < 0 && errno == EINTR);
	for (c = CMSG_FIRSTHDR(&mh); r > 0 && c; c = CMSG_NXTHDR(&mh, c)) {
		size_t k, cnt;
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (*n < max)
				fds[(*n)++] = fd;
			else
				close(fd);
		}
	}
	if (r == 0)
		return 0;
	if (r != (ssize_t)sizeof(*m) || (mh.msg_flags & MSG_CTRUNC)) {
		while (*n > 0)
			close(fds[--*n]);
		return -1;
	}
	m->text[sizeof(m->text) - 1] = '\0';
	return 1;
}

int sc_go_send(int chan, int type, const struct sc_go *g, const int fds[4], struct sandcell_error *err)
{
	struct go_hdr h;
	struct sc_msg m;
	char *buf, *p;
	size_t len;
	int mfd, all[5], rc;

	memset(&h, 0, sizeof(h));
	h.magic = GO_MAGIC;
	h.n_argv = (uint32_t)count(g->argv);
	h.n_env = (uint32_t)count(g->envp);
	h.n_ro_exec = (uint32_t)g->rules.n_ro_exec;
	h.n_ro = (uint32_t)g->rules.n_ro;
	h.n_rw = (uint32_t)g->rules.n_rw;
	h.bpf_len = g->bpf.len;
	h.root_dev = g->root_dev;
	h.root_ino = g->root_ino;
	if (g->limits)
		h.limits = *g->limits;
	h.ll = g->ll;
	h.drop_groups = g->drop_groups;
	h.list_root = g->rules.list_root;
	len = sizeof(h) + g->bpf.len * 8 + strings_len(g->argv, h.n_argv) +
	      strings_len(g->envp, h.n_env) + strings_len(g->rules.ro_exec, h.n_ro_exec) +
	      strings_len(g->rules.ro, h.n_ro) + strings_len(g->rules.rw, h.n_rw);
	if (len > GO_MAX)
		return sc_err(err, E2BIG, "spare: a GO of %zu bytes", len);
	buf = malloc(len);
	if (buf == NULL)
		return sc_err(err, ENOMEM, "spare: building the GO");
	p = put(buf, &h, sizeof(h));
	p = put(p, g->bpf.insns, g->bpf.len * 8);
	p = put_strings(p, g->argv, h.n_argv);
	p = put_strings(p, g->envp, h.n_env);
	p = put_strings(p, g->rules.ro_exec, h.n_ro_exec);
	p = put_strings(p, g->rules.ro, h.n_ro);
	put_strings(p, g->rules.rw, h.n_rw);
	mfd = memfd_create("sandcell-go", MFD_CLOEXEC);
	if (mfd < 0 || write(mfd, buf, len) != (ssize_t)len) {
		int e = mfd < 0 ? errno : (errno ? errno : EIO);
		if (mfd >= 0)
			close(mfd);
		free(buf);
		return sc_err(err, e, "spare: writing the GO");
	}
	free(buf);
	all[0] = mfd;
	if (type == SC_MSG_GO)
		memcpy(&all[1], fds, 4 * sizeof(int));
	memset(&m, 0, sizeof(m));
	m.type = type;
	rc = sc_send_fds(chan, &m, all, type == SC_MSG_GO ? 5 : 1);
	close(mfd);
	return rc < 0 ? sc_err(err, errno, "spare: sending the %s", type == SC_MSG_GO ? "GO" : "PREP") : 0;
}

/* n NUL-terminated strings from *p (below end) into v[0..n), NULL after. */
static int take_strings(char **p, const char *end, const char **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *z = memchr(*p, '\0', (size_t)(end - *p));
		if (z == NULL)
			return -1;
		v[i] = *p;
		*p = z + 1;
	}
	v[n] = NULL;
	return 0;
}

/* The message of that type and its fds (a GO: five, a PREP: one; EOF:
 * 0), after any TAKEN notice. */
static int recv_go(int chan, int type, int fds[5])
{
	struct sc_msg m;
	size_t n;
	int r;

	do
		r = sc_recv_fds(chan, &m, fds, 5, &n, 0);
	while (r > 0 && m.type == SC_MSG_TAKEN && n == 0);
	if (r > 0 && (m.type != type || n != (type == SC_MSG_GO ? 5u : 1u))) {
		while (n > 0)
			close(fds[--n]);
		return -1;
	}
	return r;
}

/* A PREP holds the shared layers and nothing of a run; a GO the run's
 * part and no layer (the code's process has its layers by then). */
static bool go_shape_ok(int type, const struct go_hdr *h)
{
	bool layers = h->bpf_len > 0 || h->n_ro_exec + h->n_ro + h->n_rw > 0;

	if (type == SC_MSG_PREP)
		return h->n_argv == 0 && h->n_env == 0 && layers;
	return h->n_argv > 0 && !layers;
}

int sc_go_recv(int chan, int type, struct sc_go *g, void **mem, int fds[4], struct sandcell_error *err)
{
	struct go_hdr h;
	const char **v;
	char *buf, *p, *end;
	size_t n_str;
	off_t len;
	int all[5], rc;

	*mem = NULL;
	rc = recv_go(chan, type, all);
	if (rc <= 0) {
		if (rc == 0)
			return sc_err(err, 0, "spare: dropped");
		return sc_err(err, EPROTO, "spare: a malformed GO");
	}
	if (type == SC_MSG_GO)
		memcpy(fds, &all[1], 4 * sizeof(int));
	len = lseek(all[0], 0, SEEK_END);
	if (len < (off_t)sizeof(h) || len > (off_t)GO_MAX || pread(all[0], &h, sizeof(h), 0) != sizeof(h) ||
	    h.magic != GO_MAGIC || !go_shape_ok(type, &h)) {
		close(all[0]);
		return sc_err(err, EPROTO, "spare: a malformed GO");
	}
	n_str = (size_t)h.n_argv + h.n_env + h.n_ro_exec + h.n_ro + h.n_rw;
	if (n_str > GO_STRINGS_MAX || h.bpf_len > GO_MAX / 8) {
		close(all[0]);
		return sc_err(err, EPROTO, "spare: a GO out of bounds");
	}
	/* One block: the vectors (each NULL-terminated), then the bytes. */
	v = calloc(n_str + 5, sizeof(*v));
	buf = malloc((size_t)len);
	if (v == NULL || buf == NULL || pread(all[0], buf, (size_t)len, 0) != len) {
		free(v);
		free(buf);
		close(all[0]);
		return sc_err(err, ENOMEM, "spare: reading the GO");
	}
	close(all[0]);
	if ((uint64_t)len - sizeof(h) < h.bpf_len * 8) {
		free(v);
		free(buf);
		return sc_err(err, EPROTO, "spare: a malformed GO");
	}
	g->bpf.insns = buf + sizeof(h);
	g->bpf.len = h.bpf_len;
	p = buf + sizeof(h) + h.bpf_len * 8;
	end = buf + len;
	g->argv = v;
	g->envp = v + h.n_argv + 1;
	g->rules.ro_exec = v + h.n_argv + h.n_env + 2;
	g->rules.ro = v + h.n_argv + h.n_env + h.n_ro_exec + 3;
	g->rules.rw = v + h.n_argv + h.n_env + h.n_ro_exec + h.n_ro + 4;
	if (take_strings(&p, end, (const char **)g->argv, h.n_argv) < 0 ||
	    take_strings(&p, end, (const char **)g->envp, h.n_env) < 0 ||
	    take_strings(&p, end, (const char **)g->rules.ro_exec, h.n_ro_exec) < 0 ||
	    take_strings(&p, end, (const char **)g->rules.ro, h.n_ro) < 0 ||
	    take_strings(&p, end, (const char **)g->rules.rw, h.n_rw) < 0 ||
	    p != end) {
		free(v);
		free(buf);
		return sc_err(err, EPROTO, "spare: a malformed GO");
	}
	g->rules.n_ro_exec = h.n_ro_exec;
	g->rules.n_ro = h.n_ro;
	g->rules.n_rw = h.n_rw;
	g->rules.list_root = h.list_root;
	/* The limits are copied into the block's head, which holds the
	 * header: the header is not used after this. */
	memcpy(buf, &h.limits, sizeof(h.limits));
	g->limits = (const struct sandcell_limits *)(void *)buf;
	g->ll = h.ll;
	g->drop_groups = h.drop_groups;
	g->root_dev = h.root_dev;
	g->root_ino = h.root_ino;
	mem[0] = buf;
	/* v is reachable from g->argv; the caller frees both with
	 * free((void *)g->argv) and free(*mem). */
	return 0;
}
