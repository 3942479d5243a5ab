#ifndef SANDCELL_VERDICT_H
#define SANDCELL_VERDICT_H
/*
 * The verdict on a run (private to the supervisor): a pure function of the
 * host's evidence, gathered by run.c once every process of the run is
 * dead.  Nothing the code wrote is evidence; a signal or an exit status is
 * only believed where the host's own measure agrees (see verdict.c).
 */
#include "internal.h"

/* What the host saw of a run's end. */
struct sc_evidence {
	const struct sandcell_limits *limits; /* named in the reasons */
	bool code_started;	/* init said the code started (SC_MSG_STARTED) */
	bool got_exit;		/* init reported the code's wait status */
	int wait_status;	/* that status, when got_exit */
	/* Stops the supervisor decided, and killed the tree for. */
	bool killed_wall, killed_cpu, killed_oom;
	bool cancel_verdict;	/* the caller's cancel came before any other stop or failure */
	bool oom;		/* the run's cgroup recorded an OOM kill */
	bool scratch_full;	/* the host sees the scratch space full (blocks or inodes) */
	double cpu_sec;		/* CPU time the host measured (cgroup, else rusage) */
	const char *error;	/* a setup or supervisor failure, or "" */
	bool outputs_limit_hit;	/* /output collection skipped entries */
	bool result_truncated;	/* the published result passed its limit */
};

struct sc_run_verdict {
	enum sandcell_status status;
	int script_exit;	/* -1 if it did not exit */
	int script_signal;	/* 0 if none */
	int exit_code;		/* the CLI's exit status */
	char error[512];	/* the report's sandbox error ("" unless SANDBOX_ERROR) */
	char reason[512];	/* the status's cause ("" for ok) */
};

void sc_run_verdict(const struct sc_evidence *ev, struct sc_run_verdict *v);

/* What ended a session, as far as the supervisor ended it (run.c). */
enum sc_sess_stop { SC_STOP_NONE, SC_STOP_IDLE, SC_STOP_CELL_WALL, SC_STOP_CELL_CPU, SC_STOP_CLOSE_GRACE };

struct sc_sess_evidence {
	const struct sandcell_limits *limits;
	enum sc_sess_stop stop;	/* the supervisor's reason to kill, if it did */
	bool closing;		/* the caller closed the session (or its commands ended) */
	bool cancel_verdict;
	const char *cell_id;	/* the cell that ran at a cell-limit stop */
	double grace;		/* seconds given after an interrupt or a close */
};

/* A session's verdict on top of the run's (status): reason is replaced
 * where the stop was the session's own (the run only saw a timeout), or
 * filled for an ok end; *ended_by is the report's session.ended_by. */
void sc_verdict_session(const struct sc_sess_evidence *ev, enum sandcell_status status,
			char *reason, size_t reason_len, const char **ended_by);
#endif
