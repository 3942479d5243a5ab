/* The verdict (verdict.c): one case per status, the precedence between
 * causes that meet in one run, and the reasons' texts. */
#include "verdict.h"
#include "unit.h"

#include <signal.h>
#include <sys/wait.h>

static struct sandcell_limits limits;

/* A started run whose code exited 0, nothing else seen. */
static struct sc_evidence base(void)
{
	struct sc_evidence ev;

	memset(&ev, 0, sizeof(ev));
	ev.limits = &limits;
	ev.code_started = true;
	ev.got_exit = true;
	ev.wait_status = 0; /* exited 0 */
	ev.error = "";
	return ev;
}

/* Wait statuses as waitpid gives them. */
static int exited(int code)
{
	return (code & 0xff) << 8;
}

static int signaled(int sig)
{
	return sig & 0x7f;
}

static struct sc_run_verdict judge(const struct sc_evidence *ev)
{
	struct sc_run_verdict v;

	memset(&v, 0x5a, sizeof(v)); /* nothing may stay from before */
	sc_run_verdict(ev, &v);
	return v;
}

static void test_ok(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v = judge(&ev);

	CHECK_EQ_INT(v.status, SANDCELL_OK);
	CHECK_EQ_INT(v.exit_code, 0);
	CHECK_EQ_INT(v.script_exit, 0);
	CHECK_EQ_INT(v.script_signal, 0);
	CHECK_STR(v.reason, "");
	CHECK_STR(v.error, "");
}

static void test_exited(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.wait_status = exited(3);
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_EXITED);
	CHECK_EQ_INT(v.exit_code, 3);
	CHECK_EQ_INT(v.script_exit, 3);
	CHECK_STR(v.reason, "the code exited with status 3");
}

static void test_signaled(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.wait_status = signaled(SIGSEGV);
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_SIGNALED);
	CHECK_EQ_INT(v.exit_code, 128 + SIGSEGV);
	CHECK_EQ_INT(v.script_exit, -1);
	CHECK_EQ_INT(v.script_signal, SIGSEGV);
	CHECK_STR(v.reason, "the code was killed by signal 11 (SEGV)");

	/* A SIGXCPU the code sent itself, under its CPU limit: a signal. */
	ev.wait_status = signaled(SIGXCPU);
	ev.cpu_sec = limits.cpu_sec - 1;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_SIGNALED);
	CHECK_STR(v.reason, "the code was killed by signal 24 (XCPU); the run had not used its "
			    "CPU-time limit");

	/* A SIGXFSZ with the scratch space not full: a signal too. */
	ev.wait_status = signaled(SIGXFSZ);
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_SIGNALED);
	CHECK_STR(v.reason, "the code was killed by signal 25 (XFSZ); the scratch space was not "
			    "full (a sparse write past the file size limit, or the code sent it)");
}

static void test_timeout(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	/* Killed by us: init reported nothing, the code counts as SIGKILLed. */
	ev.got_exit = false;
	ev.killed_wall = true;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_TIMEOUT);
	CHECK_EQ_INT(v.exit_code, SANDCELL_EXIT_TIMEOUT);
	CHECK_EQ_INT(v.script_signal, SIGKILL);
	CHECK_EQ_INT(v.script_exit, -1);
	CHECK_STR(v.reason, "wall-clock limit of 2.5 s reached; the process tree was killed");
}

static void test_cpu(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.got_exit = false;
	ev.killed_cpu = true;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_CPU_TIME);
	CHECK_EQ_INT(v.exit_code, SANDCELL_EXIT_CPU);
	CHECK_STR(v.reason, "CPU-time limit of 4 s reached; the process tree was killed");

	/* Without a cgroup: RLIMIT_CPU's SIGKILL, with the measured CPU at
	 * the limit, is the CPU limit... */
	ev = base();
	ev.wait_status = signaled(SIGKILL);
	ev.cpu_sec = limits.cpu_sec + 1;
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_CPU_TIME);
	ev.wait_status = signaled(SIGXCPU);
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_CPU_TIME);
	/* ...under it, the same signal is only a signal. */
	ev.wait_status = signaled(SIGKILL);
	ev.cpu_sec = limits.cpu_sec - 0.5;
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_SIGNALED);
}

