/*
 * sandcell CLI: parses options into a struct sandcell_config, calls
 * sandcell_run(), writes the report and exits with the documented code.
 * This is the only place that prints or dies.
 */
#include "sandcell.h"

#include <jansson.h>
#include "selftest.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILE_BYTES (64u << 20)

static const char usage_text[] =
	"Usage: sandcell run [OPTIONS] FILE.py [ARGS...]\n"
	"       sandcell run [OPTIONS] -c CODE [ARGS...]\n"
	"       sandcell session [OPTIONS]   NDJSON commands on stdin, events on stdout\n"
	"                                    (docs/sessions.md; --server: on a warm server)\n"
	"       sandcell sessions --server PATH   a warm server's live sessions (JSON)\n"
	"       sandcell policy --json | --dump-bpf FILE\n"
	"       sandcell serve --socket PATH [--slots N] [--preload MODULES] ...\n"
	"       sandcell selftest [--json]\n"
	"       sandcell selftest [--json]   check that the confinement holds on this host\n"
	"\n"
	"Inputs and outputs:\n"
	"  --input NAME=PATH      file or directory, read-only at /input/NAME (repeatable)\n"
	"  --dataset NAME=FILE    a frame archive (docs/datasets.md), read-only at\n"
	"                         /input/.datasets/NAME (repeatable; names apart from inputs')\n"
	"  --stdin FILE           feed FILE to the code's stdin (default: our stdin)\n"
	"  --value NAME=JSON      sandcell.values[NAME] (repeatable)\n"
	"  --values FILE.json     a JSON object of values\n"
	"  --output DIR           copy files written under /output to DIR (new or empty)\n"
	"  --report FILE          write the JSON report to FILE ('-' = stdout)\n"
	"  --quiet                no status or reduced-mode lines of our own on\n"
	"                         stderr once the code may have run: stderr is\n"
	"                         the code's alone (the report says the rest)\n"
	"  --cell                 run the code as a notebook cell: its last expression,\n"
	"                         displays, figures and ordered streams become the\n"
	"                         report's cell.outputs (nbformat v4)\n"
	"Limits (sizes take K/M/G, times take fractions):\n"
	"  --wall-time SEC (30)   --cpu-time SEC (30)   --memory SIZE (1G)\n"
	"  --pids N (128)         --disk SIZE (512M)    --files N (256)\n"
	"  --stdout-limit SIZE (8M, per stream)         --result-limit SIZE (1M)\n"
	"  --output-files N (1000)  --output-bytes SIZE (512M)\n"
	"  --cell-limit SIZE (16M, the outputs in the report)  --cell-outputs N (10000)\n"
	"  --cell-output-limit SIZE (8M, one output)\n"
	"Sessions (sandcell session; --wall-time 86400 and --cpu-time 3600 are the\n"
	"whole session's there):\n"
	"  --cell-wall-time SEC (600)  --cell-cpu-time SEC (600): then SIGINT, and\n"
	"                         the kill 5 s later  --idle-timeout SEC (3600)\n"
	"Sandbox:\n"
	"  --python PATH          interpreter (default /usr/bin/python3)\n"
	"  --server PATH          run on a warm server (sandcell serve) instead of cold\n"
	"                         (a session too: it starts from the server's template)\n"
	"  --cgroup-parent PATH   delegated cgroup to create runs under\n"
	"  --allow-reduced        run with Landlock, seccomp and rlimits only when\n"
	"                         user namespaces or cgroups are unavailable\n"
	"\n"
	"Exit status: the code's own, or 128+signal; 121 disk, 122 memory,\n"
	"123 cpu-time, 124 timeout, 125 usage error, 126 sandbox error, 117 server\n"
	"unreachable, 118 server busy, 119 cancelled (SIGINT, SIGTERM or SIGHUP:\n"
	"the run is killed, its outputs so far collected, the report written).\n";

/* --quiet: once the code may have run, stderr carries the code's bytes
 * only, so a program reading it (the Python client) never has to tell our
 * lines from the code's.  Everything those lines say is in the report.
 * Messages printed when nothing ran (usage errors, an unreachable or busy
 * server) and a report that could not be written are still printed: there
 * is no code output to confuse them with. */
static bool quiet;

/* `sandcell run`'s --report and the limits parsed so far: a usage error
 * gets a full report too (status usage-error) when one was asked for. */
