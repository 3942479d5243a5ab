/*
 * Mount layer.  The code sees a fresh tmpfs root (read-only once built)
 * holding only:
 *   the interpreter's runtime   read-only, nosuid, nodev, at host paths
 *   /etc                        synthesized, plus a few read-only host files
 *   /dev                        null zero full random urandom, shm
 *   /proc                       a new procfs with subset=pid (no sysctl,
 *                               kallsyms, sysrq; only this pid namespace)
 *   /code, /.sandcell           the code and the sandcell module, read-only
 *   /input/NAME                 read-only, nosuid, nodev, noexec
 *   /input/.datasets/NAME       datasets (regular files only), the same
 *   /tmp, /output, /dev/shm     one size- and inode-capped tmpfs (noexec)
 * The old root is detached after pivot_root, so no path leads back out.
 *
 * Private inodes.  A bind mount shows the code the host's own inode, and
 * with it everything the kernel keeps per inode rather than per open
 * file: flock, POSIX and OFD locks (a read lock on a read-only fd blocks
 * a host writer's lock), leases, inotify and dnotify marks (which report
 * the host's own opens), and the FIFOs and unix sockets that live in an
 * input directory.  So each host tree the code sees (runtime dirs, /etc
 * entries, inputs) is shown through a read-only overlay made for this run
 * alone: locks and marks attach to the overlay's inodes, which no host
 * process and no other run shares, and a host FIFO or socket becomes an
 * inert inode of the overlay.  Reads and mmap still reach the host's page
 * cache (overlay hands mmap to the real file), so pages stay shared and
 * futex words in them too: docs/SECURITY.md, Known limits.  For root
 * callers the device nodes are the run's own as well (sc_mounts_make_dev);
 * other callers cannot create device nodes and get the host's.
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
#include <sys/sysmacros.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Everything the setup mounts only to take from (the scratch tmpfs, whose
 * subdirectories are bound into the root; the overlays non-directories are
 * bound from) lives on a staging tmpfs over the host's /tmp, outside the
 * new root, in our private namespace.  None of it is ever unmounted on its
 * own: it is part of the old root, which the one detach after pivot_root
 * takes away whole.  (Each unmount waits for an RCU grace period: three of
 * them were on the path of every cold run.) */
#define STAGING "/tmp"
#define NEWROOT STAGING "/root"
#define SCRATCH STAGING "/scratch"
#define STAGE STAGING "/file"
#define STAGE_ETC STAGING "/etc"


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

/* A detached, read-only overlay whose one real layer is the directory
 * behind dirfd.  Overlay refuses a single lower layer without an upper
 * one, so an empty tmpfs is the second.  It is made before the uid
 * switch: overlay reaches the host files with its creator's credentials
 * (the caller's, as the bind's O_PATH fds were), and every access of the
 * code is also checked against the overlay inode, which has the host
 * file's owner and mode, so the code reads nothing a bind would not show. */
static int overlay_made(int dirfd, int empty, unsigned attrs, const char *what, bool *refused,
			struct sandcell_error *err)
{
	char lower[64];
	int fs, mnt;

	fs = fsopen("overlay", FSOPEN_CLOEXEC);
	if (fs < 0)
		return sc_err(err, errno, "mounts: overlay for %s", what);
	snprintf(lower, sizeof(lower), "/proc/self/fd/%d:/proc/self/fd/%d", dirfd, empty);
	/* xino=off: a lower file keeps its host inode number, which the
	 * identity check in private_src() compares. */
	if (fsconfig(fs, FSCONFIG_SET_STRING, "lowerdir", lower, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "xino", "off", 0) < 0) {
		int e = errno;
		close(fs);
		return sc_err(err, e, "mounts: overlay of %s", what);
	}
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		int e = errno;
		close(fs);
		/* EINVAL here: the kernel would not clone the lower layer
		 * (locked mounts under it, see etc_copy_src()). */
		if (refused != NULL)
			*refused = e == EINVAL;
		return sc_err(err, e, "mounts: overlay of %s", what);
	}
	mnt = fsmount(fs, FSMOUNT_CLOEXEC,
		      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | attrs);
	if (mnt < 0) {
		int e = errno;
		close(fs);
		return sc_err(err, e, "mounts: overlay mount of %s", what);
	}
	close(fs);
	return mnt;
}

static int overlay_of(int dirfd, int empty, unsigned attrs, const char *what,
		      struct sandcell_error *err)
{
	return overlay_made(dirfd, empty, attrs, what, NULL, err);
}