static void test_memory(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.wait_status = signaled(SIGKILL);
	ev.oom = true;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_MEMORY);
	CHECK_EQ_INT(v.exit_code, SANDCELL_EXIT_MEMORY);
	CHECK_STR(v.reason, "memory limit of 67108864 bytes reached (OOM kill in the run's cgroup)");
	/* cgroup v1: the supervisor killed the tree for the OOM itself. */
	ev.got_exit = false;
	ev.killed_oom = true;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_MEMORY);
	CHECK_EQ_INT(v.script_signal, SIGKILL);
}

static void test_disk(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.wait_status = exited(1);
	ev.scratch_full = true;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_DISK);
	CHECK_EQ_INT(v.exit_code, SANDCELL_EXIT_DISK);
	CHECK_STR(v.reason, "disk limit of 1048576 bytes (or 64 files) for /tmp and /output reached");
	/* A full scratch space under code that succeeded is no stop. */
	ev.wait_status = exited(0);
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_OK);
	ev.wait_status = signaled(SIGXFSZ);
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_DISK);
}

static void test_output_limit(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.outputs_limit_hit = true;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_OUTPUT_LIMIT);
	CHECK_EQ_INT(v.exit_code, 0);
	CHECK_STR(v.reason, "/output exceeded the collection limits; some entries were skipped");
	ev.result_truncated = true;
	CHECK_STR(judge(&ev).reason, "the result exceeded its size limit");
	/* A failed code's own status comes first. */
	ev.wait_status = exited(2);
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_EXITED);
}

static void test_sandbox_error(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.error = "sandbox setup failed: mount: EPERM";
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_SANDBOX_ERROR);
	CHECK_EQ_INT(v.exit_code, SANDCELL_EXIT_SANDBOX);
	CHECK_STR(v.error, "sandbox setup failed: mount: EPERM");
	CHECK_STR(v.reason, "sandbox setup failed: mount: EPERM");
	/* No code started and no error said why: one is named. */
	ev = base();
	ev.code_started = false;
	ev.got_exit = false;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_SANDBOX_ERROR);
	CHECK_STR(v.error, "the sandbox ended before the code started");
	CHECK_STR(v.reason, "the sandbox ended before the code started");
	/* A stop before the code started kills nothing of the code's. */
	ev.killed_wall = true;
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_SANDBOX_ERROR);
	CHECK_EQ_INT(v.script_signal, 0);
}

static void test_cancelled(void)
{
	struct sc_evidence ev = base();
	struct sc_run_verdict v;

	ev.got_exit = false;
	ev.cancel_verdict = true;
	/* What failed while the tree was killed is the cancel's doing. */
	ev.error = "sandbox setup failed: lost the control socket";
	v = judge(&ev);
	CHECK_EQ_INT(v.status, SANDCELL_CANCELLED);
	CHECK_EQ_INT(v.exit_code, SANDCELL_EXIT_CANCELLED);
	CHECK_EQ_INT(v.script_signal, SIGKILL);
	CHECK_STR(v.error, "");
	CHECK_STR(v.reason, "the run was cancelled by its caller; the process tree was killed");
	ev.code_started = false;
	v = judge(&ev);
	CHECK_EQ_INT(v.script_signal, 0);
	CHECK_STR(v.reason, "the run was cancelled by its caller; the code had not started");
}

/* Causes that meet in one run: the first in the order wins. */
static void test_precedence(void)
{
	struct sc_evidence ev = base();

	/* A wall timeout whose kill also left a memory event. */
	ev.got_exit = false;
	ev.killed_wall = true;
	ev.oom = true;
	ev.scratch_full = true;
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_TIMEOUT);
	/* The CPU limit before memory and disk. */
	ev.killed_wall = false;
	ev.killed_cpu = true;
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_CPU_TIME);
	/* Wall before CPU. */
	ev.killed_wall = true;
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_TIMEOUT);
	/* Memory before a full disk. */
	ev.killed_wall = ev.killed_cpu = false;
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_MEMORY);
	/* A sandbox error before every limit... */
	ev.killed_wall = true;
	ev.error = "poll failed";
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_SANDBOX_ERROR);
	/* ...and a cancel that came first before that. */
	ev.cancel_verdict = true;
	CHECK_EQ_INT(judge(&ev).status, SANDCELL_CANCELLED);
	/* The code's exit status wins over the signal we would assume. */
	ev = base();
	ev.killed_wall = true;
	ev.wait_status = exited(0);
	{
		struct sc_run_verdict v = judge(&ev);
		CHECK_EQ_INT(v.status, SANDCELL_TIMEOUT);
		CHECK_EQ_INT(v.script_signal, 0);
		CHECK_EQ_INT(v.script_exit, 0);
	}
}

