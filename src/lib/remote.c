/*
 * The warm server's client (sandcell_run_remote, sandcell_sessions_remote):
 * one request frame out, one answer frame (the JSON report) back; a
 * report made here for what the server could not answer.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A report made here, for an outcome the server could not report: it
 * never answered (unreachable), or it hung up or answered garbage. */
static int local_report(enum sandcell_status st, const struct sandcell_config *cfg, const char *why,
			char **report, int *exit_code, struct sandcell_error *err)
{
	struct sandcell_result *r = sandcell_result_refused(st, why, &cfg->limits);

	*report = r ? sandcell_report_json(r) : NULL;
	if (r)
		*exit_code = sandcell_result_exit_code(r);
	sandcell_result_free(r);
	if (*report == NULL)
		return sc_err(err, ENOMEM, "%s", why);
	return 0;
}

/* Whether the server has read every byte of the request (SIOCOUTQ: what
 * we sent and its reader has not consumed) and has not answered: a
 * server that refuses from its queue (busy, stopping) never reads the
 * request, and its close drops the unread bytes only after its answer is
 * in our receive queue, so a refusal is never taken for a reading. */
static bool request_read(int s)
{
	struct pollfd p = { s, POLLIN, 0 };
	int unread = -1;

	return ioctl(s, SIOCOUTQ, &unread) == 0 && unread == 0 && poll(&p, 1, 0) == 0;
}

/* Waits until the server's answer is readable.  cancel_fd becoming
 * readable first cancels the run: our side of the connection is shut
 * down for writing, which the server's supervisor sees (it watches the
 * connection), and the answer, the run's report, still comes.  With
 * accepted_fd, one byte is written to it once the server's worker has
 * read the request (nothing tells that but the socket's send queue: it
 * is checked at 1, 2, 4... ms, then every 16 ms until then). */
static void await_answer(int s, int cancel_fd, int accepted_fd)
{
	bool cancelled = cancel_fd < 0, told = accepted_fd < 0;
	int wait_ms = 1;

	for (;;) {
		struct pollfd p[2] = { { s, POLLIN, 0 }, { cancel_fd, POLLIN, 0 } };
		int r = poll(p, cancelled ? 1 : 2, told ? -1 : wait_ms);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || p[0].revents)
			return;
		if (r > 0 && p[1].revents) {
			shutdown(s, SHUT_WR);
			cancelled = true;
		}
		if (!told && request_read(s)) {
			if (write(accepted_fd, "a", 1) < 0) {
				/* the caller stopped listening: nothing to tell */
			}
			told = true;
		}
		if (wait_ms < 16)
			wait_ms *= 2;
	}
}

int sandcell_run_remote(const char *socket_path, const struct sandcell_config *cfg,
			char **report, int *exit_code, struct sandcell_error *err)
{
	return sc_run_remote(socket_path, cfg, -1, report, exit_code, err);
}

int sc_run_remote(const char *socket_path, const struct sandcell_config *cfg, int accepted_fd,
		  char **report, int *exit_code, struct sandcell_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fds[3] = { cfg->stdin_fd, cfg->stdout_fd, cfg->stderr_fd };
	int s = -1, nullfd = -1, rc = -1;
	char *req = NULL, *resp = NULL, why[600];
	size_t rlen;
	bool sent;
	json_t *j = NULL;

	*report = NULL;
	*exit_code = SANDCELL_EXIT_USAGE;
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return sc_err(err, ENAMETOOLONG, "server socket %s", socket_path);
	strcpy(sa.sun_path, socket_path);
	req = sc_request_build(cfg);
	if (req == NULL)
		return sc_err(err, EINVAL, "cannot encode the request (names, paths and code must be "
				   "UTF-8, input flags known)");
	if (fds[0] < 0) {
		nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		fds[0] = nullfd;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		sc_err(err, errno, "socket");
		*exit_code = SANDCELL_EXIT_SANDBOX;
		goto out;
	}
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(why, sizeof(why), "cannot reach the sandcell server at %.400s: %s", socket_path,
			 strerror(errno));
		rc = local_report(SANDCELL_UNREACHABLE, cfg, why, report, exit_code, err);
		goto out;
	}
	/* A server that refuses early (another uid's) answers and hangs up,
	 * maybe before it read the request: its answer is still read. */
	sent = sc_frame_send(s, req, strlen(req), fds, 3) == 0;
	snprintf(why, sizeof(why), "sending the request to %.400s: %s", socket_path, strerror(errno));
	await_answer(s, cfg->cancel_fd, sent ? accepted_fd : -1);
	/* The answer comes when the run is over: no timeout of our own, the
	 * server enforces the wall clock and the queue timeout. */
	if (sc_frame_recv(s, &resp, &rlen, 64u << 20, NULL, NULL, -1, err) < 0) {
		char m[sizeof(why)];
		if (sent)
			snprintf(m, sizeof(m), "the server at %.300s closed the connection without an answer "
				 "(%.200s)", socket_path, err ? err->msg : "");
		else
			snprintf(m, sizeof(m), "%s", why);
		rc = local_report(SANDCELL_SANDBOX_ERROR, cfg, m, report, exit_code, err);
		goto out;
	}
	/* A report may carry NULs the code printed (as \u0000). */
	j = json_loadb(resp, rlen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
	if (!json_is_object(j) || !json_is_integer(json_object_get(j, "exit_code")) ||
	    !json_is_string(json_object_get(j, "status"))) {
		snprintf(why, sizeof(why), "the server at %.400s sent a malformed report", socket_path);
		rc = local_report(SANDCELL_SANDBOX_ERROR, cfg, why, report, exit_code, err);
		goto out;
	}
	*exit_code = (int)json_integer_value(json_object_get(j, "exit_code"));
	*report = resp;
	resp = NULL;
	rc = 0;
out:
	json_decref(j);
	free(resp);
	free(req);
	if (s >= 0)
		close(s);
	if (nullfd >= 0)
		close(nullfd);
	return rc;
}

int sandcell_sessions_remote(const char *socket_path, char **listing, struct sandcell_error *err)
{
	static const char req[] = "{\"v\":1,\"op\":\"sessions\"}";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *resp = NULL;
	size_t rlen;
	json_t *j = NULL;
	int s, rc = -1;

	*listing = NULL;
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return sc_err(err, ENAMETOOLONG, "server socket %s", socket_path);
	strcpy(sa.sun_path, socket_path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return sc_err(err, errno, "socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		sc_err(err, errno, "cannot reach the sandcell server at %s", socket_path);
		goto out;
	}
	if (sc_frame_send(s, req, strlen(req), NULL, 0) < 0) {
		sc_err(err, errno, "sending the request to %s", socket_path);
		goto out;
	}
	if (sc_frame_recv(s, &resp, &rlen, 16u << 20, NULL, NULL, -1, err) < 0)
		goto out;
	/* The listing, or a refusal (a report: status and reason). */
	j = json_loadb(resp, rlen, JSON_REJECT_DUPLICATES, NULL);
	if (json_is_array(json_object_get(j, "sessions"))) {
		*listing = resp;
		resp = NULL;
		rc = 0;
	} else if (json_is_string(json_object_get(j, "reason"))) {
		sc_err(err, EPROTO, "the server refused: %.400s", json_string_value(json_object_get(j, "reason")));
	} else {
		sc_err(err, EPROTO, "the server at %s sent a malformed listing", socket_path);
	}
out:
	json_decref(j);
	free(resp);
	close(s);
	return rc;
}
