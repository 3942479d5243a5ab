/*
 * User namespace layer.  Inside, the code is uid/gid 1000 ("sandbox").
 * Outside, a root caller maps it to a dedicated unprivileged host uid that
 * is not its own (so even a full escape lands as a nobody with no files),
 * and an unprivileged caller maps its own uid (the only one it may map).
 * Only one id is mapped: host root never exists inside.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Host ids for root callers: a range no distribution hands out to users,
 * one id per supervisor pid so concurrent runs do not share a uid. */
#define SC_HOST_ID_BASE 2000000000u
#define SC_HOST_ID_SPAN 65536u

void sc_userns_pick_ids(uid_t *uid, gid_t *gid)
{
	if (geteuid() == 0) {
		*uid = (uid_t)(SC_HOST_ID_BASE + ((unsigned)getpid() % SC_HOST_ID_SPAN));
		*gid = (gid_t)*uid;
	} else {
		*uid = geteuid();
		*gid = getegid();
	}
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
