/* admin.c -- The operations under every face: schema upgrades, projects,
 * keys, the model catalog and the reaper, each a call of a function of
 * sql/functions by name, returning data and never printing.  Called by
 * the CLI (cli.c); the later faces (/v1/usage, MCP, the dashboard) call
 * it too. */
#include "config.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "apikey.h"
#include "catalog.h"
#include "log.h"
#include "clock.h"
#include "migrate.h"
#include "money.h"
#include "reconcile.h"
#include "report.h"
#include "upstream.h"

/* The longest one upstream call of a reconciliation run or close waits
 * (seconds), as the responders' upkeep. */
#define RECON_CALL_TIMEOUT 30

struct mg_admin {
	PGconn *conn;
	const struct mg_conf *conf;
};

/* The calls, by the SQL function each makes. */
enum call {
	CALL_PROJECT_CREATE,
	CALL_PROJECT_SET,
	CALL_PROJECT_LIST,
	CALL_KEY_CREATE,
	CALL_KEY_LIST,
	CALL_KEY_REVOKE,
	CALL_CATALOG_REPLACE,
	CALL_CATALOG_LIST,
	CALL_REAP,
	CALL_REAP_LEASES,
	CALL_ADMIN_KEY_CREATE,
	CALL_ADMIN_KEY_LIST,
	CALL_ADMIN_KEY_REVOKE,
	CALL_USAGE_PRUNE,
	CALL__COUNT
};

static const struct {
	const char *sql;
	int nparams;
} calls[CALL__COUNT] = {
	[CALL_PROJECT_CREATE] = { "SELECT mg_project_create($1, $2::jsonb)", 2 },
	[CALL_PROJECT_SET] = { "SELECT mg_project_set($1, $2::jsonb)", 2 },
	[CALL_PROJECT_LIST] = { "SELECT name, created_at, keys, rpm, tpm, spend_cap, period, "
	    "period_start, spent, reserved, models FROM mg_project_list()", 0 },
	[CALL_KEY_CREATE] = { "SELECT mg_key_create($1, $2, decode($3, 'hex'), $4)", 4 },
	[CALL_KEY_LIST] = { "SELECT prefix, name, created_at, revoked_at FROM mg_key_list($1)", 1 },
	[CALL_KEY_REVOKE] = { "SELECT mg_key_revoke($1, decode($2, 'hex'))", 2 },
	[CALL_CATALOG_REPLACE] = { "SELECT mg_catalog_replace($1::jsonb, $2::text[], $3::text[])", 3 },
	[CALL_CATALOG_LIST] = { "SELECT id, kind, context_length, prompt_price, completion_price, "
	    "synced_at FROM mg_catalog_list()", 0 },
	[CALL_REAP] = { "SELECT reaped FROM mg_reap($1)", 1 },
	[CALL_REAP_LEASES] = { "SELECT reaped FROM mg_reap_leases($1)", 1 },
	[CALL_ADMIN_KEY_CREATE] = { "SELECT mg_admin_key_create($1, decode($2, 'hex'), $3)", 3 },
	[CALL_ADMIN_KEY_LIST] = { "SELECT prefix, name, created_at, revoked_at "
	    "FROM mg_admin_key_list()", 0 },
	[CALL_ADMIN_KEY_REVOKE] = { "SELECT mg_admin_key_revoke($1, decode($2, 'hex'))", 2 },
	[CALL_USAGE_PRUNE] = { "SELECT mg_usage_prune(($1 || '-01 00:00:00+00')::timestamptz)", 1 },
};

/* The refusals the functions raise (see sql/functions/admin.sql), by
 * SQLSTATE; their message is the detail as it is. */
