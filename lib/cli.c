#include "config.h"

#include <json-c/json.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apikey.h"
#include "cli.h"
#include "migrate.h"

#define ISO_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

void
mg_cli_usage(FILE *out)
{
	fputs("usage: modelgate [-c FILE] [--sql-dir DIR] COMMAND\n"
	    "\n"
	    "commands:\n"
	    "  db migrate                            apply the SQL migrations\n"
	    "  project create NAME                   create a project\n"
	    "  project list [--json]                 list projects\n"
	    "  key create PROJECT [--name LABEL]     create a key (printed once)\n"
	    "  key list PROJECT [--json]             list a project's keys\n"
	    "  key revoke PREFIX                     revoke a key by prefix (or whole key)\n"
	    "  config check                          validate the configuration file\n"
	    "  config dump                           print the effective configuration\n"
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
	char err[1024];
	int applied, version;

	if (mg_migrate(c, sql_dir, &applied, &version, err, sizeof(err)) != MG_OK)
		return fail("migration failed: %s", err);
	printf("migrations: %d applied, schema version %d\n", applied, version);
	return 0;
}

static int
cmd_project_create(PGconn *c, const char *name)
{
	const char *p[1] = { name };
	PGresult *r;
	int created;

	if (!valid_name(name))
		return fail("invalid project name '%s': use 1-64 letters, digits, '.', '_' or '-', "
		    "starting with a letter or digit", name);
	r = query(c, "INSERT INTO projects (name) VALUES ($1) ON CONFLICT (name) DO NOTHING RETURNING id", 1, p);
	if (r == NULL)
		return 1;
	created = PQntuples(r) == 1;
	PQclear(r);
	if (!created)
		return fail("project '%s' already exists", name);
	printf("created project %s\n", name);
	return 0;
}

static int
cmd_project_list(PGconn *c, int as_json)
{
	PGresult *r = query(c,
	    "SELECT p.name, " ISO_TIME("p.created_at") " AS created_at, "
	    "count(k.id) FILTER (WHERE k.revoked_at IS NULL)::integer AS keys "
	    "FROM projects p LEFT JOIN api_keys k ON k.project_id = p.id "
	    "GROUP BY p.id ORDER BY p.name", 0, NULL);

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
	mg_apikey_hash_hex(key, strlen(key), hash);
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
		mg_apikey_hash_hex(which, strlen(which), hash);
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
dispatch(PGconn *c, const char *sql_dir, int argc, char **argv)
{
	const char *cmd = argv[0], *sub = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "db") == 0 && strcmp(sub, "migrate") == 0 && argc == 2)
		return cmd_migrate(c, sql_dir);
	if (strcmp(cmd, "project") == 0) {
		if (strcmp(sub, "create") == 0 && argc == 3)
			return cmd_project_create(c, argv[2]);
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
	return usage_error("unknown command or wrong arguments");
}

static int
known_command(int argc, char **argv)
{
	static const char *const words[] = { "db", "project", "key", NULL };
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
	status = dispatch(c, sql_dir, argc, argv);
	PQfinish(c);
	return status;
}
