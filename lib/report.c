/* report.c -- The query layer's C side: a report's query as the parameters
 * of one call of sql/functions/report.sql, and its answer as the JSON
 * object every face returns.  Called by admin.c (the CLI) and usageapi.c
 * (GET /v1/usage, /v1/usage/requests, /v1/quota) with their own
 * connections. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "report.h"
#include "router.h"
#include "text.h"

/* Longest text of one field of a query. */
#define FIELD_MAX 256

static const struct {
	const char *name;
	const char *sql;
	int nparams;
} statements[MG_REPORT__COUNT] = {
	[MG_REPORT_USAGE] = { "mg_usage_report",
	    "SELECT mg_usage_report($1, $2, $3, $4, $5, $6, string_to_array($7, ','), $8::integer)",
	    8 },
	[MG_REPORT_REQUESTS] = { "mg_usage_requests",
	    "SELECT mg_usage_requests($1, $2, $3, $4, $5, $6, $7, $8::integer, $9, $10::integer)",
	    10 },
	[MG_REPORT_QUOTA] = { "mg_usage_quota", "SELECT mg_usage_quota($1)", 1 },
	[MG_REPORT_RECONCILE] = { "mg_recon_report", "SELECT mg_recon_report($1, $2, $3::integer)",
	    3 },
	[MG_REPORT_MODELS] = { "mg_usage_models", "SELECT mg_usage_models($1)", 1 },
	[MG_REPORT_PROJECTS] = { "mg_usage_projects", "SELECT mg_usage_projects()", 0 },
};

/* The fields of a query by name, and the reports that read each (bit per
 * enum mg_report). */
static const struct {
	const char *name;
	size_t offset;
	unsigned reports;
} fields[] = {
	{ "project", offsetof(struct mg_report_query, project), 7 | 16 },
	{ "key", offsetof(struct mg_report_query, key), 3 },
	{ "model", offsetof(struct mg_report_query, model), 3 },
	{ "since", offsetof(struct mg_report_query, since), 11 },
	{ "until", offsetof(struct mg_report_query, until), 11 },
	{ "tz", offsetof(struct mg_report_query, tz), 3 },
	{ "by", offsetof(struct mg_report_query, by), 1 },
	{ "status", offsetof(struct mg_report_query, status), 2 },
	{ "limit", offsetof(struct mg_report_query, limit), 2 },
	{ "cursor", offsetof(struct mg_report_query, cursor), 2 },
};

const char **
mg_report_field(struct mg_report_query *q, enum mg_report r, const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].name) == n && strncmp(name, fields[i].name, n) == 0 &&
		    (fields[i].reports & (1u << r)) != 0)
			return (const char **)(void *)((char *)q + fields[i].offset);
	return NULL;
}

/* '+' is a space in a query string; then %XX.  -1 for a bad escape. */
static long
query_decode(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (s[i] == '+')
			s[i] = ' ';
	return mg_url_decode(s, n, s, n + 1);
}

int
mg_report_query_string(char *text, enum mg_report r, struct mg_report_query *q,
    const char **format, const char **param, char *err, size_t errlen)
{
	char *p, *end;

	*param = NULL;
	for (p = text; *p != '\0'; p = end) {
		char *amp = strchr(p, '&'), *eq, *value;
		const char **slot;

		end = amp != NULL ? amp + 1 : p + strlen(p);
		if (amp != NULL)
			*amp = '\0';
		if (*p == '\0')
			continue;
		eq = strchr(p, '=');
		value = eq != NULL ? eq + 1 : p + strlen(p);
		if (eq != NULL)
			*eq = '\0';
		if (query_decode(p, strlen(p)) < 0 || query_decode(value, strlen(value)) < 0) {
			mg_err_detail(err, errlen, "The query string has a bad %%-escape.");
			return -1;
		}
		slot = strcmp(p, "format") == 0 ? format : mg_report_field(q, r, p, strlen(p));
		if (slot == NULL) {
			mg_err_detail(err, errlen, "Unknown parameter: '%.40s'.", p);
			return -1;
		}
		if (*slot != NULL) {
			*param = p;
			mg_err_detail(err, errlen, "The parameter '%s' is given twice.", p);
			return -1;
		}
		if (*value == '\0') {
			*param = p;
			mg_err_detail(err, errlen, "The parameter '%s' is empty.", p);
			return -1;
		}
		*slot = value;
	}
	return 0;
}

const char *
mg_report_sql(enum mg_report r, const char **name, int *nparams)
{
	if ((unsigned)r >= MG_REPORT__COUNT)
		return NULL;
	if (name != NULL)
		*name = statements[r].name;
	if (nparams != NULL)
		*nparams = statements[r].nparams;
	return statements[r].sql;
}

