/* usageapi.c -- GET /v1/usage, /v1/usage/requests and /v1/quota: the key
 * (a project key reads its own project only, an admin key every project),
 * the query string as a report's query, the report run on the store and
 * its object sent as it is (report.c).  Called by gateway.c. */
#include "config.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "fcgi.h"
#include "format.h"
#include "log.h"
#include "report.h"
#include "router.h"
#include "usageapi.h"

/* The longest query string read. */
#define QUERY_MAX 4096

static void
bad_request(struct mg_worker *w, struct mg_exchange *x, const char *param, const char *msg)
{
	struct mg_apierror e;

	mg_apierror_set(&e, 400, "invalid_request_error", param, "invalid_parameter", "%s", msg);
	mg_exchange_send_error(w, x, &e);
}

/* Reads the query string into q, its text kept in buf (QUERY_MAX + 1
 * bytes).  0, or -1 with the 400 sent. */
static int
read_query(struct mg_worker *w, struct mg_exchange *x, enum mg_report which,
    struct mg_report_query *q, char *buf, const char **format)
{
	const char *qs = mg_fcgi_param(x->fr, "QUERY_STRING"), *param;
	char msg[160];
	size_t n = qs != NULL ? strlen(qs) : 0;

	memset(q, 0, sizeof(*q));
	if (n > QUERY_MAX) {
		bad_request(w, x, NULL, "The query string is too long.");
		return -1;
	}
	memcpy(buf, qs != NULL ? qs : "", n + 1);
	if (mg_report_query_string(buf, which, q, format, &param, msg, sizeof(msg)) != 0) {
		bad_request(w, x, param, msg);
		return -1;
	}
	return 0;
}

/* The report as the CLI's --format csv prints it (format.c), as a file
 * to save. */
static void
send_csv(struct mg_worker *w, struct mg_exchange *x, enum mg_report which, json_object *o)
{
	struct mg_apierror e;
	char *text;
	size_t n;

	if (mg_format_report_text(which, o, MG_FORMAT_CSV, &text, &n) != MG_OK) {
		mg_apierror_set(&e, 500, "server_error", NULL, NULL,
		    "The gateway could not write the report as CSV.");
		mg_exchange_send_error(w, x, &e);
		return;
	}
	mg_exchange_header(x, "Content-Disposition", "attachment; filename=\"modelgate-%s.csv\"",
	    which == MG_REPORT_REQUESTS ? "requests" : which == MG_REPORT_QUOTA ? "quota" :
	    which == MG_REPORT_RECONCILE ? "reconciliation" : which == MG_REPORT_MODELS ?
	    "models" : which == MG_REPORT_PROJECTS ? "projects" : "usage");
	x->status = 200;
	if (mg_fcgi_reply(x->fr, 200, "text/csv; charset=utf-8", x->headers, text, n) != MG_OK)
		mg_log(MG_LOG_INFO, x->request_id, "client went away before the response");
	free(text);
}

enum mg_err
mg_usageapi_run(struct mg_gateway *gw, enum mg_report r, const struct mg_report_query *q,
    json_object **out, char *err, size_t errlen)
{
	struct mg_report_call call;
	char *text = NULL;
	enum mg_err rc;

	*out = NULL;
	err[0] = '\0';
	rc = mg_report_prepare(r, q, gw->conf, &call, err, errlen);
	if (rc == MG_OK) {
		rc = mg_store_report(gw->store, &call, &text);
		if (rc != MG_OK)
			snprintf(err, errlen, "%s", mg_store_last_error());
	}
	if (rc == MG_OK)
		rc = mg_report_parse(text, out, err, errlen);
	free(text);
	return rc;
}

void
mg_usageapi_handle(struct mg_worker *w, struct mg_exchange *x, enum mg_report which)
{
	char query[QUERY_MAX + 1], err[MG_ERR_DETAIL_LEN];
	struct mg_report_query q;
	struct mg_reader who;
	struct mg_apierror e;
	json_object *o = NULL;
	const char *body, *format = NULL;
	enum mg_err rc;

	if (mg_auth_reader(w, x, &who) < 0)
		return;
	if (read_query(w, x, which, &q, query, &format) < 0)
		return;
	if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "csv") != 0) {
		bad_request(w, x, "format", "format is json (the default) or csv.");
		return;
	}
	if (!who.admin && which == MG_REPORT_RECONCILE) {
		mg_apierror_set(&e, 403, "permission_error", NULL, "admin_key_required",
		    "The reconciliation covers the whole upstream account: an admin key reads it.");
		mg_exchange_send_error(w, x, &e);
		return;
	}
	if (!who.admin && which == MG_REPORT_PROJECTS) {
		mg_apierror_set(&e, 403, "permission_error", NULL, "admin_key_required",
		    "The list of projects is the operator's: an admin key reads it.");
		mg_exchange_send_error(w, x, &e);
		return;
	}
	if (!who.admin) {
		if (q.project != NULL && strcmp(q.project, who.project) != 0) {
			mg_apierror_set(&e, 403, "permission_error", "project", "project_forbidden",
			    "This key belongs to another project: a project key reads its own "
			    "project's usage only.");
			mg_exchange_send_error(w, x, &e);
			return;
		}
		q.project = who.project;
	}
	rc = mg_usageapi_run(w->gw, which, &q, &o, err, sizeof(err));
	switch (rc) {
	case MG_OK:
		break;
	case MG_ERR_INVALID:
		bad_request(w, x, NULL, err);
		return;
	case MG_ERR_DB_DOWN:
		mg_auth_refused(w, x, rc, who.key_prefix);
		return;
	default:
		mg_log(MG_LOG_ERROR, x->request_id, "report failed: %s", err);
		mg_apierror_set(&e, 500, "server_error", NULL, NULL,
		    "The gateway could not compute the report. Retry shortly.");
		mg_exchange_send_error(w, x, &e);
		return;
	}
	if (format != NULL && strcmp(format, "csv") == 0) {
		send_csv(w, x, which, o);
		json_object_put(o);
		return;
	}
	body = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE);
	mg_exchange_send_json(x, 200, body, strlen(body));
	json_object_put(o);
}