static const char *report_path;
static const struct sandcell_limits *report_limits;
/* `sandcell session`: a refusal is also the last event on stdout. */
static bool session_mode;

static int write_report(const char *path, const char *json);

/* A session's last event, for an end the supervisor did not write (a
 * refusal: nothing ran). */
static void end_event(const char *status, const char *why, const char *report)
{
	json_t *ev = json_pack("{s:s,s:s,s:s,s:o}", "ev", "end", "status", status, "reason", why, "report",
			       report ? json_loads(report, JSON_ALLOW_NUL, NULL) : json_null());
	char *line = ev ? json_dumps(ev, JSON_COMPACT) : NULL;

	if (line) {
		puts(line);
		fflush(stdout);
	}
	free(line);
	json_decref(ev);
}

/* Writes the report of a run refused before it started; false if it
 * could not be written (said on stderr). */
static bool write_refusal(enum sandcell_status st, const char *why)
{
	struct sandcell_result *r;
	char *json;
	bool ok;

	r = sandcell_result_refused(st, why, report_limits);
	if (session_mode && r != NULL) {
		/* The caller reads events: the end event says it too. */
		char *doc = sandcell_report_json(r);
		end_event(sandcell_status_name(st), why, doc);
		free(doc);
	}
	/* A session's stdout is its events: the end event above holds it. */
	if (report_path == NULL || (session_mode && strcmp(report_path, "-") == 0)) {
		sandcell_result_free(r);
		return true;
	}
	json = r ? sandcell_report_json(r) : NULL;
	ok = json != NULL && write_report(report_path, json) == 0;
	if (!ok)
		fprintf(stderr, "sandcell: cannot write the report to %s: %s\n", report_path,
			json ? strerror(errno) : "out of memory");
	free(json);
	sandcell_result_free(r);
	return ok;
}

static __attribute__((noreturn, format(printf, 1, 2))) void die_usage(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sandcell: %s\nTry 'sandcell --help'.\n", msg);
	write_refusal(SANDCELL_USAGE_ERROR, msg);
	exit(SANDCELL_EXIT_USAGE);
}

/* SIGINT, SIGTERM and SIGHUP cancel a run: the handler only makes the
 * cancel pipe readable, and the supervisor (or sandcell_run_remote)
 * watching it kills the run, collects what /output holds so far and
 * returns the report, status cancelled.  A signal the caller had us
 * ignore (nohup, a shell's background job) stays ignored.  Repeated
 * signals change nothing: the report is on its way (SIGKILL stops us
 * without one). */
static int cancel_pipe[2] = { -1, -1 };

static void on_cancel(int sig)
{
	int saved = errno;

	(void)sig;
	if (write(cancel_pipe[1], "c", 1) < 0) {
		/* full: it is readable already */
	}
	errno = saved;
}

static int arm_cancel(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa, old;

	if (pipe2(cancel_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_cancel;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
			sigaction(sigs[i], &sa, NULL);
	return cancel_pipe[0];
}

/* Reads all of f (path names it in messages).  The caller owns f: stdin is
 * never closed, a file it opened is, and the two are told apart by the
 * caller rather than by comparing f with stdin (gcc -fanalyzer cannot
 * follow that and reports the file as leaked). */
static char *read_stream(FILE *f, const char *path, size_t *len)
{
	char *buf = NULL;
	size_t cap = 0, n = 0;

	{
		struct stat st;
		if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode))
			die_usage("%s: is a directory", path);
	}
	for (;;) {
		size_t got;
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > MAX_FILE_BYTES + 1)
				cap = MAX_FILE_BYTES + 1;
			buf = realloc(buf, cap + 1);
			if (buf == NULL)
				die_usage("out of memory");
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (n > MAX_FILE_BYTES)
			die_usage("%s: larger than %u bytes", path, MAX_FILE_BYTES);
		if (got == 0)
			break;
	}
	if (ferror(f))
		die_usage("%s: read error", path);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f;
	char *buf;

	if (strcmp(path, "-") == 0)
		return read_stream(stdin, path, len);
	f = fopen(path, "rbe");
	if (f == NULL)
		die_usage("%s: %s", path, strerror(errno));
	buf = read_stream(f, path, len);
	fclose(f);
	return buf;
}