static const char *session_end(struct sc_sess_evidence *ev, enum sandcell_status s, char *reason,
			       size_t len)
{
	const char *ended_by = NULL;

	sc_verdict_session(ev, s, reason, len, &ended_by);
	return ended_by;
}

static void test_session(void)
{
	struct sc_sess_evidence ev = { &limits, SC_STOP_NONE, false, false, "c7", 5.0 };
	char reason[512];

	snprintf(reason, sizeof(reason), "wall-clock limit of 2.5 s reached; ...");
	ev.stop = SC_STOP_IDLE;
	CHECK_STR(session_end(&ev, SANDCELL_TIMEOUT, reason, sizeof(reason)), "idle");
	CHECK_STR(reason, "the session was idle for 30 s (no cell running, no command); the "
			  "process tree was killed");
	ev.stop = SC_STOP_CELL_WALL;
	CHECK_STR(session_end(&ev, SANDCELL_TIMEOUT, reason, sizeof(reason)), "cell-wall-time");
	CHECK_STR(reason, "cell c7 reached its wall-clock limit of 10 s and did not stop within 5 s "
			  "of the interrupt; the process tree was killed");
	ev.stop = SC_STOP_CELL_CPU;
	CHECK_STR(session_end(&ev, SANDCELL_TIMEOUT, reason, sizeof(reason)), "cell-cpu-time");
	CHECK_STR(reason, "cell c7 reached its CPU-time limit of 20 s and did not stop within 5 s "
			  "of the interrupt; the process tree was killed");
	ev.stop = SC_STOP_CLOSE_GRACE;
	CHECK_STR(session_end(&ev, SANDCELL_TIMEOUT, reason, sizeof(reason)), "close-timeout");
	CHECK_STR(reason, "the session's interpreter did not exit within 5 s of close; the process "
			  "tree was killed");
	/* A session stop under a status that is not a timeout: the run's
	 * own cause stands (memory here). */
	snprintf(reason, sizeof(reason), "memory");
	CHECK_STR(session_end(&ev, SANDCELL_MEMORY, reason, sizeof(reason)), "limit");
	CHECK_STR(reason, "memory");
	ev.stop = SC_STOP_NONE;
	CHECK_STR(session_end(&ev, SANDCELL_TIMEOUT, reason, sizeof(reason)), "limit");
	CHECK_STR(session_end(&ev, SANDCELL_DISK, reason, sizeof(reason)), "limit");
	CHECK_STR(session_end(&ev, SANDCELL_SANDBOX_ERROR, reason, sizeof(reason)), "sandbox-error");
	CHECK_STR(session_end(&ev, SANDCELL_SIGNALED, reason, sizeof(reason)), "interpreter-exited");
	/* An ok end: closed by the caller, or the interpreter left. */
	reason[0] = '\0';
	CHECK_STR(session_end(&ev, SANDCELL_OK, reason, sizeof(reason)), "interpreter-exited");
	CHECK_STR(reason, "the session's interpreter exited by itself");
	reason[0] = '\0';
	ev.closing = true;
	CHECK_STR(session_end(&ev, SANDCELL_OK, reason, sizeof(reason)), "close");
	CHECK_STR(reason, "the caller closed the session");
	/* A cancel names the end whatever else was seen. */
	ev.cancel_verdict = true;
	ev.stop = SC_STOP_IDLE;
	CHECK_STR(session_end(&ev, SANDCELL_CANCELLED, reason, sizeof(reason)), "cancelled");
	CHECK_STR(reason, "the caller closed the session");
}

int main(void)
{
	limits.wall_sec = 2.5;
	limits.cpu_sec = 4;
	limits.memory = 64u << 20;
	limits.disk = 1u << 20;
	limits.disk_inodes = 64;
	limits.cell_wall_sec = 10;
	limits.cell_cpu_sec = 20;
	limits.idle_sec = 30;
	test_ok();
	test_exited();
	test_signaled();
	test_timeout();
	test_cpu();
	test_memory();
	test_disk();
	test_output_limit();
	test_sandbox_error();
	test_cancelled();
	test_precedence();
	test_session();
	return unit_done("test_verdict");
}
