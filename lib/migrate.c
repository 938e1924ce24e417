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
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		return MG_ERR_IO;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (mg_buf_add(out, chunk, n) != MG_OK) {
			fclose(f);
			snprintf(err, errlen, "%s is too large", path);
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

	if (!ok)
		snprintf(err, errlen, "%s", PQerrorMessage(c));
	PQclear(r);
	return ok;
}

static const char lock_sql[] = "SELECT pg_advisory_xact_lock(727217001)";

/* Applies one file unless recorded; *done is 1 if it ran now. */
static enum mg_err
apply_one(PGconn *c, const char *dir, const char *name, int version, int *done,
    char *err, size_t errlen)
{
	char path[4096], vtext[16];
	const char *params[2];
	struct mg_buf sql;
	PGresult *r;
	enum mg_err rc = MG_ERR_DB;
	int have;

	*done = 0;
	snprintf(vtext, sizeof(vtext), "%d", version);
	if (!exec_ok(c, "BEGIN", err, errlen) || !exec_ok(c, lock_sql, err, errlen))
		return MG_ERR_DB;
	params[0] = vtext;
	r = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE version = $1",
	    1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		PQclear(r);
		goto rollback;
	}
	have = PQntuples(r) > 0;
	PQclear(r);
	if (have) {
		exec_ok(c, "COMMIT", err, errlen);
		return MG_OK;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	mg_buf_init(&sql, MAX_SQL_FILE);
	rc = read_file(path, &sql, err, errlen);
	if (rc == MG_OK && !exec_ok(c, mg_buf_str(&sql), err, errlen)) {
		size_t used = strlen(err);

		snprintf(err + used, errlen - used, " (in %s)", path);
		rc = MG_ERR_DB;
	}
	mg_buf_free(&sql);
	if (rc != MG_OK)
		goto rollback;
	params[1] = name;
	r = PQexecParams(c, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
	    2, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		PQclear(r);
		rc = MG_ERR_DB;
		goto rollback;
	}
	PQclear(r);
	if (!exec_ok(c, "COMMIT", err, errlen))
		return MG_ERR_DB;
	*done = 1;
	return MG_OK;
rollback:
	{
		char ignored[64];

		exec_ok(c, "ROLLBACK", ignored, sizeof(ignored));
	}
	return rc == MG_OK ? MG_ERR_DB : rc;
}

enum mg_err
mg_migrate(PGconn *c, const char *sql_dir, int *applied, int *version,
    char *err, size_t errlen)
{
	char *names[MAX_MIGRATIONS];
	size_t count = 0, i;
	struct dirent *de;
	enum mg_err rc = MG_OK;
	DIR *d;

	*applied = 0;
	*version = 0;
	d = opendir(sql_dir);
	if (d == NULL) {
		snprintf(err, errlen, "cannot open the SQL directory %s: %s", sql_dir, strerror(errno));
		return MG_ERR_IO;
	}
	while ((de = readdir(d)) != NULL && count < MAX_MIGRATIONS) {
		if (migration_version(de->d_name) < 0)
			continue;
		names[count] = strdup(de->d_name);
		if (names[count] == NULL) {
			rc = MG_ERR_NOMEM;
			break;
		}
		count++;
	}
	closedir(d);
	if (rc == MG_OK && count == 0) {
		snprintf(err, errlen, "no migrations (NNN_name.sql) in %s", sql_dir);
		rc = MG_ERR_NOT_FOUND;
	}
	if (rc != MG_OK)
		goto out;
	qsort(names, count, sizeof(names[0]), by_name);
	if (!exec_ok(c, "SET client_min_messages = warning", err, errlen) ||
	    !exec_ok(c, "BEGIN", err, errlen) || !exec_ok(c, lock_sql, err, errlen) ||
	    !exec_ok(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	        "version integer PRIMARY KEY, name text NOT NULL, "
	        "applied_at timestamptz NOT NULL DEFAULT now())", err, errlen) ||
	    !exec_ok(c, "COMMIT", err, errlen)) {
		rc = MG_ERR_DB;
		goto out;
	}
	for (i = 0; i < count; i++) {
		int v = migration_version(names[i]), done;

		if (i > 0 && v == migration_version(names[i - 1])) {
			snprintf(err, errlen, "two migrations share version %03d in %s", v, sql_dir);
			rc = MG_ERR_INVALID;
			goto out;
		}
		rc = apply_one(c, sql_dir, names[i], v, &done, err, errlen);
		if (rc != MG_OK)
			goto out;
		*applied += done;
		*version = v;
	}
out:
	for (i = 0; i < count; i++)
		free(names[i]);
	return rc;
}
