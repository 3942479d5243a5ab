/*
 * The run's directories on the host: reduced mode's private work
 * directory (the code, its inputs as symlinks, tmp/ and output/), and
 * fd-relative helpers that never follow a symlink a leftover process could
 * have put in the way.
 */
#include "run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Writes text to dir/name, fd-relative (reduced mode's private dir). */
static int put_file(int dirfd, const char *name, const char *text, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
	size_t off = 0;

	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n <= 0) {
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	return close(fd);
}

/* Removes a tree without following symlinks: every step is fd-relative,
 * so a leftover process swapping a dir for a symlink cannot redirect us. */
void sc_remove_tree(int dirfd, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd = dup(dirfd);

	if (fd < 0 || depth > 256 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			fchmod(sub, 0700);
			sc_remove_tree(sub, depth + 1);
			close(sub);
		}
		unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

/* Removes the private directory, if one was made, and forgets it. */
void sc_workdir_remove(char *dir)
{
	int fd;

	if (!dir[0])
		return;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		sc_remove_tree(fd, 0);
		close(fd);
	}
	rmdir(dir);
	dir[0] = '\0';
}

/* Reduced mode's private directory: tmp/ and output/ (writable), code/,
 * .sandcell/ and input/ (symlinks to the host inputs, and in
 * input/.datasets/ to the datasets, which Landlock allows read-only). */
int sc_workdir_make(const struct sandcell_config *cfg, const char *code_name, char *dir, size_t dir_len,
		    int *dirfd, struct sandcell_error *err)
{
	const char *tmp = getenv("TMPDIR");
	const char *vals = cfg->values_json ? cfg->values_json : "{}";
	char path[PATH_MAX];
	int fd, sub;
	size_t i;

	snprintf(dir, dir_len, "%s/sandcell-XXXXXX",
		 tmp && tmp[0] == '/' && strlen(tmp) < 512 ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		return sc_err(err, errno, "reduced mode: private directory");
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sc_err(err, errno, "reduced mode: %s", dir);
	if (mkdirat(fd, "tmp", 0700) < 0 || mkdirat(fd, "output", 0700) < 0 ||
	    mkdirat(fd, "code", 0700) < 0 || mkdirat(fd, ".sandcell", 0700) < 0 ||
	    mkdirat(fd, ".sandcell/" SC_PY_CACHE_DIR, 0700) < 0 || mkdirat(fd, "input", 0700) < 0) {
		close(fd);
		return sc_err(err, errno, "reduced mode: private directory layout");
	}
	snprintf(path, sizeof(path), "code/%s", code_name);
	if (put_file(fd, path, cfg->code, cfg->code_len) < 0 ||
	    put_file(fd, ".sandcell/values.json", vals, strlen(vals)) < 0) {
		close(fd);
		return sc_err(err, errno, "reduced mode: writing the code");
	}
	for (const struct sc_py_file *f = sc_py_files; f->name; f++) {
		snprintf(path, sizeof(path), ".sandcell/%s", f->name);
		if (put_file(fd, path, (const char *)f->data, f->size) < 0) {
			close(fd);
			return sc_err(err, errno, "reduced mode: writing the code");
		}
	}
	sub = openat(fd, "input", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sub < 0) {
		close(fd);
		return sc_err(err, errno, "reduced mode: private directory layout");
	}
	for (i = 0; i < cfg->n_inputs; i++) {
		const struct sandcell_input *in = &cfg->inputs[i];
		char real[PATH_MAX], link[PATH_MAX];

		/* Datasets as in full mode: input/.datasets/NAME. */
		snprintf(link, sizeof(link), "%s%s", sc_input_is_dataset(in) ? SC_DATASETS_DIR "/" : "",
			 in->name);
		if ((sc_input_is_dataset(in) && mkdirat(sub, SC_DATASETS_DIR, 0700) < 0 &&
		     errno != EEXIST) ||
		    realpath(in->path, real) == NULL || symlinkat(real, sub, link) < 0) {
			close(sub);
			close(fd);
			return sc_err(err, errno, "reduced mode: %s '%s'",
				      sc_input_is_dataset(in) ? "dataset" : "input", in->name);
		}
	}
	close(sub);
	*dirfd = fd;
	return 0;
}

/* 1 if the directory holds no entry, 0 (err says so) if it holds one,
 * -1 if it cannot be read.  getdents64 on the fd itself (only openat
 * relative to it follows): no second open, no stdio-like buffering. */
int sc_dir_is_empty(int dirfd, struct sandcell_error *err)
{
	union {
		char b[4096];
		struct dirent64 align;
	} u;
	long n;

	while ((n = syscall(SYS_getdents64, dirfd, u.b, sizeof(u.b))) > 0) {
		for (long off = 0; off < n;) {
			const struct dirent64 *d = (const struct dirent64 *)(const void *)(u.b + off);

			if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0) {
				sc_err(err, 0, "is not empty (outputs are collected only into a new or "
					"empty directory, so that no host file is replaced)");
				if (err)
					err->code = ENOTEMPTY;
				return 0;
			}
			off += d->d_reclen;
		}
	}
	if (n < 0)
		return sc_err(err, errno, "reading it");
	return 1;
}
