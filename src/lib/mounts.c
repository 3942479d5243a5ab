/*
 * Mount layer.  The code sees a fresh tmpfs root (read-only once built)
 * holding only:
 *   the interpreter's runtime   read-only, nosuid, nodev binds at host paths
 *   /etc                        synthesized, plus a few read-only host files
 *   /dev                        null zero full random urandom, shm
 *   /proc                       a new procfs with subset=pid (no sysctl,
 *                               kallsyms, sysrq; only this pid namespace)
 *   /code, /.sandcell           the code and the sandcell module, read-only
 *   /input/NAME                 read-only, nosuid, nodev, noexec binds
 *   /tmp, /output, /dev/shm     one size- and inode-capped tmpfs (noexec)
 * The old root is detached after pivot_root, so no path leads back out.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NEWROOT "/tmp"
#define SCRATCH ".scratch"

/* Host /etc entries the runtime reads; bound read-only when present.
 * alternatives/ holds the BLAS symlinks numpy loads through. */
static const char *const etc_binds[] = {
	"ld.so.cache", "alternatives", "matplotlibrc", "python3", "python3.11",
	"python3.12", "python3.13", "fonts", "mime.types",
};

static int write_file(const char *path, const char *data, size_t len, mode_t mode,
		      struct sandcell_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	size_t off = 0;

	if (fd < 0)
		return sc_err(err, errno, "mounts: create %s", path);
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0) {
			int e = errno;
			close(fd);
			return sc_err(err, e, "mounts: write %s", path);
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) < 0) {
		int e = errno;
		close(fd);
		return sc_err(err, e, "mounts: chmod %s", path);
	}
	close(fd);
	return 0;
}

static int mkdirs(const char *path, mode_t mode, struct sandcell_error *err)
{
	char tmp[PATH_MAX];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return sc_err(err, ENAMETOOLONG, "mounts: %s", path);
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return sc_err(err, errno, "mounts: mkdir %s", tmp);
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return sc_err(err, errno, "mounts: mkdir %s", tmp);
	return 0;
}

/* Flags the kernel locks on a mount seen from a user namespace: a
 * read-only remount must restate them or fail with EPERM. */