static void split_eq(const char *opt, const char *arg, char **name, const char **val)
{
	const char *eq = strchr(arg, '=');

	if (eq == NULL || eq == arg)
		die_usage("%s expects NAME=..., got '%s'", opt, arg);
	*name = strndup(arg, (size_t)(eq - arg));
	*val = eq + 1;
}

enum {
	OPT_INPUT = 256, OPT_STDIN, OPT_VALUE, OPT_VALUES, OPT_OUTPUT, OPT_REPORT, OPT_WALL,
	OPT_CPU, OPT_MEMORY, OPT_PIDS, OPT_DISK, OPT_FILES, OPT_STDOUT_LIMIT, OPT_RESULT_LIMIT,
	OPT_OUT_FILES, OPT_OUT_BYTES, OPT_PYTHON, OPT_CGROUP, OPT_REDUCED, OPT_SERVER, OPT_QUIET,
	OPT_CELL, OPT_CELL_LIMIT, OPT_CELL_OUTPUTS, OPT_CELL_OUTPUT_LIMIT, OPT_DATASET,
	OPT_CELL_WALL, OPT_CELL_CPU, OPT_IDLE,
};

static const struct option long_opts[] = {
	{ "input", required_argument, NULL, OPT_INPUT },
	{ "dataset", required_argument, NULL, OPT_DATASET },
	{ "stdin", required_argument, NULL, OPT_STDIN },
	{ "value", required_argument, NULL, OPT_VALUE },
	{ "values", required_argument, NULL, OPT_VALUES },
	{ "output", required_argument, NULL, OPT_OUTPUT },
	{ "report", required_argument, NULL, OPT_REPORT },
	{ "wall-time", required_argument, NULL, OPT_WALL },
	{ "cpu-time", required_argument, NULL, OPT_CPU },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "pids", required_argument, NULL, OPT_PIDS },
	{ "disk", required_argument, NULL, OPT_DISK },
	{ "files", required_argument, NULL, OPT_FILES },
	{ "stdout-limit", required_argument, NULL, OPT_STDOUT_LIMIT },
	{ "result-limit", required_argument, NULL, OPT_RESULT_LIMIT },
	{ "output-files", required_argument, NULL, OPT_OUT_FILES },
	{ "output-bytes", required_argument, NULL, OPT_OUT_BYTES },
	{ "python", required_argument, NULL, OPT_PYTHON },
	{ "cgroup-parent", required_argument, NULL, OPT_CGROUP },
	{ "allow-reduced", no_argument, NULL, OPT_REDUCED },
	{ "server", required_argument, NULL, OPT_SERVER },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "cell", no_argument, NULL, OPT_CELL },
	{ "cell-limit", required_argument, NULL, OPT_CELL_LIMIT },
	{ "cell-outputs", required_argument, NULL, OPT_CELL_OUTPUTS },
	{ "cell-output-limit", required_argument, NULL, OPT_CELL_OUTPUT_LIMIT },
	{ "cell-wall-time", required_argument, NULL, OPT_CELL_WALL },
	{ "cell-cpu-time", required_argument, NULL, OPT_CELL_CPU },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void parse_size(const char *opt, const char *arg, uint64_t *out)
{
	struct sandcell_error e;
	if (sandcell_parse_size(arg, out, &e) < 0)
		die_usage("%s: %s", opt, e.msg);
}

static void parse_count(const char *opt, const char *arg, uint64_t *out)
{
	struct sandcell_error e;
	if (sandcell_parse_count(arg, out, &e) < 0)
		die_usage("%s: %s", opt, e.msg);
}

static void parse_secs(const char *opt, const char *arg, double *out)
{
	struct sandcell_error e;
	if (sandcell_parse_seconds(arg, out, &e) < 0)
		die_usage("%s: %s", opt, e.msg);
}

/* Two branches rather than f == stdout tests: gcc -fanalyzer cannot
 * follow those and reports the file as leaked. */
static int write_report(const char *path, const char *json)
{
	FILE *f;

	if (strcmp(path, "-") == 0) {
		fputs(json, stdout);
		fputc('\n', stdout);
		return fflush(stdout);
	}
	f = fopen(path, "we");
	if (f == NULL)
		return -1;
	fputs(json, f);
	fputc('\n', f);
	return fclose(f);
}