/* 0 when v (if given) is one line of at most FIELD_MAX bytes, else -1
 * with the reason in err. */
static int
field_ok(const char *what, const char *v, char *err, size_t errlen)
{
	size_t n;

	if (v == NULL)
		return 0;
	n = strlen(v);
	if (n > FIELD_MAX) {
		mg_err_detail(err, errlen, "%s is longer than %d bytes", what, FIELD_MAX);
		return -1;
	}
	/* Postgres refuses broken UTF-8: a client's mistake, not a 503 */
	if (!mg_text_printable(v, n)) {
		mg_err_detail(err, errlen, "%s holds a control character or is not UTF-8", what);
		return -1;
	}
	return 0;
}

enum mg_err
mg_report_prepare(enum mg_report r, const struct mg_report_query *q,
    const struct mg_conf *conf, struct mg_report_call *call, char *err, size_t errlen)
{
	static const char *const names[] = { "project", "key", "model", "since", "until",
		"tz", "by", "status", "limit", "cursor" };
	const char *vals[] = { q->project, q->key, q->model, q->since, q->until, q->tz, q->by,
		q->status, q->limit, q->cursor };
	const char *tz = q->tz != NULL ? q->tz : conf->report_tz;
	size_t i;

	memset(call, 0, sizeof(*call));
	if ((unsigned)r >= MG_REPORT__COUNT) {
		mg_err_detail(err, errlen, "no such report");
		return MG_ERR_INVALID;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (field_ok(names[i], vals[i], err, errlen) < 0)
			return MG_ERR_INVALID;
	call->name = statements[r].name;
	call->sql = statements[r].sql;
	call->nparams = statements[r].nparams;
	snprintf(call->max_days, sizeof(call->max_days), "%d", conf->report_max_days);
	switch (r) {
	case MG_REPORT_USAGE:
		call->params[0] = q->project;
		call->params[1] = q->key;
		call->params[2] = q->model;
		call->params[3] = q->since;
		call->params[4] = q->until;
		call->params[5] = tz;
		call->params[6] = q->by != NULL && q->by[0] != '\0' ? q->by : NULL;
		call->params[7] = call->max_days;
		break;
	case MG_REPORT_REQUESTS: {
		const char *l = q->limit != NULL ? q->limit : "50";
		size_t n = strlen(l);

		if (n == 0 || n > 9 || strspn(l, "0123456789") != n) {
			mg_err_detail(err, errlen, "limit must be a whole number from 1 to 1000");
			return MG_ERR_INVALID;
		}
		snprintf(call->limit, sizeof(call->limit), "%s", l);
		call->params[0] = q->project;
		call->params[1] = q->key;
		call->params[2] = q->model;
		call->params[3] = q->status;
		call->params[4] = q->since;
		call->params[5] = q->until;
		call->params[6] = tz;
		call->params[7] = call->limit;
		call->params[8] = q->cursor;
		call->params[9] = call->max_days;
		break;
	}
	case MG_REPORT_QUOTA:
	case MG_REPORT_MODELS:
		call->params[0] = q->project;
		break;
	case MG_REPORT_RECONCILE:
		call->params[0] = q->since;
		call->params[1] = q->until;
		call->params[2] = call->max_days;
		break;
	default:
		break;
	}
	return MG_OK;
}

enum mg_err
mg_report_sqlstate_err(const char *sqlstate)
{
	/* invalid_parameter_value (the functions' refusals),
	 * character_not_in_repertoire (text that is not UTF-8),
	 * untranslatable_character, invalid_text_representation */
	static const char *const bad_input[] = { "22023", "22021", "22P05", "22P02" };
	size_t i;

	for (i = 0; sqlstate != NULL && i < sizeof(bad_input) / sizeof(bad_input[0]); i++)
		if (strcmp(sqlstate, bad_input[i]) == 0)
			return MG_ERR_INVALID;
	return MG_ERR_DB;
}

enum mg_err
mg_report_parse(const char *text, json_object **out, char *err, size_t errlen)
{
	json_tokener *tok;
	json_object *o;

	*out = NULL;
	tok = json_tokener_new();
	if (tok == NULL) {
		mg_err_detail(err, errlen, "out of memory");
		return MG_ERR_NOMEM;
	}
	o = json_tokener_parse_ex(tok, text, (int)strlen(text));
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(o, json_type_object) ||
	    text[json_tokener_get_parse_end(tok) + strspn(text + json_tokener_get_parse_end(tok),
	    " \t\r\n")] != '\0') {
		json_object_put(o);
		json_tokener_free(tok);
		mg_err_detail(err, errlen, "database error: a report that is not a JSON object");
		return MG_ERR_DB;
	}
	json_tokener_free(tok);
	*out = o;
	return MG_OK;
}