static const struct {
	const char *sqlstate;
	enum mg_err err;
} refusals[] = {
	{ "P0002", MG_ERR_NOT_FOUND },  /* no_data_found */
	{ "23505", MG_ERR_EXISTS },     /* unique_violation */
	{ "21000", MG_ERR_AMBIGUOUS },  /* cardinality_violation */
	{ "22023", MG_ERR_INVALID },    /* invalid_parameter_value */
	{ "55006", MG_ERR_INVALID },    /* object_in_use (requests in flight) */
};

/* A message from Postgres or libpq, after what (NULL: nothing), on one
 * line: its line breaks (and the indent after them) become one space,
 * its trailing ones go. */
static void
pq_detail(char *err, size_t errlen, const char *what, const char *msg)
{
	char line[MG_ERR_DETAIL_LEN];
	size_t n = 0;

	while (*msg != '\0' && n + 1 < sizeof(line)) {
		if (*msg == '\n') {
			msg += strspn(msg, "\n\t ");
			if (*msg != '\0')
				line[n++] = ' ';
			continue;
		}
		line[n++] = *msg++;
	}
	line[n] = '\0';
	mg_err_detail(err, errlen, "%s%s%s", what != NULL ? what : "", what != NULL ? ": " : "", line);
}

enum mg_err
mg_admin_new(const struct mg_conf *conf, const char *app_name, struct mg_admin **out,
    char *err, size_t errlen)
{
	char timeout[16];
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { conf->db_conninfo, timeout, app_name, NULL };
	struct mg_admin *a;

	*out = NULL;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		mg_err_detail(err, errlen, "out of memory");
		return MG_ERR_NOMEM;
	}
	snprintf(timeout, sizeof(timeout), "%d", conf->db_connect_timeout);
	a->conf = conf;
	a->conn = PQconnectdbParams(keys, vals, 1);
	if (a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK) {
		const char *msg = a->conn != NULL ? PQerrorMessage(a->conn) : "out of memory";
		size_t used;

		pq_detail(err, errlen, "cannot connect to the database", msg);
		/* as root under peer authentication ("role "root" does not
		 * exist", "Peer authentication failed for user "root""): say
		 * how to pick the role */
		used = strlen(err);
		if (geteuid() == 0 && strstr(msg, "\"root\"") != NULL && used < errlen)
			snprintf(err + used, errlen - used, "; as root, name the role in "
			    "database.conninfo (user=NAME, with host= and passfile=) or run "
			    "the command as the role's user (runuser -u NAME -- modelgate ...)");
		mg_admin_free(a);
		return MG_ERR_DB_DOWN;
	}
	*out = a;
	return MG_OK;
}

void
mg_admin_free(struct mg_admin *a)
{
	if (a == NULL)
		return;
	PQfinish(a->conn);
	free(a);
}

/* Runs sql with n text parameters; on success *res holds its rows (the
 * caller clears it), on failure the refusal or database error is in err.
 * A report's refusals of bad input (see report.h) are MG_ERR_INVALID. */
static enum mg_err
run(struct mg_admin *a, const char *sql, int n, const char *const *params, PGresult **res,
    char *err, size_t errlen)
{
	PGresult *r;
	const char *state, *msg;
	size_t i;

	*res = NULL;
	/* a long-lived caller (modelgate mcp) outlives a restart of Postgres */
	if (PQstatus(a->conn) != CONNECTION_OK)
		PQreset(a->conn);
	r = PQexecParams(a->conn, sql, n, NULL, params, NULL, NULL, 0);
	if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK) {
		*res = r;
		return MG_OK;
	}
	state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	for (i = 0; state != NULL && msg != NULL && i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		if (strcmp(state, refusals[i].sqlstate) == 0) {
			pq_detail(err, errlen, NULL, msg);
			PQclear(r);
			return refusals[i].err;
		}
	}
	if (msg != NULL && mg_report_sqlstate_err(state) == MG_ERR_INVALID) {
		pq_detail(err, errlen, NULL, msg);
		PQclear(r);
		return MG_ERR_INVALID;
	}
	pq_detail(err, errlen, "database error", msg != NULL ? msg : PQerrorMessage(a->conn));
	PQclear(r);
	return PQstatus(a->conn) == CONNECTION_OK ? MG_ERR_DB : MG_ERR_DB_DOWN;
}