static int same_inode(const struct statx *a, const struct statx *b)
{
	return a->stx_ino == b->stx_ino && a->stx_mode == b->stx_mode &&
	       a->stx_size == b->stx_size && a->stx_ctime.tv_sec == b->stx_ctime.tv_sec &&
	       a->stx_ctime.tv_nsec == b->stx_ctime.tv_nsec;
}

/* Fills *out for the host object behind the O_PATH fd: a directory gets
 * its own overlay; anything else is looked up by name in an overlay of its
 * parent directory, and must be the very inode fd pins (same inode number,
 * type, size and ctime, which no unprivileged process can set back), or
 * the setup fails.  A non-directory that is itself a mount point (a file
 * bound onto another) cannot be reached through its parent: it is bound
 * directly, and keeps the host inode. */
static int private_src(int fd, int empty, unsigned attrs, const char *what,
		       struct sc_private_src *out, struct sandcell_error *err)
{
	char link[64], path[PATH_MAX];
	struct statx want, parent, got;
	const char *base;
	char *slash;
	ssize_t n;
	int pfd, f;

	out->mnt = out->file = -1;
	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS | STATX_MNT_ID, &want) < 0)
		return sc_err(err, errno, "mounts: statx %s", what);
	if (sc_hook_on(SC_HOOK_SHARED_INODES)) {
		out->file = fd; /* Ablation: a plain bind of the host inode. */
		return 0;
	}
	if (S_ISDIR(want.stx_mode)) {
		out->mnt = overlay_of(fd, empty, attrs, what, err);
		return out->mnt < 0 ? -1 : 0;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0 || (size_t)n >= sizeof(path) - 1 || path[0] != '/')
		return sc_err(err, n < 0 ? errno : ENAMETOOLONG, "mounts: path of %s", what);
	path[n] = '\0';
	slash = strrchr(path, '/');
	base = slash + 1;
	if (slash == path)
		slash[1] = '\0', base = "";
	else
		*slash = '\0';
	if (base[0] == '\0') {
		/* readlink gave "/x" with x moved to the root: base is gone */
		return sc_err(err, ESTALE, "mounts: %s has no name", what);
	}
	pfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return sc_err(err, errno, "mounts: parent of %s", what);
	if (statx(pfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &parent) < 0) {
		int e = errno;
		close(pfd);
		return sc_err(err, e, "mounts: statx parent of %s", what);
	}
	if (!(want.stx_mask & STATX_MNT_ID) || !(parent.stx_mask & STATX_MNT_ID) ||
	    want.stx_mnt_id != parent.stx_mnt_id) {
		close(pfd);
		out->file = fd; /* a mount point of its own */
		return 0;
	}
	out->mnt = overlay_of(pfd, empty, attrs, what, err);
	close(pfd);
	if (out->mnt < 0)
		return -1;
	f = openat(out->mnt, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (f < 0)
		return sc_err(err, errno == ENOENT ? ESTALE : errno, "mounts: %s in its overlay", what);
	if (statx(f, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &got) < 0) {
		int e = errno;
		close(f);
		return sc_err(err, e, "mounts: statx %s in its overlay", what);
	}
	if (!same_inode(&want, &got)) {
		close(f);
		return sc_err(err, ESTALE, "mounts: %s changed while it was being mounted", what);
	}
	out->file = f;
	return 0;
}

/* An empty, read-only tmpfs: the second lower layer of every overlay. */
static int empty_layer(struct sandcell_error *err)
{
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC), mnt;

	if (fs < 0)
		return sc_err(err, errno, "mounts: empty layer");
	if (fsconfig(fs, FSCONFIG_SET_STRING, "size", "4k", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "1", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		int e = errno;
		close(fs);
		return sc_err(err, e, "mounts: empty layer");
	}
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					    MOUNT_ATTR_NOEXEC);
	if (mnt < 0) {
		int e = errno;
		close(fs);
		return sc_err(err, e, "mounts: empty layer");
	}
	close(fs);
	return mnt;
}

#define N_ETC (sizeof(etc_binds) / sizeof(etc_binds[0]))
/* An /etc entry found in the shared overlay of /etc (the last priv slot). */
#define IN_ETC (-2)
/* A plain file of /etc copied into the run's root (file: O_RDONLY fd). */
#define COPY_ETC (-3)
/* What a copied /etc file may weigh (ld.so.cache is the largest, ~100 KiB). */
#define COPY_ETC_MAX ((off_t)16 << 20)

