/*
 * cgroup layer: memory, pids and CPU accounting for the whole process tree,
 * and a kill switch that reaches double-forked daemons.  cgroup v2 is the
 * primary path; on hybrid hosts each resource v2 cannot provide (its
 * controller is bound to v1) falls back to the v1 controller.  cgroup.kill
 * and cpu.stat work in v2 without any controller, so hybrid hosts still get
 * them from the unified hierarchy.
 */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"

/* What an unprivileged caller has to set up, said in every message about
 * a cgroup it lacks, so it can act without reading the source.  v2 forbids
 * processes in a cgroup that hands controllers down, hence the leaf.
 * docs/client.md shows both set-ups; the Python client makes the systemd
 * one itself. */
#define V2_DELEGATE                                                                      \
	"an unprivileged caller needs a cgroup v2 directory it owns, with memory and pids " \
	"in its cgroup.subtree_control and the caller in a leaf below it, named by "      \
	"--cgroup-parent (systemd-run --user --scope -p Delegate=yes gives one)"
#define V1_DELEGATE                                                                     \
	"an unprivileged caller needs a directory it owns at the same path in the memory, " \
	"pids and cpuacct hierarchies, named by --cgroup-parent"

/* sc_err with the errno text before the hint, which unprivileged callers
 * get (root creates its own /sandcell and needs none). */
static int __attribute__((format(printf, 4, 5)))
cg_err(struct sandcell_error *err, int e, const char *hint, const char *fmt, ...)
{
	char what[300];
	va_list ap;
	bool show = hint != NULL && geteuid() != 0;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	sc_err(err, 0, "%s%s%s%s%s", what, e ? ": " : "", e ? strerror(e) : "", show ? "; " : "",
	       show ? hint : "");
	if (err != NULL)
		err->code = e;
	return -1;
}

static int write_str(const char *dir, const char *file, const char *val)
{
	char path[640];
	int fd;
	ssize_t n;
	size_t len = strlen(val);

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write(fd, val, len);
	if (n < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	return (size_t)n == len ? 0 : -1;
}

static int write_u64(const char *dir, const char *file, uint64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return write_str(dir, file, buf);
}

static ssize_t read_file(const char *dir, const char *file, char *buf, size_t size)
{
	char path[640];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Reads "key value" from a flat-keyed file, or a bare number if key NULL. */
static int read_key(const char *dir, const char *file, const char *key, uint64_t *out)
{
	char buf[4096], *p;
	size_t kl;

	if (dir[0] == '\0' || read_file(dir, file, buf, sizeof(buf)) < 0)
		return -1;
	if (key == NULL) {
		*out = strtoull(buf, NULL, 10);
		return 0;
	}
	kl = strlen(key);
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ') {
			*out = strtoull(p + kl + 1, NULL, 10);
			return 0;
		}
	}
	return -1;
}

