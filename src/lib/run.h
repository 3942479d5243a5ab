#ifndef SANDCELL_RUN_H
#define SANDCELL_RUN_H
/*
 * The supervisor's private header: the state of one run (struct run),
 * shared by its parts and by nothing else:
 *   run.c       sandcell_run(): validates, prepares the layers, runs the
 *               attempts, collects, settles the report
 *   verdict.c   the verdict, from the host's evidence alone
 *   workdir.c   reduced mode's private directory, fd-relative removal
 */
#include "internal.h"
#include "contain.h"
#include "proto.h"

#include <limits.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#define SC_MAX_RUNTIME 16
#define SC_CHILD_FD_MIN 10
#define SC_SETUP_TIMEOUT_MS 10000
#define SC_CPU_POLL_MS 50

struct sess;

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
