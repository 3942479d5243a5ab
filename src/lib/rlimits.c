/*
 * rlimits: per-process backstops under the cgroup limits.  Soft == hard so
 * the code cannot raise them.  MEMLOCK, MSGQUEUE and SIGPENDING are also
 * per-user budgets on the host: see userns.c for why runs do not share them.  RLIMIT_AS is never used: numpy and glibc
 * reserve far more address space than they touch, and memory is bounded by
 * the cgroup instead.
 */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <sys/resource.h>

/* Queued signals and POSIX timers: the kernel counts them per user at
 * every user-namespace level up to the host, so the code's own allowance is
 * kept small (no library it needs queues more than a few). */
#define SC_SIGPENDING_MAX 128

static int set(int res, rlim_t soft, rlim_t hard, const char *name, struct sandcell_error *err)
{
	struct rlimit rl = { soft, hard };

	if (setrlimit(res, &rl) < 0)
		return sc_err(err, errno, "rlimit %s", name);
	return 0;
}

int sc_rlimits_apply(const struct sandcell_limits *lim, struct sandcell_error *err)
{
	/* Per-process CPU backstop: SIGXCPU just past the run's CPU limit,
	 * SIGKILL a second later.  The run-wide limit is the cgroup's. */
	rlim_t cpu = (rlim_t)ceil(lim->cpu_sec) + 1;

	if (set(RLIMIT_CORE, 0, 0, "CORE", err) < 0 ||
	    set(RLIMIT_NOFILE, lim->files, lim->files, "NOFILE", err) < 0 ||
	    set(RLIMIT_FSIZE, lim->disk, lim->disk, "FSIZE", err) < 0 ||
	    set(RLIMIT_CPU, cpu, cpu + 1, "CPU", err) < 0 ||
	    set(RLIMIT_MEMLOCK, 0, 0, "MEMLOCK", err) < 0 ||
	    set(RLIMIT_MSGQUEUE, 0, 0, "MSGQUEUE", err) < 0 ||
	    (!sc_hook_on(SC_HOOK_NO_USER_BUDGETS) &&
	     set(RLIMIT_SIGPENDING, SC_SIGPENDING_MAX, SC_SIGPENDING_MAX, "SIGPENDING", err) < 0) ||
	    set(RLIMIT_RTPRIO, 0, 0, "RTPRIO", err) < 0)
		return -1;
	return 0;
}
