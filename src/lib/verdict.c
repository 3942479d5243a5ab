/*
 * The verdict: status, exit code and reason of a run, from the host's
 * evidence alone (struct sc_evidence, gathered by run.c).  No I/O here, so
 * each status and the precedence between causes that meet in one run (a
 * wall timeout whose kill also left a memory event, say) are unit-tested
 * case by case (tests/unit/test_verdict.c).
 *
 * Precedence, first match wins: a cancel that came first; a sandbox error
 * (or code that never started); the wall-clock limit; the CPU limit; an
 * OOM kill; a full scratch space under a failed code; a signal; a non-zero
 * exit; an output limit; ok.  The supervisor's own stops come before what
 * the kernel recorded while the tree was being killed.
 */
#include "verdict.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static int exit_code(enum sandcell_status s, int script_exit, int sig)
{
	switch (s) {
	case SANDCELL_SANDBOX_ERROR: return SANDCELL_EXIT_SANDBOX;
	case SANDCELL_CANCELLED: return SANDCELL_EXIT_CANCELLED;
	case SANDCELL_TIMEOUT: return SANDCELL_EXIT_TIMEOUT;
	case SANDCELL_CPU_TIME: return SANDCELL_EXIT_CPU;
	case SANDCELL_MEMORY: return SANDCELL_EXIT_MEMORY;
	case SANDCELL_DISK: return SANDCELL_EXIT_DISK;
	case SANDCELL_SIGNALED: return 128 + sig;
	default: return script_exit < 0 ? 0 : script_exit;
	}
}

void sc_run_verdict(const struct sc_evidence *ev, struct sc_run_verdict *v)
{
	const struct sandcell_limits *l = ev->limits;
	int sig = 0;

	memset(v, 0, sizeof(*v));
	v->script_exit = -1;
	snprintf(v->error, sizeof(v->error), "%.*s", (int)sizeof(v->error) - 1, ev->error ? ev->error : "");
	if (!ev->got_exit &&
	    (ev->killed_wall || ev->killed_cpu || ev->killed_oom || ev->cancel_verdict) &&
	    ev->code_started)
		sig = SIGKILL; /* we killed it; init had no say */
	if (ev->got_exit) {
		if (WIFEXITED(ev->wait_status))
			v->script_exit = WEXITSTATUS(ev->wait_status);
		else if (WIFSIGNALED(ev->wait_status))
			sig = WTERMSIG(ev->wait_status);
	}
	v->script_signal = sig;
	if (ev->cancel_verdict) {
		/* What failed while the tree was being killed (the control
		 * socket closing under a setup, say) is the cancel's doing. */
		v->status = SANDCELL_CANCELLED;
		v->error[0] = '\0';
		snprintf(v->reason, sizeof(v->reason), "the run was cancelled by its caller; %s",
			 ev->code_started ? "the process tree was killed" : "the code had not started");
	} else if (v->error[0] || !ev->code_started) {
		v->status = SANDCELL_SANDBOX_ERROR;
		if (!v->error[0])
			snprintf(v->error, sizeof(v->error), "the sandbox ended before the code started");
		snprintf(v->reason, sizeof(v->reason), "%.*s", (int)sizeof(v->reason) - 1, v->error);
	} else if (ev->killed_wall) {
		v->status = SANDCELL_TIMEOUT;
		snprintf(v->reason, sizeof(v->reason),
			 "wall-clock limit of %g s reached; the process tree was killed", l->wall_sec);
	} else if (ev->killed_cpu ||
		   ((sig == SIGXCPU || sig == SIGKILL) && ev->cpu_sec >= l->cpu_sec)) {
		/* The signal alone proves nothing (the code can send it to
		 * itself): the CPU the host measured must have reached the
		 * limit.  Without a cgroup that is the rusage of the reaped
		 * tree, which RLIMIT_CPU (limit + 1 s) stops past the limit. */
		v->status = SANDCELL_CPU_TIME;
		snprintf(v->reason, sizeof(v->reason),
			 "CPU-time limit of %g s reached; the process tree was killed", l->cpu_sec);
	} else if (ev->oom) {
		v->status = SANDCELL_MEMORY;
		snprintf(v->reason, sizeof(v->reason),
			 "memory limit of %llu bytes reached (OOM kill in the run's cgroup)",
			 (unsigned long long)l->memory);
	} else if ((v->script_exit != 0 || sig) && ev->scratch_full) {
		/* Only a scratch space the host sees full is a disk stop: a
		 * SIGXFSZ the code sent itself, or one from a sparse write
		 * past RLIMIT_FSIZE, wrote nothing and is a plain signal. */
		v->status = SANDCELL_DISK;
		snprintf(v->reason, sizeof(v->reason),
			 "disk limit of %llu bytes (or %llu files) for /tmp and /output reached",
			 (unsigned long long)l->disk, (unsigned long long)l->disk_inodes);
	} else if (sig) {
		v->status = SANDCELL_SIGNALED;
		snprintf(v->reason, sizeof(v->reason), "the code was killed by signal %d (%s)%s", sig,
			 sigabbrev_np(sig) ? sigabbrev_np(sig) : "?",
			 sig == SIGXCPU ? "; the run had not used its CPU-time limit"
			 : sig == SIGXFSZ ? "; the scratch space was not full (a sparse write past "
					    "the file size limit, or the code sent it)" : "");
	} else if (v->script_exit != 0) {
		v->status = SANDCELL_EXITED;
		snprintf(v->reason, sizeof(v->reason), "the code exited with status %d", v->script_exit);
	} else if (ev->outputs_limit_hit || ev->result_truncated) {
		v->status = SANDCELL_OUTPUT_LIMIT;
		snprintf(v->reason, sizeof(v->reason), "%s",
			 ev->result_truncated ? "the result exceeded its size limit"
					      : "/output exceeded the collection limits; some entries were skipped");
	} else {
		v->status = SANDCELL_OK;
	}
	v->exit_code = exit_code(v->status, v->script_exit, sig);
}

