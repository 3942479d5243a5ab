/*
 * Request bodies (docs/http.md, "Request"): the request object is kept in
 * memory (capped), every file part is streamed to this request's own
 * scratch directory as it arrives (capped per part and in total), under a
 * name the front end chooses from the part's checked NAME, never from a
 * filename or path the client sends.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES 1024

void ht_upload_refuse(struct ht_upload *u, unsigned code, const char *status, const char *fmt, ...)
{
	va_list ap;

	if (u->code != 0)
		return; /* the first refusal says it */
	u->code = code;
	snprintf(u->status, sizeof(u->status), "%s", status);
	va_start(ap, fmt);
	vsnprintf(u->msg, sizeof(u->msg), fmt, ap);
	va_end(ap);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int ht_rm_tree(const char *path)
{
	/* FTW_PHYS: a symlink in the tree is removed, never followed. */
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static void close_part(struct ht_upload *u)
{
	if (u->part_fd >= 0)
		close(u->part_fd);
	u->part_fd = -1;
}

/* A new part: its name checked, counted, a file made for it. */
static int open_part(struct ht_upload *u, const char *key)
{
	struct sandcell_error e;
	enum ht_part_kind kind;
	const char *name;
	struct ht_file *f;

	close_part(u);
	if (++u->parts > ht_opt.max_parts) {
		ht_upload_refuse(u, 413, "usage-error", "more than %u parts", ht_opt.max_parts);
		return -1;
	}
	if (ht_part_parse(key, &kind, &name, &e) < 0) {
		ht_upload_refuse(u, 400, "usage-error", "%s", e.msg);
		return -1;
	}
	snprintf(u->part_key, sizeof(u->part_key), "%s", key);
	u->part_kind = kind;
	u->part_bytes = 0;
	if (kind == HP_REQUEST) {
		if (u->no_request) {
			ht_upload_refuse(u, 400, "usage-error", "no 'request' part here: files only");
			return -1;
		}
		if (u->have_request) {
			ht_upload_refuse(u, 400, "usage-error", "two 'request' parts");
			return -1;
		}
		u->have_request = true;
		return 0;
	}
	for (size_t i = 0; i < u->n_files; i++)
		if (u->files[i].kind == kind && strcmp(u->files[i].name, name ? name : "") == 0) {
			ht_upload_refuse(u, 400, "usage-error", "part '%s' given twice", key);
			return -1;
		}
	if (u->n_files == MAX_FILES) {
		ht_upload_refuse(u, 413, "usage-error", "too many files");
		return -1;
	}
	f = &u->files[u->n_files];
	f->kind = kind;
	snprintf(f->name, sizeof(f->name), "%s", name ? name : "stdin");
	/* Separate directories: inputs and datasets are namespaces of
	 * their own, and no NAME can reach outside its directory. */
	if (snprintf(f->path, sizeof(f->path), "%s/%s/%s", u->dir,
		     kind == HP_INPUT ? "inputs" : kind == HP_DATASET ? "datasets" : ".",
		     f->name) >= (int)sizeof(f->path))
		errno = ENAMETOOLONG;
	else
		u->part_fd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (u->part_fd < 0) {
		ht_upload_refuse(u, 500, "sandbox-error", "scratch: %s", strerror(errno));
		return -1;
	}
	u->n_files++;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int keep_request(struct ht_upload *u, const char *data, size_t size)
{
	char *b;

	if (u->request_len + size > ht_opt.max_request) {
		ht_upload_refuse(u, 413, "usage-error", "the request object is larger than %llu bytes",
				 (unsigned long long)ht_opt.max_request);
		return -1;
	}
	b = realloc(u->request, u->request_len + size + 1);
	if (b == NULL) {
		ht_upload_refuse(u, 500, "sandbox-error", "out of memory");
		return -1;
	}
	memcpy(b + u->request_len, data, size);
	u->request = b;
	u->request_len += size;
	u->request[u->request_len] = '\0';
	return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
			       const char *filename, const char *content_type,
			       const char *transfer_encoding, const char *data, uint64_t off,
			       size_t size)
{
	struct ht_upload *u = cls;

	(void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
	if (u->code != 0)
		return MHD_NO;
	/* MHD gives each part's bytes in order, off counting from 0. */
	if (off == 0 && (u->parts == 0 || strcmp(key ? key : "", u->part_key) != 0 || u->part_bytes > 0))
		if (open_part(u, key) < 0)
			return MHD_NO;
	if (size == 0)
		return MHD_YES;
	if (u->part_kind == HP_REQUEST)
		return keep_request(u, data, size) == 0 ? MHD_YES : MHD_NO;
	u->part_bytes += size;
	if (u->part_bytes > ht_opt.max_file) {
		ht_upload_refuse(u, 413, "usage-error", "part '%s' is larger than %llu bytes", u->part_key,
				 (unsigned long long)ht_opt.max_file);
		return MHD_NO;
	}
	if (write_all(u->part_fd, data, size) < 0) {
		ht_upload_refuse(u, 500, "sandbox-error", "scratch: %s", strerror(errno));
		return MHD_NO;
	}
	return MHD_YES;
}

static int make_dir(struct ht_upload *u, const char *tag)
{
	char id[HT_ID_LEN + 1], sub[4200];

	if (ht_new_id(id) < 0)
		return -1;
	if (snprintf(u->dir, sizeof(u->dir), "%s/%s-%s", ht_opt.scratch, tag, id) >= (int)sizeof(u->dir) ||
	    mkdir(u->dir, 0700) < 0) {
		u->dir[0] = '\0';
		return -1;
	}
	if (snprintf(sub, sizeof(sub), "%s/inputs", u->dir) >= (int)sizeof(sub) || mkdir(sub, 0700) < 0)
		return -1;
	if (snprintf(sub, sizeof(sub), "%s/datasets", u->dir) >= (int)sizeof(sub))
		return -1;
	return mkdir(sub, 0700);
}

int ht_upload_begin(struct ht_upload *u, struct MHD_Connection *c, const char *tag)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");

	memset(u, 0, sizeof(*u));
	u->part_fd = -1;
	if (cl == NULL && te == NULL)
		return ht_upload_refuse(u, 411, "usage-error", "Content-Length or chunked encoding required"), -1;
	if (cl != NULL && strtoull(cl, NULL, 10) > ht_opt.max_body)
		return ht_upload_refuse(u, 413, "usage-error", "the body is larger than %llu bytes",
					(unsigned long long)ht_opt.max_body), -1;
	if (ct != NULL && strncasecmp(ct, "application/json", 16) == 0 &&
	    (ct[16] == '\0' || ct[16] == ';')) {
		u->json = true;
		u->have_request = true;
		if (make_dir(u, tag) < 0)
			return ht_upload_refuse(u, 500, "sandbox-error", "scratch: %s", strerror(errno)), -1;
		return 0;
	}
	if (ct == NULL || strncasecmp(ct, "multipart/form-data", 19) != 0)
		return ht_upload_refuse(u, 415, "usage-error", "Content-Type must be application/json or "
					"multipart/form-data"), -1;
	u->files = calloc(MAX_FILES, sizeof(*u->files));
	u->pp = u->files ? MHD_create_post_processor(c, 64 * 1024, on_part, u) : NULL;
	if (u->pp == NULL)
		return ht_upload_refuse(u, 400, "usage-error", "cannot read this multipart body (boundary?)"), -1;
	if (make_dir(u, tag) < 0)
		return ht_upload_refuse(u, 500, "sandbox-error", "scratch: %s", strerror(errno)), -1;
	return 0;
}

int ht_upload_feed(struct ht_upload *u, const char *data, size_t size)
{
	u->total += size;
	if (u->total > ht_opt.max_body) {
		ht_upload_refuse(u, 413, "usage-error", "the body is larger than %llu bytes",
				 (unsigned long long)ht_opt.max_body);
		return -1;
	}
	if (u->json)
		return keep_request(u, data, size);
	if (MHD_post_process(u->pp, data, size) != MHD_YES) {
		ht_upload_refuse(u, 400, "usage-error", "malformed multipart body");
		return -1;
	}
	return 0;
}

int ht_upload_finish(struct ht_upload *u)
{
	close_part(u);
	if (u->pp != NULL && MHD_destroy_post_processor(u->pp) != MHD_YES && u->code == 0)
		ht_upload_refuse(u, 400, "usage-error", "malformed or truncated multipart body");
	u->pp = NULL;
	if (u->code == 0 && !u->have_request && !u->no_request)
		ht_upload_refuse(u, 400, "usage-error", "no 'request' part");
	return u->code == 0 ? 0 : -1;
}

void ht_upload_free(struct ht_upload *u, bool remove)
{
	close_part(u);
	if (u->pp != NULL)
		MHD_destroy_post_processor(u->pp);
	u->pp = NULL;
	if (remove && u->dir[0] != '\0')
		ht_rm_tree(u->dir);
	u->dir[0] = '\0';
	free(u->files);
	u->files = NULL;
	free(u->request);
	u->request = NULL;
}
