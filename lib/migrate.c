/* migrate.c -- `modelgate db migrate`: applies the numbered schema files not yet
 * recorded, then every function file of sql/functions/, in one
 * advisory-locked transaction.  Called by the CLI. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "migrate.h"

#define MAX_MIGRATIONS 1000
#define MAX_SQL_FILE (16 * 1024 * 1024)

/* Migration files are named NNN_description.sql. */
static int
migration_version(const char *name)
{
	size_t n = strlen(name);

	if (n < 9 || strcmp(name + n - 4, ".sql") != 0 || name[3] != '_')
		return -1;
	if (name[0] < '0' || name[0] > '9' || name[1] < '0' || name[1] > '9' ||
	    name[2] < '0' || name[2] > '9')
		return -1;
	return (name[0] - '0') * 100 + (name[1] - '0') * 10 + (name[2] - '0');
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum mg_err
read_file(const char *path, struct mg_buf *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char chunk[8192];
	size_t n;

	if (f == NULL) {
		mg_err_detail(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return MG_ERR_IO;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (mg_buf_add(out, chunk, n) != MG_OK) {
			fclose(f);
			mg_err_detail(err, errlen, "%s is too large", path);
			return MG_ERR_TOO_BIG;
		}
	}
	fclose(f);
	return MG_OK;
}

static int
exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok) {
		const char *msg = PQerrorMessage(c);
		size_t n = strlen(msg);

		/* libpq's text ends in a newline: the detail is one line */
		while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
			n--;
		mg_err_detail(err, errlen, "%.*s", (int)n, msg);
	}
	PQclear(r);
	return ok;
}

static const char lock_sql[] = "SELECT pg_advisory_xact_lock(727217001)";

/* Appends " (in PATH)" to the message in err. */
static void
name_file(char *err, size_t errlen, const char *path)
{
	size_t used = strlen(err);

	if (used < errlen)
		snprintf(err + used, errlen - used, " (in %s)", path);
}

/* Runs the SQL of one file in the open transaction. */
static enum mg_err
run_file(PGconn *c, const char *dir, const char *name, char *err, size_t errlen)
{
	char path[4096];
	struct mg_buf sql;
	enum mg_err rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path)) {
		mg_err_detail(err, errlen, "path too long: %s/%s", dir, name);
		return MG_ERR_INVALID;
	}
	mg_buf_init(&sql, MAX_SQL_FILE);
	rc = read_file(path, &sql, err, errlen);
	if (rc == MG_OK && !exec_ok(c, mg_buf_str(&sql), err, errlen)) {
		name_file(err, errlen, path);
		rc = MG_ERR_DB;
	}
	mg_buf_free(&sql);
	return rc;
}

/* The names in dir that accept() takes, sorted; *count of them.  The
 * caller frees each name.  MG_ERR_NOT_FOUND when dir cannot be opened. */
static enum mg_err
list_dir(const char *dir, int (*accept)(const char *), char **names, size_t *count,
    char *err, size_t errlen)
{
	struct dirent *de;
	enum mg_err rc = MG_OK;
	DIR *d;

	*count = 0;
	d = opendir(dir);
	if (d == NULL) {
		mg_err_detail(err, errlen, "cannot open the SQL directory %s: %s", dir, strerror(errno));
		return MG_ERR_NOT_FOUND;
	}
	while ((de = readdir(d)) != NULL) {
		if (!accept(de->d_name))
			continue;
		if (*count == MAX_MIGRATIONS) {
			mg_err_detail(err, errlen, "more than %d SQL files in %s", MAX_MIGRATIONS, dir);
			rc = MG_ERR_TOO_BIG;
			break;
		}
		names[*count] = strdup(de->d_name);
		if (names[*count] == NULL) {
			mg_err_detail(err, errlen, "out of memory");
			rc = MG_ERR_NOMEM;
			break;
		}
		(*count)++;
	}
	closedir(d);
	qsort(names, *count, sizeof(names[0]), by_name);
	return rc;
}

static int
is_migration(const char *name)
{
	return migration_version(name) >= 0;
}

/* Function files: any NAME.sql not starting with a dot. */
static int
is_function_file(const char *name)
{
	size_t n = strlen(name);

	return n > 4 && name[0] != '.' && strcmp(name + n - 4, ".sql") == 0;
}

/* The versions recorded in schema_migrations, as a bitmap over 0..999;
 * *highest is the highest (0 when none). */