/* Makes a path absolute against our cwd: the server has its own. */
static char *absolute(const char *p)
{
	char cwd[4096], *out;

	if (p[0] == '/')
		return strdup(p);
	if (getcwd(cwd, sizeof(cwd)) == NULL)
		die_usage("getcwd: %s", strerror(errno));
	if (asprintf(&out, "%s/%s", cwd, p) < 0)
		die_usage("out of memory");
	return out;
}

/* The one-line cause on stderr, for statuses the code did not produce
 * itself: refusals (printed even with --quiet, since nothing ran) and
 * stops (not with --quiet). */
static void say_status(const char *status, const char *reason)
{
	bool refused = strcmp(status, "usage-error") == 0 || strcmp(status, "unreachable") == 0 ||
		       strcmp(status, "busy") == 0;

	if (strcmp(status, "ok") == 0 || strcmp(status, "exited") == 0 || strcmp(status, "signaled") == 0)
		return;
	if (quiet && !refused)
		return;
	if (strcmp(status, "usage-error") == 0)
		fprintf(stderr, "sandcell: %s\n", reason && *reason ? reason : "invalid request");
	else
		fprintf(stderr, "sandcell: %s%s%s\n", status, reason && *reason ? ": " : "",
			reason ? reason : "");
}

static int run_remote(const char *server, struct sandcell_config *cfg, const char *report,
		      struct sandcell_input *inputs, size_t n_inputs)
{
	struct sandcell_error e = { 0, "" };
	char *json = NULL, *out_dir = NULL;
	int rc;
	size_t i;

	for (i = 0; i < n_inputs; i++) {
		char *real = realpath(inputs[i].path, NULL);
		if (real == NULL)
			die_usage("%s '%s' (%s): %s",
				  inputs[i].flags & SANDCELL_INPUT_DATASET ? "dataset" : "input",
				  inputs[i].name, inputs[i].path, strerror(errno));
		inputs[i].path = real;
	}
	if (cfg->output_dir)
		cfg->output_dir = out_dir = absolute(cfg->output_dir);
	if (sandcell_run_remote(server, cfg, &json, &rc, &e) < 0) {
		if (e.code != ENOMEM)
			die_usage("%s", e.msg);
		fprintf(stderr, "sandcell: %s\n", e.msg);
		write_refusal(SANDCELL_SANDBOX_ERROR, e.msg);
		return SANDCELL_EXIT_SANDBOX;
	}
	{
		/* Print what a cold run prints: the cause of a stop or a
		 * refusal on one line, the reduced-mode warning. */
		struct sandcell_result *res = sandcell_result_from_report(json, strlen(json), &e);
		const char *status = res ? sandcell_status_name(sandcell_result_status(res)) : "sandbox-error";
		const char *reason = res ? sandcell_result_reason(res) : e.msg;

		if (!quiet && res && strcmp(sandcell_result_mode(res), "reduced") == 0) {
			fputs("sandcell: warning: ran in REDUCED mode (--allow-reduced); "
			      "these guarantees do not hold:\n", stderr);
			for (const char *const *nh = sandcell_result_not_held(res); *nh; nh++)
				fprintf(stderr, "sandcell:   - %s\n", *nh);
		}
		say_status(status, reason);
		/* A session's supervisor wrote the end event whenever it ran
		 * (its report has a session object); a refusal did not. */
		if (session_mode && !(res && sandcell_result_is_session(res)))
			end_event(status, reason, json);
		sandcell_result_free(res);
	}
	if (report && write_report(report, json) < 0) {
		fprintf(stderr, "sandcell: cannot write the report to %s: %s\n", report, strerror(errno));
		/* A refusal keeps its own code: it says more than this. */
		if (rc != SANDCELL_EXIT_USAGE && rc != SANDCELL_EXIT_UNREACHABLE && rc != SANDCELL_EXIT_BUSY)
			rc = SANDCELL_EXIT_SANDBOX;
	}
	free(json);
	free(out_dir);
	return rc;
}

/* Finds --report before the options are parsed, so that a usage error in
 * any of them is reported: the same getopt_long walk as the real one
 * (abbreviations, '+', "--"), every other option and error ignored. */
static const char *find_report(int argc, char **argv)
{
	const char *found = NULL;
	int c;

	optind = 0; /* glibc: start afresh */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:c:h", long_opts, NULL)) != -1)
		if (c == OPT_REPORT)
			found = optarg;
	return found;
}

