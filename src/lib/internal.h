/* Internal interfaces of libsandcell: one section per file. */
#ifndef SANDCELL_INTERNAL_H
#define SANDCELL_INTERNAL_H

#include "sandcell.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct json_t;

/* ---- error.c ---- */
/* Fills err (if not NULL) and returns -1.  code is an errno value. */
int sc_err(struct sandcell_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The same for bad input: code EINVAL, no strerror text appended. */
int sc_inval(struct sandcell_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prefixes an existing error message with context. */
int sc_err_wrap(struct sandcell_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- hooks.c: test builds only ----
 * A build with -DSANDCELL_TEST_HOOKS reads $SANDCELL_TEST_HOOKS (a comma
 * list) to switch one layer off (ablation) or break it on purpose
 * (mutation), so the suites can prove each layer matters.  Release builds
 * compile every hook to a constant false. */
enum sc_hook {
	SC_HOOK_NO_SECCOMP = 1u << 0,
	SC_HOOK_NO_LANDLOCK = 1u << 1,
	SC_HOOK_NO_MOUNT_ISOLATION = 1u << 2, /* old root stays at /.oldroot */
	SC_HOOK_NO_NETNS = 1u << 3,
	SC_HOOK_NO_UIDMAP = 1u << 4,	      /* code's host uid = caller's */
	SC_HOOK_NO_LIMITS = 1u << 5,	      /* no cgroup limits, no rlimits */
	SC_HOOK_NO_FDCLOSE = 1u << 6,	      /* supervisor fds leak in */
	SC_HOOK_MUT_NO_ARCH_CHECK = 1u << 7,
	SC_HOOK_MUT_X32_ALLOWED = 1u << 8,
	SC_HOOK_MUT_CLONE3_ALLOWED = 1u << 9,
	SC_HOOK_MUT_IO_URING_ALLOWED = 1u << 10,
	SC_HOOK_MUT_DEFAULT_ALLOW = 1u << 11,
	SC_HOOK_MUT_NO_NNP = 1u << 12,
	SC_HOOK_MUT_NO_SETSID = 1u << 13,
	SC_HOOK_MUT_COLLECT_FOLLOWS = 1u << 14,
	SC_HOOK_NO_USERNS_OWNER = 1u << 15,   /* namespace owned by the caller */
	SC_HOOK_NO_USER_BUDGETS = 1u << 16,   /* no /proc/sys/user caps, no SIGPENDING */
	SC_HOOK_MUT_SHARED_UID = 1u << 17,    /* host uid from the pid, no claim */
	SC_HOOK_MUT_NO_PDEATHSIG = 1u << 18,  /* PDEATHSIG not armed after the id change */
	SC_HOOK_SHARED_INODES = 1u << 19,     /* plain binds, the host's /dev nodes */
};
#ifdef SANDCELL_TEST_HOOKS
extern unsigned sc_hooks;
void sc_hooks_load(void);
#define sc_hook_on(h) ((sc_hooks & (h)) != 0)
#else
#define sc_hooks_load() ((void)0)
#define sc_hook_on(h) 0
#endif

/* ---- json.c: strict parsing of every JSON byte that crosses a boundary ---- */
#define SC_JSON_MAX_DEPTH 64
/* Parses one JSON value: rejects duplicate keys, NaN, trailing bytes, depth
 * over max_depth and texts over max_len bytes. */
int sc_json_parse(const char *buf, size_t len, size_t max_len, size_t max_depth,
		  struct json_t **out, struct sandcell_error *err);
/* The same; SC_JSON_ALLOW_NUL admits \u0000 in string values (the code's
 * data: what it printed may hold NULs; keys never do). */
#define SC_JSON_ALLOW_NUL 1u
int sc_json_parse_ex(const char *buf, size_t len, size_t max_len, size_t max_depth, unsigned flags,
		     struct json_t **out, struct sandcell_error *err);
/* Returns a malloc'd JSON string value for arbitrary bytes: valid UTF-8 is
 * kept, anything else and control bytes become \xNN text. */
char *sc_escape_bytes(const char *s, size_t len, bool *escaped);

/* ---- channel.c: the code's channel (fd 3): result, outputs, error, location ---- */
struct sc_chan_limits {
	size_t result_bytes;	/* one result record */
	size_t out_bytes;	/* output records kept, in total */
	size_t out_one;		/* one output record */
	size_t out_count;	/* output records kept */
};
struct sc_chan;
struct sc_chan *sc_chan_new(const struct sc_chan_limits *lim);
/* Routes bytes as they arrive; never fails (what cannot be kept is counted). */
void sc_chan_feed(struct sc_chan *c, const char *buf, size_t len);
void sc_chan_free(struct sc_chan *c);
struct sc_chan_out {
	struct json_t *result;	   /* the last result record, or NULL */
	char result_error[256];	   /* why it was rejected, or "" */
	bool result_truncated;	   /* it passed result_bytes */
	struct json_t *outputs;	   /* nbformat v4 outputs, markers where some were dropped */
	uint64_t bytes;		   /* what the kept outputs take in the report */
	uint64_t dropped;	   /* output records not kept (rejected, too big, over a cap) */
	bool truncated;		   /* the count or total cap stopped collection */
	struct json_t *exception;  /* {"ename","evalue","traceback"} or NULL */
	struct json_t *where;	   /* {"traceback"} or NULL */
	struct json_t *problems;   /* why records were rejected or dropped (strings) */
};
/* Parses what the channel kept; fails only without memory. */
int sc_chan_finish(struct sc_chan *c, struct sc_chan_out *out, struct sandcell_error *err);
void sc_chan_out_free(struct sc_chan_out *o);
/* The documented value tags only (docs/values.md), anywhere in v. */
int sc_chan_check_value(struct json_t *v, struct sandcell_error *err);
bool sc_base64_ok(const char *s, size_t n);
/* Sessions (docs/sessions.md): outputs are handed to output() as soon as
 * their record ends (parsed, capped per cell, markers for drops; the
 * callee owns the value), D and I records to control() parsed (v is
 * borrowed, NULL when the record was rejected, why says why).  A sink may
 * call sc_chan_cell_end() from either callback. */
struct sc_chan_sink {
	void *ctx;
	void (*output)(void *ctx, struct json_t *output);
	void (*control)(void *ctx, char tag, struct json_t *v, const char *why);
};
void sc_chan_stream(struct sc_chan *c, const struct sc_chan_sink *sink);
/* Ends the cell: what sc_chan_finish() gives (outputs empty: they went to
 * the sink), the cap marker sent first; then every per-cell count and
 * record starts afresh. */
int sc_chan_cell_end(struct sc_chan *c, struct sc_chan_out *o, struct sandcell_error *err);
/* nbformat error outputs: from an exception record; for a stopped run. */
struct json_t *sc_chan_error_output(struct json_t *exception);
struct json_t *sc_chan_stop_output(const char *reason, struct json_t *where);

/* ---- session.c: a session's commands and events (docs/sessions.md) ---- */
#define SC_SESSION_ID_MAX 64
#define SC_SESSION_PROMPT_MAX (64u << 10)
#define SC_SESSION_LINE_MAX (64u << 20)
bool sc_session_id_ok(const char *s, size_t n);
/* add: a name as --input names (128 bytes at most); a refusal's text. */
#define SC_SESSION_NAME_MAX 128
#define SC_SESSION_REFUSAL_MAX (4u << 10)
enum sc_cmd_op { SC_CMD_RUN = 1, SC_CMD_INTERRUPT, SC_CMD_INPUT, SC_CMD_CLOSE, SC_CMD_ADD };
enum sc_add_kind { SC_ADD_DATASET = 1, SC_ADD_INPUT };
struct sc_cmd {
	enum sc_cmd_op op;
	char id[SC_SESSION_ID_MAX + 1];	/* run, input; "" otherwise */
	struct json_t *text;		/* run: the code, input: the value, add: the
					 * host path, or the refusal (a string) */
	enum sc_add_kind kind;		/* add */
	char name[SC_SESSION_NAME_MAX + 1]; /* add */
	bool refused;			/* add: text is a refusal, not a path */
};
/* Parses one command line (without its newline) strictly: jansson, no
 * duplicate keys, a closed key set per op.  On refusal err says why and
 * id holds the line's id when one could be read (else ""). */
int sc_session_parse_cmd(const char *line, size_t len, struct sc_cmd *cmd,
			 struct sandcell_error *err);
void sc_session_cmd_free(struct sc_cmd *cmd);
/* Bytes as valid UTF-8, invalid sequences as U+FFFD; an incomplete
 * sequence at the end is left (*used < len) unless final.  malloc'd. */
char *sc_utf8_replace(const char *s, size_t len, bool final, size_t *used, size_t *out_len);
/* ---- collect.c: copies /output out of the sandbox (an attack surface) ---- */
struct sc_out_file {
	char *path;	/* relative, '/'-separated, validated UTF-8 */
	uint64_t size;	/* bytes actually read and written */
	char sha256[65];
};
struct sc_out_skip {
	char *path;	/* escaped for display */
	const char *reason;
};
struct sc_collect {
	struct sc_out_file *files;
	size_t n_files;
	struct sc_out_skip *skips;
	size_t n_skips;		/* listed: the first SC_SKIPS_MAX in walk order */
	uint64_t n_skipped_total; /* every entry not collected, listed or not */
	uint64_t bytes;
	bool limit_hit;	/* a file, byte, depth or name cap was reached */
};
/* Walks src_dirfd without following any symlink and copies regular files and
 * directories below dst_dirfd (or only hashes them when dst_dirfd < 0). */
int sc_collect_tree(int src_dirfd, int dst_dirfd, const struct sandcell_limits *lim,
		    struct sc_collect *out, struct sandcell_error *err);
void sc_collect_free(struct sc_collect *c);
/* Moves src's entries (its paths) to the end of dst's: a session's cells
 * add up to one collection.  src is then freed as usual. */
int sc_collect_merge(struct sc_collect *dst, struct sc_collect *src);

/* ---- policy.c: the declared seccomp policy, as data ---- */
enum sc_verdict {
	SC_ALLOW,
	SC_ERRNO,	/* denied with the declared errno */
	SC_ARGS,	/* allowed only for the declared argument predicate */
};
struct sc_policy_entry {
	const char *name;
	enum sc_verdict verdict;
	int err;	/* errno for SC_ERRNO and for SC_ARGS mismatches */
	int reduced_err; /* reduced mode: denied with this errno instead (0 = same) */
};
extern const struct sc_policy_entry sc_policy[];
extern const size_t sc_policy_len;
#define SC_DEFAULT_ERRNO 38 /* ENOSYS: unknown or future syscalls */

/* ---- seccomp.c ---- */
struct sc_bpf {
	void *insns;	/* struct sock_filter[] */
	size_t len;	/* instructions */
};
/* Compiles the policy in the parent (libseccomp never runs in the child):
 * a copy of the program generated at build time (tools/gen-bpf.c) when
 * it is linked in, else libseccomp's compilation, cached per process. */
int sc_seccomp_compile(struct sc_bpf *out, bool reduced, struct sandcell_error *err);
/* Always libseccomp, never a cache: the build tool and its check. */
int sc_seccomp_compile_fresh(struct sc_bpf *out, bool reduced, struct sandcell_error *err);
struct sc_bpf_image {
	const void *insns; /* struct sock_filter[] */
	size_t len;
};
/* [0] full mode, [1] reduced mode (build/gen/bpf_prebuilt.c); the build
 * tool defines it empty, which means "compile". */
extern const struct sc_bpf_image sc_bpf_prebuilt[2];
int sc_seccomp_apply(const struct sc_bpf *bpf, struct sandcell_error *err);
void sc_seccomp_free(struct sc_bpf *bpf);

/* ---- landlock.c ---- */
struct sc_landlock_info {
	int abi;
	bool fs, net, scope_abstract_unix, scope_signal;
};
int sc_landlock_probe(struct sc_landlock_info *info);
/* Applies rules matching the mount plan in the current (pivoted) root. */
struct sc_landlock_rules {
	const char *const *ro_exec;	/* read + execute */
	size_t n_ro_exec;
	const char *const *ro;		/* read only */
	size_t n_ro;
	const char *const *rw;		/* read + write, never execute */
	size_t n_rw;
	bool list_root;			/* readdir anywhere (full mode's tiny tree) */
};
int sc_landlock_apply(const struct sc_landlock_info *info, const struct sc_landlock_rules *rules,
		      struct sandcell_error *err);

/* ---- cgroup.c: v2 first, v1 per controller where v2 lacks it ---- */
struct sc_cgroup {
	char v2[512];	     /* run cgroup dir in the unified hierarchy, or "" */
	char v1_mem[512];    /* v1 fallbacks, or "" */
	char v1_pids[512];
	char v1_cpu[512];
	bool mem_v2, pids_v2, cpu_v2;
	const char *version; /* "v2", "v1", "hybrid" or "none" */
	const char *swap;    /* see sc_cgroup_swap_state() */
};
/* Whether --memory also bounds swap: "limited" (memory.swap.max = 0, or v1
 * memsw = the memory limit), "no-swap" (no swap limit file, and the host
 * has no active swap in proc_swaps, the text of /proc/swaps), or
 * "unlimited" (no swap accounting while the host has swap, or proc_swaps
 * is NULL because it could not be read: the code's pages can go to swap
 * beyond --memory), or "none" without a memory cgroup.  A snapshot: a
 * swapon during the run is not seen. */
const char *sc_cgroup_swap_state(bool have_memcg, bool limit_written, const char *proc_swaps);
int sc_cgroup_create(struct sc_cgroup *cg, const char *parent,
		     const struct sandcell_limits *lim, struct sandcell_error *err);
/* The limits again, on a run cgroup made with others (a spare's). */
int sc_cgroup_set_limits(const struct sc_cgroup *cg, const struct sandcell_limits *lim,
			 struct sandcell_error *err);
/* Moves pid into the v2 run cgroup, unless skip_v2 (it was cloned there). */
int sc_cgroup_attach(const struct sc_cgroup *cg, pid_t pid, bool skip_v2, struct sandcell_error *err);
/* The v1 run cgroups (memory, pids, cpuacct) are joined by the sandbox init
 * itself: the caller opens their `tasks` files before the clone (-1 where
 * the run has no such cgroup), the single-threaded init writes itself into
 * each (sc_cgroup_join_self, which closes them). */
#define SC_CGROUP_V1_JOIN 3
int sc_cgroup_join_open(const struct sc_cgroup *cg, int fds[SC_CGROUP_V1_JOIN],
			struct sandcell_error *err);
int sc_cgroup_join_self(int fds[SC_CGROUP_V1_JOIN], struct sandcell_error *err);
void sc_cgroup_join_close(int fds[SC_CGROUP_V1_JOIN]);
int sc_cgroup_cpu_usec(const struct sc_cgroup *cg, uint64_t *usec);
int sc_cgroup_peak_memory(const struct sc_cgroup *cg, uint64_t *bytes);
bool sc_cgroup_oom(const struct sc_cgroup *cg);
/* Kills every task in the run cgroup and waits until it is empty. */
int sc_cgroup_kill(const struct sc_cgroup *cg);
/* Removes the run cgroups, waiting up to SC_CGROUP_REMOVE_SEC for the
 * last tasks to leave; returns how many are left (their paths stay in cg). */
#define SC_CGROUP_REMOVE_SEC 10.0
int sc_cgroup_destroy(struct sc_cgroup *cg);

/* ---- userns.c ---- */
int sc_userns_write_maps(pid_t pid, uid_t host_uid, gid_t host_gid, bool deny_setgroups,
			 struct sandcell_error *err);
/* Host ids the code runs as: for root a dedicated pair that no other live
 * run on the host holds (lock_fd keeps the claim; the sandbox init keeps a
 * copy so the claim lasts as long as the sandbox), else the caller's own. */
struct sc_ids {
	uid_t uid;
	gid_t gid;
	int lock_fd;	/* -1 when the ids are the caller's */
};
int sc_userns_claim_ids(struct sc_ids *ids, struct sandcell_error *err);
void sc_userns_release_ids(struct sc_ids *ids);
/* Around the clone that creates the user namespace: makes it owned by the
 * dedicated uid, so per-user kernel budgets are charged to it, not root. */
struct sc_owner_saved {
	bool active;
	int dumpable, pdeathsig;
};
int sc_userns_owner_enter(const struct sc_ids *ids, struct sc_owner_saved *sv,
			  struct sandcell_error *err);
int sc_userns_owner_leave(struct sc_owner_saved *sv, struct sandcell_error *err);
/* In the sandbox init: tight per-namespace budgets (inotify, fanotify,
 * namespaces), in two steps: the files opened while /proc is the host's,
 * and written once the root is finished (each input's mount is cloned in
 * between, and each clone counts against the mount namespace budget the
 * write sets to 0). */
#define SC_USERNS_LIMITS 11
int sc_userns_open_limits(int fds[SC_USERNS_LIMITS], struct sandcell_error *err);
int sc_userns_write_limits(int fds[SC_USERNS_LIMITS], struct sandcell_error *err);
#define SC_SANDBOX_UID 1000
#define SC_SANDBOX_GID 1000

/* ---- mounts.c ---- */
/* Datasets (SANDCELL_INPUT_DATASET) appear at /input/.datasets/NAME: an
 * input name never starts with '.', so no input can take this place. */
#define SC_DATASETS_DIR ".datasets"
static inline bool sc_input_is_dataset(const struct sandcell_input *in)
{
	return (in->flags & SANDCELL_INPUT_DATASET) != 0;
}
/* What shows one host object (runtime dir, input, /etc entry) to the code. */
struct sc_private_src {
	int mnt;	/* detached read-only overlay, -1: bind `file` directly */
	int file;	/* a non-directory: its O_PATH fd (inside mnt if mnt >= 0) */
};
struct sc_mount_plan {
	const char *python;	     /* interpreter path (host == sandbox path) */
	const char *const *runtime;  /* host dirs bound read-only at the same path */
	size_t n_runtime;
	int *runtime_fds;	     /* O_PATH fds opened early in the child */
	const struct sandcell_input *inputs;
	size_t n_inputs;
	int *input_fds;
	/* Filled in the child by sc_mounts_open_sources: the read-only
	 * overlay that shows each runtime dir, input and /etc entry. */
	struct sc_private_src *priv;
	struct sc_private_src *in_priv;	/* the inputs' */
	int dev_fd;		     /* sc_mounts_make_dev()'s /dev, or -1: host nodes */
	const char *code;	     /* written to /code/<code_name> */
	size_t code_len;
	const char *code_name;
	const char *values_json;
	const struct sc_py_file *py_files; /* the sandcell module and its bootstrap */
	uint64_t disk, disk_inodes;
};
int sc_mounts_open_sources(struct sc_mount_plan *p, struct sandcell_error *err);
/* In the supervisor, root only: a detached tmpfs holding the run's own
 * device nodes (*fd = -1 for other callers, who get the host's nodes). */
int sc_mounts_make_dev(int *fd, struct sandcell_error *err);
/* Builds the new root, stages the inputs, pivots into it and finishes
 * it.  Returns the scratch dir fd (holding /tmp, /output and /dev/shm)
 * for the supervisor. */
int sc_mounts_setup(const struct sc_mount_plan *p, int *scratch_fd, struct sandcell_error *err);
/* sc_mounts_setup in steps.  A spare sandbox builds the base and pivots
 * while idle, and finishes once its request came; its opener opens and
 * stages the inputs then (sc_mounts_open_inputs, in the caller's view). */
int sc_mounts_build_base(const struct sc_mount_plan *p, int *scratch_fd, struct sandcell_error *err);
int sc_mounts_stage_inputs(const struct sc_mount_plan *p, struct sandcell_error *err);
int sc_mounts_pivot(struct sandcell_error *err);
int sc_mounts_finish(const struct sc_mount_plan *p, bool resize, int scratch_fd,
		     struct sandcell_error *err);
int sc_mounts_open_inputs(struct sc_mount_plan *p, struct sandcell_error *err);

/* ---- net.c ---- */
int sc_net_loopback_up(struct sandcell_error *err);

/* ---- caps.c ---- */
int sc_caps_drop_all(struct sandcell_error *err);

/* ---- rlimits.c ---- */
int sc_rlimits_apply(const struct sandcell_limits *lim, struct sandcell_error *err);

/* ---- fds.c ---- */
/* Closes every fd above 2 except those listed (kept fds stay as they are). */
int sc_fds_close_except(const int *keep, size_t n_keep, struct sandcell_error *err);

/* ---- env.c ---- */
extern const char *const sc_env[];

/* ---- sandbox module sources and their pycs (generated from src/py by
 * tools/pyc.py and tools/embed.sh) ---- */
struct sc_py_file {
	const char *name;	/* in /.sandcell: "NAME.py" or "__pycache__/NAME.TAG.pyc" */
	const unsigned char *data; /* followed by a NUL byte (not counted in size) */
	size_t size;
};
#define SC_PY_CACHE_DIR "__pycache__"
extern const struct sc_py_file sc_py_files[]; /* ends with { NULL, NULL, 0 } */

/* ---- result ---- */
struct sc_isolation {
	const char *mode;	/* "full" or "reduced" */
	bool userns, pidns, mntns, netns, ipcns, utsns, cgroupns;
	bool seccomp, nnp, caps_dropped;
	struct sc_landlock_info landlock;
	const char *cgroup_version;
	const char *swap;	/* sc_cgroup_swap_state() */
	bool cg_mem, cg_pids, cg_cpu;
	uid_t host_uid;
	const char *not_held[16]; /* guarantees that do not hold; NULL-terminated */
	size_t n_not_held;
};

struct sandcell_result {
	enum sandcell_status status;
	int exit_code;		/* the CLI's exit status */
	int script_exit;	/* -1 if it did not exit */
	int script_signal;	/* 0 if none */
	double wall_sec, cpu_sec;
	uint64_t peak_memory;
	bool code_started;
	int setup_errno;	/* errno of a failed setup step, 0 if none */
	char error[512];	/* sandbox-error message */
	char stop_reason[512];	/* cause of the status (a sandbox error whole) */
	uint64_t stdout_bytes, stderr_bytes;
	bool stdout_truncated, stderr_truncated;
	bool result_truncated;
	struct json_t *result;	/* the published value, or NULL */
	char result_error[256];
	/* The rest of the code's channel (channel.c), as classify() kept it. */
	bool cell_mode;		/* SANDCELL_CELL */
	struct json_t *cell_outputs; /* nbformat v4 outputs, or NULL (none) */
	uint64_t cell_bytes, cell_dropped;
	bool cell_truncated;
	struct json_t *cell_problems; /* strings, or NULL */
	struct json_t *exception; /* {"ename","evalue","traceback"} or NULL */
	struct json_t *stopped_at; /* {"traceback"} or NULL */
	bool where_asked, cancelled;
	struct sc_collect outputs;
	bool outputs_collected;
	struct sandcell_limits limits;
	struct sc_isolation iso;
	struct json_t *session;	/* SANDCELL_SESSION: the report's session object */
	char left_behind[8][512]; /* host resources that could not be removed */
	int n_left_behind;
	struct json_t *doc;	/* read back from a report: iso's strings point into it */
};

/* ---- request.c, frame.c, remote.c: the warm server's protocol (docs/warm.md) ---- */
#define SC_REQUEST_MAX (80u << 20)
enum sc_op { SC_OP_RUN = 0, SC_OP_SESSIONS };
struct sc_request {
	enum sc_op op;			/* SC_OP_SESSIONS: cfg is not set */
	struct sandcell_config cfg;	/* strings point into root */
	struct sandcell_input *inputs;
	const char **args;
	char *values;
	struct json_t *root;
};
char *sc_request_build(const struct sandcell_config *cfg);
int sc_request_parse(const char *buf, size_t len, struct sc_request *q, struct sandcell_error *err);
void sc_request_free(struct sc_request *q);
/* sandcell_run_remote, and one byte written to accepted_fd (-1: none)
 * once the server's worker has read the whole request: past the server's
 * queue, so it will not refuse as busy (nor as stopping).  Not once the
 * server answered first. */
int sc_run_remote(const char *socket_path, const struct sandcell_config *cfg, int accepted_fd,
		  char **report, int *exit_code, struct sandcell_error *err);
int sc_frame_send(int fd, const char *buf, size_t len, const int *fds, size_t n_fds);
/* *n_fds: in, how many fds to accept; out, how many arrived with the
 * header's bytes (0 on failure: the reader closes them).  More than asked
 * for refuses the frame. */
int sc_frame_recv(int fd, char **out, size_t *len, size_t max, int *fds, size_t *n_fds,
		  int timeout_ms, struct sandcell_error *err);

/* In-process execution for warm runs: when set, the sandbox runs the code
 * by calling this instead of execve (the interpreter is already loaded). */
/* Zeroes this process's argv and environ pages (what /proc/PID/cmdline
 * and environ show); contain.c uses it for the sandbox init. */
int sc_scrub_cmdline(void);
typedef void (*sc_exec_hook)(const char *const *argv, const char *const *envp);
void sc_set_exec_hook(sc_exec_hook hook);
extern sc_exec_hook sc_exec_hook_fn;

/* ---- A spare sandbox (spare.c; the warm server's spares, docs/warm.md) ----
 * With ops set, sandcell_run() builds the whole sandbox for a provisional
 * config (no code, no inputs) and then waits for its request: the run's
 * own part is bound late (the init's mounts, the cgroup limits, the
 * code's process handed the run's streams), so that only that part is on
 * the request's path.  The code's process is not forked by the init: the
 * warm template forks it into the sandbox's namespaces while the sandbox
 * is idle, where it confines itself (its PREP, sc_code_confine), and its
 * run starts when its GO comes (sc_code_enter). */
struct sc_spare_req {
	const struct sandcell_config *cfg; /* the run's; the caller keeps it */
	const char *text;		   /* its request text, which the init parses too */
	size_t len;
	int code_pidfd;			   /* the code's process, waiting in the sandbox */
};
/* What a spare's code process joins its sandbox through (the join fds
 * sc_spare_ops.await hands out, -1 where none): the init's cgroup
 * namespace, the v2 run cgroup's directory (the process is born in it),
 * the v1 run cgroups' tasks files. */
enum { SC_JOIN_CGNS, SC_JOIN_V2, SC_JOIN_V1, SC_JOIN_FDS = SC_JOIN_V1 + SC_CGROUP_V1_JOIN };
struct sc_go;
struct sc_spare_ops {
	/* The sandbox is ready: makes the channel (chan below) and sends
	 * prep on it (sc_go_send, SC_MSG_PREP) before the code's process
	 * exists, hands the sandbox out (the init's pidfd, and the join
	 * fds), then blocks until its request.  1: *q filled; 0: no run here
	 * (nothing came, or it was refused or handed on); -1: failed. */
	int (*await)(int init_pidfd, const int *cg_fds, size_t n_cg, const struct sc_go *prep,
		     struct sc_spare_req *q);
	/* The request await returned is refused (nothing ran). */
	void (*refuse)(enum sandcell_status st, const char *why, const struct sandcell_limits *lim);
	/* To the code's process (GO), and from it (STARTED, ERROR) and from
	 * its parent, the template (SC_MSG_EXIT: its wait status). */
	int chan;
};
void sc_set_spare(const struct sc_spare_ops *ops);
extern const struct sc_spare_ops *sc_spare;

/* What the code's process needs to confine itself like a sandbox init
 * would have confined it before the fork: a PREP fills the layers and the
 * root, a GO the rest. */
struct sc_go {
	const struct sandcell_limits *limits;
	struct sc_landlock_info ll;
	struct sc_landlock_rules rules;
	struct sc_bpf bpf;
	const char *const *argv;
	const char *const *envp;
	bool drop_groups;
	uint64_t root_dev, root_ino; /* the pivoted root, as the init saw it */
};
/* Sends g as type (SC_MSG_PREP; SC_MSG_GO with the code's four streams:
 * stdin, stdout, stderr, channel). */
int sc_go_send(int chan, int type, const struct sc_go *g, const int fds[4], struct sandcell_error *err);
/* Reads one message of that type from chan into *g (the strings and
 * program in *mem, malloc'd) and, for a GO, the four streams: 0, or -1. */
int sc_go_recv(int chan, int type, struct sc_go *g, void **mem, int fds[4], struct sandcell_error *err);
/* In the code's process (contain.c), while the spare is idle: waits for
 * PREP on chan, checks its root is the one the init pivoted into, and
 * confines itself as the sandbox init confines the code (identity, then
 * the layers in the same order, seccomp last), keeping only chan.  Fails
 * closed (the error goes to chan, the process exits); exits quietly when
 * chan reaches EOF (the spare was dropped). */
void sc_code_confine(int chan);
/* Then: waits for GO, takes its streams (0-3) and limits, says STARTED,
 * and closes every fd above 3.  Returns the code's argv and envp; fails
 * and exits as sc_code_confine. */
void sc_code_enter(int chan, const char *const **argv, const char *const **envp);
/* The file name the code is written under (/code/NAME). */
const char *sc_code_name(const struct sandcell_config *cfg);

/* Sessions: told when a cell starts and ends, and when the session has
 * ended (before its end event goes out), with how many cells it ran so
 * far, from the supervisor only, with counts it keeps itself.  The warm
 * server reports them to its template (the session listing); it must not
 * block. */
enum sc_session_state { SC_SESSION_IDLE, SC_SESSION_RUNNING, SC_SESSION_ENDED };
typedef void (*sc_session_hook)(enum sc_session_state state, uint64_t cells);
void sc_set_session_hook(sc_session_hook hook);
/* Report at completion: with a hook set, a run's report is handed to it
 * as soon as every process of the run is dead and reaped and the outputs
 * are collected, before the cgroups are removed, which then happens off
 * the caller's path.  Not for sessions or reduced mode.  The report is
 * final except for left_behind, which is then always empty:
 * sandcell_run() still fills it in the result it returns, for the
 * caller to log. */
typedef void (*sc_report_hook)(const struct sandcell_result *r);
void sc_set_report_hook(sc_report_hook hook);
/* A session's per-cell and idle limits left 0 get their defaults (600,
 * 600, 3600 s; docs/sessions.md). */
void sc_session_defaults(struct sandcell_limits *l);

/* ---- report.c ---- */
char *sc_report_render(const struct sandcell_result *r);
/* Moves what the channel kept into r (r then owns it), replacing what an
 * earlier attempt had put there. */
void sc_result_set_channel(struct sandcell_result *r, struct sc_chan_out *co);

#endif
