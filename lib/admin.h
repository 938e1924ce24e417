#ifndef MG_ADMIN_H
#define MG_ADMIN_H

#include <stddef.h>

#include <json-c/json.h>

#include "apikey.h"
#include "conf.h"
#include "err.h"
#include "report.h"

/* The operations under every face (the CLI today; /v1/usage, the MCP
 * server and the dashboard later): schema upgrades, projects, keys, the
 * model catalog and the reaper.  Each calls a function of sql/functions
 * by name and returns data; none prints.  On failure a function returns
 * its enum mg_err and writes into err (see err.h) one line a face can
 * show as it is:
 *   MG_ERR_NOT_FOUND  no such project, or no live key matches
 *   MG_ERR_EXISTS     the project exists already
 *   MG_ERR_AMBIGUOUS  a key prefix matches several live keys
 *   MG_ERR_INVALID    a name or a limit breaks its rule
 *   MG_ERR_DB_DOWN    no connection ("cannot connect to the database: …")
 *   MG_ERR_DB         any other database error ("database error: …")
 * A handle is one connection: use it from one thread at a time. */
struct mg_admin;

/* Connects to conf's database, naming the connection app_name (seen in
 * pg_stat_activity).  conf must outlive the handle. */
enum mg_err mg_admin_new(const struct mg_conf *conf, const char *app_name,
    struct mg_admin **out, char *err, size_t errlen) __attribute__((warn_unused_result));
void mg_admin_free(struct mg_admin *a);

/* Applies the SQL of sql_dir (see mg_migrate): *applied numbered files,
 * schema *version reached. */
