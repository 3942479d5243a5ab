/*
 * sandcell-http (docs/http.md): the HTTP front end of a warm server.
 *
 * parse.c holds every parser of client bytes (token file, routes, part
 * names, request objects, session command bodies) and depends on jansson
 * and libsandcell only, so tests/fuzz/fuzz_http.c fuzzes it without a
 * server.  The rest: auth.c (tokens, limits), upload.c (request bodies
 * to scratch), metrics.c, run.c (one-shot runs), session.c, main.c
 * (options, daemon, routing, readiness).
 */
#ifndef SANDCELL_HTTP_H
#define SANDCELL_HTTP_H

#include "sandcell.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- parse.c ---- */

#define HT_NAME_MAX 64	   /* a token's NAME */
#define HT_SECRET_MIN 32
#define HT_SECRET_MAX 256
#define HT_MAX_TOKENS 4096
#define HT_ID_LEN 32	   /* run and session ids: 128 bits, lowercase hex */

struct ht_token {
	char name[HT_NAME_MAX + 1];
	unsigned char digest[32]; /* SHA-256 of the secret: the secret is not kept */
	uint32_t max_concurrent;
	uint32_t rate_per_min;
};

struct ht_tokens {
	struct ht_token *t;
	size_t n;
};

/* Parses a token file's text (docs/http.md).  A refusal names the line
 * number, never its bytes (they may be a secret). */
int ht_tokens_parse(const char *text, size_t len, uint32_t def_concurrent, uint32_t def_rate,
		    struct ht_tokens *out, struct sandcell_error *err);
void ht_tokens_free(struct ht_tokens *t);
/* The index of the token an Authorization header value presents, or -1.
 * Every token's digest is compared, without early exit. */
long ht_tokens_find(const struct ht_tokens *t, const char *authorization);

enum ht_route_kind {
	HR_HEALTHZ = 1, HR_READYZ, HR_METRICS, HR_RUNS, HR_RUN_CANCEL, HR_SESSIONS, HR_SESSION,
	HR_SESSION_CELLS, HR_SESSION_INTERRUPT, HR_SESSION_INPUT, HR_SESSION_INPUTS,
	HR_SESSION_DATASETS,
};
struct ht_route {
	enum ht_route_kind kind;
	char id[HT_ID_LEN + 1]; /* HR_RUN_CANCEL and HR_SESSION*: the id in the path */
};
/* 0, or -1 for a path that is not ours (404). */
int ht_route_parse(const char *url, struct ht_route *r);
/* The methods a route takes, for 405's Allow header. */
const char *ht_route_allow(enum ht_route_kind k);
bool ht_route_method_ok(enum ht_route_kind k, const char *method);

enum ht_part_kind { HP_REQUEST = 1, HP_INPUT, HP_DATASET, HP_STDIN };
/* A multipart part's name: "request", "stdin", "input:NAME", "dataset:NAME";
 * *name points into key (NAME checked as the CLI checks --input names). */
int ht_part_parse(const char *key, enum ht_part_kind *kind, const char **name,
		  struct sandcell_error *err);

/* A run's or a session's request object, checked. */
struct ht_request {
	char *code;		/* runs */
	size_t code_len;
	char **args;		/* NULL-terminated */
	size_t n_args;
	char *values;		/* compact JSON object text, or NULL */
	bool cell, allow_reduced;
	struct sandcell_limits limits; /* the defaults, then what was given */
	unsigned limits_set;	/* bit per HT_LIM_* given */
};
enum {
	HT_LIM_WALL, HT_LIM_CPU, HT_LIM_MEMORY, HT_LIM_PIDS, HT_LIM_DISK, HT_LIM_FILES,
	HT_LIM_STDOUT, HT_LIM_RESULT, HT_LIM_OUT_FILES, HT_LIM_OUT_BYTES, HT_LIM_CELL_WALL,
	HT_LIM_CELL_CPU, HT_LIM_IDLE, HT_LIM_COUNT,
};
/* The CLI option of a limit (sessions start `sandcell session` with them). */
const char *ht_limit_option(unsigned which);
/* Renders a given limit as that option's value. */
void ht_limit_text(const struct ht_request *q, unsigned which, char *buf, size_t size);
int ht_request_parse(const char *buf, size_t len, bool session, struct ht_request *q,
		     struct sandcell_error *err);
void ht_request_free(struct ht_request *q);

/* Session command bodies (docs/http.md, Sessions), each turned into the
 * command line `sandcell session` reads (docs/sessions.md), malloc'd,
 * without its newline.  cell: {"code", "id"?, "silent"?}; seq numbers a
 * cell that has no id. */
char *ht_cell_command(const char *buf, size_t len, unsigned long seq, char id[65],
		      struct sandcell_error *err);
/* input: {"id", "value"} */
char *ht_input_command(const char *buf, size_t len, struct sandcell_error *err);
/* datasets refusal: {"name", "refused"} */
char *ht_refuse_command(const char *buf, size_t len, char name[129], struct sandcell_error *err);
/* add: a file the front end wrote into its scratch. */
char *ht_add_command(bool dataset, const char *name, const char *path);

/* One event line of a warm session (docs/sessions.md, "Events"), from
 * the front end's event pipe: parsed strictly (duplicate keys refused), a
 * known "ev" with the fields the front end reads typed as it reads them;
 * NULL otherwise.  *kind is the event's name (a static string). */
json_t *ht_event_parse(const char *line, size_t n, const char **kind);

/* Lowercase hex of 16 random bytes. */
int ht_new_id(char id[HT_ID_LEN + 1]);
/* Standard base64, malloc'd, NUL-terminated. */
char *ht_base64(const unsigned char *p, size_t n, size_t *out_len);

/* ---- metrics.c: counters for GET /metrics (thread-safe) ---- */
enum ht_gauge { HG_RUNS_IN_FLIGHT, HG_SESSIONS, HG_COUNT };
void ht_metric_response(unsigned code);
void ht_metric_run(const char *status, double secs);
void ht_metric_cell(const char *status);
void ht_metric_reject(const char *reason);
void ht_metric_gauge(enum ht_gauge g, int delta);
void ht_metric_ready(bool ready, double last_pass);
/* The warm server's own counts, from its listing (docs/warm.md,
 * "Sessions"), and the Unix time of that listing. */
struct ht_warm_counts {
	long spares, runs, queued, sessions;
};
void ht_metric_warm(const struct ht_warm_counts *c, double at);
/* The exposition text (format 0.0.4), malloc'd. */
char *ht_metrics_render(size_t *len);

/* ---- auth.c: tokens, per-token concurrency and rate (thread-safe) ---- */
/* tokens NULL: no auth (--no-auth), one anonymous tenant with the defaults. */
int ht_auth_init(const char *token_file, uint32_t def_concurrent, uint32_t def_rate,
		 struct sandcell_error *err);
bool ht_auth_enabled(void);
/* The caller's tenant (>= 0) from its Authorization header, or -1. */
long ht_auth_tenant(const char *authorization);
const char *ht_auth_name(long tenant);
/* Takes a slot and a rate token: 0, or -1 with *reason ("rate" or
 * "concurrency") and *retry_after seconds. */
int ht_auth_acquire(long tenant, bool take_slot, const char **reason, unsigned *retry_after);
void ht_auth_release(long tenant);

#endif
