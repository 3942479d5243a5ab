/* Messages between the supervisor and the sandbox's init over a
 * SOCK_SEQPACKET pair.  The init is trusted code, but it runs inside the
 * sandbox after user code starts, so the supervisor checks every length. */
#ifndef SANDCELL_PROTO_H
#define SANDCELL_PROTO_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Supervisor -> sandbox init: ask the code where it is (init passes
 * SIGURG on to it; supervise.c, "ask_where"). */
#define SC_WHERE_SIGNAL SIGUSR1

enum sc_msg_type {
	SC_MSG_READY = 1,   /* child -> parent: sources opened, write my maps */
	SC_MSG_GO,	    /* parent -> child: the uid/gid maps are written */
	SC_MSG_SCRATCH,	    /* child -> parent: scratch dir fd (SCM_RIGHTS) */
	SC_MSG_STARTED,	    /* child -> parent: the interpreter was exec'd */
	SC_MSG_EXIT,	    /* child -> parent: value = the code's wait status */
	SC_MSG_ERROR,	    /* child -> parent: setup failed, code never ran */
	SC_MSG_ATTACHED,    /* parent -> child: every run cgroup holds the child */
	/* A spare sandbox (run.c, sc_spare_bind; contain.c, spare_run): */
	SC_MSG_IDLE,	    /* init -> parent: namespaces final (cgroup ns too): enter them */
	SC_MSG_RUN,	    /* parent -> init: the request (a memfd, SCM_RIGHTS) */
	SC_MSG_CONFINED,    /* init -> parent: root pivoted, init confined */
	SC_MSG_CODE,	    /* server -> parent: the code's process (a pidfd) */
	SC_MSG_TAKEN,	    /* parent -> code: a request is here, its GO follows */
	SC_MSG_PREP,	    /* parent -> code, while idle: its layers (spare.c) */
};

struct sc_msg {
	int32_t type;
	int32_t err;	/* errno for SC_MSG_ERROR */
	int32_t value;
	char text[500];
};

/* One message with n (0-8) fds (SCM_RIGHTS): 0, or -1 with errno. */
int sc_send_fds(int sock, const struct sc_msg *m, const int *fds, size_t n);
/* One message and up to max fds (*n of them; more are closed), flags for
 * recvmsg (MSG_DONTWAIT): 1, 0 at EOF, or -1 (a short or truncated
 * message: its fds are closed). */
int sc_recv_fds(int sock, struct sc_msg *m, int *fds, size_t max, size_t *n, int flags);

#endif
