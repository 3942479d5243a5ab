/*
 * The pieces of sandcell-http that know libmicrohttpd: one connection's
 * state (struct hc), the event stream of a response (stream.c), request
 * bodies to scratch (upload.c), one-shot runs (run.c), the daemon and the
 * routes (main.c).  Parsers of client bytes are in http.h.
 */
#ifndef SANDCELL_HTTP_SERVER_H
#define SANDCELL_HTTP_SERVER_H

#include "http.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>

/* The front end's settings (main.c). */
struct ht_opts {
	const char *socket;	/* the warm server's */
	const char *sandcell;	/* the CLI, for selftest */
	const char *python;	/* the warm server's interpreter */
	const char *scratch;	/* our private directory */
	uint64_t max_body, max_file, max_request, max_output;
	unsigned max_parts, max_conns, max_per_ip, max_sessions;
	double body_timeout;
	unsigned idle_timeout;
	bool allow_reduced;
};
extern struct ht_opts ht_opt;
double ht_now(void);
void ht_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The warm server answered (a run came back): readiness need not probe. */
void ht_warm_answered(void);

/* ---- stream.c: a response's bytes, produced by a worker thread ----
 * The handler waits (its connection suspended) until the stream is
 * started (first output) or failed (a refusal with its own HTTP code);
 * then MHD pulls the bytes with ht_stream_reader, suspending the
 * connection whenever nothing is pending.  The client's socket is watched
 * by the producer (ht_stream_client_gone): MHD does not see a suspended
 * connection hang up. */
struct ht_stream;
struct ht_stream *ht_stream_new(struct MHD_Connection *c, size_t max_pending);
void ht_stream_ref(struct ht_stream *s);
void ht_stream_unref(struct ht_stream *s);
/* Appends one NDJSON line (json_dumps'd object, consumed).  false once
 * the client is gone or too far behind (then the producer cancels). */
bool ht_stream_event(struct ht_stream *s, json_t *ev);
/* Appends NDJSON text already serialized by us (whole lines). */
bool ht_stream_lines(struct ht_stream *s, const char *lines, size_t n);
/* The answer carries X-Sandcell-Session: id (load balancers pin on it). */
void ht_stream_session(struct ht_stream *s, const char *id);
/* The X-Sandcell-Run header of a one-shot run's 200 (a load balancer
 * sticks its /cancel to this front end by it). */
void ht_stream_run(struct ht_stream *s, const char *id);
/* Whether the 200 was decided (ht_stream_start): a refusal can no longer
 * have its own code. */
bool ht_stream_started(struct ht_stream *s);
void ht_stream_start(struct ht_stream *s);
/* Blocks until fewer than limit bytes are pending; false if gone. */
bool ht_stream_room(struct ht_stream *s, size_t limit);
void ht_stream_fail(struct ht_stream *s, unsigned code, const char *body, unsigned retry_after);
void ht_stream_end(struct ht_stream *s);
bool ht_stream_gone(struct ht_stream *s);
/* The client's fd hung up (POLLRDHUP) while we hold its connection. */
bool ht_stream_client_gone(struct ht_stream *s, int timeout_ms);
/* The client's socket while MHD holds it, else -1 (for a producer's poll). */
int ht_stream_client_fd(struct ht_stream *s);
/* From the access handler: MHD_YES after suspending or queueing. */
enum MHD_Result ht_stream_answer(struct ht_stream *s);
/* A whole JSON answer (code, body, Retry-After when not 0). */
enum MHD_Result ht_queue_json(struct MHD_Connection *c, unsigned code, const char *body,
			      unsigned retry_after);
/* From the completed callback. */
void ht_stream_closed(struct ht_stream *s);
void ht_stream_on_gone(struct ht_stream *s, void (*fn)(void *), void *arg);

/* ---- upload.c: the body of a POST into memory (the request) and scratch (files) ---- */
struct ht_file {
	enum ht_part_kind kind;
	char name[129];
	char path[4096];
};
struct ht_upload {
	struct MHD_PostProcessor *pp;
	bool json;		/* application/json body: the request object alone */
	char *request;		/* the request object's bytes */
	size_t request_len;
	bool have_request;
	bool no_request;	/* files only (a session's adds): set after ht_upload_begin */
	uint64_t total;
	unsigned parts;
	char dir[4096];		/* this request's scratch directory (mode 0700) */
	int part_fd;
	enum ht_part_kind part_kind;
	char part_key[160];
	uint64_t part_bytes;
	struct ht_file *files;
	size_t n_files;
	/* the first refusal: HTTP code, status and message */
	unsigned code;
	char status[24];
	char msg[600];
};
/* Checks the headers and prepares (0), or refuses (fills code/msg). */
int ht_upload_begin(struct ht_upload *u, struct MHD_Connection *c, const char *tag);
int ht_upload_feed(struct ht_upload *u, const char *data, size_t size);
int ht_upload_finish(struct ht_upload *u);
void ht_upload_refuse(struct ht_upload *u, unsigned code, const char *status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Closes what is open; removes the scratch directory when remove. */
void ht_upload_free(struct ht_upload *u, bool remove);
int ht_rm_tree(const char *path);

/* ---- run.c ---- */
/* Starts the run of u (which it takes over) on a thread of its own; the
 * stream answers the connection. */
struct ht_stream *ht_run_start(struct MHD_Connection *c, long tenant, struct ht_upload *u,
			       struct ht_request *q, struct sandcell_error *err);
/* POST /v1/runs/ID/cancel: 0, or -1 when no run of this tenant has it. */
int ht_run_cancel(const char *id, long tenant);

/* A file event for a collected output (read beneath dirfd, checked
 * against the size and SHA-256 listed for it). */
json_t *ht_file_event(int dirfd, const char *path, json_int_t size, const char *sha);

/* ---- session.c ---- */
/* One call on a session route, from main.c's handler. */
struct ht_call {
	struct MHD_Connection *c;
	long tenant;
	const struct ht_route *route;
	struct ht_upload *u;	/* the body; taken over when the answer needs it */
	struct ht_stream *s;	/* out: the answer comes on this stream */
	bool slot;		/* in: a concurrency slot is held; out: still the caller's */
};
/* POST /v1/sessions (q checked, taken over). */
enum MHD_Result ht_session_start(struct ht_call *k, struct ht_request *q);
/* Every /v1/sessions/ID route but GET. */
enum MHD_Result ht_session_call(struct ht_call *k);
/* GET /v1/sessions (id NULL) and /v1/sessions/ID. */
enum MHD_Result ht_sessions_get(struct MHD_Connection *c, long tenant, const char *id);
unsigned ht_sessions_live(void);
/* A stopping front end: every session cancelled, at most grace s waited. */
void ht_sessions_stop(double grace);

/* A JSON refusal body {"status","message","report"}, malloc'd. */
char *ht_refusal_body(const char *status, const char *message, const char *report_json);

#endif
