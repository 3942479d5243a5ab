/*
 * The warm server's framing (docs/warm.md): a 4-byte little-endian
 * length, then the bytes; a request's three fds (stdin, stdout, stderr)
 * travel as SCM_RIGHTS on the header's bytes.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sc_frame_send(int fd, const char *buf, size_t len, const int *fds, size_t n_fds)
{
	unsigned char hdr[4] = { (unsigned char)len, (unsigned char)(len >> 8),
				 (unsigned char)(len >> 16), (unsigned char)(len >> 24) };
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov = { hdr, sizeof(hdr) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (len > UINT32_MAX || n_fds > 4)
		return -1;
	if (n_fds > 0) {
		struct cmsghdr *c;
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.b;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
		c = CMSG_FIRSTHDR(&mh);
		/* Never NULL, msg_controllen holds a header; checked because
		 * gcc -fanalyzer cannot tell (at -O1). */
		if (c == NULL) {
			errno = EINVAL;
			return -1;
		}
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
	}
	if (sendmsg(fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(hdr))
		return -1;
	return write_full(fd, buf, len);
}

/* Reads exactly len bytes, giving up after timeout_ms of silence. */
static int read_full(int fd, char *buf, size_t len, int timeout_ms)
{
	while (len > 0) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r == 0 ? ETIMEDOUT : errno;
			return -1;
		}
		n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? EPIPE : errno;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Moves the SCM_RIGHTS fds of one received chunk into fds[] while fewer
 * than want have arrived; closes the rest.  *got counts every fd seen, kept
 * or not, so the caller can refuse a frame that carried too many. */
static void take_fds(struct msghdr *mh, int *fds, size_t want, size_t *got)
{
	struct cmsghdr *c;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k, cnt;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < cnt; k++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
			if (*got < want)
				fds[*got] = f;
			else
				close(f);
			(*got)++;
		}
	}
}

/*
 * The header is read with recvmsg until its 4 bytes are in, taking the fds
 * from whichever of those reads carry them.  A stream socket hands back at
 * most one sender's write that carries fds per recvmsg (the kernel never
 * joins it with the bytes that follow), so a client that sends the fds
 * with the first byte and the other three bytes in a later write is
 * served like one that sends the whole header in one sendmsg.  Fds sent
 * with the body are dropped by the kernel (recv has no control buffer),
 * so the frame then has too few and is refused by the caller.  Every read
 * waits at most timeout_ms: a client that stops mid-header is dropped.
 */
int sc_frame_recv(int fd, char **out, size_t *len, size_t max, int *fds, size_t *n_fds,
		  int timeout_ms, struct sandcell_error *err)
{
	unsigned char hdr[4];
	size_t want = n_fds ? *n_fds : 0, got = 0, have = 0, size;
	bool ctrunc = false;
	char *buf;

	*out = NULL;
	if (n_fds)
		*n_fds = 0;
	while (have < sizeof(hdr)) {
		union {
			char b[CMSG_SPACE(sizeof(int) * 8)];
			struct cmsghdr align;
		} u;
		struct iovec iov = { hdr + have, sizeof(hdr) - have };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;
		int r = poll(&p, 1, timeout_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int e = r == 0 ? ETIMEDOUT : errno;
			if (have == 0 && got == 0)
				sc_err(err, e, "protocol: no frame");
			else
				sc_err(err, e, "protocol: truncated frame header");
			goto fail;
		}
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		/* Keep the fds we were promised, close anything else. */
		take_fds(&mh, fds, want, &got);
		ctrunc |= (mh.msg_flags & MSG_CTRUNC) != 0;
		if (n < 0) {
			sc_err(err, errno, "protocol: reading the frame header");
			goto fail;
		}
		if (n == 0) {
			if (have == 0)
				sc_err(err, EPIPE, "protocol: connection closed before a frame");
			else
				sc_err(err, EPROTO, "protocol: truncated frame header");
			goto fail;
		}
		have += (size_t)n;
	}
	if (got > want) {
		sc_err(err, EPROTO, "protocol: %zu fds attached, %zu expected", got, want);
		goto fail;
	}
	if (ctrunc) {
		sc_err(err, EPROTO, "protocol: truncated control data with the frame header");
		goto fail;
	}
	size = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
	if (size > max) {
		sc_err(err, EMSGSIZE, "protocol: frame of %zu bytes exceeds the limit of %zu", size, max);
		goto fail;
	}
	buf = malloc(size + 1);
	if (buf == NULL) {
		sc_err(err, ENOMEM, "protocol");
		goto fail;
	}
	if (read_full(fd, buf, size, timeout_ms) < 0) {
		int e = errno;
		free(buf);
		sc_err(err, e, "protocol: truncated frame (%zu bytes announced)", size);
		goto fail;
	}
	buf[size] = '\0';
	*out = buf;
	*len = size;
	if (n_fds)
		*n_fds = got;
	return 0;
fail:
	/* No frame: the caller gets no fds either (*n_fds stays 0). */
	for (size_t k = 0; k < got && k < want; k++)
		close(fds[k]);
	return -1;
}