static enum mg_err
recorded_versions(PGconn *c, unsigned char have[MAX_MIGRATIONS], int *highest,
    char *err, size_t errlen)
{
	PGresult *r = PQexec(c, "SELECT version FROM schema_migrations");
	int i, n;

	*highest = 0;
	memset(have, 0, MAX_MIGRATIONS);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		mg_err_detail(err, errlen, "%s", PQerrorMessage(c));
		PQclear(r);
		return MG_ERR_DB;
	}
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		long v = strtol(PQgetvalue(r, i, 0), NULL, 10);

		if (v >= 0 && v < MAX_MIGRATIONS) {
			have[v] = 1;
			if (v > *highest)
				*highest = (int)v;
		}
	}
	PQclear(r);
	return MG_OK;
}

static enum mg_err
record_version(PGconn *c, int version, const char *name, char *err, size_t errlen)
{
	char vtext[16];
	const char *params[2];
	PGresult *r;
	enum mg_err rc = MG_OK;

	snprintf(vtext, sizeof(vtext), "%d", version);
	params[0] = vtext;
	params[1] = name;
	r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		mg_err_detail(err, errlen, "%s", PQerrorMessage(c));
		rc = MG_ERR_DB;
	}
	PQclear(r);
	return rc;
}

/* The numbered files not recorded yet, then every function file; all in
 * the caller's transaction. */
static enum mg_err
apply_all(PGconn *c, const char *sql_dir, char **names, size_t count, int *applied,
    int *version, char *err, size_t errlen)
{
	unsigned char have[MAX_MIGRATIONS];
	char fdir[4096], *fnames[MAX_MIGRATIONS];
	size_t i, fcount = 0;
	int highest, oldest = migration_version(names[0]);
	enum mg_err rc;

	rc = recorded_versions(c, have, &highest, err, errlen);
	if (rc != MG_OK)
		return rc;
	if (highest > 0 && highest < oldest) {
		mg_err_detail(err, errlen, "the database is at schema version %d, older than the "
		    "oldest this modelgate upgrades from (%d): migrate it with the modelgate "
		    "release that made it first", highest, oldest);
		return MG_ERR_INVALID;
	}
	for (i = 0; i < count; i++) {
		int v = migration_version(names[i]);

		if (i > 0 && v == migration_version(names[i - 1])) {
			mg_err_detail(err, errlen, "two migrations share version %03d in %s", v, sql_dir);
			return MG_ERR_INVALID;
		}
		*version = v;
		if (have[v])
			continue;
		rc = run_file(c, sql_dir, names[i], err, errlen);
		if (rc == MG_OK)
			rc = record_version(c, v, names[i], err, errlen);
		if (rc != MG_OK)
			return rc;
		(*applied)++;
	}
	if (highest > *version)
		*version = highest;
	if ((size_t)snprintf(fdir, sizeof(fdir), "%s/functions", sql_dir) >= sizeof(fdir)) {
		mg_err_detail(err, errlen, "path too long: %s/functions", sql_dir);
		return MG_ERR_INVALID;
	}
	rc = list_dir(fdir, is_function_file, fnames, &fcount, err, errlen);
	for (i = 0; rc == MG_OK && i < fcount; i++)
		rc = run_file(c, fdir, fnames[i], err, errlen);
	for (i = 0; i < fcount; i++)
		free(fnames[i]);
	return rc;
}

enum mg_err
mg_migrate(PGconn *c, const char *sql_dir, int *applied, int *version,
    char *err, size_t errlen)
{
	char *names[MAX_MIGRATIONS];
	size_t count = 0, i;
	enum mg_err rc;

	*applied = 0;
	*version = 0;
	rc = list_dir(sql_dir, is_migration, names, &count, err, errlen);
	if (rc == MG_ERR_NOT_FOUND)
		rc = MG_ERR_IO;
	if (rc == MG_OK && count == 0) {
		mg_err_detail(err, errlen, "no migrations (NNN_name.sql) in %s", sql_dir);
		rc = MG_ERR_NOT_FOUND;
	}
	if (rc != MG_OK)
		goto out;
	if (!exec_ok(c, "SET client_min_messages = warning", err, errlen) ||
	    !exec_ok(c, "BEGIN", err, errlen) || !exec_ok(c, lock_sql, err, errlen) ||
	    !exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	        "version integer PRIMARY KEY, name text NOT NULL, "
	        "applied_at timestamptz NOT NULL DEFAULT now())", err, errlen)) {
		rc = MG_ERR_DB;
		goto rollback;
	}
	rc = apply_all(c, sql_dir, names, count, applied, version, err, errlen);
	if (rc != MG_OK)
		goto rollback;
	if (!exec_ok(c, "COMMIT", err, errlen))
		rc = MG_ERR_DB;
	if (rc != MG_OK)
		*applied = 0;
	goto out;
rollback:
	{
		char ignored[64];

		exec_ok(c, "ROLLBACK", ignored, sizeof(ignored));
	}
	*applied = 0;
out:
	for (i = 0; i < count; i++)
		free(names[i]);
	return rc;
}
