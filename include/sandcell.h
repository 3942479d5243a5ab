/*
 * sandcell: run untrusted CPython under layered Linux isolation.
 *
 * The public API is deliberately small: fill a struct sandcell_config
 * (sandcell_config_init() sets safe defaults), call sandcell_run(), read the
 * struct sandcell_result or render it with sandcell_report_json().
 *
 * Error contract: every function that can fail returns a negative value and
 * fills a struct sandcell_error (errno-style code plus a message).  The
 * library never exits and never prints.
 */
#ifndef SANDCELL_H
#define SANDCELL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SANDCELL_REPORT_SCHEMA 2

/* Documented exit codes of the CLI (docs/report.md).  A finished script
 * exits with its own code or 128+signal; 117 to 126 are sandcell's. */
enum {
	SANDCELL_EXIT_UNREACHABLE = 117, /* no warm server answered at the socket */
	SANDCELL_EXIT_BUSY = 118,	 /* the warm server is at capacity: retry */
	SANDCELL_EXIT_CANCELLED = 119,	 /* the caller cancelled the run */
	SANDCELL_EXIT_DISK = 121,
	SANDCELL_EXIT_MEMORY = 122,
	SANDCELL_EXIT_CPU = 123,
	SANDCELL_EXIT_TIMEOUT = 124,
	SANDCELL_EXIT_USAGE = 125,
	SANDCELL_EXIT_SANDBOX = 126,
};

struct sandcell_error {
	int code;	 /* errno value, or 0 */
	char msg[512];
};

enum sandcell_status {
	SANDCELL_OK = 0,
	SANDCELL_EXITED,	/* script exited non-zero */
	SANDCELL_SIGNALED,	/* script died of a signal it caused itself */
	SANDCELL_TIMEOUT,	/* wall-clock limit */
	SANDCELL_CPU_TIME,	/* CPU-time limit */
	SANDCELL_MEMORY,	/* memory limit (OOM kill in the run's cgroup) */
	SANDCELL_DISK,		/* scratch space or file size limit */
	SANDCELL_OUTPUT_LIMIT,	/* outputs or result exceeded their caps */
	SANDCELL_SANDBOX_ERROR, /* a layer could not be set up: code never ran */
	/* Refusals and cancellation (docs/report.md, "Statuses"). */
	SANDCELL_USAGE_ERROR,	/* bad request or configuration: nothing ran */
	SANDCELL_BUSY,		/* the warm server is at capacity: nothing ran */
	SANDCELL_UNREACHABLE,	/* no warm server answered: nothing ran */
	SANDCELL_CANCELLED,	/* the caller cancelled: killed, outputs collected */
};

struct sandcell_limits {
	double wall_sec;	/* supervisor-enforced wall clock */
	double cpu_sec;		/* CPU seconds over the whole process tree */
	uint64_t memory;	/* bytes, cgroup memory.max (no swap) */
	uint64_t pids;		/* tasks (processes + threads) */
	uint64_t disk;		/* bytes of /tmp + /output (+ /dev/shm) */
	uint64_t disk_inodes;	/* inodes of the scratch tmpfs */
	uint64_t files;		/* RLIMIT_NOFILE */
	uint64_t stream;	/* bytes kept of stdout and of stderr, each */
	uint64_t output_files;	/* files collected from /output */
	uint64_t output_bytes;	/* bytes collected from /output */
	uint64_t output_depth;	/* directory depth collected from /output */
	uint64_t result_bytes;	/* bytes of one result record */
	uint64_t cell_bytes;	/* bytes the cell's outputs may take in the report */
	uint64_t cell_outputs;	/* output records kept */
	uint64_t cell_output_bytes; /* bytes of one output */
	/* SANDCELL_SESSION only (0 = the defaults: 600, 600, 3600 s). */
	double cell_wall_sec;	/* one cell's wall clock, then SIGINT */
	double cell_cpu_sec;	/* one cell's CPU (cgroup delta), then SIGINT */
	double idle_sec;	/* no cell and no command this long ends the session */
};

