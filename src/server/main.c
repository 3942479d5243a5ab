/*
 * sandcell-warm: the warm server behind `sandcell serve`.
 *
 * One process holds a template interpreter (CPython embedded, with numpy,
 * pandas and matplotlib already imported).  It never runs user code: for
 * each request it forks a worker, and the worker runs the request through
 * the very same sandcell_run() as a cold run, with one difference: where a
 * cold run would execve python, the sandboxed child (by then in its own
 * namespaces, cgroup, uid, Landlock domain and seccomp filter, with its own
 * /tmp, /input and /output) runs the code in the interpreter it inherited.
 *
 * Trade-offs (docs/warm.md): every child shares the template's memory
 * layout (ASLR), so the template re-executes itself after --respawn-runs
 * runs or --respawn-seconds; BLAS pools are pinned to one thread before
 * the imports, so the template has a single thread when it forks; RNGs are
 * reseeded in every child.
 *
 * And since a run inherits memory instead of exec'ing, nothing of its
 * request, of other requests, of the server's command line or of the host
 * may be in that memory when the code starts (G6): see "What a run's
 * memory holds" in worker.c.
 *
 * This file: the options, and the order of the template's startup.  The
 * rest, by role: server.h.
 */

#include "server.h"
#include "table.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
}

void logmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("sandcell serve: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(void)
{
	fputs("Usage: sandcell serve --socket PATH [--slots N] [--max-sessions N] [--queue N]\n"
	      "                      [--queue-timeout SEC] [--preload MODULES] [--respawn-runs N]\n"
	      "                      [--respawn-seconds SEC] [--python PATH] [--spares N]\n"
	      "                      [--write-ahead MIB]\n",
	      stderr);
	exit(SANDCELL_EXIT_USAGE);
}

static void parse_count_opt(const char *arg, long min, long max, long *out)
{
	struct sandcell_error e;
	uint64_t v;

	if (sandcell_parse_count(arg, &v, &e) < 0 || (long)v < min || v > (uint64_t)max) {
		fprintf(stderr, "sandcell serve: bad value '%s' (%ld to %ld)\n", arg, min, max);
		exit(SANDCELL_EXIT_USAGE);
	}
	*out = (long)v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "slots", required_argument, NULL, 'n' },
		{ "max-sessions", required_argument, NULL, 'm' },
		{ "queue", required_argument, NULL, 'q' },
		{ "queue-timeout", required_argument, NULL, 't' },
		{ "preload", required_argument, NULL, 'p' },
		{ "respawn-runs", required_argument, NULL, 'r' },
		{ "respawn-seconds", required_argument, NULL, 'R' },
		{ "python", required_argument, NULL, 'y' },
		{ "spares", required_argument, NULL, 'S' },
		{ "write-ahead", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sandcell_error e;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 's': o->socket = optarg; break;
		case 'p': o->preload = optarg; break;
		case 'y': o->python = optarg; break;
		case 'n': parse_count_opt(optarg, 1, MAX_SLOTS, &o->slots); break;
		case 'm': parse_count_opt(optarg, 0, MAX_SESSIONS, &o->max_sessions); break;
		case 'q': parse_count_opt(optarg, 1, 1000000, &o->queue); break;
		case 'r': parse_count_opt(optarg, 1, 1000000, &o->respawn_runs); break;
		case 'S': parse_count_opt(optarg, 0, MAX_SPARES, &o->spares); break;
		case 'W': parse_count_opt(optarg, 0, 256, &o->write_ahead_mib); break;
		case 't': case 'R':
			if (sandcell_parse_seconds(optarg, c == 't' ? &o->queue_timeout : &o->respawn_seconds,
						   &e) < 0) {
				fprintf(stderr, "sandcell serve: %s\n", e.msg);
				exit(SANDCELL_EXIT_USAGE);
			}
			break;
		default: usage();
		}
	}
	if (o->socket == NULL || optind != argc)
		usage();
	if (o->slots == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o->slots = n > 0 ? n * 2 : 2;
	}
	if (o->spares < 0)
		o->spares = o->slots < 2 ? o->slots : 2;
	if (o->max_sessions < 0)
		o->max_sessions = o->slots;
}

int main(int argc, char **argv)
{
	struct opts o = { NULL, "/usr/bin/python3", "numpy,pandas,matplotlib,matplotlib.pyplot", NULL,
			  0, 64, 1000, -1, -1, 30.0, 600.0, 0 };
	int c, listen_fd = -1, state_fd = -1;
	bool respawned;

	parse_args(argc, argv, &o);
	heap_on_huge_pages(argv);
	if (keep_copies(argc, argv, &o, &listen_fd, &state_fd) < 0)
		return SANDCELL_EXIT_SANDBOX;
	respawned = listen_fd >= 0;
	if (server_init(&o, state_fd) < 0)
		return SANDCELL_EXIT_SANDBOX;

	/* The template's environment is the sandbox's fixed one: thread
	 * pools are pinned before numpy is imported, and what the imports
	 * cache from it is what a sandbox would compute.  From here on a
	 * stop request is honoured, even while the imports run. */
	signal(SIGINT, on_stop);
	signal(SIGTERM, on_stop);
#ifdef SANDCELL_TEST_HOOKS
	/* Test builds only: the hooks (src/lib/hooks.c) outlive the cleared
	 * environment, so that the ablation runs against this server too. */
	const char *hooks_env = getenv("SANDCELL_TEST_HOOKS");
	char *hooks = hooks_env ? strdup(hooks_env) : NULL;
#endif
	clearenv();
	if (sc_scrub_cmdline() < 0) {
		logmsg("cannot scrub the launcher's command line and environment");
		return SANDCELL_EXIT_SANDBOX;
	}
	for (c = 0; sc_env[c]; c++)
		putenv((char *)sc_env[c]);
#ifdef SANDCELL_TEST_HOOKS
	if (hooks != NULL)
		setenv("SANDCELL_TEST_HOOKS", hooks, 1);
	free(hooks);
	/* The code's processes are the template's forks: they confine
	 * themselves with the template's hooks. */
	sc_hooks_load();
#endif
	if (map_request_stack() < 0) {
		logmsg("cannot map the request stack: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	/* The code's processes of the spares are forked into their
	 * sandboxes by helpers that exit at once (template_fork_into): they
	 * are re-parented here, for their wait status. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0) {
		logmsg("cannot become a child subreaper: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	if (make_template(&o, respawned, &c) < 0)
		return SANDCELL_EXIT_SANDBOX;
	server_set_factory(c);
	/* Python installed handlers for its own use; the server itself
	 * stops on SIGINT/SIGTERM and ignores SIGPIPE. */
	if (stop_sig)
		return stop_server();
	signal(SIGPIPE, SIG_IGN);
	if (make_refusal_fallback() < 0)
		return SANDCELL_EXIT_SANDBOX;
	if (server_listen(respawned ? listen_fd : -1) < 0)
		return SANDCELL_EXIT_SANDBOX;
	drain_free_chunks();
	learn_likely_pages((size_t)o.write_ahead_mib << 8);
	if (!respawned)
		logmsg("ready on %s (slots %ld, max sessions %ld, preload %s; %zu pages written in advance by idle spares)",
		       o.socket, o.slots, o.max_sessions, o.preload, pages_kept());
	/* After the last message that names a host path (the socket's):
	 * vfprintf's buffers are on this stack, which every fork copies. */
	if (wipe_dead_stack() < 0) {
		logmsg("cannot clear the template's stack: %s", strerror(errno));
		return SANDCELL_EXIT_SANDBOX;
	}
	return server_loop();
}