/* Where /etc has mounts of its own under it (a container runtime binds
 * /etc/hosts, /etc/hostname and /etc/resolv.conf there), the kernel
 * refuses an overlay of it inside the sandbox's user namespace: those
 * mounts are locked, and a private clone of /etc would uncover what lies
 * beneath them (EINVAL).  Directories still get overlays of their own; a
 * plain file is then copied into the run's tmpfs root, which gives it a
 * private inode just the same.  Only a world-readable regular file is
 * copied: a bind would show the code no more. */
static int etc_copy_src(const char *name, struct sc_private_src *src, struct sandcell_error *err)
{
	char what[64];
	struct stat st;
	int fd;

	snprintf(what, sizeof(what), "/etc/%s", name);
	fd = open(what, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT)
		return 0; /* a dangling link */
	if (fd < 0)
		return sc_err(err, errno, "mounts: %s", what);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IROTH) ||
	    st.st_size > COPY_ETC_MAX) {
		close(fd);
		return sc_err(err, EINVAL, "mounts: %s: /etc has mounts under it, so it is copied, and it is "
			      "not a world-readable regular file of at most 16 MiB", what);
	}
	src->mnt = COPY_ETC;
	src->file = fd;
	return 0;
}

static bool is_dir(const char *etc_name)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/etc/%s", etc_name);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Copies the file behind fd to target (created, mode 0444). */
static int copy_file(int fd, const char *target, const char *what, struct sandcell_error *err)
{
	char buf[65536];
	off_t total = 0;
	ssize_t n;
	int out = open(target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);

	if (out < 0)
		return sc_err(err, errno, "mounts: create %s", target);
	while ((n = pread(fd, buf, sizeof(buf), total)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (total += n) > COPY_ETC_MAX || write(out, buf, (size_t)n) != n) {
			int e = n < 0 ? errno : total > COPY_ETC_MAX ? EFBIG : errno ? errno : EIO;
			close(out);
			return sc_err(err, e, "mounts: copying %s", what);
		}
	}
	if (close(out) < 0)
		return sc_err(err, errno, "mounts: copying %s", what);
	return 0;
}

/* One overlay of /etc serves every entry that is a plain file or directory
 * of /etc itself; a symlink or a mount point of its own (a container's
 * bound file) gets what private_src() gives the object it leads to. */