/* Makes one of the calls (see run). */
static enum mg_err
call(struct mg_admin *a, enum call which, const char *const *params, PGresult **res,
    char *err, size_t errlen)
{
	return run(a, calls[which].sql, calls[which].nparams, params, res, err, errlen);
}

/* A call whose one row and column is a count. */
static enum mg_err
call_count(struct mg_admin *a, enum call which, const char *const *params, int *n,
    char *err, size_t errlen)
{
	PGresult *r;
	enum mg_err rc = call(a, which, params, &r, err, errlen);

	if (rc != MG_OK)
		return rc;
	*n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_admin_migrate(struct mg_admin *a, const char *sql_dir, int *applied, int *version,
    char *err, size_t errlen)
{
	char why[MG_ERR_DETAIL_LEN];
	enum mg_err rc = mg_migrate(a->conn, sql_dir, applied, version, why, sizeof(why));

	if (rc != MG_OK)
		mg_err_detail(err, errlen, "migration failed: %s", why);
	return rc;
}

/* --- projects ------------------------------------------------------------ */

static const char *const limit_rules[MG_LIMIT__COUNT] = {
	[MG_LIMIT_RPM] = "must be a whole number from 1 to 999999999, or none",
	[MG_LIMIT_TPM] = "must be a whole number from 1 to 999999999, or none",
	[MG_LIMIT_SPEND_CAP] = "must be an amount of USD such as 25 or 0.50, or none",
	[MG_LIMIT_PERIOD] = "must be month or total",
	[MG_LIMIT_MODELS] = "must be model ids separated by commas, or none",
};

/* The limits' names in the JSON mg_project_set reads. */
static const char *const limit_keys[MG_LIMIT__COUNT] = {
	[MG_LIMIT_RPM] = "rpm",
	[MG_LIMIT_TPM] = "tpm",
	[MG_LIMIT_SPEND_CAP] = "spend_cap",
	[MG_LIMIT_PERIOD] = "period",
	[MG_LIMIT_MODELS] = "models",
};

const char *
mg_admin_limit_name(enum mg_admin_limit which)
{
	return (unsigned)which < MG_LIMIT__COUNT ? limit_keys[which] : NULL;
}

const char *
mg_admin_limit_rule(enum mg_admin_limit which)
{
	return (unsigned)which < MG_LIMIT__COUNT ? limit_rules[which] : "is unknown";
}

/* 1 when v is a whole number from 1 to 999999999. */
static int
count_valid(const char *v)
{
	size_t n = strlen(v);

	return n > 0 && n <= 9 && strspn(v, "0123456789") == n && strtol(v, NULL, 10) >= 1;
}

static int
limit_valid(enum mg_admin_limit which, const char *v)
{
	if (strcmp(v, "none") == 0)
		return which != MG_LIMIT_PERIOD;
	switch (which) {
	case MG_LIMIT_RPM:
	case MG_LIMIT_TPM:
		return count_valid(v);
	case MG_LIMIT_SPEND_CAP:
		return mg_money_valid(v, MG_MONEY_PLAIN);
	case MG_LIMIT_PERIOD:
		return strcmp(v, "month") == 0 || strcmp(v, "total") == 0;
	default:
		return 1;
	}
}

enum mg_err
mg_admin_limits_check(const struct mg_admin_limits *l, enum mg_admin_limit *bad)
{
	int i;

	for (i = 0; i < MG_LIMIT__COUNT; i++) {
		if (l->value[i] != NULL && !limit_valid((enum mg_admin_limit)i, l->value[i])) {
			*bad = (enum mg_admin_limit)i;
			return MG_ERR_INVALID;
		}
	}
	return MG_OK;
}

/* The model ids of a comma-separated list as a JSON array (Postgres
 * trims them and drops empty ones); NULL when out of memory. */
static json_object *
models_json(const char *list)
{
	json_object *arr = json_object_new_array();
	const char *p = list;

	if (arr == NULL || strcmp(list, "none") == 0)
		return arr;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		json_object *id = json_object_new_string_len(p, (int)n);

		if (id == NULL || json_object_array_add(arr, id) != 0) {
			json_object_put(id);
			json_object_put(arr);
			return NULL;
		}
		p += n + (p[n] == ',');
	}
	return arr;
}

