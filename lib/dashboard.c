/* dashboard.c -- The dashboard's files, served by the responders so that it
 * works wherever they run, with nothing else to install.  Only the files
 * of a fixed list are served, read from the directory at each request (a
 * few kB; an upgrade needs no restart).  Called by gateway.c. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dashboard.h"
#include "fcgi.h"
#include "log.h"

/* The largest file served (bytes). */
#define FILE_MAX (512 * 1024)

static const struct {
	const char *name;
	const char *type;
} files[] = {
	{ "index.html", "text/html; charset=utf-8" },
	{ "dashboard.css", "text/css; charset=utf-8" },
	{ "dashboard.js", "text/javascript; charset=utf-8" },
};

/* Everything from this origin, nothing inline, no frames around it. */
static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static void
not_found(struct mg_worker *w, struct mg_exchange *x, const char *why)
{
	struct mg_apierror e;

	mg_apierror_set(&e, 404, "invalid_request_error", NULL, "not_found", "%s", why);
	mg_exchange_send_error(w, x, &e);
}

void
mg_dashboard_handle(struct mg_worker *w, struct mg_exchange *x, const char *name)
{
	const char *dir = w->gw->conf->dashboard_dir[0] != '\0' ? w->gw->conf->dashboard_dir :
	    MG_DASHBOARD_DIR;
	char path[4096];
	size_t i, n;
	FILE *f;

	if (name[0] == '\0')
		name = "index.html";
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (strcmp(files[i].name, name) == 0)
			break;
	if (i == sizeof(files) / sizeof(files[0])) {
		not_found(w, x, "The dashboard has no such file.");
		return;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, files[i].name) >= sizeof(path) ||
	    (f = fopen(path, "rb")) == NULL) {
		mg_log(MG_LOG_WARN, x->request_id, "dashboard: cannot read %s: %s (report."
		    "dashboard_dir)", path, strerror(errno));
		not_found(w, x, "The dashboard is not installed on this gateway.");
		return;
	}
	mg_buf_reset(&w->out);
	while (w->out.len <= FILE_MAX) {
		char chunk[8192];

		n = fread(chunk, 1, sizeof(chunk), f);
		if (n == 0 || mg_buf_add(&w->out, chunk, n) != MG_OK)
			break;
	}
	if (ferror(f) || w->out.len > FILE_MAX) {
		fclose(f);
		mg_log(MG_LOG_WARN, x->request_id, "dashboard: cannot read %s whole", path);
		not_found(w, x, "The dashboard is not installed on this gateway.");
		return;
	}
	fclose(f);
	mg_exchange_header(x, "Content-Security-Policy", "%s", csp);
	mg_exchange_header(x, "X-Content-Type-Options", "nosniff");
	mg_exchange_header(x, "Referrer-Policy", "no-referrer");
	mg_exchange_header(x, "X-Frame-Options", "DENY");
	mg_exchange_header(x, "Cache-Control", "no-cache");
	x->status = 200;
	if (mg_fcgi_reply(x->fr, 200, files[i].type, x->headers, w->out.data, w->out.len) != MG_OK)
		mg_log(MG_LOG_INFO, x->request_id, "client went away before the response");
}
