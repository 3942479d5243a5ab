/*
 * The warm server's table of its workers (src/server/table.c): which of
 * them serve sessions, for the session cap and the listing, and how the
 * table survives the template's respawn (docs/warm.md, "Sessions").
 */
#ifndef SANDCELL_WARM_TABLE_H
#define SANDCELL_WARM_TABLE_H

#include "internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define MAX_SLOTS 256
#define MAX_SESSIONS 256
#define MAX_WORKERS (MAX_SLOTS + MAX_SESSIONS)
#define SESSION_ID_LEN 16

/* In worker.c: while set, freed heap blocks are zeroed.  The template sets
 * it around what it does with session data, which every later fork would
 * otherwise inherit in its free lists. */
extern bool scrub_heap;

/* A session's limits as the listing shows them (the supervisor's). */
struct sess_lim {
	double wall, cpu, cell_wall, cell_cpu, idle;
	uint64_t memory;
};

/* A live worker.  sock is the template's end of a SOCK_SEQPACKET pair the
 * worker keeps: it claims a session slot there, reports its cells, and
 * asks for the listing.  Only the worker's supervisor writes to it; no fd
 * of it reaches a sandbox (every fd above 2 is closed there). */
struct worker {
	pid_t pid;
	int pidfd;
	int sock;		/* -1 once the worker closed its end */
	/* A spare's run (dispatch.c): pid is the code's process, a child of
	 * the template, and relay the template's end of the spare's channel,
	 * where its wait status goes once it is reaped; -1 for a worker. */
	int relay;
	bool session, running;	/* running: a cell of the session runs */
	bool ended;		/* the session ended; the worker is tearing it down */
	uint64_t cells;		/* cells started so far (the supervisor's count) */
	char id[SESSION_ID_LEN + 1];
	double started, since;	/* CLOCK_REALTIME: claimed, state last changed */
	struct sess_lim lim;
};

struct pending {
	int fd;
	double since; /* CLOCK_MONOTONIC, which an execv keeps */
};

struct table {
	struct worker w[MAX_WORKERS];
	long n, n_sessions;
	long slots, max_sessions;
	/* The template's spares ready and clients queued, set by dispatch.c
	 * before it hands a message to table_on_msg (for the listing). */
	long spares, queued;
};

/* Template side.  One message from w's socket, answered there; -1 when
 * the worker closed its end (w->sock is then closed and set to -1). */
int table_on_msg(struct table *t, struct worker *w);
/* The table and the queue, for the next template: a memfd (not
 * close-on-exec, nor are the fds it names) or -1. */
int table_save(const struct table *t, const struct pending *q, long nq);
/* Loads what table_save wrote into an empty table and queue; the fds are
 * close-on-exec again. */
int table_load(int fd, struct table *t, struct pending *q, long *nq, long q_max, char *why, size_t why_len);

/* Worker side. */
/* 0: a session slot is ours, id filled; 1: the server is full (why
 * says so); -1: no answer from the template. */
int worker_claim(int sock, const struct sandcell_limits *l, char id[SESSION_ID_LEN + 1], char *why,
		 size_t why_len);
/* Never blocks: a state the template missed is corrected by the next. */
void worker_cell(int sock, enum sc_session_state state, uint64_t cells);
/* The listing (JSON text, malloc'd), or NULL. */
char *worker_list(int sock);

#endif