/* One limit's JSON value: null for "none", a number for the counts. */
static json_object *
limit_json(enum mg_admin_limit which, const char *v)
{
	if (which == MG_LIMIT_MODELS)
		return models_json(v);
	if (strcmp(v, "none") == 0)
		return NULL;
	if (which == MG_LIMIT_RPM || which == MG_LIMIT_TPM)
		return json_object_new_int64(strtoll(v, NULL, 10));
	return json_object_new_string(v);
}

/* Checks the limits and writes them as the JSON object mg_project_set
 * reads into *text (malloc'd). */
static enum mg_err
limits_text(const struct mg_admin_limits *l, char **text, char *err, size_t errlen)
{
	json_object *o;
	enum mg_admin_limit bad;
	int i;

	*text = NULL;
	if (l != NULL && mg_admin_limits_check(l, &bad) != MG_OK) {
		mg_err_detail(err, errlen, "%s %s", limit_keys[bad], limit_rules[bad]);
		return MG_ERR_INVALID;
	}
	o = json_object_new_object();
	for (i = 0; o != NULL && l != NULL && i < MG_LIMIT__COUNT; i++) {
		json_object *v;

		if (l->value[i] == NULL)
			continue;
		v = limit_json((enum mg_admin_limit)i, l->value[i]);
		if ((v == NULL && strcmp(l->value[i], "none") != 0) ||
		    json_object_object_add(o, limit_keys[i], v) != 0) {
			json_object_put(v);
			json_object_put(o);
			o = NULL;
		}
	}
	if (o != NULL)
		*text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (*text == NULL) {
		mg_err_detail(err, errlen, "out of memory");
		return MG_ERR_NOMEM;
	}
	return MG_OK;
}

/* mg_project_create or mg_project_set of name with l. */
static enum mg_err
project_change(struct mg_admin *a, enum call which, const char *name,
    const struct mg_admin_limits *l, char *err, size_t errlen)
{
	const char *params[2] = { name, NULL };
	char *limits;
	PGresult *r;
	enum mg_err rc = limits_text(l, &limits, err, errlen);

	if (rc != MG_OK)
		return rc;
	params[1] = limits;
	rc = call(a, which, params, &r, err, errlen);
	PQclear(r);
	free(limits);
	return rc;
}

enum mg_err
mg_admin_project_create(struct mg_admin *a, const char *name, const struct mg_admin_limits *l,
    char *err, size_t errlen)
{
	return project_change(a, CALL_PROJECT_CREATE, name, l, err, errlen);
}

enum mg_err
mg_admin_project_set(struct mg_admin *a, const char *name, const struct mg_admin_limits *l,
    char *err, size_t errlen)
{
	return project_change(a, CALL_PROJECT_SET, name, l, err, errlen);
}

/* --- lists --------------------------------------------------------------- */

void
mg_admin_list_init(struct mg_admin_list *l)
{
	memset(l, 0, sizeof(*l));
}

void
mg_admin_list_free(struct mg_admin_list *l)
{
	if (l == NULL)
		return;
	free(l->projects);
	free(l->keys);
	free(l->models);
	PQclear(l->owner);
	mg_admin_list_init(l);
}

/* Where the columns of a list call's result go in its row struct, in
 * the order of the columns. */