static int etc_sources(struct sc_mount_plan *p, int empty, struct sandcell_error *err)
{
	struct sc_private_src *etc = &p->priv[p->n_runtime + N_ETC];
	struct statx dir, ent;
	bool copy_files = false;
	char what[64];
	size_t i;
	int dfd;

	dfd = open("/etc", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return sc_err(err, errno, "mounts: /etc");
	if (statx(dfd, "", AT_EMPTY_PATH, STATX_MNT_ID, &dir) < 0 || !(dir.stx_mask & STATX_MNT_ID)) {
		int e = errno;
		close(dfd);
		return sc_err(err, e, "mounts: statx /etc");
	}
	if (!sc_hook_on(SC_HOOK_SHARED_INODES)) {
		bool refused = false;

		etc->mnt = overlay_made(dfd, empty, MOUNT_ATTR_NOEXEC, "/etc", &refused, err);
		if (etc->mnt < 0 && !refused) {
			close(dfd);
			return -1;
		}
		copy_files = etc->mnt < 0; /* refused: see etc_copy_src() */
	}
	for (i = 0; i < N_ETC; i++) {
		struct sc_private_src *src = &p->priv[p->n_runtime + i];
		int fd = openat(dfd, etc_binds[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0 && errno == ENOENT)
			continue; /* optional */
		if (fd < 0) {
			sc_err(err, errno, "mounts: /etc/%s", etc_binds[i]);
			goto fail;
		}
		if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE | STATX_MNT_ID, &ent) < 0) {
			sc_err(err, errno, "mounts: statx /etc/%s", etc_binds[i]);
			close(fd);
			goto fail;
		}
		if (copy_files && !S_ISDIR(ent.stx_mode)) {
			close(fd);
			if (S_ISLNK(ent.stx_mode) && is_dir(etc_binds[i]))
				goto by_path;
			if (etc_copy_src(etc_binds[i], src, err) < 0)
				goto fail;
			continue;
		}
		if (etc->mnt >= 0 && (ent.stx_mask & STATX_MNT_ID) && ent.stx_mnt_id == dir.stx_mnt_id &&
		    !S_ISLNK(ent.stx_mode)) {
			close(fd);
			src->mnt = IN_ETC;
			src->file = openat(etc->mnt, etc_binds[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (src->file < 0) {
				sc_err(err, errno, "mounts: /etc/%s in its overlay", etc_binds[i]);
				goto fail;
			}
			continue;
		}
		close(fd);
by_path:
		snprintf(what, sizeof(what), "/etc/%s", etc_binds[i]);
		fd = open(what, O_PATH | O_CLOEXEC);
		if (fd < 0 && errno == ENOENT)
			continue; /* a dangling link */
		if (fd < 0) {
			sc_err(err, errno, "mounts: %s", what);
			goto fail;
		}
		if (private_src(fd, empty, MOUNT_ATTR_NOEXEC, what, src, err) < 0) {
			close(fd);
			goto fail;
		}
		if (src->file != fd)
			close(fd);
	}
	close(dfd);
	return 0;
fail:
	close(dfd);
	return -1;
}

/* The inputs' O_PATH fds, opened with the caller's view, and what shows
 * each of them (in_priv).  empty: the second lower layer of overlays. */
static int open_inputs(struct sc_mount_plan *p, int empty, struct sandcell_error *err)
{
	char what[PATH_MAX + 16];
	size_t i;

	p->in_priv = calloc(p->n_inputs ? p->n_inputs : 1, sizeof(*p->in_priv));
	if (p->in_priv == NULL)
		return sc_err(err, ENOMEM, "mounts");
	for (i = 0; i < p->n_inputs; i++)
		p->in_priv[i].mnt = p->in_priv[i].file = -1;
	for (i = 0; i < p->n_inputs; i++) {
		const struct sandcell_input *in = &p->inputs[i];
		const char *kind = sc_input_is_dataset(in) ? "dataset" : "input";
		struct stat st;

		p->input_fds[i] = open(in->path, O_PATH | O_CLOEXEC);
		if (p->input_fds[i] < 0)
			return sc_err(err, errno, "%s '%s' (%s)", kind, in->name, in->path);
		/* validate() looked at the path; this is the object that is
		 * mounted, so the check that counts is made on it. */
		if (sc_input_is_dataset(in)) {
			if (fstat(p->input_fds[i], &st) < 0)
				return sc_err(err, errno, "dataset '%s' (%s)", in->name, in->path);
			if (!S_ISREG(st.st_mode))
				return sc_err(err, EINVAL, "dataset '%s' (%s): not a regular file",
					      in->name, in->path);
		}
	}
	for (i = 0; i < p->n_inputs; i++) {
		snprintf(what, sizeof(what), "%s '%s'",
			 sc_input_is_dataset(&p->inputs[i]) ? "dataset" : "input", p->inputs[i].name);
		if (private_src(p->input_fds[i], empty, MOUNT_ATTR_NOEXEC, what, &p->in_priv[i], err) < 0)
			return -1;
	}
	return 0;
}

/* priv: the runtime dirs, then the /etc entries, then /etc's overlay. */
int sc_mounts_open_sources(struct sc_mount_plan *p, struct sandcell_error *err)
{
	size_t i, n = p->n_runtime + N_ETC + 1;
	int empty = -1, rc = -1;

	p->priv = calloc(n, sizeof(*p->priv));
	if (p->priv == NULL)
		return sc_err(err, ENOMEM, "mounts");
	for (i = 0; i < n; i++)
		p->priv[i].mnt = p->priv[i].file = -1;
	for (i = 0; i < p->n_runtime; i++) {
		p->runtime_fds[i] = open(p->runtime[i], O_PATH | O_CLOEXEC);
		if (p->runtime_fds[i] < 0)
			return sc_err(err, errno, "runtime %s", p->runtime[i]);
	}
	if (!sc_hook_on(SC_HOOK_SHARED_INODES) && (empty = empty_layer(err)) < 0)
		return -1;
	for (i = 0; i < p->n_runtime; i++)
		if (private_src(p->runtime_fds[i], empty, 0, p->runtime[i], &p->priv[i], err) < 0)
			goto out;
	if (open_inputs(p, empty, err) < 0 || etc_sources(p, empty, err) < 0)
		goto out;
	rc = 0;
out:
	if (empty >= 0)
		close(empty);
	return rc;
}

int sc_mounts_open_inputs(struct sc_mount_plan *p, struct sandcell_error *err)
{
	int empty = -1, rc;

	if (!sc_hook_on(SC_HOOK_SHARED_INODES) && (empty = empty_layer(err)) < 0)
		return -1;
	rc = open_inputs(p, empty, err);
	if (empty >= 0)
		close(empty);
	return rc < 0 ? -1 : sc_mounts_stage_inputs(p, err);
}

/* Device numbers of the five nodes (Documentation/admin-guide/devices.txt:
 * the memory devices, major 1, are fixed). */
static const struct {
	const char *name;
	unsigned minor;
} dev_nodes[] = { { "null", 3 }, { "zero", 5 }, { "full", 7 }, { "random", 8 }, { "urandom", 9 } };

int sc_mounts_make_dev(int *fd, struct sandcell_error *err)
{
	static const char *const links[][2] = {
		{ "/proc/self/fd", "fd" }, { "/proc/self/fd/0", "stdin" },
		{ "/proc/self/fd/1", "stdout" }, { "/proc/self/fd/2", "stderr" },
	};
	int fs, mnt;
	size_t i;

	*fd = -1;
	/* Only a privileged root may create device nodes; a user
	 * namespace's own mounts never honour them (SB_I_NODEV), so this
	 * tmpfs is made here, in the host namespaces, and moved into the
	 * sandbox by its init.  EPERM (root of a user namespace, no
	 * CAP_MKNOD) means what it means for any unprivileged caller: the
	 * host's nodes. */
	if (geteuid() != 0 || sc_hook_on(SC_HOOK_SHARED_INODES))
		return 0;
	fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0 && errno == EPERM)
		return 0;
	if (fs < 0)
		return sc_err(err, errno, "mounts: /dev tmpfs");
	if (fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", "64k", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "64", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		int e = errno;
		close(fs);
		return sc_err(err, e, "mounts: /dev tmpfs");
	}
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
	close(fs);
	if (mnt < 0)
		return sc_err(err, errno, "mounts: /dev tmpfs");
	for (i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
		if (mknodat(mnt, dev_nodes[i].name, S_IFCHR | 0666, makedev(1, dev_nodes[i].minor)) < 0) {
			if (errno == EPERM) {
				close(mnt);
				return 0;
			}
			sc_err(err, errno, "mounts: /dev/%s", dev_nodes[i].name);
			goto fail;
		}
		if (fchmodat(mnt, dev_nodes[i].name, 0666, 0) < 0) {
			sc_err(err, errno, "mounts: /dev/%s", dev_nodes[i].name);
			goto fail;
		}
	}
	for (i = 0; i < sizeof(links) / sizeof(links[0]); i++)
		if (symlinkat(links[i][0], mnt, links[i][1]) < 0) {
			sc_err(err, errno, "mounts: /dev symlinks");
			goto fail;
		}
	if (mkdirat(mnt, "shm", 01777) < 0 || fchmodat(mnt, "shm", 01777, 0) < 0) {
		sc_err(err, errno, "mounts: /dev/shm");
		goto fail;
	}
	*fd = mnt;
	return 0;
fail:
	close(mnt);
	return -1;
}

/* Shows src at target (which this creates): a directory's overlay is moved
 * there; a non-directory is bound from its parent's overlay, attached on
 * the staging tmpfs for the bind; without an overlay, the host object is
 * bound directly. */
static int bind_staged(int file, const char *target, unsigned long extra, const char *what,
		       struct sandcell_error *err)
{
	char path[64];

	/* The fd was opened in the overlay while it was detached; moving it
	 * attached that same mount, so the bind source is in our namespace. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", file);
	if (mount(path, target, NULL, MS_BIND, NULL) < 0)
		return sc_err(err, errno, "mounts: bind %s at %s", what, target);
	if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | extra,
		  NULL) < 0)
		return sc_err(err, errno, "mounts: read-only remount of %s", target);
	return 0;
}

static int attach_src(const struct sc_private_src *src, const char *target, unsigned long extra,
		      const char *what, struct sandcell_error *err)
{
	static unsigned staged; /* a staging dir of its own for each */
	char stage[64];

	if (src->mnt >= 0 && src->file < 0) {
		if (make_mountpoint(src->mnt, target, err) < 0)
			return -1;
		if (move_mount(src->mnt, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return sc_err(err, errno, "mounts: overlay of %s at %s", what, target);
		return 0;
	}
	if (make_mountpoint(src->file, target, err) < 0)
		return -1;
	if (src->mnt < 0)
		return bind_ro_fd(src->file, target, extra, what, err);
	snprintf(stage, sizeof(stage), STAGE "-%u", staged++);
	if (mkdirs(stage, 0755, err) < 0)
		return -1;
	if (move_mount(src->mnt, "", AT_FDCWD, stage, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return sc_err(err, errno, "mounts: overlay of the parent of %s", what);
	return bind_staged(src->file, target, extra, what, err);
}

/* Each input as one detached mount, made before the pivot (no staging
 * area is left after it) and attached after it, in a cold run as in a
 * spare's (whose opener does this in its own copy of the caller's view):
 * the same mount objects, made in the same order, so both runs' mount
 * tables match.  The overlay is attached over the staging point (stacked
 * there: the opener's ids own no file it could create), and the input
 * cloned out of it by open_tree: a non-directory's file, or a directory's
 * whole overlay.  The clone is made read-only, nosuid, nodev and noexec
 * before it is attached (a clone of a host mount point, bound directly,
 * comes with the host's flags). */
static int stage_input(struct sc_private_src *src, const char *what, struct sandcell_error *err)
{
	struct mount_attr attr = {
		.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
	};
	int clone;

	if (src->mnt >= 0 && move_mount(src->mnt, "", AT_FDCWD, STAGING, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return sc_err(err, errno, "mounts: staging the overlay of %s", what);
	clone = open_tree(src->file >= 0 ? src->file : src->mnt, "",
			  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (clone < 0)
		return sc_err(err, errno, "mounts: a mount of %s", what);
	if (mount_setattr(clone, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		int e = errno;
		close(clone);
		return sc_err(err, e, "mounts: making %s read-only", what);
	}
	if (src->mnt >= 0)
		close(src->mnt);
	if (src->file >= 0)
		close(src->file);
	src->mnt = clone;
	src->file = -1;
	return 0;
}

int sc_mounts_stage_inputs(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	char what[PATH_MAX + 16];

	for (size_t i = 0; i < p->n_inputs; i++) {
		snprintf(what, sizeof(what), "%s '%s'",
			 sc_input_is_dataset(&p->inputs[i]) ? "dataset" : "input", p->inputs[i].name);
		if (stage_input(&p->in_priv[i], what, err) < 0)
			return -1;
	}
	return 0;
}

static int setup_etc(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	static const char passwd[] =
		"root:x:0:0:root:/root:/usr/sbin/nologin\n"
		"sandbox:x:1000:1000:sandbox:/tmp:/usr/sbin/nologin\n"
		"nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
	static const char group[] = "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n";
	static const char hosts[] = "127.0.0.1\tlocalhost sandcell\n::1\tlocalhost\n";
	static const char nss[] = "passwd: files\ngroup: files\nhosts: files\n";
	const struct sc_private_src *etc;
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
	etc = &p->priv[p->n_runtime + N_ETC];
	if (etc->mnt >= 0) {
		if (mkdirs(STAGE_ETC, 0755, err) < 0)
			return -1;
		if (move_mount(etc->mnt, "", AT_FDCWD, STAGE_ETC, MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return sc_err(err, errno, "mounts: overlay of /etc");
	}
	for (i = 0; i < N_ETC; i++) {
		const struct sc_private_src *src = &p->priv[p->n_runtime + i];
		if (src->mnt < 0 && src->file < 0)
			continue; /* optional, and absent */
		snprintf(host, sizeof(host), "/etc/%s", etc_binds[i]);
		snprintf(dst, sizeof(dst), "etc/%s", etc_binds[i]);
		if (src->mnt == COPY_ETC) {
			if (copy_file(src->file, dst, host, err) < 0)
				return -1;
		} else if (src->mnt == IN_ETC) {
			if (make_mountpoint(src->file, dst, err) < 0 ||
			    bind_staged(src->file, dst, MS_NOEXEC, host, err) < 0)
				return -1;
		} else if (attach_src(src, dst, MS_NOEXEC, host, err) < 0) {
			return -1;
		}
	}
	return 0;
}

static int setup_dev(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	char host[64], dst[64];
	size_t i;

	if (mkdirs("dev", 0755, err) < 0)
		return -1;
	if (p->dev_fd >= 0) {
		/* The run's own nodes, made by the supervisor. */
		if (move_mount(p->dev_fd, "", AT_FDCWD, "dev", MOVE_MOUNT_F_EMPTY_PATH) < 0)
			return sc_err(err, errno, "mounts: moving /dev into place");
		return 0;
	}
	if (mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k,nr_inodes=64") < 0)
		return sc_err(err, errno, "mounts: tmpfs on /dev");
	for (i = 0; i < sizeof(dev_nodes) / sizeof(dev_nodes[0]); i++) {
		snprintf(host, sizeof(host), "/dev/%s", dev_nodes[i].name);
		snprintf(dst, sizeof(dst), "dev/%s", dev_nodes[i].name);
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
	 * is gone, so outputs are collected from a dead, frozen tree.  The
	 * mount itself goes with the old root. */
	*scratch_fd = open(SCRATCH, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*scratch_fd < 0)
		return sc_err(err, errno, "mounts: open scratch");
	return 0;
}

/* /.sandcell: the sandcell module and its bootstrap, the same files for
 * every run, so part of the base (a spare writes them while idle). */
static int setup_sandcell_dir(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	char path[PATH_MAX];

	if (mkdirs(".sandcell/" SC_PY_CACHE_DIR, 0755, err) < 0)
		return -1;
	for (const struct sc_py_file *f = p->py_files; f && f->name; f++) {
		snprintf(path, sizeof(path), ".sandcell/%s", f->name);
		if (write_file(path, (const char *)f->data, f->size, 0444, err) < 0)
			return -1;
	}
	return 0;
}

/* /code and the run's values, next to the module in /.sandcell. */
static int setup_code(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	const char *vals = p->values_json ? p->values_json : "{}";
	char path[PATH_MAX];

	if (mkdirs("code", 0755, err) < 0)
		return -1;
	if (p->code_name) {
		snprintf(path, sizeof(path), "code/%s", p->code_name);
		if (write_file(path, p->code, p->code_len, 0444, err) < 0)
			return -1;
	} else if (write_file("code/__main__.py", p->code, p->code_len, 0444, err) < 0) {
		return -1;
	}
	if (write_file(".sandcell/values.json", vals, strlen(vals), 0444, err) < 0)
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
		if (n < 0 && (errno == ENOENT || errno == EINVAL))
			continue; /* absent, or a real directory (bound below) */
		if (n <= 0 || (size_t)n >= sizeof(link) - 1)
			return sc_err(err, n < 0 ? errno : ENAMETOOLONG, "mounts: readlink /%s", top[i]);
		link[n] = '\0';
		if (symlink(link, top[i]) < 0)
			return sc_err(err, errno, "mounts: symlink /%s", top[i]);
	}
	for (i = 0; i < p->n_runtime; i++) {
		const char *dst = p->runtime[i] + 1; /* relative to the new root */
		if (attach_src(&p->priv[i], dst, 0, p->runtime[i], err) < 0)
			return -1;
	}
	return 0;
}

/* Inputs at input/NAME, datasets at input/.datasets/NAME: the directory is
 * made here, in the root tmpfs, only when there is a dataset, and becomes
 * read-only with the root. */
static int setup_inputs(const struct sc_mount_plan *p, struct sandcell_error *err)
{
	char dst[PATH_MAX], what[PATH_MAX + 16];
	size_t i;

	if (mkdirs("input", 0755, err) < 0)
		return -1;
	for (i = 0; i < p->n_inputs; i++) {
		const struct sandcell_input *in = &p->inputs[i];

		if (sc_input_is_dataset(in)) {
			if (mkdirs("input/" SC_DATASETS_DIR, 0755, err) < 0)
				return -1;
			snprintf(dst, sizeof(dst), "input/" SC_DATASETS_DIR "/%s", in->name);
			snprintf(what, sizeof(what), "dataset '%s'", in->name);
		} else {
			snprintf(dst, sizeof(dst), "input/%s", in->name);
			snprintf(what, sizeof(what), "input '%s'", in->name);
		}
		if (attach_src(&p->in_priv[i], dst, MS_NOEXEC, what, err) < 0)
			return -1;
	}
	return 0;
}

/* The part of the root that is the same for every run, and the pivot
 * into it: the staging tmpfs, the root tmpfs, the runtime, /etc, /dev,
 * /.sandcell, /proc and the scratch tmpfs (sized for the run at hand; a
 * spare's for the server's defaults, resized by sc_mounts_finish).  A
 * cold run stages its inputs in between (sc_mounts_setup); a spare pivots
 * while idle, so the old root's detach (an RCU grace period) is not on
 * any request's path. */
int sc_mounts_build_base(const struct sc_mount_plan *p, int *scratch_fd, struct sandcell_error *err)
{
	char opts[64];

	*scratch_fd = -1;
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return sc_err(err, errno, "mounts: making / private");
	if (mount("tmpfs", STAGING, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700,size=4k") < 0 ||
	    mkdir(NEWROOT, 0755) < 0)
		return sc_err(err, errno, "mounts: staging tmpfs");
	snprintf(opts, sizeof(opts), "mode=0755,size=%zu,nr_inodes=4096", p->code_len + (8u << 20));
	if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0)
		return sc_err(err, errno, "mounts: tmpfs root");
	if (chdir(NEWROOT) < 0)
		return sc_err(err, errno, "mounts: chdir new root");
	if (setup_runtime(p, err) < 0 || setup_etc(p, err) < 0 || setup_dev(p, err) < 0 ||
	    setup_sandcell_dir(p, err) < 0)
		return -1;
	/* /code and /input are filled once the run is known, but made with
	 * the base: a spare's code process takes its Landlock rules while
	 * idle (contain.c, sc_code_confine), and a rule skips a path that
	 * does not exist yet. */
	if (mkdirs("proc", 0555, err) < 0 || mkdirs("code", 0755, err) < 0 || mkdirs("input", 0755, err) < 0)
		return -1;
	/* subset=pid: only process directories, none of /proc/sys,
	 * /proc/kallsyms or /proc/sysrq-trigger.  It is a fresh procfs of
	 * the new pid namespace, so host processes are not there. */
	if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "subset=pid") < 0)
		return sc_err(err, errno, "mounts: procfs (subset=pid)");
	return setup_scratch(p, scratch_fd, err);
}

/* pivot_root(".", ".") stacks the old root under the new one; the detach
 * then removes every path back to the host tree, the staging tmpfs and
 * all it holds with it.  The cwd is the new root before and after. */
int sc_mounts_pivot(struct sandcell_error *err)
{
	if (sc_hook_on(SC_HOOK_NO_MOUNT_ISOLATION)) {
		/* Ablation: keep the host tree reachable at /.oldroot. */
		if (mkdirs(".oldroot", 0755, err) < 0 || syscall(SYS_pivot_root, ".", ".oldroot") < 0 ||
		    chdir("/") < 0)
			return sc_err(err, errno, "mounts: pivot_root (ablation)");
		return 0;
	}
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return sc_err(err, errno, "mounts: pivot_root");
	if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return sc_err(err, errno, "mounts: detaching the old root");
	return 0;
}

/* The scratch tmpfs resized for this run's limits (a spare's was made
 * for the server's defaults): the superblock reconfigured through the
 * supervisor's fd, since no path shows the tmpfs's own root. */
static int resize_scratch(const struct sc_mount_plan *p, int scratch_fd, struct sandcell_error *err)
{
	char n[32];
	int fs = fspick(scratch_fd, "", FSPICK_EMPTY_PATH | FSPICK_CLOEXEC), e;

	if (fs < 0)
		return sc_err(err, errno, "mounts: the scratch tmpfs");
	snprintf(n, sizeof(n), "%llu", (unsigned long long)p->disk);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "size", n, 0) < 0)
		goto fail;
	snprintf(n, sizeof(n), "%llu", (unsigned long long)p->disk_inodes);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", n, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_RECONFIGURE, NULL, NULL, 0) < 0)
		goto fail;
	close(fs);
	return 0;
fail:
	e = errno;
	close(fs);
	return sc_err(err, e, "mounts: sizing the scratch tmpfs (%llu bytes, %llu inodes)",
		      (unsigned long long)p->disk, (unsigned long long)p->disk_inodes);
}

/* The run's own part, after the pivot (a spare does it once its request
 * came): the root's and the scratch's sizes for this run, /code and the
 * values, the inputs (staged as detached mounts); then the read-only
 * remounts. */
int sc_mounts_finish(const struct sc_mount_plan *p, bool resize, int scratch_fd,
		     struct sandcell_error *err)
{
	if (resize) {
		char opts[64];

		snprintf(opts, sizeof(opts), "size=%zu", p->code_len + (8u << 20));
		if (mount(NULL, "/", NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, opts) < 0)
			return sc_err(err, errno, "mounts: sizing the tmpfs root");
		if (resize_scratch(p, scratch_fd, err) < 0)
			return -1;
	}
	if (setup_code(p, err) < 0 || setup_inputs(p, err) < 0)
		return -1;
	/* A per-mount flag (MS_BIND): the supervisor's /dev tmpfs belongs to
	 * the host's user namespace, whose superblock we may not remount. */
	if (mount(NULL, "/dev", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NOEXEC, NULL) < 0 ||
	    mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return sc_err(err, errno, "mounts: read-only root");
	return 0;
}

int sc_mounts_setup(const struct sc_mount_plan *p, int *scratch_fd, struct sandcell_error *err)
{
	if (sc_mounts_build_base(p, scratch_fd, err) < 0 || sc_mounts_stage_inputs(p, err) < 0 ||
	    sc_mounts_pivot(err) < 0 || sc_mounts_finish(p, false, *scratch_fd, err) < 0) {
		if (*scratch_fd >= 0)
			close(*scratch_fd);
		*scratch_fd = -1;
		return -1;
	}
	return 0;
}
