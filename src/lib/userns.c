/*
 * User namespace layer.  Inside, the code is uid/gid 1000 ("sandbox").
 * Outside, a root caller maps it to a dedicated unprivileged host uid that
 * is not its own (so even a full escape lands as a nobody with no files),
 * and an unprivileged caller maps its own uid (the only one it may map).
 * Only one id is mapped: host root never exists inside.
 *
 * The namespace is also *owned* by that dedicated uid.  The kernel charges
 * what the code allocates in per-user budgets (inotify instances and
 * watches, pending signals, message-queue bytes, locked memory, namespaces)
 * to every level up to the namespace's owner in the host namespace.  Owned
 * by the caller (root), a run could exhaust root's allowance for the whole
 * host; owned by a uid no other live run holds, it can only spend its own.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Host ids for root callers: a range no distribution hands out to users. */
#define SC_HOST_ID_BASE 2000000000u
#define SC_HOST_ID_SPAN 65536u

/* One byte of this file per id; a run holds an OFD write lock on its byte
 * for as long as its sandbox init lives.  OFD locks belong to the open
 * file, not the process: they are released when the last copy of the fd
 * closes, also when a supervisor is killed, and every CLI and server on
 * the host sees the same file, so live runs never share an id. */
#ifndef SC_ID_LOCK_DIR
#define SC_ID_LOCK_DIR "/run/sandcell"
#endif
#define SC_ID_LOCK_FILE SC_ID_LOCK_DIR "/ids.lock"

static int open_lock_file(struct sandcell_error *err)
{
	struct stat st;
	int fd;

	if (mkdir(SC_ID_LOCK_DIR, 0700) < 0 && errno != EEXIST)
		return sc_err(err, errno, "userns: host uid allocation: mkdir %s", SC_ID_LOCK_DIR);
	fd = open(SC_ID_LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return sc_err(err, errno, "userns: host uid allocation: %s", SC_ID_LOCK_FILE);
	/* Only root may hold or release these locks. */
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 077) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return sc_err(err, EPERM, "userns: host uid allocation: %s is not a root-only file",
			      SC_ID_LOCK_FILE);
	}
	return fd;
}

/* Dedicated ids exist only for root of the host's own user namespace: a
 * root inside a container's namespace cannot map ids it was not given,
 * and is then a caller like any other (its own uid is mapped).  Root that
 * cannot tell must not fall back to mapping itself: 1 yes, 0 no, -1 error. */
static int host_root(struct sandcell_error *err)
{
	char buf[128];
	unsigned a, b, n;
	ssize_t len;
	int fd;

	if (geteuid() != 0)
		return 0;
	fd = open("/proc/self/uid_map", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sc_err(err, errno, "userns: host uid allocation: /proc/self/uid_map");
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return sc_err(err, len < 0 ? errno : EIO, "userns: host uid allocation: /proc/self/uid_map");
	buf[len] = '\0';
	return sscanf(buf, "%u %u %u", &a, &b, &n) == 3 && a == 0 && b == 0 && n == 4294967295u;
}

int sc_userns_claim_ids(struct sc_ids *ids, struct sandcell_error *err)
{
	unsigned start, i;
	int fd;

	ids->lock_fd = -1;
	int root = host_root(err);
	if (root < 0)
		return -1;
	if (!root) {
		ids->uid = geteuid();
		ids->gid = getegid();
		return 0;
	}
	if (sc_hook_on(SC_HOOK_MUT_SHARED_UID)) {
		/* Mutant: an id derived from the pid, claimed by nobody. */
		ids->uid = (uid_t)(SC_HOST_ID_BASE + (unsigned)getpid() % SC_HOST_ID_SPAN);
		ids->gid = (gid_t)ids->uid;
		return 0;
	}
	fd = open_lock_file(err);
	if (fd < 0)
		return -1;
	/* A random start spreads runs over the range, so an id is rarely
	 * reused soon after a run released it. */
	if (getrandom(&start, sizeof(start), 0) != (ssize_t)sizeof(start))
		start = (unsigned)getpid();
	for (i = 0; i < SC_HOST_ID_SPAN; i++) {
		unsigned slot = (start + i) % SC_HOST_ID_SPAN;
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
				    .l_start = (off_t)slot, .l_len = 1 };
		if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
			ids->uid = (uid_t)(SC_HOST_ID_BASE + slot);
			ids->gid = (gid_t)ids->uid;
			ids->lock_fd = fd;
			return 0;
		}
		if (errno != EAGAIN && errno != EACCES) {
			int e = errno;
			close(fd);
			return sc_err(err, e, "userns: host uid allocation: lock %s", SC_ID_LOCK_FILE);
		}
	}
	close(fd);
	return sc_err(err, EUSERS, "userns: host uid allocation: all %u ids are held by live runs",
		      SC_HOST_ID_SPAN);
}

void sc_userns_release_ids(struct sc_ids *ids)
{
	if (ids->lock_fd >= 0)
		close(ids->lock_fd);
	ids->lock_fd = -1;
}

/* The owner of a new user namespace is the effective uid of the thread
 * that creates it.  Only this thread's ids change (raw syscalls: glibc
 * would change every thread's), and only for the clone: the filesystem
 * ids stay 0 so the child can still open the caller's paths (it opens the
 * inputs and the runtime before it has its own maps).  Changing the
 * effective uid resets the dumpable flag and the parent-death signal of
 * this process; both are put back. */