struct field {
	size_t offset;
	int number;  /* 1: a long long (-1 for SQL NULL), 0: text (NULL) */
};

#define TEXT(type, member) { offsetof(struct type, member), 0 }
#define NUMBER(type, member) { offsetof(struct type, member), 1 }

static const struct field project_fields[] = {
	TEXT(mg_admin_project, name), TEXT(mg_admin_project, created_at),
	NUMBER(mg_admin_project, keys), NUMBER(mg_admin_project, rpm),
	NUMBER(mg_admin_project, tpm), TEXT(mg_admin_project, spend_cap),
	TEXT(mg_admin_project, period), TEXT(mg_admin_project, period_start),
	TEXT(mg_admin_project, spent), TEXT(mg_admin_project, reserved),
	TEXT(mg_admin_project, models),
};

static const struct field key_fields[] = {
	TEXT(mg_admin_key, prefix), TEXT(mg_admin_key, name),
	TEXT(mg_admin_key, created_at), TEXT(mg_admin_key, revoked_at),
};

static const struct field model_fields[] = {
	TEXT(mg_admin_model, id), TEXT(mg_admin_model, kind),
	NUMBER(mg_admin_model, context_length), TEXT(mg_admin_model, prompt_price),
	TEXT(mg_admin_model, completion_price), TEXT(mg_admin_model, synced_at),
};

#define FIELDS(f) f, sizeof(f) / sizeof((f)[0])

/* Fills row (a struct of the list) from row i of r, column j into
 * fields[j]. */
static void
fill_row(void *row, const struct field *fields, size_t nfields, const PGresult *r, int i)
{
	size_t j;

	for (j = 0; j < nfields; j++) {
		char *at = (char *)row + fields[j].offset;
		int null = PQgetisnull(r, i, (int)j);
		const char *v = PQgetvalue(r, i, (int)j);

		if (fields[j].number) {
			long long n = null ? -1 : strtoll(v, NULL, 10);

			memcpy(at, &n, sizeof(n));
		} else {
			const char *t = null ? NULL : v;

			memcpy(at, &t, sizeof(t));
		}
	}
}

/* Makes a list call into l (initialized first): *rows gets an array of
 * its rows (size bytes each, filled as fields say); l owns the result. */
static enum mg_err
list_call(struct mg_admin *a, enum call which, const char *const *params, size_t size,
    const struct field *fields, size_t nfields, void **rows, struct mg_admin_list *l,
    char *err, size_t errlen)
{
	PGresult *r;
	enum mg_err rc;
	int i;

	mg_admin_list_init(l);
	*rows = NULL;
	rc = call(a, which, params, &r, err, errlen);
	if (rc != MG_OK)
		return rc;
	*rows = calloc((size_t)PQntuples(r) + 1, size);
	if (*rows == NULL) {
		PQclear(r);
		mg_err_detail(err, errlen, "out of memory");
		return MG_ERR_NOMEM;
	}
	for (i = 0; i < PQntuples(r); i++)
		fill_row((char *)*rows + (size_t)i * size, fields, nfields, r, i);
	l->owner = r;
	l->n = (size_t)PQntuples(r);
	return MG_OK;
}

enum mg_err
mg_admin_project_list(struct mg_admin *a, struct mg_admin_list *l, char *err, size_t errlen)
{
	void *rows;
	enum mg_err rc = list_call(a, CALL_PROJECT_LIST, NULL, sizeof(*l->projects),
	    FIELDS(project_fields), &rows, l, err, errlen);

	l->projects = rows;
	return rc;
}

/* --- keys ---------------------------------------------------------------- */

/* A new key, stored by the call which: project keys (project given) or
 * admin keys (project NULL). */
static enum mg_err
key_create(struct mg_admin *a, enum call which, const char *project, const char *label,
    struct mg_admin_new_key *out, char *err, size_t errlen)
{
	char hash[MG_APIKEY_HASH_HEX_LEN + 1];
	const char *pparams[4] = { project, out->prefix, hash, label };
	const char *aparams[3] = { out->prefix, hash, label };
	PGresult *r;
	enum mg_err rc;