static int cmd_run(int argc, char **argv, bool session)
{
	struct sandcell_config cfg;
	struct sandcell_input *inputs = NULL;
	struct sandcell_result *res = NULL;
	struct sandcell_error e = { 0, "" };
	const char *report = NULL, *inline_code = NULL, *stdin_file = NULL, *server = NULL;
	char *values = NULL, *code_buf = NULL;
	size_t n_inputs = 0;
	int c, rc;
	bool disk_set = false;

	sandcell_config_init(&cfg);
	cfg.stdin_fd = 0;
	session_mode = session;
	if (session) {
		/* A session's budgets (docs/sessions.md): a day of wall
		 * clock, an hour of CPU; per cell the library's defaults. */
		cfg.flags |= SANDCELL_SESSION | SANDCELL_CELL;
		cfg.limits.wall_sec = 86400;
		cfg.limits.cpu_sec = 3600;
		cfg.limits.cell_wall_sec = 600;
		cfg.limits.cell_cpu_sec = 600;
		cfg.limits.idle_sec = 3600;
	}
	report_limits = &cfg.limits;
	report_path = find_report(argc, argv);
	/* From here on a signal cancels: one that comes before the run
	 * starts cancels it as soon as it does (the pipe stays readable). */
	cfg.cancel_fd = arm_cancel();
	if (cfg.cancel_fd < 0)
		die_usage("cannot set up cancellation: %s", strerror(errno));
	if (getenv("SANDCELL_CGROUP_PARENT") && *getenv("SANDCELL_CGROUP_PARENT"))
		cfg.cgroup_parent = getenv("SANDCELL_CGROUP_PARENT");
	optind = 0;
	opterr = 0; /* our own messages, with our own name */
	/* '+': options stop at FILE.py, everything after it is the code's;
	 * ':': a missing argument is told apart from an unknown option. */
	while ((c = getopt_long(argc, argv, "+:c:h", long_opts, NULL)) != -1) {
		char *name;
		const char *val;
		switch (c) {
		case 'c': inline_code = optarg; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case OPT_INPUT:
		case OPT_DATASET: {
			const char *opt = c == OPT_INPUT ? "--input" : "--dataset";
			split_eq(opt, optarg, &name, &val);
			if (sandcell_check_name(name, &e) < 0)
				die_usage("%s: %s", opt, e.msg);
			inputs = realloc(inputs, (n_inputs + 1) * sizeof(*inputs));
			if (inputs == NULL)
				die_usage("out of memory");
			inputs[n_inputs].name = name;
			inputs[n_inputs].path = val;
			/* Duplicates and a dataset that is not a regular file
			 * are refused by the library (validate()), cold or on
			 * the server. */
			inputs[n_inputs].flags = c == OPT_DATASET ? SANDCELL_INPUT_DATASET : 0;
			n_inputs++;
			break;
		}
		case OPT_STDIN: stdin_file = optarg; break;
		case OPT_VALUE:
			split_eq("--value", optarg, &name, &val);
			if (sandcell_values_add(&values, name, val, &e) < 0)
				die_usage("--value %s: %s", name, e.msg);
			free(name);
			break;
		case OPT_VALUES: {
			size_t len;
			char *text = read_file(optarg, &len);
			if (sandcell_values_merge(&values, text, len, &e) < 0)
				die_usage("--values %s: %s", optarg, e.msg);
			free(text);
			break;
		}
		case OPT_OUTPUT: cfg.output_dir = optarg; break;
		case OPT_REPORT: report = optarg; break;
		case OPT_WALL: parse_secs("--wall-time", optarg, &cfg.limits.wall_sec); break;
		case OPT_CPU: parse_secs("--cpu-time", optarg, &cfg.limits.cpu_sec); break;
		case OPT_MEMORY: parse_size("--memory", optarg, &cfg.limits.memory); break;
		case OPT_PIDS: parse_count("--pids", optarg, &cfg.limits.pids); break;
		case OPT_DISK:
			parse_size("--disk", optarg, &cfg.limits.disk);
			disk_set = true;
			break;
		case OPT_FILES: parse_count("--files", optarg, &cfg.limits.files); break;
		case OPT_STDOUT_LIMIT: parse_size("--stdout-limit", optarg, &cfg.limits.stream); break;
		case OPT_RESULT_LIMIT: parse_size("--result-limit", optarg, &cfg.limits.result_bytes); break;
		case OPT_OUT_FILES: parse_count("--output-files", optarg, &cfg.limits.output_files); break;
		case OPT_OUT_BYTES: parse_size("--output-bytes", optarg, &cfg.limits.output_bytes); break;
		case OPT_PYTHON: cfg.python = optarg; break;
		case OPT_CGROUP: cfg.cgroup_parent = optarg; break;
		case OPT_REDUCED: cfg.flags |= SANDCELL_ALLOW_REDUCED; break;
		case OPT_SERVER: server = optarg; break;
		case OPT_QUIET: quiet = true; break;
		case OPT_CELL: cfg.flags |= SANDCELL_CELL; break;
		case OPT_CELL_LIMIT: parse_size("--cell-limit", optarg, &cfg.limits.cell_bytes); break;
		case OPT_CELL_OUTPUTS: parse_count("--cell-outputs", optarg, &cfg.limits.cell_outputs); break;
		case OPT_CELL_OUTPUT_LIMIT:
			parse_size("--cell-output-limit", optarg, &cfg.limits.cell_output_bytes);
			break;
		case OPT_CELL_WALL:
		case OPT_CELL_CPU:
		case OPT_IDLE: {
			const char *opt = c == OPT_CELL_WALL ? "--cell-wall-time"
					  : c == OPT_CELL_CPU ? "--cell-cpu-time" : "--idle-timeout";
			if (!session)
				die_usage("%s is an option of sandcell session", opt);
			parse_secs(opt, optarg, c == OPT_CELL_WALL ? &cfg.limits.cell_wall_sec
					  : c == OPT_CELL_CPU ? &cfg.limits.cell_cpu_sec
							      : &cfg.limits.idle_sec);
			break;
		}
		case ':': die_usage("option '%s' needs an argument", argv[optind - 1]);
		default: die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	/* Collected bytes never exceed what the scratch space could hold. */
	if (disk_set && cfg.limits.output_bytes > cfg.limits.disk)
		cfg.limits.output_bytes = cfg.limits.disk;
	if (session) {
		/* The cells come as commands: no code, no arguments, and the
		 * caller's stdin carries the commands, not the code's input. */
		if (inline_code || optind < argc)
			die_usage("sandcell session takes no code: send cells as run commands");
		if (stdin_file)
			die_usage("--stdin: a session's stdin carries its commands");
		if (report && strcmp(report, "-") == 0)
			die_usage("--report -: a session's stdout carries its events (the end event "
				  "holds the report)");
	} else if (inline_code) {
		cfg.code = inline_code;
		cfg.code_len = strlen(inline_code);
	} else {
		size_t len;
		if (optind >= argc)
			die_usage("no FILE.py or -c CODE given");
		cfg.code_name = argv[optind];
		cfg.code = code_buf = read_file(argv[optind], &len);
		cfg.code_len = len;
		optind++;
	}
	cfg.args = (const char *const *)argv + optind;
	cfg.n_args = (size_t)(argc - optind);
	cfg.inputs = inputs;
	cfg.n_inputs = n_inputs;
	cfg.values_json = values;
	if (stdin_file) {
		cfg.stdin_fd = open(stdin_file, O_RDONLY | O_CLOEXEC);
		if (cfg.stdin_fd < 0)
			die_usage("--stdin %s: %s", stdin_file, strerror(errno));
	}

	if (server)
		return run_remote(server, &cfg, report, inputs, n_inputs);
	if (sandcell_run(&cfg, &res, &e) < 0) {
		if (e.code != ENOMEM)
			die_usage("%s", e.msg);
		fprintf(stderr, "sandcell: %s\n", e.msg);
		write_refusal(SANDCELL_SANDBOX_ERROR, e.msg);
		return SANDCELL_EXIT_SANDBOX;
	}
	rc = sandcell_result_exit_code(res);
	fflush(stdout);
	if (!quiet && strcmp(sandcell_result_mode(res), "reduced") == 0) {
		const char *const *nh = sandcell_result_not_held(res);
		fputs("sandcell: warning: ran in REDUCED mode (--allow-reduced); "
		      "these guarantees do not hold:\n", stderr);
		for (; nh && *nh; nh++)
			fprintf(stderr, "sandcell:   - %s\n", *nh);
	}
	if (report) {
		char *json = sandcell_report_json(res);
		if (json == NULL || write_report(report, json) < 0) {
			fprintf(stderr, "sandcell: cannot write the report to %s: %s\n", report,
				strerror(errno));
			rc = SANDCELL_EXIT_SANDBOX;
		}
		free(json);
	}
	switch (quiet ? SANDCELL_OK : sandcell_result_status(res)) {
	case SANDCELL_OK:
	case SANDCELL_EXITED:
	case SANDCELL_SIGNALED:
		break;
	default: {
		char *json = sandcell_report_json(res);
		/* One line on stderr naming the single cause. */
		fprintf(stderr, "sandcell: %s", sandcell_status_name(sandcell_result_status(res)));
		if (json) {
			const char *p = strstr(json, "\"reason\": \"");
			if (p) {
				const char *q = strchr(p + 11, '"');
				if (q)
					fprintf(stderr, ": %.*s", (int)(q - p - 11), p + 11);
			}
		}
		fputc('\n', stderr);
		free(json);
	}
	}
	sandcell_result_free(res);
	for (size_t i = 0; i < n_inputs; i++)
		free((char *)inputs[i].name);
	free(inputs);
	free(values);
	free(code_buf);
	if (stdin_file)
		close(cfg.stdin_fd);
	return rc;
}

/* `sandcell sessions --server PATH`: the server's listing, as JSON. */
static int cmd_sessions(int argc, char **argv)
{
	struct sandcell_error e = { 0, "" };
	char *listing;
	json_t *j;

	if (argc != 3 || strcmp(argv[1], "--server") != 0)
		die_usage("usage: sandcell sessions --server PATH");
	if (sandcell_sessions_remote(argv[2], &listing, &e) < 0) {
		fprintf(stderr, "sandcell: %s\n", e.msg);
		return e.code == EPROTO ? SANDCELL_EXIT_SANDBOX : SANDCELL_EXIT_UNREACHABLE;
	}
	j = json_loads(listing, 0, NULL);
	free(listing);
	if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) < 0 || puts("") < 0) {
		json_decref(j);
		fprintf(stderr, "sandcell: cannot print the listing\n");
		return SANDCELL_EXIT_SANDBOX;
	}
	json_decref(j);
	return 0;
}

