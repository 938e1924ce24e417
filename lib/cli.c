/* cli.c -- The operator commands of `modelgate` (db, project, key, models,
 * reap): argument parsing, the calls, and the output formats.  Called by
 * app/modelgate.c. */
#include "config.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "catalog.h"
#include "cli.h"
#include "migrate.h"
#include "money.h"
#include "upstream.h"
#include "usage.h"

#define ISO_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

void
mg_cli_usage(FILE *out)
{
	fputs("usage: modelgate [-c FILE] [--sql-dir DIR] COMMAND\n"
	    "\n"
	    "commands:\n"
	    "  db migrate                            apply the SQL migrations\n"
	    "  project create NAME [LIMITS]          create a project\n"
	    "  project set NAME LIMITS               change a project's limits\n"
	    "  project list [--json]                 list projects, limits, this period's spend\n"
	    "  key create PROJECT [--name LABEL]     create a key (printed once)\n"
	    "  key list PROJECT [--json]             list a project's keys\n"
	    "  key revoke PREFIX                     revoke a key by prefix (or whole key)\n"
	    "  reap                                  settle requests lost with their responder\n"
	    "  models sync                           store the upstream's models and prices\n"
	    "  models list [--json]                  show the model catalog\n"
	    "  config check                          validate the configuration file\n"
	    "  config dump                           print the effective configuration\n"
	    "\n"
	    "LIMITS (\"none\" removes one):\n"
	    "  --rpm N            requests per minute\n"
	    "  --tpm N            tokens per minute (prompt estimate + max_tokens)\n"
	    "  --spend-cap USD    spend cap, e.g. 25 or 0.50\n"
	    "  --period month|total   the cap is per calendar month (UTC, default) or in total\n"
	    "  --models ID,...    the models the project may use (\"\" or none: all)\n"
	    "\n"
	    "The configuration file is -c FILE, else $MODELGATE_CONFIG, else\n"
	    MG_CONF_DEFAULT_PATH ". The SQL directory is --sql-dir, else\n"
	    "$MODELGATE_SQL_DIR, else the installed one.\n", out);
}

