/*
 * What crosses the files of the warm server, sandcell-warm (docs/warm.md):
 *
 *   main.c      options, the order of startup, the log
 *   template.c  the template: CPython embedded (the only file that calls
 *               it), its heap on huge pages, its view while it imports,
 *               the warm-up, its copies of the command line, respawn's
 *               re-exec
 *   worker.c    a forked worker: one request on a stack of its own, the
 *               run, its report; what a run's memory holds (free and
 *               realloc zero in every worker); the start of the code
 *   factory.c   the spare factory (a small C process forked before
 *               the interpreter) and each spare's supervisor
 *   dispatch.c  the template's loop: listening socket, queue, spares
 *               and the code's fork into them, workers, reaping,
 *               respawn, stop
 *   table.c     the table of workers and sessions (table.h)
 *   pages.c     the pages a run is likely to write, written in advance
 *               by an idle spare's code process
 */
#ifndef SANDCELL_WARM_SERVER_H
#define SANDCELL_WARM_SERVER_H

#include "internal.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define MAX_SPARES 16

struct opts {
	const char *socket;
	const char *python;
	const char *preload;
	/* $SANDCELL_CGROUP_PARENT at startup, as the CLI honours it: the
	 * spares' run cgroups go there (NULL: the default). */
	const char *cgroup_parent;
	long slots, queue, respawn_runs, spares, max_sessions;
	double queue_timeout, respawn_seconds;
	/* MiB of pages an idle spare writes in advance (pages.c); 0, the
	 * default: none (docs/warm.md, "Copy-on-write in advance"). */
	long write_ahead_mib;
};

/* ---- main.c ---- */
/* SIGINT or SIGTERM, once received (0 before). */
extern volatile sig_atomic_t stop_sig;
/* One line on stderr, "sandcell serve: " first. */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- template.c ---- */
/* First thing: re-executes the process with its heap on huge pages, when
 * it can and has not. */
void heap_on_huge_pages(char **argv);
/* Copies of what the template keeps of its command line, and the fds a
 * previous template handed over (-1 each when none): 0 or -1. */
int keep_copies(int argc, char **argv, struct opts *o, int *listen_fd, int *state_fd);
/* In a worker: frees those copies (zeroed: scrub_heap is set). */
void drop_template_args(void);
/* The template interpreter, imported in a sandbox's view, and the spare
 * factory forked before it (*factory: the template's end of its socket):
 * 0 or -1 (logged). */
int make_template(const struct opts *o, bool respawned, int *factory);
/* The spare factory's fork (make_template calls it): its socket's
 * template end, or -1. */
int factory_fork(const struct opts *o);
/* A fork of the template inside the namespaces of the process behind
 * init_pidfd (a spare's init), all but its cgroup namespace, born in the
 * v2 cgroup cgfd (-1: none) where the kernel can; it runs child(arg,
 * born_in) and never returns (born_in false: it still has to join cgfd's
 * cgroup itself).  The template inherits it.  Its pid, or -1 with errno. */
pid_t template_fork_into(int init_pidfd, int cgfd, void (*child)(void *, bool), void *arg);
/* Once, before the first fork: glibc's free chunks kept out of reach. */
void drain_free_chunks(void);
/* fork() with the interpreter's locks held across it; the child does no
 * Python after-fork work (a worker runs no Python). */
pid_t template_fork(void);
/* Respawn's last step: the template re-executes itself, handing over the
 * listening socket ls and the table's memfd state.  Exits if it cannot. */
__attribute__((noreturn)) void template_reexec(int ls, int state);
/* In a spare's code process while idle (before its GO): the interpreter's
 * after-fork work and a fresh random state (exits if the reseed fails),
 * then the pages a run is likely to write, until chan has its GO. */
void code_idle(int chan);
/* Once, after drain_free_chunks and before the first spare: the pages a
 * run is likely to write (pages.c), at most max_pages, learnt in a fork of
 * the template. */