enum mg_err mg_admin_migrate(struct mg_admin *a, const char *sql_dir, int *applied,
    int *version, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A project's limits, in the order of mg_admin_limits.value. */
enum mg_admin_limit {
	MG_LIMIT_RPM,       /* requests per minute: 1 to 999999999 */
	MG_LIMIT_TPM,       /* tokens per minute: 1 to 999999999 */
	MG_LIMIT_SPEND_CAP, /* USD, plain decimal ("25", "0.50") */
	MG_LIMIT_PERIOD,    /* the cap's period: "month" (UTC) or "total" */
	MG_LIMIT_MODELS,    /* allowed model ids, comma-separated; "": all */
	MG_LIMIT__COUNT
};

/* Limits to change, as text: NULL leaves one as it is, "none" removes
 * it (for models: allows all). */
struct mg_admin_limits {
	const char *value[MG_LIMIT__COUNT];
};

/* MG_OK when every given limit follows its rule, else MG_ERR_INVALID
 * with *bad the first that does not. */
enum mg_err mg_admin_limits_check(const struct mg_admin_limits *l, enum mg_admin_limit *bad)
	__attribute__((warn_unused_result));
/* A limit's name where limits are named by word (JSON, MCP arguments):
 * "rpm", "tpm", "spend_cap", "period", "models"; NULL for no limit. */
const char *mg_admin_limit_name(enum mg_admin_limit which);
/* A limit's rule as the end of a sentence ("must be month or total"). */
const char *mg_admin_limit_rule(enum mg_admin_limit which);

/* Creates the project name with the limits l (NULL: none), in one
 * transaction.  MG_ERR_INVALID (bad name or limit), MG_ERR_EXISTS. */
enum mg_err mg_admin_project_create(struct mg_admin *a, const char *name,
    const struct mg_admin_limits *l, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Changes the given limits of the project name in one transaction; a
 * new period starts again and its spend is recounted.  MG_ERR_INVALID,
 * MG_ERR_NOT_FOUND. */
enum mg_err mg_admin_project_set(struct mg_admin *a, const char *name,
    const struct mg_admin_limits *l, char *err, size_t errlen) __attribute__((warn_unused_result));

/* A project as listed.  Money is exact decimal text (USD), times are UTC
 * ISO 8601 ("2026-01-31T23:59:59Z"). */
struct mg_admin_project {
	const char *name;
	const char *created_at;
	long long keys;            /* live keys */
	long long rpm, tpm;        /* -1: no limit */
	const char *spend_cap;     /* NULL: none */
	const char *period;        /* "month" or "total" */
	const char *period_start;  /* of the current period */
	const char *spent;         /* in the current period */
	const char *reserved;      /* held by requests in flight */
	const char *models;        /* allowed ids, comma-separated; NULL: all */
};

/* A key as listed: never the key itself. */
struct mg_admin_key {
	const char *prefix;
	const char *name;          /* NULL: none */
	const char *created_at;
	const char *revoked_at;    /* NULL: live */
};

/* A model of the catalog.  Prices in USD per token. */
struct mg_admin_model {
	const char *id;
	const char *kind;          /* "chat" or "embedding" */
	long long context_length;  /* -1: unknown */
	const char *prompt_price;  /* NULL: unknown */
	const char *completion_price;
	const char *synced_at;
};

/* The rows a list operation returns: one of the arrays is set (the one
 * the operation names), n long; their text lives until
 * mg_admin_list_free.  Caller-allocated; a list operation initializes it
 * (so it must hold no rows), and leaves it empty on failure. */
struct mg_admin_list {
	size_t n;
	struct mg_admin_project *projects;
	struct mg_admin_key *keys;
	struct mg_admin_model *models;
	void *owner;               /* holds the text */
};

/* Makes l an empty list. */
void mg_admin_list_init(struct mg_admin_list *l);
/* Releases the rows (l itself is the caller's); l may be NULL. */
void mg_admin_list_free(struct mg_admin_list *l);

/* Every project by name, with the spend of its current period. */
enum mg_err mg_admin_project_list(struct mg_admin *a, struct mg_admin_list *l,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* A new key for the project, labelled label (NULL: none): the key (the
 * only time it exists outside its owner: wipe it after use) and its
 * public prefix.  MG_ERR_NOT_FOUND, MG_ERR_IO (no randomness). */
struct mg_admin_new_key {
	char key[MG_APIKEY_LEN + 1];
	char prefix[MG_APIKEY_PREFIX_LEN + 1];
};
enum mg_err mg_admin_key_create(struct mg_admin *a, const char *project, const char *label,
    struct mg_admin_new_key *out, char *err, size_t errlen) __attribute__((warn_unused_result));
/* The project's keys, oldest first.  MG_ERR_NOT_FOUND. */
enum mg_err mg_admin_key_list(struct mg_admin *a, const char *project, struct mg_admin_list *l,
    char *err, size_t errlen) __attribute__((warn_unused_result));
/* Revokes the live key which names: a whole key, or a prefix that names
 * exactly one live key; prefix gets the revoked key's prefix.
 * MG_ERR_NOT_FOUND, MG_ERR_AMBIGUOUS. */
enum mg_err mg_admin_key_revoke(struct mg_admin *a, const char *which,
    char prefix[MG_APIKEY_PREFIX_LEN + 1], char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Admin keys: they read the usage of every project (/v1/usage and the
 * later faces) and call no model.  Created, listed and revoked like a
 * project's keys (the list's rows are keys). */
enum mg_err mg_admin_admin_key_create(struct mg_admin *a, const char *label,
    struct mg_admin_new_key *out, char *err, size_t errlen) __attribute__((warn_unused_result));
enum mg_err mg_admin_admin_key_list(struct mg_admin *a, struct mg_admin_list *l,
    char *err, size_t errlen) __attribute__((warn_unused_result));
enum mg_err mg_admin_admin_key_revoke(struct mg_admin *a, const char *which,
    char prefix[MG_APIKEY_PREFIX_LEN + 1], char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Runs the report which of query q (see report.h): *out is the object
 * every face shows (the caller puts it).  MG_ERR_INVALID with the reason
 * for bad input (an unknown group or zone, since after until...). */
enum mg_err mg_admin_report(struct mg_admin *a, enum mg_report which,
    const struct mg_report_query *q, json_object **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Drops the usage rows of the months before the month before (YYYY-MM),
 * their partitions whole; the rollups stay.  *removed is the JSON array
 * of what went ({"partition", "from", "to", "rows"}; the caller puts it).
 * MG_ERR_INVALID for a bad month, the current month or later, or a month
 * with requests in flight. */
enum mg_err mg_admin_usage_prune(struct mg_admin *a, const char *before, json_object **removed,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Replaces the catalog with the upstream's models and prices (the
 * upstream of conf); *n models stored.  The upstream's failures as
 * mg_catalog_fetch returns them, the detail naming the upstream. */
enum mg_err mg_admin_catalog_sync(struct mg_admin *a, int *n, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* The catalog by id. */
enum mg_err mg_admin_catalog_list(struct mg_admin *a, struct mg_admin_list *l,
    char *err, size_t errlen) __attribute__((warn_unused_result));

/* Settles, at their reserved amount, the requests admitted more than
 * grace seconds ago and never settled (their responder died); *n says
 * how many. */
enum mg_err mg_admin_reap(struct mg_admin *a, int grace, int *n, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Charges whole the leases not renewed for timeout seconds (their
 * responder is gone; see sql/015_leases.sql); *n says how many. */
enum mg_err mg_admin_reap_leases(struct mg_admin *a, int timeout, int *n, char *err,
    size_t errlen) __attribute__((warn_unused_result));

struct mg_recon_pass;
/* Looks up now every generation due for a check (reconcile.c), at most
 * reconcile.max_rps a second (1 when it is 0), until none is due; what
 * was done is added up in *total. */
enum mg_err mg_admin_reconcile_run(struct mg_admin *a, struct mg_recon_pass *total, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/* Closes UTC day day (YYYY-MM-DD) now against the upstream's activity and
 * the account's credits (reconcile.c mg_recon_close), whether or not it
 * is due; the close as JSON in *json (the caller frees it).
 * MG_ERR_CONFIG when no management key is configured. */
enum mg_err mg_admin_reconcile_close(struct mg_admin *a, const char *day, char **json,
    char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
