/*
 * The browser playground (docs/http.md, "Playground"): the files of
 * src/http/playground, compiled in, served at /playground/ ("/" redirects
 * there).  No authentication: the page holds no secret; the user types
 * the token into it and its requests carry it as a bearer header like
 * any client's.  Every answer forbids what the page does not need: the
 * CSP allows only this origin (and data: images, the figures a run
 * sends back), no framing of the page elsewhere, no sniffing, no
 * referrer.  What a run sends back is rendered by the page as text or in
 * an <iframe sandbox=""> (playground.js), never as markup of this origin.
 */
#include "static.h"
#include "http.h"

#include <string.h>

#define PREFIX "/playground/"

static const char csp[] = "default-src 'self'; img-src 'self' data:; object-src 'none'; "
			  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

bool ht_static_route(const char *url)
{
	return strcmp(url, "/") == 0 || strncmp(url, PREFIX, strlen(PREFIX)) == 0;
}

static const char *type_of(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (dot && strcmp(dot, ".html") == 0)
		return "text/html; charset=utf-8";
	if (dot && strcmp(dot, ".js") == 0)
		return "text/javascript; charset=utf-8";
	if (dot && strcmp(dot, ".css") == 0)
		return "text/css; charset=utf-8";
	return "application/octet-stream";
}

static const struct ht_static_file *find(const char *url)
{
	const char *name = url + strlen(PREFIX);

	if (*name == '\0')
		name = "index.html";
	for (const struct ht_static_file *f = ht_static_files; f->name; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

static enum MHD_Result finish(struct MHD_Connection *c, unsigned code, struct MHD_Response *r)
{
	enum MHD_Result rc;

	MHD_add_response_header(r, "Content-Security-Policy", csp);
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	rc = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	ht_metric_response(code);
	return rc;
}

static enum MHD_Result answer_text(struct MHD_Connection *c, unsigned code, const char *body,
				   const char *header, const char *value)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
								  MHD_RESPMEM_PERSISTENT);

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	if (header)
		MHD_add_response_header(r, header, value);
	return finish(c, code, r);
}

enum MHD_Result ht_static_answer(struct MHD_Connection *c, const char *url, const char *method)
{
	const struct ht_static_file *f;
	struct MHD_Response *r;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return answer_text(c, 405, "{\"status\":\"usage-error\",\"message\":\"method not "
				   "allowed\",\"report\":null}", "Allow", "GET, HEAD");
	if (strcmp(url, "/") == 0)
		return answer_text(c, 308, "{}", "Location", PREFIX);
	f = find(url);
	if (f == NULL)
		return answer_text(c, 404, "{\"status\":\"not-found\",\"message\":\"no such path\","
				   "\"report\":null}", NULL, NULL);
	r = MHD_create_response_from_buffer(f->len, (void *)f->data, MHD_RESPMEM_PERSISTENT);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type_of(f->name));
	return finish(c, 200, r);
}