static int cmd_policy(int argc, char **argv)
{
	struct sandcell_error e = { 0, "" };

	if (argc == 2 && strcmp(argv[1], "--json") == 0) {
		char *j = sandcell_policy_json();
		if (j == NULL)
			die_usage("policy: out of memory");
		puts(j);
		free(j);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "--dump-bpf") == 0) {
		void *insns;
		size_t n;
		FILE *f;
		bool ok;
		if (sandcell_policy_bpf(&insns, &n, &e) < 0) {
			fprintf(stderr, "sandcell: %s\n", e.msg);
			return SANDCELL_EXIT_SANDBOX;
		}
		if (strcmp(argv[2], "-") == 0) {
			ok = fwrite(insns, 8, n, stdout) == n;
		} else {
			/* Two branches rather than f == stdout tests: gcc -fanalyzer
			 * cannot follow those and reports the file as leaked. */
			f = fopen(argv[2], "wbe");
			ok = f != NULL && fwrite(insns, 8, n, f) == n;
			if (f != NULL && fclose(f) != 0)
				ok = false;
		}
		if (!ok) {
			free(insns);
			die_usage("policy: cannot write %s", argv[2]);
		}
		free(insns);
		return 0;
	}
	die_usage("usage: sandcell policy --json | --dump-bpf FILE");
}