static int __attribute__((format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	fputs("modelgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

static int
usage_error(const char *what)
{
	fprintf(stderr, "modelgate: %s\n", what);
	mg_cli_usage(stderr);
	return 2;
}

static PGconn *
db_connect(const struct mg_conf *conf)
{
	char timeout[16];
	const char *keys[] = { "dbname", "connect_timeout", "application_name", NULL };
	const char *vals[] = { conf->db_conninfo, timeout, "modelgate-cli", NULL };
	PGconn *c;

	snprintf(timeout, sizeof(timeout), "%d", conf->db_connect_timeout);
	c = PQconnectdbParams(keys, vals, 1);
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		fail("cannot connect to the database: %s",
		    c != NULL ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* Runs a parameterized query; NULL (message printed) on failure. */
static PGresult *
query(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
		fail("database error: %s", PQerrorMessage(c));
		PQclear(r);
		return NULL;
	}
	return r;
}

static int
has_flag(int argc, char **argv, const char *flag)
{
	int i;

	for (i = 0; i < argc; i++)
		if (strcmp(argv[i], flag) == 0)
			return 1;
	return 0;
}

/* Prints rows as a JSON array of objects or as an aligned table; an SQL
 * NULL prints as null / "-". */
static void
print_rows(PGresult *r, int as_json)
{
	int rows = PQntuples(r), cols = PQnfields(r), i, j;

	if (as_json) {
		json_object *arr = json_object_new_array();

		for (i = 0; i < rows; i++) {
			json_object *o = json_object_new_object();

			for (j = 0; j < cols; j++) {
				json_object *v = NULL;

				if (!PQgetisnull(r, i, j))
					v = PQftype(r, j) == 20 || PQftype(r, j) == 23
					    ? json_object_new_int64(strtoll(PQgetvalue(r, i, j), NULL, 10))
					    : json_object_new_string(PQgetvalue(r, i, j));
				json_object_object_add(o, PQfname(r, j), v);
			}
			json_object_array_add(arr, o);
		}
		printf("%s\n", json_object_to_json_string_ext(arr,
		    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(arr);
		return;
	}
	{
		int width[32] = { 0 };

		for (j = 0; j < cols && j < 32; j++) {
			width[j] = (int)strlen(PQfname(r, j));
			for (i = 0; i < rows; i++) {
				int w = PQgetisnull(r, i, j) ? 1 : PQgetlength(r, i, j);

				if (w > width[j])
					width[j] = w;
			}
		}
		for (j = 0; j < cols && j < 32; j++)
			printf("%-*s%s", width[j], PQfname(r, j), j + 1 < cols ? "  " : "\n");
		for (i = 0; i < rows; i++)
			for (j = 0; j < cols && j < 32; j++)
				printf("%-*s%s", width[j],
				    PQgetisnull(r, i, j) ? "-" : PQgetvalue(r, i, j),
				    j + 1 < cols ? "  " : "\n");
	}
}

static int
valid_name(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];
		int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');

		if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
			return 0;
	}
	return 1;
}

static int
cmd_migrate(PGconn *c, const char *sql_dir)
{
	char err[MG_ERR_DETAIL_LEN];
	int applied, version;

	if (mg_migrate(c, sql_dir, &applied, &version, err, sizeof(err)) != MG_OK)
		return fail("migration failed: %s", err);
	printf("migrations: %d applied, schema version %d\n", applied, version);
	return 0;
}

static int project_exists(PGconn *c, const char *project);

/* A project's limits as given on the command line; NULL: unchanged. */
struct limits {
	const char *rpm, *tpm, *cap, *period, *models;
};

/* 1 when v is "none" or a whole number from 1 to 999999999. */
static int
count_valid(const char *v)
{
	size_t n = strlen(v);

	if (strcmp(v, "none") == 0)
		return 1;
	return n > 0 && n <= 9 && strspn(v, "0123456789") == n && atoi(v) >= 1;
}

/* Reads the limit options from argv[start..]; -1 (message printed) when
 * one is unknown, lacks its value or has a bad value. */
static int
parse_limits(int argc, char **argv, int start, struct limits *l)
{
	int i;

	memset(l, 0, sizeof(*l));
	for (i = start; i < argc; i++) {
		const char **slot = NULL;

		if (strcmp(argv[i], "--rpm") == 0)
			slot = &l->rpm;
		else if (strcmp(argv[i], "--tpm") == 0)
			slot = &l->tpm;
		else if (strcmp(argv[i], "--spend-cap") == 0)
			slot = &l->cap;
		else if (strcmp(argv[i], "--period") == 0)
			slot = &l->period;
		else if (strcmp(argv[i], "--models") == 0)
			slot = &l->models;
		if (slot == NULL || i + 1 >= argc) {
			fail("%s: unknown option or missing value", argv[i]);
			return -1;
		}
		*slot = argv[++i];
	}
	if (l->rpm != NULL && !count_valid(l->rpm)) {
		fail("--rpm must be a whole number from 1 to 999999999, or none");
		return -1;
	}
	if (l->tpm != NULL && !count_valid(l->tpm)) {
		fail("--tpm must be a whole number from 1 to 999999999, or none");
		return -1;
	}
	if (l->cap != NULL && strcmp(l->cap, "none") != 0 &&
	    !mg_money_valid(l->cap, MG_MONEY_PLAIN)) {
		fail("--spend-cap must be an amount of USD such as 25 or 0.50, or none");
		return -1;
	}
	if (l->period != NULL && strcmp(l->period, "month") != 0 && strcmp(l->period, "total") != 0) {
		fail("--period must be month or total");
		return -1;
	}
	return 0;
}

/* Runs one UPDATE of a project's row with $1 = name, $2 = value. */
static int
update_project(PGconn *c, const char *sql, const char *name, const char *value)
{
	const char *p[2] = { name, value };
	PGresult *r = query(c, sql, 2, p);

	if (r == NULL)
		return -1;
	PQclear(r);
	return 0;
}

/* NULL for "none", else the text. */
static const char *
value_or_null(const char *v)
{
	return strcmp(v, "none") == 0 ? NULL : v;
}

/* Applies the given limits to a project in one transaction. */
static int
apply_limits(PGconn *c, const char *name, const struct limits *l)
{
	PGresult *r = query(c, "BEGIN", 0, NULL);
	int ok = r != NULL;

	PQclear(r);
	if (ok && l->rpm != NULL)
		ok = update_project(c, "UPDATE projects SET rpm = $2::integer WHERE name = $1",
		    name, value_or_null(l->rpm)) == 0;
	if (ok && l->tpm != NULL)
		ok = update_project(c, "UPDATE projects SET tpm = $2::integer WHERE name = $1",
		    name, value_or_null(l->tpm)) == 0;
	if (ok && l->cap != NULL)
		ok = update_project(c, "UPDATE projects SET spend_cap = $2::numeric WHERE name = $1",
		    name, value_or_null(l->cap)) == 0;
	if (ok && l->models != NULL)
		ok = update_project(c, "UPDATE projects SET allowed_models = "
		    "coalesce(array(SELECT DISTINCT trim(m) FROM unnest(string_to_array($2, ',')) m "
		    "WHERE trim(m) <> '' ORDER BY 1), '{}') WHERE name = $1",
		    name, strcmp(l->models, "none") == 0 ? "" : l->models) == 0;
	if (ok && l->period != NULL)
		ok = update_project(c, "SELECT mg_set_period(id, $2) FROM projects "
		    "WHERE name = $1 AND cap_period <> $2", name, l->period) == 0;
	r = query(c, ok ? "COMMIT" : "ROLLBACK", 0, NULL);
	ok = ok && r != NULL;
	PQclear(r);
	return ok ? 0 : 1;
}

static int
cmd_project_create(PGconn *c, const char *name, int argc, char **argv)
{
	const char *p[1] = { name };
	struct limits l;
	PGresult *r;
	int created;

	if (!valid_name(name))
		return fail("invalid project name '%s': use 1-64 letters, digits, '.', '_' or '-', "
		    "starting with a letter or digit", name);
	if (parse_limits(argc, argv, 3, &l) < 0)
		return 2;
	r = query(c, "BEGIN", 0, NULL);
	if (r == NULL)
		return 1;
	PQclear(r);
	r = query(c, "INSERT INTO projects (name) VALUES ($1) "
	    "ON CONFLICT (name) DO NOTHING RETURNING id", 1, p);
	if (r == NULL)
		return 1;
	created = PQntuples(r) == 1;
	PQclear(r);
	if (!created) {
		PQclear(query(c, "ROLLBACK", 0, NULL));
		return fail("project '%s' already exists", name);
	}
	PQclear(query(c, "COMMIT", 0, NULL));
	if (apply_limits(c, name, &l) != 0)
		return 1;
	printf("created project %s\n", name);
	return 0;
}

static int
cmd_project_set(PGconn *c, const char *name, int argc, char **argv)
{
	struct limits l;

	if (parse_limits(argc, argv, 3, &l) < 0)
		return 2;
	if (argc <= 3)
		return fail("project set: give at least one of --rpm, --tpm, --spend-cap, --period, --models");
	if (project_exists(c, name) != 1)
		return 1;
	if (apply_limits(c, name, &l) != 0)
		return 1;
	printf("updated project %s\n", name);
	return 0;
}

static int
cmd_project_list(PGconn *c, int as_json)
{
	PGresult *r = query(c,
	    "SELECT p.name, " ISO_TIME("p.created_at") " AS created_at, "
	    "(SELECT count(*) FROM api_keys k WHERE k.project_id = p.id "
	    " AND k.revoked_at IS NULL)::integer AS keys, "
	    "p.rpm, p.tpm, p.spend_cap::text AS spend_cap, p.cap_period AS period, "
	    ISO_TIME("mg_period_start(p.cap_period, now())") " AS period_start, "
	    "(CASE WHEN q.period_start >= mg_period_start(p.cap_period, now()) "
	    " THEN trim_scale(q.spent) ELSE 0 END)::text AS spent, "
	    "trim_scale(q.reserved)::text AS reserved, "
	    "CASE WHEN cardinality(p.allowed_models) = 0 THEN NULL "
	    " ELSE array_to_string(p.allowed_models, ',') END AS models "
	    "FROM projects p LEFT JOIN project_quota q ON q.project_id = p.id "
	    "ORDER BY p.name", 0, NULL);

	if (r == NULL)
		return 1;
	print_rows(r, as_json);
	PQclear(r);
	return 0;
}

static int
cmd_key_create(PGconn *c, const char *project, const char *label)
{
	char key[MG_APIKEY_LEN + 1], prefix[MG_APIKEY_PREFIX_LEN + 1];
	char hash[MG_APIKEY_HASH_HEX_LEN + 1];
	const char *p[4];
	PGresult *r;
	int ok;

	if (mg_apikey_generate(key) != MG_OK)
		return fail("the operating system gave no random bytes");
	mg_apikey_prefix(key, prefix);
	if (mg_apikey_hash_hex(key, strlen(key), hash) != MG_OK)
		return fail("cannot compute the key's SHA-256 (libcrypto failed)");
	p[0] = project;
	p[1] = prefix;
	p[2] = hash;
	p[3] = label;
	r = query(c, "INSERT INTO api_keys (project_id, prefix, key_hash, name) "
	    "SELECT id, $2, decode($3, 'hex'), $4 FROM projects WHERE name = $1 RETURNING id", 4, p);
	if (r == NULL)
		return 1;
	ok = PQntuples(r) == 1;
	PQclear(r);
	if (!ok)
		return fail("no project named '%s'", project);
	printf("%s\n", key);
	fflush(stdout);
	memset(key, 0, sizeof(key));
	fprintf(stderr, "modelgate: key %s created for project %s; it is shown only this once\n",
	    prefix, project);
	return 0;
}

static int
project_exists(PGconn *c, const char *project)
{
	const char *p[1] = { project };
	PGresult *r = query(c, "SELECT 1 FROM projects WHERE name = $1", 1, p);
	int found;

	if (r == NULL)
		return -1;
	found = PQntuples(r) == 1;
	PQclear(r);
	if (!found)
		fail("no project named '%s'", project);
	return found;
}

static int
cmd_key_list(PGconn *c, const char *project, int as_json)
{
	const char *p[1] = { project };
	PGresult *r;

	if (project_exists(c, project) != 1)
		return 1;
	r = query(c, "SELECT k.prefix, k.name, " ISO_TIME("k.created_at") " AS created_at, "
	    ISO_TIME("k.revoked_at") " AS revoked_at "
	    "FROM api_keys k JOIN projects p ON p.id = k.project_id "
	    "WHERE p.name = $1 ORDER BY k.created_at, k.id", 1, p);
	if (r == NULL)
		return 1;
	print_rows(r, as_json);
	PQclear(r);
	return 0;
}

static int
cmd_key_revoke(PGconn *c, const char *which)
{
	char hash[MG_APIKEY_HASH_HEX_LEN + 1];
	const char *p[1];
	PGresult *r;
	int n;

	if (mg_apikey_valid(which, strlen(which))) {
		if (mg_apikey_hash_hex(which, strlen(which), hash) != MG_OK)
			return fail("cannot compute the key's SHA-256 (libcrypto failed)");
		p[0] = hash;
		r = query(c, "UPDATE api_keys SET revoked_at = now() "
		    "WHERE key_hash = decode($1, 'hex') AND revoked_at IS NULL RETURNING prefix", 1, p);
	} else {
		p[0] = which;
		/* revoke only when the prefix names exactly one live key */
		r = query(c, "WITH m AS (SELECT id FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL) "
		    "UPDATE api_keys SET revoked_at = now() "
		    "WHERE id IN (SELECT id FROM m) AND (SELECT count(*) FROM m) = 1 RETURNING prefix", 1, p);
		if (r != NULL && PQntuples(r) == 0) {
			PGresult *cnt;

			PQclear(r);
			cnt = query(c, "SELECT count(*) FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL", 1, p);
			if (cnt == NULL)
				return 1;
			n = (int)strtol(PQgetvalue(cnt, 0, 0), NULL, 10);
			PQclear(cnt);
			if (n > 1)
				return fail("prefix '%s' matches %d keys; revoke with the whole key", which, n);
			return fail("no live key with prefix '%s'", which);
		}
	}
	if (r == NULL)
		return 1;
	n = PQntuples(r);
	if (n == 1)
		printf("revoked key %s\n", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (n != 1)
		return fail("no live key matches");
	return 0;
}

static int
cmd_reap(const struct mg_conf *conf, PGconn *c)
{
	char grace[16];
	const char *p[1] = { grace };
	PGresult *r;

	snprintf(grace, sizeof(grace), "%d", conf->reap_after);
	r = query(c, "SELECT mg_reap($1)", 1, p);
	if (r == NULL)
		return 1;
	printf("reaped %s requests older than %d s (charged at their reserved amount)\n",
	    PQgetvalue(r, 0, 0), conf->reap_after);
	PQclear(r);
	return 0;
}

static int
cmd_models_sync(const struct mg_conf *conf, PGconn *c)
{
	struct mg_upstream *up = mg_upstream_new(conf);
	char err[MG_ERR_DETAIL_LEN], *rows = NULL;
	const char *p[1];
	PGresult *r;
	int n = 0;

	if (up == NULL)
		return fail("out of memory");
	if (mg_catalog_fetch(up, (size_t)conf->up_max_response, &rows, &n, err, sizeof(err)) != MG_OK) {
		mg_upstream_free(up);
		return fail("model list from %s: %s", conf->up_base_url, err);
	}
	mg_upstream_free(up);
	p[0] = rows;
	r = query(c, "SELECT mg_catalog_replace($1::jsonb)", 1, p);
	free(rows);
	if (r == NULL)
		return 1;
	printf("catalog: %s models from %s\n", PQgetvalue(r, 0, 0), conf->up_base_url);
	PQclear(r);
	return 0;
}

static int
cmd_models_list(PGconn *c, int as_json)
{
	PGresult *r = query(c, "SELECT id, kind, context_length, prompt_price::text AS prompt_price, "
	    "completion_price::text AS completion_price, " ISO_TIME("synced_at") " AS synced_at "
	    "FROM models ORDER BY id", 0, NULL);

	if (r == NULL)
		return 1;
	print_rows(r, as_json);
	PQclear(r);
	return 0;
}

/* Finds "--name VALUE" style options; NULL if absent. */
static const char *
option_value(int argc, char **argv, const char *name)
{
	int i;

	for (i = 0; i + 1 < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return argv[i + 1];
	return NULL;
}

/* Checks that every word from start on is a known flag (with its value). */
static int
only_known(int argc, char **argv, int start, const char *flag, const char *valued)
{
	int i;

	for (i = start; i < argc; i++) {
		if (flag != NULL && strcmp(argv[i], flag) == 0)
			continue;
		if (valued != NULL && strcmp(argv[i], valued) == 0 && i + 1 < argc) {
			i++;
			continue;
		}
		return 0;
	}
	return 1;
}

static int
dispatch(const struct mg_conf *conf, PGconn *c, const char *sql_dir, int argc, char **argv)
{
	const char *cmd = argv[0], *sub = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "db") == 0 && strcmp(sub, "migrate") == 0 && argc == 2)
		return cmd_migrate(c, sql_dir);
	if (strcmp(cmd, "project") == 0) {
		if (strcmp(sub, "create") == 0 && argc >= 3)
			return cmd_project_create(c, argv[2], argc, argv);
		if (strcmp(sub, "set") == 0 && argc >= 3)
			return cmd_project_set(c, argv[2], argc, argv);
		if (strcmp(sub, "list") == 0 && only_known(argc, argv, 2, "--json", NULL))
			return cmd_project_list(c, has_flag(argc, argv, "--json"));
	}
	if (strcmp(cmd, "key") == 0) {
		if (strcmp(sub, "create") == 0 && argc >= 3 && only_known(argc, argv, 3, NULL, "--name"))
			return cmd_key_create(c, argv[2], option_value(argc, argv, "--name"));
		if (strcmp(sub, "list") == 0 && argc >= 3 && only_known(argc, argv, 3, "--json", NULL))
			return cmd_key_list(c, argv[2], has_flag(argc, argv, "--json"));
		if (strcmp(sub, "revoke") == 0 && argc == 3)
			return cmd_key_revoke(c, argv[2]);
	}
	if (strcmp(cmd, "reap") == 0 && argc == 1)
		return cmd_reap(conf, c);
	if (strcmp(cmd, "models") == 0) {
		if (strcmp(sub, "sync") == 0 && argc == 2)
			return cmd_models_sync(conf, c);
		if (strcmp(sub, "list") == 0 && only_known(argc, argv, 2, "--json", NULL))
			return cmd_models_list(c, has_flag(argc, argv, "--json"));
	}
	return usage_error("unknown command or wrong arguments");
}

static int
known_command(int argc, char **argv)
{
	static const char *const words[] = { "db", "project", "key", "reap", "models", NULL };
	int i;

	(void)argc;
	for (i = 0; words[i] != NULL; i++)
		if (strcmp(argv[0], words[i]) == 0)
			return 1;
	return 0;
}

int
mg_cli_run(const struct mg_conf *conf, const char *sql_dir, int argc, char **argv)
{
	PGconn *c;
	int status;

	if (argc < 1)
		return usage_error("no command given");
	if (strcmp(argv[0], "config") == 0) {
		if (argc == 2 && strcmp(argv[1], "check") == 0) {
			printf("%s: ok\n", conf->file);
			return 0;
		}
		if (argc == 2 && strcmp(argv[1], "dump") == 0) {
			mg_conf_dump(conf, stdout);
			return 0;
		}
		return usage_error("unknown config command");
	}
	if (!known_command(argc, argv))
		return usage_error("unknown command");
	c = db_connect(conf);
	if (c == NULL)
		return 1;
	status = dispatch(conf, c, sql_dir, argc, argv);
	PQfinish(c);
	return status;
}