	if (mg_apikey_generate(out->key) != MG_OK) {
		mg_err_detail(err, errlen, "the operating system gave no random bytes");
		return MG_ERR_IO;
	}
	mg_apikey_prefix(out->key, out->prefix);
	if (mg_apikey_hash_hex(out->key, strlen(out->key), hash) != MG_OK) {
		mg_err_detail(err, errlen, "cannot compute the key's SHA-256 (libcrypto failed)");
		rc = MG_ERR_NOMEM;
		goto out;
	}
	rc = call(a, which, which == CALL_KEY_CREATE ? pparams : aparams, &r, err, errlen);
	PQclear(r);
out:
	if (rc != MG_OK)
		memset(out, 0, sizeof(*out));
	return rc;
}

enum mg_err
mg_admin_key_create(struct mg_admin *a, const char *project, const char *label,
    struct mg_admin_new_key *out, char *err, size_t errlen)
{
	return key_create(a, CALL_KEY_CREATE, project, label, out, err, errlen);
}

enum mg_err
mg_admin_admin_key_create(struct mg_admin *a, const char *label,
    struct mg_admin_new_key *out, char *err, size_t errlen)
{
	return key_create(a, CALL_ADMIN_KEY_CREATE, NULL, label, out, err, errlen);
}

enum mg_err
mg_admin_key_list(struct mg_admin *a, const char *project, struct mg_admin_list *l,
    char *err, size_t errlen)
{
	const char *params[1] = { project };
	void *rows;
	enum mg_err rc = list_call(a, CALL_KEY_LIST, params, sizeof(*l->keys),
	    FIELDS(key_fields), &rows, l, err, errlen);

	l->keys = rows;
	return rc;
}