/* The value of --NAME VALUE or --NAME=VALUE at argv[*i] (advancing *i), or NULL. */
static const char *serve_opt(int argc, char **argv, int *i, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc)
		die_usage("%s needs a value", name);
	return argv[++*i];
}

/* sandcell-http's own options (docs/http.md), with a value or without;
 * --max-sessions goes to both (the front end's and the warm server's
 * caps), --socket and --python too (the front end must know them). */
static const char *const front_valued[] = {
	"--token-file", "--scratch", "--max-body", "--max-file", "--max-request", "--max-output",
	"--max-parts", "--max-connections", "--max-per-ip", "--body-timeout", "--idle-timeout",
	"--selftest-interval", "--token-concurrency", "--token-rate",
};
static const char *const front_flags[] = { "--no-auth", "--allow-remote", "--allow-reduced" };
static const char *const both_valued[] = { "--socket", "--python", "--max-sessions" };

/* Sorts argv[*i] (and its value) into the front end's and the warm
 * server's argument lists; returns true if it belongs to the front end
 * only. */
static bool serve_route(int argc, char **argv, int *i, const char **hv, int *nh, const char **wv,
			int *nw)
{
	const char *v;
	size_t k;
	int at = *i;

	for (k = 0; k < sizeof(front_valued) / sizeof(front_valued[0]); k++) {
		if ((v = serve_opt(argc, argv, i, front_valued[k]))) {
			hv[(*nh)++] = front_valued[k];
			hv[(*nh)++] = v;
			return true;
		}
	}
	for (k = 0; k < sizeof(front_flags) / sizeof(front_flags[0]); k++) {
		if (strcmp(argv[*i], front_flags[k]) == 0) {
			hv[(*nh)++] = argv[*i];
			return true;
		}
	}
	for (k = 0; k < sizeof(both_valued) / sizeof(both_valued[0]); k++) {
		if ((v = serve_opt(argc, argv, i, both_valued[k]))) {
			hv[(*nh)++] = both_valued[k];
			hv[(*nh)++] = v;
			break;
		}
	}
	for (; at <= *i; at++)
		wv[(*nw)++] = argv[at];
	return false;
}