static unsigned long locked_flags(int fd)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (fstatvfs(fd, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

/* Binds the object behind an O_PATH fd (opened before the uid switch) at
 * target, then makes the bind read-only with the given extra flags. */
static int bind_ro_fd(int fd, const char *target, unsigned long extra, const char *what,
		      struct sandcell_error *err)
{
	char src[64];

	snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
	if (mount(src, target, NULL, MS_BIND, NULL) < 0)
		return sc_err(err, errno, "mounts: bind %s at %s", what, target);
	if (mount(NULL, target, NULL,
		  MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | extra | locked_flags(fd),
		  NULL) < 0)
		return sc_err(err, errno, "mounts: read-only remount of %s", target);
	return 0;
}

/* Creates an empty file or directory at target matching fd's type. */
static int make_mountpoint(int fd, const char *target, struct sandcell_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return sc_err(err, errno, "mounts: fstat for %s", target);
	if (S_ISDIR(st.st_mode))
		return mkdirs(target, 0755, err);
	return write_file(target, "", 0, 0444, err);
}

int sc_mounts_open_sources(struct sc_mount_plan *p, struct sandcell_error *err)
{
	size_t i;

	for (i = 0; i < p->n_runtime; i++) {
		p->runtime_fds[i] = open(p->runtime[i], O_PATH | O_CLOEXEC);
		if (p->runtime_fds[i] < 0)
			return sc_err(err, errno, "runtime %s", p->runtime[i]);
	}
	for (i = 0; i < p->n_inputs; i++) {
		p->input_fds[i] = open(p->inputs[i].path, O_PATH | O_CLOEXEC);
		if (p->input_fds[i] < 0)
			return sc_err(err, errno, "input '%s' (%s)", p->inputs[i].name,
				      p->inputs[i].path);
	}
	return 0;
}

static int setup_etc(struct sandcell_error *err)
{
	static const char passwd[] =
		"root:x:0:0:root:/root:/usr/sbin/nologin\n"
		"sandbox:x:1000:1000:sandbox:/tmp:/usr/sbin/nologin\n"
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
	static const char group[] = "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n";
	static const char hosts[] = "127.0.0.1\tlocalhost sandcell\n::1\tlocalhost\n";
	static const char nss[] = "passwd: files\ngroup: files\nhosts: files\n";
	char host[PATH_MAX], dst[PATH_MAX];
	size_t i;

	if (mkdirs("etc", 0755, err) < 0 ||
	    write_file("etc/passwd", passwd, sizeof(passwd) - 1, 0444, err) < 0 ||
	    write_file("etc/group", group, sizeof(group) - 1, 0444, err) < 0 ||
	    write_file("etc/hosts", hosts, sizeof(hosts) - 1, 0444, err) < 0 ||
	    write_file("etc/hostname", "sandcell\n", 9, 0444, err) < 0 ||
	    write_file("etc/nsswitch.conf", nss, sizeof(nss) - 1, 0444, err) < 0 ||
	    write_file("etc/resolv.conf", "", 0, 0444, err) < 0)
		return -1;
	if (symlink("/usr/share/zoneinfo/UTC", "etc/localtime") < 0)
		return sc_err(err, errno, "mounts: etc/localtime");
	for (i = 0; i < sizeof(etc_binds) / sizeof(etc_binds[0]); i++) {
		int fd;

		snprintf(host, sizeof(host), "/etc/%s", etc_binds[i]);
		snprintf(dst, sizeof(dst), "etc/%s", etc_binds[i]);
		fd = open(host, O_PATH | O_CLOEXEC);
		if (fd < 0)
			continue; /* optional */
		if (make_mountpoint(fd, dst, err) < 0 ||
		    bind_ro_fd(fd, dst, MS_NOEXEC, host, err) < 0) {
			close(fd);
			return -1;
		}
		close(fd);
	}
	return 0;
}

static int setup_dev(struct sandcell_error *err)
{
	static const char *const devs[] = { "null", "zero", "full", "random", "urandom" };
	char host[64], dst[64];
	size_t i;

	if (mkdirs("dev", 0755, err) < 0)
		return -1;
	if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64") < 0)
		return sc_err(err, errno, "mounts: tmpfs on /dev");
	for (i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		snprintf(host, sizeof(host), "/dev/%s", devs[i]);
		snprintf(dst, sizeof(dst), "dev/%s", devs[i]);
		if (write_file(dst, "", 0, 0666, err) < 0)
			return -1;
		/* Device nodes need dev on their own bind; nosuid, noexec. */
		if (mount(host, dst, NULL, MS_BIND, NULL) < 0)
			return sc_err(err, errno, "mounts: bind %s", host);
		if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC, NULL) < 0)
			return sc_err(err, errno, "mounts: remount %s", host);
	}
	if (symlink("/proc/self/fd", "dev/fd") < 0 ||
	    symlink("/proc/self/fd/0", "dev/stdin") < 0 ||
	    symlink("/proc/self/fd/1", "dev/stdout") < 0 ||
	    symlink("/proc/self/fd/2", "dev/stderr") < 0)
		return sc_err(err, errno, "mounts: /dev symlinks");
	return mkdirs("dev/shm", 01777, err);
}