enum {
	/* A dataset (docs/datasets.md): a frame archive the code reads at
	 * /input/.datasets/NAME.  The path must be a regular file.  Datasets
	 * are a namespace of their own: a dataset and a plain input may share
	 * a name, two datasets may not. */
	SANDCELL_INPUT_DATASET = 1u << 0,
};

struct sandcell_input {
	const char *name; /* appears at /input/NAME, validated */
	const char *path; /* host file or directory (a regular file for a dataset) */
	unsigned flags;	  /* 0: a plain input; SANDCELL_INPUT_DATASET */
};

enum {
	/* Accept running without user namespaces or cgroups (Landlock,
	 * seccomp and rlimits only).  The report says what still holds. */
	SANDCELL_ALLOW_REDUCED = 1u << 0,
	/* Run the code as a notebook cell (docs/report.md, "Cell mode"): the
	 * last expression's value, rich displays, figures and ordered streams
	 * become the report's cell.outputs. */
	SANDCELL_CELL = 1u << 1,
	/* A session (docs/sessions.md): one long-lived sandbox whose
	 * interpreter runs cells sent one by one, state kept between them.
	 * Implies SANDCELL_CELL; code may be NULL.  stdin_fd carries the
	 * caller's NDJSON commands and stdout_fd receives the NDJSON events
	 * (the code's raw stdout and stderr among them); stderr_fd is unused.
	 * wall_sec and cpu_sec are the whole session's budgets, cell_wall_sec,
	 * cell_cpu_sec and idle_sec apply per cell and between cells. */
	SANDCELL_SESSION = 1u << 2,
};

struct sandcell_config {
	const char *python;	     /* default /usr/bin/python3 */
	const char *code;	     /* source text (from -c or a file) */
	size_t code_len;
	const char *code_name;	     /* file name shown in tracebacks, NULL for -c */
	const char *const *args;     /* sys.argv[1:] */
	size_t n_args;
	const struct sandcell_input *inputs;
	size_t n_inputs;
	const char *values_json;     /* JSON object text, or NULL */
	int stdin_fd;		     /* host fd pumped to the code's stdin, -1 = empty */
	int stdout_fd;		     /* host fds the capped streams go to */
	int stderr_fd;
	const char *output_dir;	     /* host dir for /output, NULL = discard */
	const char *cgroup_parent;   /* relative cgroup path, NULL = default */
	/* Readable or hung up: cancel the run (-1 = none).  The run is killed,
	 * what /output holds so far is collected, the status is cancelled.
	 * sandcell_run_remote() half-closes the connection instead, and the
	 * server does the same. */
	int cancel_fd;
	struct sandcell_limits limits;
	unsigned flags;
};

struct sandcell_result; /* opaque */

void sandcell_config_init(struct sandcell_config *cfg);
int sandcell_run(const struct sandcell_config *cfg, struct sandcell_result **out,
		 struct sandcell_error *err);
enum sandcell_status sandcell_result_status(const struct sandcell_result *r);
int sandcell_result_exit_code(const struct sandcell_result *r);
/* Returns a malloc'd JSON document (schema in docs/report.md), or NULL. */
char *sandcell_report_json(const struct sandcell_result *r);
void sandcell_result_free(struct sandcell_result *r);
/* "full", "reduced" or "none" (nothing ran), and the guarantees that do
 * not hold in that mode (NULL-terminated, owned by r). */
const char *sandcell_result_mode(const struct sandcell_result *r);
const char *const *sandcell_result_not_held(const struct sandcell_result *r);
/* What the report says, without parsing it (docs/report.md): "reason",
 * "error" (a sandbox error's message; "" otherwise), "script.started",
 * "isolation.host_uid", "isolation.landlock.abi",
 * "isolation.cgroup.version" and "outputs.skipped_total".  Strings are
 * owned by r. */