/* Revokes a project key (CALL_KEY_REVOKE) or an admin key. */
static enum mg_err
key_revoke(struct mg_admin *a, enum call call_which, const char *which,
    char prefix[MG_APIKEY_PREFIX_LEN + 1], char *err, size_t errlen)
{
	char hash[MG_APIKEY_HASH_HEX_LEN + 1];
	const char *params[2] = { which, NULL };
	PGresult *r;
	enum mg_err rc;

	prefix[0] = '\0';
	if (mg_apikey_valid(which, strlen(which))) {
		/* a whole key: by its hash */
		if (mg_apikey_hash_hex(which, strlen(which), hash) != MG_OK) {
			mg_err_detail(err, errlen, "cannot compute the key's SHA-256 (libcrypto failed)");
			return MG_ERR_NOMEM;
		}
		params[0] = NULL;
		params[1] = hash;
	}
	rc = call(a, call_which, params, &r, err, errlen);
	if (rc != MG_OK)
		return rc;
	snprintf(prefix, MG_APIKEY_PREFIX_LEN + 1, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return MG_OK;
}

enum mg_err
mg_admin_key_revoke(struct mg_admin *a, const char *which, char prefix[MG_APIKEY_PREFIX_LEN + 1],
    char *err, size_t errlen)
{
	return key_revoke(a, CALL_KEY_REVOKE, which, prefix, err, errlen);
}

enum mg_err
mg_admin_admin_key_revoke(struct mg_admin *a, const char *which,
    char prefix[MG_APIKEY_PREFIX_LEN + 1], char *err, size_t errlen)
{
	return key_revoke(a, CALL_ADMIN_KEY_REVOKE, which, prefix, err, errlen);
}

enum mg_err
mg_admin_admin_key_list(struct mg_admin *a, struct mg_admin_list *l, char *err, size_t errlen)
{
	void *rows;
	enum mg_err rc = list_call(a, CALL_ADMIN_KEY_LIST, NULL, sizeof(*l->keys),
	    FIELDS(key_fields), &rows, l, err, errlen);

	l->keys = rows;
	return rc;
}

/* --- the catalog and the reaper ------------------------------------------ */

enum mg_err
mg_admin_catalog_sync(struct mg_admin *a, int *n, char *err, size_t errlen)
{
	char why[MG_ERR_DETAIL_LEN], *rows = NULL, *names = NULL, *synced = NULL;
	const char *params[3];
	enum mg_err rc;
	int fetched = 0;

	rc = mg_catalog_fetch_all(a->conf, &rows, &names, &synced, &fetched, why, sizeof(why));
	if (rc != MG_OK) {
		if (a->conf->n_ups == 1)
			mg_err_detail(err, errlen, "%s", why); /* "model list from URL: ..." */
		else
			mg_err_detail(err, errlen, "model lists: %s", why);
		return rc;
	}
	if (why[0] != '\0')
		mg_log(MG_LOG_WARN, NULL, "model lists: %s (their models are kept)", why);
	params[0] = rows;
	params[1] = names;
	params[2] = synced;
	rc = call_count(a, CALL_CATALOG_REPLACE, params, n, err, errlen);
	free(rows);
	free(names);
	free(synced);
	return rc;
}

enum mg_err
mg_admin_catalog_list(struct mg_admin *a, struct mg_admin_list *l, char *err, size_t errlen)
{
	void *rows;
	enum mg_err rc = list_call(a, CALL_CATALOG_LIST, NULL, sizeof(*l->models),
	    FIELDS(model_fields), &rows, l, err, errlen);

	l->models = rows;
	return rc;
}

enum mg_err
mg_admin_reconcile_run(struct mg_admin *a, struct mg_recon_pass *total, char *err,
    size_t errlen)
{
	const struct mg_conf *c = a->conf;
	int rps = c->recon_max_rps > 0 ? c->recon_max_rps : 1, no_api = 0;
	struct mg_store *s = mg_store_new(c->db_conninfo, 1, c->db_connect_timeout);
	struct mg_upstream *up = mg_upstream_new(c);
	enum mg_err rc = MG_OK;

	memset(total, 0, sizeof(*total));
	if (s == NULL || up == NULL) {
		mg_err_detail(err, errlen, "out of memory");
		rc = MG_ERR_NOMEM;
	}
	/* as the upkeep's: a stuck lookup must not hold the run forever */
	if (up != NULL)
		mg_upstream_set_timeout(up, RECON_CALL_TIMEOUT);
	while (rc == MG_OK) {
		struct mg_recon_pass p;
		struct timespec start;
		long wait;

		mg_clock_now(CLOCK_MONOTONIC, &start);
		rc = mg_reconcile_pass(s, up, (size_t)c->up_max_response, rps, &no_api, &p);
		if (rc != MG_OK) {
			mg_err_detail(err, errlen, "reconciliation: %s", mg_store_last_error());
			break;
		}
		total->looked += p.looked;
		total->confirmed += p.confirmed;
		total->adjusted += p.adjusted;
		total->retried += p.retried;
		total->missing += p.missing;
		total->failed += p.failed;
		total->unsupported += p.unsupported;
		/* done when a pass found no row due (a failed lookup's row comes
		 * back after its lease, not in this run) */
		if (p.looked == 0 || no_api)
			break;
		wait = 1000 - mg_clock_ms_since(&start);
		if (wait > 0) {
			struct timespec ts = { wait / 1000, (wait % 1000) * 1000000L };

			nanosleep(&ts, NULL);
		}
	}
	mg_upstream_free(up);
	mg_store_free(s);
	return rc;
}

enum mg_err
mg_admin_reconcile_close(struct mg_admin *a, const char *day, char **json, char *err,
    size_t errlen)
{
	const struct mg_conf *c = a->conf;
	char key_hash[MG_APIKEY_HASH_HEX_LEN + 1] = "";
	struct mg_store *s;
	struct mg_upstream *up;
	enum mg_err rc;

	*json = NULL;
	if (c->up_mgmt_key == NULL) {
		mg_err_detail(err, errlen, "the daily close asks the upstream with a management "
		    "key: set upstream.management_key_file in %s", c->file != NULL ? c->file :
		    "the configuration");
		return MG_ERR_CONFIG;
	}
	if (c->up_key != NULL &&
	    mg_apikey_hash_hex(c->up_key, strlen(c->up_key), key_hash) != MG_OK) {
		mg_err_detail(err, errlen, "out of memory");
		return MG_ERR_NOMEM;
	}
	s = mg_store_new(c->db_conninfo, 1, c->db_connect_timeout);
	up = mg_upstream_new_key(c, c->up_mgmt_key);
	if (s == NULL || up == NULL) {
		mg_err_detail(err, errlen, "out of memory");
		rc = MG_ERR_NOMEM;
	} else {
		mg_upstream_set_timeout(up, RECON_CALL_TIMEOUT);
		rc = mg_recon_close(s, up, key_hash, (size_t)c->up_max_response, day, json, err,
		    errlen);
	}
	mg_upstream_free(up);
	mg_store_free(s);
	return rc;
}

enum mg_err
mg_admin_reap(struct mg_admin *a, int grace, int *n, char *err, size_t errlen)
{
	char secs[16];
	const char *params[1] = { secs };

	snprintf(secs, sizeof(secs), "%d", grace);
	return call_count(a, CALL_REAP, params, n, err, errlen);
}

enum mg_err
mg_admin_reap_leases(struct mg_admin *a, int timeout, int *n, char *err, size_t errlen)
{
	char secs[16];
	const char *params[1] = { secs };

	snprintf(secs, sizeof(secs), "%d", timeout);
	return call_count(a, CALL_REAP_LEASES, params, n, err, errlen);
}

/* --- usage ---------------------------------------------------------------- */

enum mg_err
mg_admin_report(struct mg_admin *a, enum mg_report which, const struct mg_report_query *q,
    json_object **out, char *err, size_t errlen)
{
	struct mg_report_call c;
	PGresult *r;
	enum mg_err rc;

	*out = NULL;
	rc = mg_report_prepare(which, q, a->conf, &c, err, errlen);
	if (rc != MG_OK)
		return rc;
	rc = run(a, c.sql, c.nparams, c.params, &r, err, errlen);
	if (rc != MG_OK)
		return rc;
	rc = mg_report_parse(PQgetvalue(r, 0, 0), out, err, errlen);
	PQclear(r);
	return rc;
}

/* 1 when s is a month, YYYY-MM. */
static int
month_valid(const char *s)
{
	return strlen(s) == 7 && strspn(s, "0123456789") == 4 && s[4] == '-' &&
	    strspn(s + 5, "0123456789") == 2 && ((s[5] == '0' && s[6] >= '1') ||
	    (s[5] == '1' && s[6] <= '2'));
}

enum mg_err
mg_admin_usage_prune(struct mg_admin *a, const char *before, json_object **removed,
    char *err, size_t errlen)
{
	const char *params[1] = { before };
	PGresult *r;
	enum mg_err rc;

	*removed = NULL;
	if (!month_valid(before)) {
		mg_err_detail(err, errlen, "the month to prune before is YYYY-MM, such as 2026-01");
		return MG_ERR_INVALID;
	}
	rc = call(a, CALL_USAGE_PRUNE, params, &r, err, errlen);
	if (rc != MG_OK)
		return rc;
	*removed = json_tokener_parse(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (*removed == NULL || !json_object_is_type(*removed, json_type_array)) {
		json_object_put(*removed);
		*removed = NULL;
		mg_err_detail(err, errlen, "database error: mg_usage_prune gave no list");
		return MG_ERR_DB;
	}
	return MG_OK;
}