static int setup_scratch(const struct sc_mount_plan *p, int *scratch_fd, struct sandcell_error *err)
{
	char opts[128];

	snprintf(opts, sizeof(opts), "mode=0755,size=%llu,nr_inodes=%llu",
		 (unsigned long long)p->disk, (unsigned long long)p->disk_inodes);
	if (mkdirs(SCRATCH, 0755, err) < 0)
		return -1;
	if (mount("tmpfs", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
		return sc_err(err, errno, "mounts: scratch tmpfs (%s)", opts);
	if (mkdirs(SCRATCH "/tmp", 01777, err) < 0 || mkdirs(SCRATCH "/output", 0755, err) < 0 ||
	    mkdirs(SCRATCH "/shm", 01777, err) < 0 || chmod(SCRATCH "/tmp", 01777) < 0 ||
	    chmod(SCRATCH "/shm", 01777) < 0)
		return sc_err(err, errno, "mounts: scratch dirs");
	if (mkdirs("tmp", 0755, err) < 0 || mkdirs("output", 0755, err) < 0)
		return -1;
	if (mount(SCRATCH "/tmp", "tmp", NULL, MS_BIND, NULL) < 0 ||
	    mount(SCRATCH "/output", "output", NULL, MS_BIND, NULL) < 0 ||
	    mount(SCRATCH "/shm", "dev/shm", NULL, MS_BIND, NULL) < 0)
		return sc_err(err, errno, "mounts: scratch binds");
	/* The supervisor keeps this fd: it pins the tmpfs after the sandbox
	 * is gone, so outputs are collected from a dead, frozen tree. */
	*scratch_fd = open(SCRATCH, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*scratch_fd < 0)
		return sc_err(err, errno, "mounts: open scratch");
	if (umount2(SCRATCH, MNT_DETACH) < 0 || rmdir(SCRATCH) < 0)
		return sc_err(err, errno, "mounts: hiding scratch");
	return 0;
}

static int setup_code(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	const char *vals = p->values_json ? p->values_json : "{}";
	char path[PATH_MAX];

	if (mkdirs("code", 0755, err) < 0 || mkdirs(".sandcell", 0755, err) < 0)
		return -1;
	if (p->code_name) {
		snprintf(path, sizeof(path), "code/%s", p->code_name);
		if (write_file(path, p->code, p->code_len, 0444, err) < 0)
			return -1;
	} else if (write_file("code/__main__.py", p->code, p->code_len, 0444, err) < 0) {
		return -1;
	}
	if (write_file(".sandcell/sandcell.py", p->module_src, strlen(p->module_src), 0444, err) < 0 ||
	    write_file(".sandcell/_sandcell_boot.py", p->boot_src, strlen(p->boot_src), 0444, err) < 0 ||
	    write_file(".sandcell/values.json", vals, strlen(vals), 0444, err) < 0)
		return -1;
	return 0;
}

static int setup_runtime(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	/* usr-merged hosts have /bin, /lib... as symlinks into /usr: recreate
	 * them so the runtime's absolute paths resolve the same way. */
	static const char *const top[] = { "bin", "sbin", "lib", "lib32", "lib64", "libx32" };
	char host[PATH_MAX], link[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(top) / sizeof(top[0]); i++) {
		ssize_t n;
		snprintf(host, sizeof(host), "/%s", top[i]);
		n = readlink(host, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (symlink(link, top[i]) < 0)
			return sc_err(err, errno, "mounts: symlink /%s", top[i]);
	}
	for (i = 0; i < p->n_runtime; i++) {
		const char *dst = p->runtime[i] + 1; /* relative to the new root */
		if (make_mountpoint(p->runtime_fds[i], dst, err) < 0 ||
		    bind_ro_fd(p->runtime_fds[i], dst, 0, p->runtime[i], err) < 0)
			return -1;
	}
	return 0;
}

static int setup_inputs(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	char dst[PATH_MAX];
	size_t i;

	if (mkdirs("input", 0755, err) < 0)
		return -1;
	for (i = 0; i < p->n_inputs; i++) {
		snprintf(dst, sizeof(dst), "input/%s", p->inputs[i].name);
		if (make_mountpoint(p->input_fds[i], dst, err) < 0 ||
		    bind_ro_fd(p->input_fds[i], dst, MS_NOEXEC, p->inputs[i].name, err) < 0)
			return -1;
	}
	return 0;
}

int sc_mounts_setup(const struct sc_mount_plan *p, int *scratch_fd, struct sandcell_error *err)
{
	char opts[64];

	*scratch_fd = -1;
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return sc_err(err, errno, "mounts: making / private");
	snprintf(opts, sizeof(opts), "mode=0755,size=%zu,nr_inodes=4096", p->code_len + (8u << 20));
	if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return sc_err(err, errno, "mounts: tmpfs root");
	if (chdir(NEWROOT) < 0)
		return sc_err(err, errno, "mounts: chdir new root");
	if (setup_runtime(p, err) < 0 || setup_etc(err) < 0 || setup_dev(err) < 0 ||
	    setup_scratch(p, scratch_fd, err) < 0 || setup_code(p, err) < 0 ||
	    setup_inputs(p, err) < 0)
		goto fail;
	if (mkdirs("proc", 0555, err) < 0)
		goto fail;
	/* subset=pid: only process directories, none of /proc/sys,
	 * /proc/kallsyms or /proc/sysrq-trigger.  It is a fresh procfs of
	 * the new pid namespace, so host processes are not there. */
	if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0) {
		sc_err(err, errno, "mounts: procfs (subset=pid)");
		goto fail;
	}
	if (sc_hook_on(SC_HOOK_NO_MOUNT_ISOLATION)) {
		/* Ablation: keep the host tree reachable at /.oldroot. */
		if (mkdirs(".oldroot", 0755, err) < 0 || syscall(SYS_pivot_root, ".", ".oldroot") < 0 ||
		    chdir("/") < 0) {
			sc_err(err, errno, "mounts: pivot_root (ablation)");
			goto fail;
		}
		goto pivoted;
	}
	/* pivot_root(".", ".") stacks the old root under the new one; the
	 * detach then removes every path back to the host tree. */
	if (syscall(SYS_pivot_root, ".", ".") < 0) {
		sc_err(err, errno, "mounts: pivot_root");
		goto fail;
	}
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0) {
		sc_err(err, errno, "mounts: detaching the old root");
		goto fail;
	}
pivoted:
	if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0 ||
	    mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) {
		sc_err(err, errno, "mounts: read-only root");
		goto fail;
	}
	return 0;
fail:
	if (*scratch_fd >= 0)
		close(*scratch_fd);
	*scratch_fd = -1;
	return -1;
}
