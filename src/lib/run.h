#ifndef SANDCELL_RUN_H
#define SANDCELL_RUN_H
/*
 * The supervisor's private header: the state of one run (struct run),
 * shared by its parts and by nothing else:
 *   run.c          sandcell_run(): validates, prepares the layers, runs
 *                  the attempts, collects, settles the report
 *   spawn.c        one attempt: clone the sandbox and take it through the
 *                  handshakes with its init (contain.c) to the code's start
 *   supervise.c    the poll loop while the run lives: streams, limits, cancel
 *   session_run.c  a session: commands, cells, its limits and report
 *   verdict.c      the verdict, from the host's evidence alone (verdict.h)
 *   workdir.c      reduced mode's private directory, fd-relative removal
 */
#include "internal.h"
#include "contain.h"
#include "proto.h"
#include "verdict.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define SC_MAX_RUNTIME 16
#define SC_CHILD_FD_MIN 10
#define SC_SETUP_TIMEOUT_MS 10000
#define SC_CPU_POLL_MS 50

struct sess;

/* One run, from sandcell_run() to its report.  What the supervisor saw
 * (its kills, the wait status init reported, a cancel) is the verdict's
 * evidence. */
struct run {
	const struct sandcell_config *cfg;
	struct sandcell_result *r;
	struct sc_cgroup cg;
	bool have_cg;
	struct sc_bpf bpf;
	int pidfd, sock, scratch_fd, out_dirfd;
	int in_pipe[2], out_pipe[2], err_pipe[2], res_pipe[2];
	pid_t pid;
	bool killed_wall, killed_cpu, killed_oom, init_exited, got_exit, cancelled;
	bool cancel_verdict;	/* the cancel came before any other stop or failure */
	bool where_sent;	/* the code was asked where it is (SC_WHERE_SIGNAL) */
	double kill_at;		/* cancelled: the kill after the question's grace, or 0 */
	bool reduced;
	bool v2_attached;	/* cloned straight into the v2 run cgroup */
	char workdir[1024];	/* reduced mode's private host directory */
	uid_t host_uid;		/* the host ids the code runs as (a session's adds) */
	gid_t host_gid;
	int wait_status;
	double t0;
	struct sess *ss;	/* SANDCELL_SESSION: the session's state, else NULL */
	/* A spare (internal.h): the code's process, its channel (the
	 * server's; STARTED, ERROR, EXIT come there), and whether the spare
	 * ended without a run (no request, or one refused). */
	int code_pidfd, code_sock;
	/* A spare's mount namespaces (its opener's copy of the caller's
	 * view, the sandbox's), held until the run is answered: their
	 * teardown is then off the request's path (contain.c, say_idle). */
	int held_mnt[2];
	bool code_gone;		/* the code's process exited: the init is killed */
	bool spare_quiet;
};

static inline double now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* The run's first error stays its error. */
static inline void set_error(struct sandcell_result *r, const char *msg)
{
	if (r->error[0] == '\0')
		snprintf(r->error, sizeof(r->error), "%.*s", (int)sizeof(r->error) - 1, msg);
}

/* fds of the run above the ones the sandbox init rearranges (0-3). */
static inline int move_high(int *fd)
{
	int nfd = fcntl(*fd, F_DUPFD_CLOEXEC, SC_CHILD_FD_MIN);
	if (nfd < 0)
		return -1;
	close(*fd);
	*fd = nfd;
	return 0;
}

static inline int pipe_high(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	return move_high(&p[0]) < 0 || move_high(&p[1]) < 0 ? -1 : 0;
}

enum sc_attempt { SC_ATTEMPT_DONE, SC_ATTEMPT_RETRY_REDUCED };

/* What sandcell_run() prepares once for every attempt. */
struct sc_prep {
	char dirs[SC_MAX_RUNTIME][PATH_MAX];
	const char *runtime[SC_MAX_RUNTIME];
	int runtime_fds[SC_MAX_RUNTIME];
	size_t n_runtime;
	int *input_fds;
	/* Reduced mode: each input's Landlock path, its symlink in the
	 * private directory (absolute, and the very target the code opens). */
	char (*input_ro)[PATH_MAX];
	struct sc_landlock_info ll;
	struct sc_ids ids;
};

/* ---- run.c ---- */
/* A spare's request (spawn.c): checked as sandcell_run() checks a cold
 * one, its output directory opened, and made the run's config: 0 or -1. */
int sc_run_accept(struct run *rn, const struct sandcell_config *cfg, struct sandcell_error *err);
/* 1 if a cancel is pending on fd, 0 if not (or no fd), -1 if that
 * cannot be known. */
int sc_cancel_pending(int fd);