int sc_userns_owner_enter(const struct sc_ids *ids, struct sc_owner_saved *sv,
			  struct sandcell_error *err)
{
	sv->active = false;
	if (geteuid() != 0 || ids->lock_fd < 0 || sc_hook_on(SC_HOOK_NO_USERNS_OWNER))
		return 0;
	sv->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	sv->pdeathsig = 0;
	if (sv->dumpable < 0 || prctl(PR_GET_PDEATHSIG, &sv->pdeathsig, 0, 0, 0) < 0)
		return sc_err(err, errno, "userns: prctl: saving the supervisor's state");
	if (syscall(SYS_setresgid, -1, ids->gid, -1) < 0)
		return sc_err(err, errno, "userns: owner gid");
	if (syscall(SYS_setresuid, -1, ids->uid, -1) < 0) {
		int e = errno;
		syscall(SYS_setresgid, -1, 0, -1);
		return sc_err(err, e, "userns: owner uid");
	}
	sv->active = true;
	syscall(SYS_setfsuid, 0);
	syscall(SYS_setfsgid, 0);
	/* setfsuid reports nothing; read the value back. */
	if (syscall(SYS_setfsuid, -1) != 0 || syscall(SYS_setfsgid, -1) != 0) {
		sc_userns_owner_leave(sv, NULL);
		return sc_err(err, EPERM, "userns: filesystem ids");
	}
	return 0;
}

int sc_userns_owner_leave(struct sc_owner_saved *sv, struct sandcell_error *err)
{
	if (!sv->active)
		return 0;
	sv->active = false;
	/* Back to euid 0 first: that restores the effective capabilities
	 * the gid change needs. */
	if (syscall(SYS_setresuid, -1, 0, -1) < 0 || syscall(SYS_setresgid, -1, 0, -1) < 0)
		return sc_err(err, errno, "userns: restoring the supervisor's ids");
	if (prctl(PR_SET_DUMPABLE, sv->dumpable, 0, 0, 0) < 0 ||
	    (sv->pdeathsig > 0 && prctl(PR_SET_PDEATHSIG, sv->pdeathsig, 0, 0, 0) < 0))
		return sc_err(err, errno, "userns: prctl: restoring the supervisor's state");
	return 0;
}

static int write_proc(pid_t pid, const char *file, const char *text, struct sandcell_error *err)
{
	char path[64];
	size_t len = strlen(text);
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return sc_err(err, errno, "userns: open %s", path);
	if (write(fd, text, len) != (ssize_t)len) {
		int e = errno;
		close(fd);
		return sc_err(err, e, "userns: write %s", path);
	}
	close(fd);
	return 0;
}

int sc_userns_write_maps(pid_t pid, uid_t host_uid, gid_t host_gid, bool deny_setgroups,
			 struct sandcell_error *err)
{
	char map[64];

	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)SC_SANDBOX_UID, (unsigned)host_uid);
	if (write_proc(pid, "uid_map", map, err) < 0)
		return -1;
	/* Unprivileged callers must give up setgroups before mapping gids.
	 * A root caller keeps it one step longer so the child can clear the
	 * supplementary groups it inherited (host root's); seccomp then
	 * denies setgroups to the code. */
	if (deny_setgroups && write_proc(pid, "setgroups", "deny", err) < 0)
		return -1;
	snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)SC_SANDBOX_GID, (unsigned)host_gid);
	return write_proc(pid, "gid_map", map, err);
}

/* Budgets the kernel keeps per user namespace (/proc/sys/user), opened by
 * the sandbox init while its /proc is still the host's and written,
 * through those fds, once its root is finished (contain.c), while it
 * still holds CAP_SYS_RESOURCE in its namespace.  They cap what one run can
 * take of its owner's allowance; seccomp already refuses new namespaces,
 * so those limits are a second layer.  Cgroup namespaces are left alone:
 * init still has to create one. */
static const struct {
	const char *name;
	const char *value;
} ns_limits[] = {
	{ "max_inotify_instances", "16" },
	{ "max_inotify_watches", "1024" },
	{ "max_fanotify_groups", "0" },
	{ "max_fanotify_marks", "0" },
	{ "max_user_namespaces", "0" },
	{ "max_pid_namespaces", "0" },
	{ "max_net_namespaces", "0" },
	{ "max_mnt_namespaces", "0" },
	{ "max_ipc_namespaces", "0" },
	{ "max_uts_namespaces", "0" },
	{ "max_time_namespaces", "0" },
};

int sc_userns_open_limits(int fds[SC_USERNS_LIMITS], struct sandcell_error *err)
{
	size_t i;

	for (i = 0; i < SC_USERNS_LIMITS; i++)
		fds[i] = -1;
	if (sc_hook_on(SC_HOOK_NO_USER_BUDGETS))
		return 0;
	for (i = 0; i < SC_USERNS_LIMITS; i++) {
		char path[96];

		snprintf(path, sizeof(path), "/proc/sys/user/%s", ns_limits[i].name);
		fds[i] = open(path, O_WRONLY | O_CLOEXEC);
		if (fds[i] < 0 && errno != ENOENT)
			return sc_err(err, errno, "userns limits: open %s", path);
		/* ENOENT: an older kernel without this budget */
	}
	return 0;
}

int sc_userns_write_limits(int fds[SC_USERNS_LIMITS], struct sandcell_error *err)
{
	int rc = 0;

	for (size_t i = 0; i < SC_USERNS_LIMITS; i++) {
		size_t len = strlen(ns_limits[i].value);

		if (fds[i] < 0)
			continue;
		if (rc == 0 && write(fds[i], ns_limits[i].value, len) != (ssize_t)len)
			rc = sc_err(err, errno, "userns limits: write /proc/sys/user/%s", ns_limits[i].name);
		close(fds[i]);
		fds[i] = -1;
	}
	return rc;
}

_Static_assert(sizeof(ns_limits) / sizeof(ns_limits[0]) == SC_USERNS_LIMITS, "SC_USERNS_LIMITS");