void learn_likely_pages(size_t max_pages);
/* In the code's process: the interpreter's after-fork work (unless
 * code_idle did it), and the run's
 * arguments as Python objects, taken before the request they point into
 * is freed: 0, or -1 (printed). */
int code_prepare(const char *const *argv, const char *const *envp);
/* Then the run's bootstrap (_sc_warm); returns only if it fails. */
void code_run(void);

/* ---- pages.c ---- */
/* Addresses of pages, ascending. */
struct page_set {
	uintptr_t *addr;
	size_t n;
};
/* The pages of the process's private writable mappings that it holds
 * alone (written since the fork it came from): 0, or -1 with errno. */
int pages_snapshot(struct page_set *s);
/* The pages of now that are not in before, at most max, into out: how
 * many. */
size_t pages_new(const struct page_set *now, const struct page_set *before, uintptr_t *out, size_t max);
void pages_free(struct page_set *s);
/* In the template: the list a spare's code process writes in advance, in
 * this order: 0, or -1 (ENOMEM; the list is unchanged). */
int pages_keep(const uintptr_t *addr, size_t n);
size_t pages_kept(void);
/* In a spare's code process while idle: those pages written, until the
 * list ends or chan has something to read. */
void pages_write_ahead(int chan);

/* ---- worker.c ---- */
/* The stack requests are served on: 0 or -1. */
int map_request_stack(void);
/* Zeroes the main stack below the caller's frame: 0 or -1. */
int wipe_dead_stack(void);
/* The exec hook (sc_set_exec_hook): the code starts in this interpreter. */
void warm_exec(const char *const *argv, const char *const *envp);
/* A refusal as a full report (the fallback made at startup when it
 * cannot be rendered). */
int make_refusal_fallback(void);
void send_refusal(int fd, enum sandcell_status st, const char *why, const struct sandcell_limits *lim);
/* A forked worker: serves conn, status is its end of its status socket
 * (table.h). */
__attribute__((noreturn)) void worker_serve(int conn, int status, const struct opts *o);

/* The answer to a run: the client's stdio closed on our side first, then
 * the report (or a refusal, without memory for it); conn is closed. */
void answer_run(int conn, struct sandcell_config *cfg, const struct sandcell_result *r);
/* A request a spare's supervisor read and handed back (text_fd: its
 * text; fds: the client's stdin, stdout, stderr), served by a worker. */
__attribute__((noreturn)) void worker_serve_handed(int conn, int status, int text_fd, const int fds[3],
						   const struct opts *o);

/* ---- factory.c: the spare factory and the spares' supervisors ---- */
/* Messages on the factory's socket (struct sc_msg types, above proto.h's). */
enum {
	FACTORY_MAKE = 100,	/* template -> factory: one more spare */
	FACTORY_READY,		/* spare -> template: channel, init pidfd, cgroup fds */
	FACTORY_HANDBACK,	/* spare -> template: conn, request text, client fds; it is free again */
	FACTORY_FAILED,		/* spare -> template: it could not be built */
	FACTORY_FREE,		/* spare -> template: it refused its request and is free again */
};
__attribute__((noreturn)) void factory_main(int sock, const struct opts *o);

/* ---- dispatch.c ---- */
/* The template's state (--queue, a respawned template's table): 0 or -1. */
int server_init(const struct opts *o, int state_fd);
/* The factory's socket (make_template). */
void server_set_factory(int fd);
/* The listening socket: inherited (>= 0) or made: 0 or -1. */
int server_listen(int inherited);
/* The loop, until a stop signal; the exit status. */
int server_loop(void);
/* Stopping: queued clients told why, spares gone, socket removed. */
int stop_server(void);

/* ---- warm_py.c, generated by tools/embed.sh warm ---- */
/* The server's own Python, src/py/_sandcell_template.py (the template's
 * start) and src/py/_sandcell_warm.py (a run's bootstrap); ends with
 * { NULL, NULL }.  Never written into a sandbox. */
extern const struct sc_py_file sc_warm_py_files[];

#endif