/* ---- spawn.c ---- */
/* One attempt at a run, in full or in reduced mode, from the clone to
 * the reaped init. */
enum sc_attempt sc_spawn(struct run *rn, struct sc_prep *pp);

/* ---- supervise.c ---- */
/* The supervision loop: streams, messages, limits, until the tree is
 * dead and every stream reached EOF. */
void sc_supervise(struct run *rn);
/* Kills the run's whole process tree. */
void sc_kill_tree(struct run *rn);
/* Waits until fd is readable (or hung up): 1; 0 after timeout_ms (-1:
 * none); -1 with errno.  A signal the caller handles does not end the
 * wait early: poll is never restarted, whatever SA_RESTART says. */
int sc_wait_in(int fd, int timeout_ms);
/* One message of the sandbox init; a passed fd is kept (*fd_out) only
 * for SC_MSG_SCRATCH, else closed.  -1 on EOF, error or a short one. */
int sc_init_recv(int sock, struct sc_msg *m, int *fd_out);
/* One message of the sandbox init with up to max fds, all kept (*n). */
int sc_init_recv_fds(int sock, struct sc_msg *m, int *fds, size_t max, size_t *n);
/* Writes it all to a caller's fd; a caller's stream that is gone is
 * ignored (the run keeps draining). */
void sc_write_all(int fd, const char *p, size_t n);

/* ---- session_run.c ---- */
/* A session's state (SANDCELL_SESSION), owned by its run. */
struct sess {
	struct run *rn;
	struct sc_chan *chan;
	struct sc_chan_sink sink;
	int ev_fd;
	/* Commands from the caller. */
	char *line;
	size_t line_len, line_cap;
	bool line_skip;		/* the line in progress passed 64 MiB: refused at its end */
	bool closing;		/* close or EOF: no more commands */
	/* Lines for the loop, written as its stdin pipe takes them. */
	char *tl;
	size_t tl_len, tl_off;
	bool loop_closed;	/* its stdin was closed after close */
	double closed_at;
	/* The cell in progress. */
	bool running;
	char id[SC_SESSION_ID_MAX + 1];
	uint64_t seq;
	/* The running cell's execution count, kept here: a record from the
	 * code cannot change the count its caller sees. */
	uint64_t exec_count, n_counted;
	double t0;
	uint64_t cpu0;
	bool have_cpu0;
	bool input_pending;
	enum sc_sess_stop limit;	/* a cell limit sent the interrupt */
	double kill_at;		/* then the kill, unless its D comes first */
	double last_activity;
	bool ready_sent;
	enum sc_sess_stop stop;	/* what the supervisor ended the session for */
	json_t *used_ids;	/* an object used as a set */
	uint64_t n_ok, n_error, n_interrupted, n_killed, stray_outputs;
	json_t *problems;
	uint64_t more_problems;
	/* An incomplete UTF-8 sequence at the end of the last raw read. */
	char carry[2][4];
	size_t carry_len[2];
	uint64_t out_files, out_bytes; /* collected so far (the session's budget) */
	bool collected;
	/* Files added (op add) and the running cell's pending dataset request. */
	uint64_t n_added, n_requests;
	bool request_pending;
	char request_name[SC_SESSION_NAME_MAX + 1];
};

struct sess *sc_sess_new(struct run *rn);
void sc_sess_free(struct sess *ss);
/* An event to the caller (cfg->stdout_fd); ev is consumed. */
void sc_sess_emit(struct sess *ss, json_t *ev);
/* The code's stdout (which 0) or stderr (1) bytes, as output events. */
void sc_sess_raw(struct sess *ss, int which, const char *buf, size_t n, bool final);
/* The caller's command bytes (eof: they ended). */
void sc_sess_commands(struct sess *ss, const char *buf, size_t n, bool eof);
/* The session's limits, at each turn of the loop; the poll timeout they
 * need. */
void sc_sess_tick(struct sess *ss, double now);
int sc_sess_timeout(struct sess *ss, double now, int timeout);
/* After the verdict: the running cell's end, the session's reason and
 * report object; then its last event. */
void sc_sess_settle(struct sess *ss);
void sc_sess_end(struct sess *ss);

/* ---- workdir.c ---- */
/* Makes reduced mode's private directory under $TMPDIR (or /tmp): dir
 * gets its path (kept on failure, for sc_workdir_remove), *dirfd an fd on
 * it. */
int sc_workdir_make(const struct sandcell_config *cfg, const char *code_name, char *dir, size_t dir_len,
		    int *dirfd, struct sandcell_error *err);
void sc_workdir_remove(char *dir);
void sc_remove_tree(int dirfd, int depth);
int sc_dir_is_empty(int dirfd, struct sandcell_error *err);
#endif