void sc_verdict_session(const struct sc_sess_evidence *ev, enum sandcell_status status,
			char *reason, size_t reason_len, const char **ended_by)
{
	const struct sandcell_limits *l = ev->limits;
	/* The run saw a timeout; the session knows which of its own. */
	bool ours = status == SANDCELL_TIMEOUT || status == SANDCELL_CPU_TIME;
	bool cell = ev->stop == SC_STOP_CELL_WALL || ev->stop == SC_STOP_CELL_CPU;

	if (ours && ev->stop == SC_STOP_IDLE)
		snprintf(reason, reason_len,
			 "the session was idle for %g s (no cell running, no command); the process "
			 "tree was killed", l->idle_sec);
	else if (ours && cell)
		snprintf(reason, reason_len,
			 "cell %s reached its %s limit of %g s and did not stop within %g s of the "
			 "interrupt; the process tree was killed", ev->cell_id,
			 ev->stop == SC_STOP_CELL_WALL ? "wall-clock" : "CPU-time",
			 ev->stop == SC_STOP_CELL_WALL ? l->cell_wall_sec : l->cell_cpu_sec, ev->grace);
	else if (ours && ev->stop == SC_STOP_CLOSE_GRACE)
		snprintf(reason, reason_len,
			 "the session's interpreter did not exit within %g s of close; the process "
			 "tree was killed", ev->grace);
	else if (status == SANDCELL_OK && reason[0] == '\0')
		snprintf(reason, reason_len, "%s",
			 ev->closing ? "the caller closed the session"
				     : "the session's interpreter exited by itself");
	if (ev->cancel_verdict)
		*ended_by = "cancelled";
	else if (status == SANDCELL_SANDBOX_ERROR)
		*ended_by = "sandbox-error";
	else if (ours && ev->stop == SC_STOP_IDLE)
		*ended_by = "idle";
	else if (ours && ev->stop == SC_STOP_CELL_WALL)
		*ended_by = "cell-wall-time";
	else if (ours && ev->stop == SC_STOP_CELL_CPU)
		*ended_by = "cell-cpu-time";
	else if (ours && ev->stop == SC_STOP_CLOSE_GRACE)
		*ended_by = "close-timeout";
	else if (ours || status == SANDCELL_MEMORY || status == SANDCELL_DISK)
		*ended_by = "limit";
	else if (ev->closing && status == SANDCELL_OK)
		*ended_by = "close";
	else
		*ended_by = "interpreter-exited";
}