static bool is_cgroup2(const char *path)
{
	struct statfs s;
	return statfs(path, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC;
}

/* The caller's own cgroup in the hierarchy that has `ctrl` ("" = v2). */
static int own_cgroup(const char *ctrl, char *out, size_t size)
{
	char line[1024];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int rc = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2, *nl;
		if (!c1 || !(c2 = strchr(c1 + 1, ':')))
			continue;
		*c2 = '\0';
		nl = strchr(c2 + 1, '\n');
		if (nl)
			*nl = '\0';
		if (ctrl[0] == '\0' ? c1[1] == '\0' && strncmp(line, "0", 1) == 0 : false) {
			snprintf(out, size, "%s", c2 + 1);
			rc = 0;
			break;
		}
		if (ctrl[0] != '\0') {
			/* controller lists like "cpu,cpuacct" */
			char *tok, *save = NULL;
			for (tok = strtok_r(c1 + 1, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
				if (strcmp(tok, ctrl) == 0) {
					snprintf(out, size, "%s", c2 + 1);
					rc = 0;
				}
			if (rc == 0)
				break;
		}
	}
	fclose(f);
	return rc;
}

static bool has_word(const char *list, const char *w)
{
	size_t wl = strlen(w);
	const char *p = list;

	while ((p = strstr(p, w)) != NULL) {
		if ((p == list || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\n' || p[wl] == '\0'))
			return true;
		p += wl;
	}
	return false;
}

static int mkdir_p(const char *path)
{
	char tmp[640];
	char *p;

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Parent directory for runs in one hierarchy. */
static int parent_dir(const char *mnt, const char *ctrl, const char *parent, char *out,
		      size_t size)
{
	char own[512];

	if (parent != NULL) {
		snprintf(out, size, "%s/%s", mnt, parent[0] == '/' ? parent + 1 : parent);
		return 0;
	}
	if (geteuid() == 0) {
		snprintf(out, size, "%s/sandcell", mnt);
		return 0;
	}
	/* Unprivileged: the caller's own (delegated) cgroup. */
	if (own_cgroup(ctrl, own, sizeof(own)) < 0)
		return -1;
	snprintf(out, size, "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own);
	return 0;
}

/*
 * Run cgroups whose supervisor died (SIGKILL, power loss of a container,
 * a removal that outlasted its deadline) are removed by the next run that
 * uses the same parent, once its own are gone: a run-PID-... entry whose
 * PID no longer exists.
 * rmdir only ever removes an empty cgroup without children, so a live
 * run in it cannot be disturbed; a reused PID merely postpones the removal.
 * A cgroup is empty for a moment after it is made, before its run's init
 * is cloned into it, and a supervisor in another pid namespace (a
 * container sharing the parent) has a PID this one cannot see: so an
 * entry younger than STALE_AGE_SEC is never taken.
 */
#define STALE_AGE_SEC 120
static void collect_stale(const char *parent)
{
	DIR *d = opendir(parent);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		int pid;
		unsigned seq;
		long ns;

		if (de->d_type != DT_DIR || sscanf(de->d_name, "run-%d-%u-%ld", &pid, &seq, &ns) != 3 ||
		    pid <= 0 || pid == getpid())
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    time(NULL) - st.st_mtime < STALE_AGE_SEC)
			continue;
		unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static int make_run_dir(const char *parent, char *out, size_t size)
{
	static unsigned seq;
	struct timespec ts;

	if (mkdir_p(parent) < 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(out, size, "%s/run-%d-%u-%ld", parent, (int)getpid(), seq++, (long)ts.tv_nsec);
	if (mkdir(out, 0755) < 0) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

const char *sc_cgroup_swap_state(bool have_memcg, bool limit_written, const char *proc_swaps)
{
	const char *nl;

	if (!have_memcg)
		return "none";
	if (limit_written)
		return "limited";
	if (proc_swaps == NULL)
		return "unlimited";
	/* /proc/swaps: a header line, then one line per active swap area. */
	nl = strchr(proc_swaps, '\n');
	return nl != NULL && nl[1] != '\0' ? "unlimited" : "no-swap";
}

int sc_cgroup_create(struct sc_cgroup *cg, const char *parent,
		     const struct sandcell_limits *lim, struct sandcell_error *err)
{
	char v2mnt[64] = "", pdir[600], ctl[512] = "", swaps[512] = "";
	bool pure_v2 = false, swap_limited = false, swaps_known;

	memset(cg, 0, sizeof(*cg));
	cg->version = "none";
	cg->swap = "none";
	if (is_cgroup2(CG_ROOT)) {
		snprintf(v2mnt, sizeof(v2mnt), "%s", CG_ROOT);
		pure_v2 = true;
	} else if (is_cgroup2(CG_ROOT "/unified")) {
		snprintf(v2mnt, sizeof(v2mnt), "%s", CG_ROOT "/unified");
	}

	if (v2mnt[0]) {
		if (parent_dir(v2mnt, "", parent, pdir, sizeof(pdir)) < 0 ||
		    make_run_dir(pdir, cg->v2, sizeof(cg->v2)) < 0) {
			if (pure_v2)
				return cg_err(err, errno, V2_DELEGATE,
					      "cgroup v2: cannot create a run cgroup under %.150s", pdir);
			cg->v2[0] = '\0';
		} else {
			/* Enable what the parent can hand down; a controller
			 * that stays on v1 (hybrid hosts) is simply absent. */
			read_file(pdir, "cgroup.controllers", ctl, sizeof(ctl));
			if (has_word(ctl, "memory"))
				write_str(pdir, "cgroup.subtree_control", "+memory");
			if (has_word(ctl, "pids"))
				write_str(pdir, "cgroup.subtree_control", "+pids");
			ctl[0] = '\0';
			read_file(cg->v2, "cgroup.controllers", ctl, sizeof(ctl));
			cg->mem_v2 = has_word(ctl, "memory");
			cg->pids_v2 = has_word(ctl, "pids");
			cg->cpu_v2 = access(strcat(strcpy(pdir, cg->v2), "/cpu.stat"), R_OK) == 0;
		}
	}
	if (cg->mem_v2) {
		if (write_u64(cg->v2, "memory.max", lim->memory) < 0 ||
		    write_str(cg->v2, "memory.oom.group", "1") < 0) {
			sc_err(err, errno, "cgroup v2: setting memory limits");
			goto fail;
		}
		/* swap.max is absent when swap accounting is off: whether
		 * that matters depends on the host having swap at all. */
		int rc = write_str(cg->v2, "memory.swap.max", "0");
		if (rc < 0 && errno != ENOENT) {
			sc_err(err, errno, "cgroup v2: memory.swap.max");
			goto fail;
		}
		swap_limited = rc == 0;
	} else if (!pure_v2) {
		if (parent_dir(CG_ROOT "/memory", "memory", parent, pdir, sizeof(pdir)) < 0 ||
		    make_run_dir(pdir, cg->v1_mem, sizeof(cg->v1_mem)) < 0) {
			cg_err(err, errno, V1_DELEGATE, "cgroup v1: cannot create a memory cgroup under %.150s",
			       pdir);
			goto fail;
		}
		if (write_u64(cg->v1_mem, "memory.limit_in_bytes", lim->memory) < 0) {
			sc_err(err, errno, "cgroup v1: memory.limit_in_bytes");
			goto fail;
		}
		int rc = write_u64(cg->v1_mem, "memory.memsw.limit_in_bytes", lim->memory);
		if (rc < 0 && errno != ENOENT) {
			sc_err(err, errno, "cgroup v1: memory.memsw.limit_in_bytes");
			goto fail;
		}
		swap_limited = rc == 0;
		write_str(cg->v1_mem, "memory.swappiness", "0");
	}
	/* No /proc/swaps means a kernel without swap; any other failure
	 * to read it counts as swap present (fail closed). */
	swaps_known = swap_limited || read_file("/proc", "swaps", swaps, sizeof(swaps)) >= 0 ||
		      errno == ENOENT;
	cg->swap = sc_cgroup_swap_state(cg->mem_v2 || cg->v1_mem[0], swap_limited,
					swaps_known ? swaps : NULL);
	if (cg->pids_v2) {
		if (write_u64(cg->v2, "pids.max", lim->pids) < 0) {
			sc_err(err, errno, "cgroup v2: pids.max");
			goto fail;
		}
	} else if (!pure_v2) {
		if (parent_dir(CG_ROOT "/pids", "pids", parent, pdir, sizeof(pdir)) < 0 ||
		    make_run_dir(pdir, cg->v1_pids, sizeof(cg->v1_pids)) < 0) {
			cg_err(err, errno, V1_DELEGATE, "cgroup v1: cannot create a pids cgroup under %.150s",
			       pdir);
			goto fail;
		}
		if (write_u64(cg->v1_pids, "pids.max", lim->pids) < 0) {
			sc_err(err, errno, "cgroup v1: pids.max");
			goto fail;
		}
	}
	if (!cg->cpu_v2 && !pure_v2) {
		if (parent_dir(CG_ROOT "/cpuacct", "cpuacct", parent, pdir, sizeof(pdir)) < 0 ||
		    make_run_dir(pdir, cg->v1_cpu, sizeof(cg->v1_cpu)) < 0) {
			cg_err(err, errno, V1_DELEGATE, "cgroup v1: cannot create a cpuacct cgroup under %.150s",
			       pdir);
			goto fail;
		}
	}
	if (!(cg->mem_v2 || cg->v1_mem[0]) || !(cg->pids_v2 || cg->v1_pids[0])) {
		cg_err(err, 0, pure_v2 ? V2_DELEGATE : V1_DELEGATE,
		       "cgroup: no memory or pids controller available "
		       "(v2 controllers not delegated, no v1 fallback)");
		if (err != NULL)
			err->code = ENOTSUP;
		goto fail;
	}
	if (cg->mem_v2 && cg->pids_v2)
		cg->version = "v2";
	else if (!cg->v2[0])
		cg->version = "v1";
	else
		cg->version = "hybrid";
	return 0;
fail:
	sc_cgroup_destroy(cg);
	return -1;
}

/* A spare's run cgroup gets its run's limits when the request comes.
 * v1 wants memsw >= limit_in_bytes after each write: the order that
 * keeps it depends on whether the limit grows, so a refused first
 * write is retried after the second. */
int sc_cgroup_set_limits(const struct sc_cgroup *cg, const struct sandcell_limits *lim,
			 struct sandcell_error *err)
{
	if (cg->mem_v2 && write_u64(cg->v2, "memory.max", lim->memory) < 0)
		return sc_err(err, errno, "cgroup v2: memory.max");
	if (!cg->mem_v2 && cg->v1_mem[0]) {
		int first = write_u64(cg->v1_mem, "memory.limit_in_bytes", lim->memory);
		int sw = write_u64(cg->v1_mem, "memory.memsw.limit_in_bytes", lim->memory);
		if (sw < 0 && errno != ENOENT)
			return sc_err(err, errno, "cgroup v1: memory.memsw.limit_in_bytes");
		if (first < 0 && write_u64(cg->v1_mem, "memory.limit_in_bytes", lim->memory) < 0)
			return sc_err(err, errno, "cgroup v1: memory.limit_in_bytes");
	}
	if (cg->pids_v2 && write_u64(cg->v2, "pids.max", lim->pids) < 0)
		return sc_err(err, errno, "cgroup v2: pids.max");
	if (!cg->pids_v2 && cg->v1_pids[0] && write_u64(cg->v1_pids, "pids.max", lim->pids) < 0)
		return sc_err(err, errno, "cgroup v1: pids.max");
	return 0;
}

int sc_cgroup_attach(const struct sc_cgroup *cg, pid_t pid, bool skip_v2, struct sandcell_error *err)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%d", (int)pid);
	if (!skip_v2 && cg->v2[0] && write_str(cg->v2, "cgroup.procs", buf) < 0)
		return sc_err(err, errno, "cgroup: attaching to %s", cg->v2);
	return 0;
}

/*
 * v1 has no CLONE_INTO_CGROUP, and a task moved by another (a write of its
 * pid to cgroup.procs) takes the cgroup threadgroup lock for writing, which
 * first waits for an RCU grace period: 10-20 ms on a loaded host, on the
 * path of every cold run.  A thread that moves itself alone (pid 0 written
 * to `tasks`) needs no threadgroup lock, and the sandbox init is a single
 * thread (a fresh clone, no thread ever made), so moving that thread moves
 * the whole process.  The files are opened here, by the caller: v1 checks
 * the opener's credentials (f_cred) against the moved task's, and once the
 * init pivots into its own root no cgroup file is in its view anyway.
 */
static const char *const v1_names[SC_CGROUP_V1_JOIN] = { "memory", "pids", "cpuacct" };

int sc_cgroup_join_open(const struct sc_cgroup *cg, int fds[SC_CGROUP_V1_JOIN],
			struct sandcell_error *err)
{
	const char *dirs[SC_CGROUP_V1_JOIN] = { cg->v1_mem, cg->v1_pids, cg->v1_cpu };
	char path[640];
	size_t i;

	for (i = 0; i < SC_CGROUP_V1_JOIN; i++)
		fds[i] = -1;
	for (i = 0; i < SC_CGROUP_V1_JOIN; i++) {
		if (!dirs[i][0])
			continue;
		snprintf(path, sizeof(path), "%s/tasks", dirs[i]);
		fds[i] = open(path, O_WRONLY | O_CLOEXEC);
		if (fds[i] < 0) {
			int e = errno;
			sc_cgroup_join_close(fds);
			return sc_err(err, e, "cgroup: opening %s", path);
		}
	}
	return 0;
}

void sc_cgroup_join_close(int fds[SC_CGROUP_V1_JOIN])
{
	size_t i;

	for (i = 0; i < SC_CGROUP_V1_JOIN; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* In the sandbox init, before anything runs that the limits must bound.
 * No malloc, no stdio: this runs in a clone of a caller that may have
 * threads. */
int sc_cgroup_join_self(int fds[SC_CGROUP_V1_JOIN], struct sandcell_error *err)
{
	size_t i;

	for (i = 0; i < SC_CGROUP_V1_JOIN; i++) {
		if (fds[i] < 0)
			continue;
		if (write(fds[i], "0", 1) != 1) {
			int e = errno;
			sc_cgroup_join_close(fds);
			return sc_err(err, e, "cgroup: joining the run's v1 %s cgroup", v1_names[i]);
		}
	}
	sc_cgroup_join_close(fds);
	return 0;
}

int sc_cgroup_cpu_usec(const struct sc_cgroup *cg, uint64_t *usec)
{
	uint64_t ns;

	if (cg->cpu_v2)
		return read_key(cg->v2, "cpu.stat", "usage_usec", usec);
	if (cg->v1_cpu[0] && read_key(cg->v1_cpu, "cpuacct.usage", NULL, &ns) == 0) {
		*usec = ns / 1000;
		return 0;
	}
	return -1;
}

int sc_cgroup_peak_memory(const struct sc_cgroup *cg, uint64_t *bytes)
{
	if (cg->mem_v2)
		return read_key(cg->v2, "memory.peak", NULL, bytes);
	if (cg->v1_mem[0])
		return read_key(cg->v1_mem, "memory.max_usage_in_bytes", NULL, bytes);
	return -1;
}

bool sc_cgroup_oom(const struct sc_cgroup *cg)
{
	uint64_t n = 0;

	if (cg->mem_v2)
		return read_key(cg->v2, "memory.events", "oom_kill", &n) == 0 && n > 0;
	if (cg->v1_mem[0])
		return read_key(cg->v1_mem, "memory.oom_control", "oom_kill", &n) == 0 && n > 0;
	return false;
}

static bool v1_kill_round(const char *dir)
{
	char buf[8192], *p, *end;
	bool any = false;

	if (!dir[0] || read_file(dir, "cgroup.procs", buf, sizeof(buf)) < 0)
		return false;
	for (p = buf; *p; p = end) {
		long pid = strtol(p, &end, 10);
		if (end == p)
			break;
		if (pid > 0) {
			kill((pid_t)pid, SIGKILL);
			any = true;
		}
	}
	return any;
}

static double mono_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits (without sleeping blindly) for v2 cgroup.events to say empty:
 * 1 once it does, 0 at the deadline, -1 where it cannot be read (v1). */
static int v2_wait_empty(const char *dir, double deadline)
{
	char path[640], buf[256];
	struct pollfd pfd;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	pfd.fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pfd.fd < 0)
		return -1;
	pfd.events = POLLPRI;
	for (;;) {
		ssize_t n = pread(pfd.fd, buf, sizeof(buf) - 1, 0);
		double left = deadline - mono_sec();
		if (n < 0) {
			rc = -1;
			break;
		}
		buf[n] = '\0';
		if (strstr(buf, "populated 0")) {
			rc = 1;
			break;
		}
		if (left <= 0)
			break;
		poll(&pfd, 1, (int)(left * 1000) + 1);
	}
	close(pfd.fd);
	return rc;
}

int sc_cgroup_kill(const struct sc_cgroup *cg)
{
	int i;

	if (cg->v2[0] && write_str(cg->v2, "cgroup.kill", "1") == 0) {
		v2_wait_empty(cg->v2, mono_sec() + SC_CGROUP_REMOVE_SEC);
		return 0;
	}
	/* v1 has no cgroup.kill: signal every member until none is left.
	 * New forks are bounded by pids.max and each round kills them too. */
	for (i = 0; i < 1000; i++) {
		/* Every hierarchy gets its round: no short-circuit. */
		int any = (int)v1_kill_round(cg->v1_pids) + (int)v1_kill_round(cg->v1_mem) +
			  (int)v1_kill_round(cg->v1_cpu) + (int)v1_kill_round(cg->v2);
		if (any == 0)
			return 0;
		sched_yield();
	}
	return -1;
}

/*
 * Removes one run cgroup.  rmdir fails with EBUSY while the cgroup is
 * populated, and a killed task leaves it only after its final exit, which
 * a loaded host can delay by seconds (podman and mesos retry too).  v2
 * announces emptiness in cgroup.events, so it is waited for; v1 has no
 * such event and is retried with a growing pause.  Returns -1, with the
 * path kept in dir, if the cgroup is still there at the deadline.
 */
static int remove_dir(char *dir, double deadline)
{
	long pause_ns = 1000 * 1000;

	if (!dir[0])
		return 0;
	while (rmdir(dir) < 0) {
		int w;

		if ((errno != EBUSY && errno != EINTR) || mono_sec() >= deadline)
			return errno == ENOENT ? (dir[0] = '\0', 0) : -1;
		w = v2_wait_empty(dir, deadline);
		if (w > 0) {
			/* Empty, yet busy the second time: a child cgroup,
			 * nothing to wait for. */
			if (rmdir(dir) == 0)
				break;
			return -1;
		}
		if (w < 0) {
			struct timespec ts = { 0, pause_ns };
			nanosleep(&ts, NULL);
			if (pause_ns < 100 * 1000 * 1000)
				pause_ns *= 2;
		}
	}
	dir[0] = '\0';
	return 0;
}

/* The directory a run cgroup was made in (its parent), or "". */
static void parent_of(const char *dir, char *out, size_t size)
{
	const char *slash = strrchr(dir, '/');

	out[0] = '\0';
	if (dir[0] && slash != NULL && slash != dir && (size_t)(slash - dir) < size)
		snprintf(out, size, "%.*s", (int)(slash - dir), dir);
}

int sc_cgroup_destroy(struct sc_cgroup *cg)
{
	double deadline = mono_sec() + SC_CGROUP_REMOVE_SEC;
	char *dirs[] = { cg->v2, cg->v1_mem, cg->v1_pids, cg->v1_cpu };
	char parents[4][512];
	int left = 0;
	size_t i;

	for (i = 0; i < 4; i++) {
		parent_of(dirs[i], parents[i], sizeof(parents[i]));
		left -= remove_dir(dirs[i], deadline);
	}
	/* Last, off the run's setup (whose system calls do not depend on
	 * what other supervisors left) and, warm, after the answer. */
	for (i = 0; i < 4; i++)
		if (parents[i][0])
			collect_stale(parents[i]);
	return left;
}
