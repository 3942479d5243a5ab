/*
 * Landlock layer: a second, path-based confinement that holds even if the
 * mount plan were wrong.  Rules mirror the mount plan: the runtime, /code,
 * /.sandcell, /etc and /input are read(+execute for the runtime), /dev and
 * /proc readable, and only the scratch tmpfs (/tmp, /output, /dev/shm) is
 * writable and never executable.  TCP bind/connect are handled with no rule
 * (denied) from ABI 4, abstract unix sockets and signals are scoped to the
 * sandbox from ABI 6.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Debian 12's headers stop at ABI 3; newer bits are kernel ABI, fixed. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define SC_LL_ACCESS_NET_BIND_TCP (1ULL << 0)
#define SC_LL_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#define SC_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define SC_LL_SCOPE_SIGNAL (1ULL << 1)

/* The ABI 6 layout of the ruleset attribute. */
struct sc_ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_WRITE_ALL                                                            \
	(LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |        \
	 LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |        \
	 LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG |            \
	 LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO |          \
	 LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM |          \
	 LANDLOCK_ACCESS_FS_REFER | LANDLOCK_ACCESS_FS_TRUNCATE)

static uint64_t fs_handled(int abi)
{
	uint64_t all = LANDLOCK_ACCESS_FS_EXECUTE | FS_READ | FS_WRITE_ALL |
		       LANDLOCK_ACCESS_FS_IOCTL_DEV;

	if (abi < 2)
		all &= ~LANDLOCK_ACCESS_FS_REFER;
	if (abi < 3)
		all &= ~LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi < 5)
		all &= ~LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return all;
}

int sc_landlock_probe(struct sc_landlock_info *info)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
			   LANDLOCK_CREATE_RULESET_VERSION);

	memset(info, 0, sizeof(*info));
	if (abi < 0)
		return -1;
	info->abi = (int)abi;
	info->fs = true;
	info->net = abi >= 4;
	info->scope_abstract_unix = abi >= 6;
	info->scope_signal = abi >= 6;
	return 0;
}

static int add_path(int ruleset, const char *path, uint64_t access, uint64_t handled,
		    bool optional, struct sandcell_error *err)
{
	struct landlock_path_beneath_attr pb = { 0 };
	struct stat st;
	int fd, rc;

	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (optional && errno == ENOENT)
			return 0;
		return sc_err(err, errno, "landlock: open %s", path);
	}
	pb.parent_fd = fd;
	pb.allowed_access = access & handled;
	/* A rule on a file may only carry file rights. */
	if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
		pb.allowed_access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
				     LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
				     LANDLOCK_ACCESS_FS_IOCTL_DEV;
	rc = (int)syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	close(fd);
	if (rc < 0)
		return sc_err(err, errno, "landlock: rule for %s", path);
	return 0;
}

int sc_landlock_apply(const struct sc_landlock_info *info, const struct sc_landlock_rules *rules,
		      struct sandcell_error *err)
{
	struct sc_ll_ruleset_attr attr = { 0 };
	size_t attr_size;
	uint64_t h = fs_handled(info->abi);
	const uint64_t dev_files = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE;
	static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full",
					    "/dev/random", "/dev/urandom" };
	int rs, rc = -1;
	size_t i;

	attr.handled_access_fs = h;
	attr_size = sizeof(uint64_t);
	if (info->net) {
		attr.handled_access_net = SC_LL_ACCESS_NET_BIND_TCP | SC_LL_ACCESS_NET_CONNECT_TCP;
		attr_size = 2 * sizeof(uint64_t);
	}
	if (info->scope_abstract_unix || info->scope_signal) {
		attr.scoped = SC_LL_SCOPE_ABSTRACT_UNIX_SOCKET | SC_LL_SCOPE_SIGNAL;
		attr_size = sizeof(attr);
	}
	rs = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
	if (rs < 0)
		return sc_err(err, errno, "landlock_create_ruleset (ABI %d)", info->abi);

	for (i = 0; i < rules->n_ro_exec; i++)
		if (add_path(rs, rules->ro_exec[i], FS_READ | LANDLOCK_ACCESS_FS_EXECUTE, h, true, err) < 0)
			goto out;
	for (i = 0; i < rules->n_ro; i++)
		if (add_path(rs, rules->ro[i], FS_READ, h, true, err) < 0)
			goto out;
	/* Writable means writable, never executable: no code from scratch. */
	for (i = 0; i < rules->n_rw; i++)
		if (add_path(rs, rules->rw[i], FS_READ | FS_WRITE_ALL, h, false, err) < 0)
			goto out;
	/* Listing directories anywhere in the (tiny, synthetic) tree is
	 * harmless and keeps os.walk("/") and glob working. */
	if (rules->list_root && add_path(rs, "/", LANDLOCK_ACCESS_FS_READ_DIR, h, false, err) < 0)
		goto out;
	/* The few device nodes: read and write, no device ioctls, and
	 * nothing can be created in /dev. */
	for (i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
		if (add_path(rs, devs[i], dev_files, h, false, err) < 0)
			goto out;
	if (syscall(SYS_landlock_restrict_self, rs, 0) < 0) {
		sc_err(err, errno, "landlock_restrict_self");
		goto out;
	}
	rc = 0;
out:
	close(rs);
	return rc;
}
