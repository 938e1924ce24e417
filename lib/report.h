#ifndef MG_REPORT_H
#define MG_REPORT_H

#include <json-c/json.h>
#include <stddef.h>

#include "conf.h"
#include "err.h"

/* The reports: usage totals, the latest requests, each project's quota,
 * the reconciliation, the models a project may use and the projects, as the functions of sql/functions/report.sql compute them.  This
 * module turns a query (from the CLI's options or /v1/usage's parameters)
 * into the parameters of one call, and the call's answer into the JSON
 * object every face returns as it is.  It holds no connection: the CLI
 * runs the call through admin.c, the responders through store.c. */

enum mg_report {
	MG_REPORT_USAGE,      /* totals, grouped: mg_usage_report */
	MG_REPORT_REQUESTS,   /* the latest requests: mg_usage_requests */
	MG_REPORT_QUOTA,      /* limits and what is left: mg_usage_quota */
	MG_REPORT_RECONCILE,  /* recorded against billed, per day and model: mg_recon_report */
	MG_REPORT_MODELS,     /* the models a project may use, with prices: mg_usage_models */
	MG_REPORT_PROJECTS,   /* every project, its limits and keys: mg_usage_projects */
	MG_REPORT__COUNT
};

/* A query: NULL leaves a field at its default.  Text as the user gave
 * it; the SQL functions judge it (time zones, times, groups, statuses).
 * Which fields a report reads: project (usage, requests, quota, models);
 * key, model, tz (usage, requests); since, until (usage, requests,
 * reconcile); by (usage); status, limit, cursor (requests).  Projects
 * reads none. */
struct mg_report_query {
	const char *project;   /* name; NULL: every project */
	const char *key;       /* key prefix */
	const char *model;
	const char *since;     /* ISO 8601, today, yesterday, 7d, 24h, this-month, last-month */
	const char *until;
	const char *tz;        /* IANA name; NULL: report.timezone */
	const char *by;        /* dimensions, comma-separated */
	const char *status;    /* 2xx, 4xx, 5xx, pending or a code */
	const char *limit;     /* 1 to 1000; NULL: 50 */
	const char *cursor;    /* next_cursor of the page before */
};

/* The field of q named by the n bytes of name ("since", ...) when report
 * r reads it, else NULL: the one list of the parameters every face
 * takes (the CLI's --since, /v1/usage's since=). */
const char **mg_report_field(struct mg_report_query *q, enum mg_report r, const char *name,
    size_t n);

/* Reads a query string (/v1/usage's) into the fields of q that report r
 * reads, and format= into *format (both left as they are for absent
 * parameters); text is split and %XX-decoded in place and the fields
 * point into it.  0, or -1 with the reason for the user in err and the
 * parameter it names (or NULL) in *param: a bad escape, an unknown
 * parameter, one given twice or empty. */
int mg_report_query_string(char *text, enum mg_report r, struct mg_report_query *q,
    const char **format, const char **param, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#define MG_REPORT_MAX_PARAMS 10

/* One call's statement and parameters (which point into q, conf and the
 * struct itself). */
struct mg_report_call {
	const char *name;      /* of the prepared statement */
	const char *sql;
	int nparams;
	const char *params[MG_REPORT_MAX_PARAMS];
	char max_days[16];
	char limit[16];
};

/* The statement of report r: its name, SQL and parameter count. */
const char *mg_report_sql(enum mg_report r, const char **name, int *nparams);

/* Fills call for report r of query q.  MG_ERR_INVALID with the reason in
 * err for what the SQL would refuse less clearly: a field longer than
 * 256 bytes or not one line, a limit that is not a whole number. */
enum mg_err mg_report_prepare(enum mg_report r, const struct mg_report_query *q,
    const struct mg_conf *conf, struct mg_report_call *call, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The error a failed call means, from its SQLSTATE (NULL: none, the
 * connection failed): MG_ERR_INVALID for the refusals of bad input
 * (the message is then for the user), else MG_ERR_DB. */
enum mg_err mg_report_sqlstate_err(const char *sqlstate);

/* Reads a call's answer (the JSON text of its one value) into *out (the
 * caller puts it).  MG_ERR_DB when it is not a JSON object. */
enum mg_err mg_report_parse(const char *text, json_object **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