const char *sandcell_result_reason(const struct sandcell_result *r);
const char *sandcell_result_error(const struct sandcell_result *r);
bool sandcell_result_started(const struct sandcell_result *r);
long long sandcell_result_host_uid(const struct sandcell_result *r);
int sandcell_result_landlock_abi(const struct sandcell_result *r);
const char *sandcell_result_cgroup_version(const struct sandcell_result *r);
size_t sandcell_result_skipped_outputs(const struct sandcell_result *r);
const char *sandcell_status_name(enum sandcell_status s);
/* The result of a request refused before any run, as a full report gives
 * it (script.started false, isolation mode "none"): status is one of
 * SANDCELL_USAGE_ERROR, _BUSY, _UNREACHABLE, _SANDBOX_ERROR or
 * _CANCELLED, reason says why (the error too for a sandbox error), limits
 * are the request's (NULL: the defaults).  Free it with
 * sandcell_result_free().  NULL for another status or without memory. */
struct sandcell_result *sandcell_result_refused(enum sandcell_status status, const char *reason,
						const struct sandcell_limits *limits);
/* The result a report describes, read back from its JSON (a warm
 * server's answer: sandcell_run_remote), so that the accessors above say
 * what it says: status, exit code, reason, error, script.started,
 * isolation (mode, not_held, host_uid, landlock.abi, cgroup.version).
 * NULL with err filled for text that is not such a report. */
struct sandcell_result *sandcell_result_from_report(const char *json, size_t len,
						    struct sandcell_error *err);
/* Whether the report has a session object (a session's, not a one-shot
 * run's or a refusal before any session started). */
bool sandcell_result_is_session(const struct sandcell_result *r);

/* Runs cfg on a warm server (sandcell serve) instead of cold: same
 * options, same report (returned as JSON text, malloc'd) and exit code.
 * Input and output paths must be absolute; the caller's stdin, stdout and
 * stderr fds are passed to the server.  Every outcome returns 0 with a
 * full report, including a server that cannot be reached (status
 * unreachable), a busy one, and one that hangs up without an answer
 * (sandbox-error).  cfg->cancel_fd becoming readable cancels the run on
 * the server (the connection is half-closed); its report still comes.
 * -1 only for a request that cannot be sent (a socket path too long,
 * text that is not UTF-8: a usage error) or without memory. */
int sandcell_run_remote(const char *socket_path, const struct sandcell_config *cfg,
			char **report_json, int *exit_code, struct sandcell_error *err);

/* The live sessions of a warm server (docs/warm.md, "Sessions"): the
 * listing as JSON text (malloc'd), {"sessions": [...], ...}.  -1 when the
 * server cannot be reached or refuses (err says why). */
int sandcell_sessions_remote(const char *socket_path, char **listing, struct sandcell_error *err);

/* The seccomp policy: the compiled filter exactly as installed (struct
 * sock_filter[], malloc'd), and the declared table it was built from as a
 * JSON document (malloc'd): the evidence behind docs/SECURITY.md. */
int sandcell_policy_bpf(void **insns, size_t *n_insns, struct sandcell_error *err);
char *sandcell_policy_json(void);

/* Parsers shared by the CLI, the server and the fuzzers. */
int sandcell_parse_size(const char *s, uint64_t *out, struct sandcell_error *err);
int sandcell_parse_seconds(const char *s, double *out, struct sandcell_error *err);
int sandcell_parse_count(const char *s, uint64_t *out, struct sandcell_error *err);
int sandcell_check_name(const char *name, struct sandcell_error *err);
/* Adds NAME=JSON to *values_obj_text (a JSON object text, malloc'd). */
int sandcell_values_add(char **values, const char *name, const char *json,
			struct sandcell_error *err);
/* Merges a JSON object from a file's text into *values. */
int sandcell_values_merge(char **values, const char *json_obj, size_t len,
			  struct sandcell_error *err);

#ifdef __cplusplus
}
#endif
#endif
