/*
 * The browser playground's files (src/http/playground), embedded at build
 * time by tools/embed.sh static and served by static.c.
 */
#ifndef SANDCELL_HTTP_STATIC_H
#define SANDCELL_HTTP_STATIC_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

struct ht_static_file {
	const char *name;		/* the file's name in src/http/playground */
	const unsigned char *data;
	size_t len;
};
/* NULL-terminated (generated: build/gen/playground_files.c). */
extern const struct ht_static_file ht_static_files[];

/* True for the paths the playground serves: "/" and "/playground/...". */
bool ht_static_route(const char *url);
/* Answers one of those paths (GET or HEAD; another method is 405). */
enum MHD_Result ht_static_answer(struct MHD_Connection *c, const char *url, const char *method);

#endif