/*
 * `sandcell serve`: the warm server is its own binary next to this one (it
 * embeds libpython, which cold runs should never pay for).  With --http
 * ADDR:PORT the HTTP front end (sandcell-http, docs/http.md) is started
 * instead, and it starts the warm server with the other options and stops
 * with it; the front end's own options go to it alone.
 */
static int cmd_serve(int argc, char **argv)
{
	char self[4096], *slash;
	const char **hv = calloc((size_t)argc + 16, sizeof(char *)), **wv;
	const char *http = NULL, *v, *front_opt = NULL;
	int nh = 0, nw = 0, i;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 32);

	wv = calloc((size_t)argc + 2, sizeof(char *));
	if (n <= 0 || hv == NULL || wv == NULL)
		die_usage("cannot find the sandcell-warm binary");
	self[n] = '\0';
	slash = strrchr(self, '/');
	hv[nh++] = self;
	wv[nw++] = self;
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if ((v = serve_opt(argc, argv, &i, "--http")))
			http = v;
		else if (serve_route(argc, argv, &i, hv, &nh, wv, &nw) && front_opt == NULL)
			front_opt = arg;
	}
	if (http == NULL && front_opt != NULL)
		die_usage("serve: %s is an option of the HTTP front end: it goes with --http ADDR:PORT",
			  front_opt);
	strcpy(slash ? slash + 1 : self, http ? "sandcell-http" : "sandcell-warm");
	if (http) {
		hv[nh++] = "--listen";
		hv[nh++] = http;
		hv[nh++] = "--serve";
		hv[nh++] = "--";
		for (i = 1; i < nw; i++)
			hv[nh++] = wv[i];
		execv(self, (char *const *)hv);
	} else {
		execv(self, (char *const *)wv);
	}
	fprintf(stderr, "sandcell: cannot start %s: %s\n", self, strerror(errno));
	return SANDCELL_EXIT_SANDBOX;
}

int main(int argc, char **argv)
{
	/* Writing to a closed stdout must not kill us before the report. */
	signal(SIGPIPE, SIG_IGN);
	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
		puts("sandcell 0.1.0");
		return 0;
	}
	if (argc < 2)
		die_usage("missing command");
	if (strcmp(argv[1], "run") == 0)
		return cmd_run(argc - 1, argv + 1, false);
	if (strcmp(argv[1], "session") == 0)
		return cmd_run(argc - 1, argv + 1, true);
	if (strcmp(argv[1], "sessions") == 0)
		return cmd_sessions(argc - 1, argv + 1);
	if (strcmp(argv[1], "policy") == 0)
		return cmd_policy(argc - 1, argv + 1);
	if (strcmp(argv[1], "serve") == 0)
		return cmd_serve(argc - 1, argv + 1);
	if (strcmp(argv[1], "selftest") == 0) return sandcell_selftest(argc - 1, argv + 1);
	die_usage("unknown command '%s'", argv[1]);
}
