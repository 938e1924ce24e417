#include "config.h"

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "unit.h"

#define KEY_ENV "MG_UNIT_TEST_UPSTREAM_KEY"
#define TEXT_10 "aaaaaaaaaa"
#define TEXT_100 TEXT_10 TEXT_10 TEXT_10 TEXT_10 TEXT_10 TEXT_10 TEXT_10 TEXT_10 TEXT_10 TEXT_10
#define TEXT_1001 TEXT_100 TEXT_100 TEXT_100 TEXT_100 TEXT_100 TEXT_100 TEXT_100 TEXT_100 \
	TEXT_100 TEXT_100 "a"

/* One temporary directory per test case, made and removed by the parent
 * (unchecked fixture), so it goes away even when a forked test fails. */
static char tmpdir[64];

static void
make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mg-test-conf-XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		abort();
	}
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
remove_tmpdir(void)
{
	if (tmpdir[0] != '\0')
		nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	tmpdir[0] = '\0';
}

/* Writes text into tmpdir/name; path receives the full name. */
static void
write_file(const char *name, const char *text, char *path, size_t pathlen)
{
	FILE *f;

	ck_assert_int_lt(snprintf(path, pathlen, "%s/%s", tmpdir, name), (int)pathlen);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* The whole text that mg_conf_dump writes; free it. */
static char *
dump_text(const struct mg_conf *c)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	mg_conf_dump(c, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(text);
	return text;
}

static void
assert_defaults(const struct mg_conf *c)
{
	ck_assert_str_eq(c->log_level_name, "info");
	ck_assert_int_eq(c->log_level, MG_LOG_INFO);
	ck_assert_str_eq(c->log_file, "");
	ck_assert_str_eq(c->db_conninfo, "dbname=modelgate");
	ck_assert_int_eq(c->db_pool_size, 4);
	ck_assert_int_eq(c->db_connect_timeout, 5);
	ck_assert_str_eq(c->up_base_url, "https://openrouter.ai/api/v1");
	ck_assert_str_eq(c->up_key_file, "");
	ck_assert_str_eq(c->up_key_env, "OPENROUTER_API_KEY");
	ck_assert_int_eq(c->up_connect_timeout, 10);
	ck_assert_int_eq(c->up_timeout, 600);
	ck_assert_int_eq(c->up_max_response, 67108864);
	ck_assert_str_eq(c->up_referer, "");
	ck_assert_str_eq(c->up_title, "");
	ck_assert_int_eq(c->threads, 16);
	ck_assert_int_eq(c->max_body, 33554432);
	ck_assert_int_eq(c->shutdown_grace, 30);
	ck_assert_int_eq(c->heartbeat_interval, 5);
	ck_assert_str_eq(c->client_close_name, "abort");
	ck_assert_int_eq(c->drain, 0);
	ck_assert_int_eq(c->max_drains, 64);
	ck_assert_int_eq(c->malloc_arenas, 2);
	ck_assert_int_eq(c->default_max_tokens, 4096);
	ck_assert_str_eq(c->fallback_prompt_price, "0.00001");
	ck_assert_str_eq(c->fallback_completion_price, "0.00003");
	ck_assert_int_eq(c->reap_after, 900);
	ck_assert_str_eq(c->admission_name, "strict");
	ck_assert_int_eq(c->lease, 0);
	ck_assert_int_eq(c->lease_timeout, 30);
	ck_assert_int_eq(c->reap_interval, 60);
	ck_assert_int_eq(c->catalog_refresh, 3600);
}

static void
example_path(char *path, size_t len)
{
	const char *src = getenv("MG_SRCDIR");

	ck_assert_msg(src != NULL && src[0] != '\0', "MG_SRCDIR is not set");
	ck_assert_int_lt(snprintf(path, len, "%s/deploy/modelgate.conf", src), (int)len);
}

/* --- defaults ---------------------------------------------------------- */

START_TEST(defaults_documented)
{
	struct mg_conf c;

	ck_assert_int_eq(mg_conf_defaults(&c), MG_OK);
	assert_defaults(&c);
	ck_assert_ptr_null(c.up_key);
	ck_assert_ptr_null(c.file);
	mg_conf_free(&c);
	/* free twice is harmless: the pointers were cleared */
	mg_conf_free(&c);
	mg_conf_free(NULL);
}
END_TEST

/* deploy/modelgate.conf says its values ARE the built-in defaults */
START_TEST(example_file_is_the_defaults)
{
	struct mg_conf c, d;
	char path[4096], err[1024] = "";
	char *a, *b;

	unsetenv("OPENROUTER_API_KEY");
	example_path(path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "example: %s", err);
	ck_assert_str_eq(c.file, path);
	assert_defaults(&c);
	ck_assert_ptr_null(c.up_key);
	ck_assert_int_eq(mg_conf_defaults(&d), MG_OK);
	a = dump_text(&c);
	b = dump_text(&d);
	ck_assert_str_eq(a, b);
	free(a);
	free(b);
	mg_conf_free(&c);
	mg_conf_free(&d);
}
END_TEST

/* --- a valid file with every group ------------------------------------ */

START_TEST(load_full_file)
{
	struct mg_conf c;
	char path[512], keypath[512], text[2048], err[1024] = "";

	write_file("full.key", "sk-full-file-key\n", keypath, sizeof(keypath));
	snprintf(text, sizeof(text),
	    "# every setting, none at its default\n"
	    "log_level = \"debug\";\n"
	    "log_file = \"/var/log/modelgate/mg.log\";\n"
	    "database = {\n"
	    "  conninfo = \"host=/run/postgresql dbname=gw\";\n"
	    "  pool_size = 8;\n"
	    "  connect_timeout = 7;\n"
	    "};\n"
	    "upstream = {\n"
	    "  base_url = \"http://127.0.0.1:11434/v1\";\n"
	    "  key_file = \"%s\";\n"
	    "  key_env = \"\";\n"
	    "  connect_timeout = 3;\n"
	    "  timeout = 120;\n"
	    "  max_response_bytes = 1048576;\n"
	    "  referer = \"https://example.org/\";\n"
	    "  title = \"Example App\";\n"
	    "};\n"
	    "server = {\n"
	    "  threads = 32;\n"
	    "  max_body_bytes = 2048;\n"
	    "  shutdown_grace = 0;\n"
	    "  heartbeat_interval = 15;\n"
	    "  client_close = \"drain\";\n"
	    "  max_drains = 3;\n"
	    "  malloc_arenas = 4;\n"
	    "};\n"
	    "quota = {\n"
	    "  admission = \"lease\";\n"
	    "  lease_timeout = 5;\n"
	    "};\n", keypath);
	write_file("full.conf", text, path, sizeof(path));

	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_str_eq(c.file, path);
	ck_assert_str_eq(c.log_level_name, "debug");
	ck_assert_int_eq(c.log_level, MG_LOG_DEBUG);
	ck_assert_str_eq(c.log_file, "/var/log/modelgate/mg.log");
	ck_assert_str_eq(c.db_conninfo, "host=/run/postgresql dbname=gw");
	ck_assert_int_eq(c.db_pool_size, 8);
	ck_assert_int_eq(c.db_connect_timeout, 7);
	ck_assert_str_eq(c.up_base_url, "http://127.0.0.1:11434/v1");
	ck_assert_str_eq(c.up_key_file, keypath);
	ck_assert_str_eq(c.up_key_env, "");
	ck_assert_int_eq(c.up_connect_timeout, 3);
	ck_assert_int_eq(c.up_timeout, 120);
	ck_assert_int_eq(c.up_max_response, 1048576);
	ck_assert_str_eq(c.up_referer, "https://example.org/");
	ck_assert_str_eq(c.up_title, "Example App");
	ck_assert_int_eq(c.threads, 32);
	ck_assert_int_eq(c.max_body, 2048);
	ck_assert_int_eq(c.shutdown_grace, 0);
	ck_assert_int_eq(c.heartbeat_interval, 15);
	ck_assert_int_eq(c.drain, 1);
	ck_assert_int_eq(c.max_drains, 3);
	ck_assert_int_eq(c.malloc_arenas, 4);
	ck_assert_int_eq(c.lease, 1);
	ck_assert_int_eq(c.lease_timeout, 5);
	ck_assert_str_eq(c.up_key, "sk-full-file-key");
	mg_conf_free(&c);
}
END_TEST

/* A partial file: absent keys keep their defaults. */
START_TEST(load_partial_keeps_defaults)
{
	struct mg_conf c;
	char path[512], err[1024] = "";

	write_file("partial.conf", "server = { threads = 2; };\n", path, sizeof(path));
	unsetenv("OPENROUTER_API_KEY");
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_int_eq(c.threads, 2);
	ck_assert_int_eq(c.max_body, 33554432);
	ck_assert_str_eq(c.db_conninfo, "dbname=modelgate");
	ck_assert_str_eq(c.up_base_url, "https://openrouter.ai/api/v1");
	mg_conf_free(&c);
}
END_TEST

START_TEST(load_boundaries_ok)
{
	struct mg_conf c;
	char path[512], err[1024] = "";

	write_file("bounds.conf",
	    "database = { pool_size = 256; connect_timeout = 1; };\n"
	    "server = { threads = 1; max_body_bytes = 1024; shutdown_grace = 3600;\n"
	    "  heartbeat_interval = 300; malloc_arenas = 1024; };\n"
	    "upstream = { timeout = 86400; max_response_bytes = 1073741824; };\n"
	    "quota = { reap_after = 604800; reap_interval = 86400; default_max_tokens = 0; };\n",
	    path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_int_eq(c.db_pool_size, 256);
	ck_assert_int_eq(c.db_connect_timeout, 1);
	ck_assert_int_eq(c.threads, 1);
	ck_assert_int_eq(c.max_body, 1024);
	ck_assert_int_eq(c.shutdown_grace, 3600);
	ck_assert_int_eq(c.heartbeat_interval, 300);
	ck_assert_int_eq(c.malloc_arenas, 1024);
	ck_assert_int_eq(c.up_timeout, 86400);
	ck_assert_int_eq(c.up_max_response, 1073741824);
	mg_conf_free(&c);
}
END_TEST

/* --- bad files --------------------------------------------------------- */

static const struct {
	const char *why;
	const char *text;
	int line;            /* the line the message must name */
	const char *names;   /* text the message must contain (the setting), or NULL */
} bad_files[] = {
	{ "unknown key at top level",
	  "log_level = \"info\";\nbogus = 1;\n", 2, "'bogus'" },
	{ "unknown key inside a group",
	  "# comment\ndatabase = {\n  pool_size = 4;\n  poolsize = 4;\n};\n", 4, "database.poolsize" },
	{ "unknown group",
	  "log_level = \"info\";\n\ndbase = {\n  conninfo = \"x\";\n};\n", 3, "dbase" },
	{ "group nested in a group",
	  "server = {\n  threads = 2;\n  extra = {\n    a = 1;\n  };\n};\n", 3, "server.extra" },
	{ "group name used as a top-level setting",
	  "server = 5;\n", 1, "server" },
	{ "string for an int",
	  "server = {\n  threads = \"16\";\n};\n", 2, "server.threads" },
	{ "int for a string",
	  "database = {\n\n  conninfo = 5;\n};\n", 3, "database.conninfo" },
	{ "bool for a top-level string",
	  "log_file = true;\n", 1, "log_file" },
	{ "float for an int",
	  "upstream = {\n  base_url = \"https://x/v1\";\n  timeout = 1.5;\n};\n", 3, "upstream.timeout" },
	{ "array for a string",
	  "log_level = [\"info\"];\n", 1, "log_level" },
	{ "threads = 0",
	  "server = {\n  threads = 0;\n};\n", 2, "server.threads" },
	{ "threads above the maximum",
	  "server = {\n  threads = 4097;\n};\n", 2, "server.threads" },
	{ "pool_size = 1000",
	  "database = {\n  conninfo = \"dbname=x\";\n  pool_size = 1000;\n};\n", 3, "database.pool_size" },
	{ "negative shutdown_grace",
	  "server = { shutdown_grace = -1; };\n", 1, "server.shutdown_grace" },
	{ "max_body_bytes below the minimum",
	  "\n\nserver = {\n  max_body_bytes = 1023;\n};\n", 4, "server.max_body_bytes" },
	{ "64-bit value out of an int's range",
	  "server = {\n  threads = 10000000000L;\n};\n", 2, "server.threads" },
	{ "bad log_level",
	  "# logging\nlog_file = \"\";\nlog_level = \"loud\";\n", 3, "log_level" },
	{ "bad admission",
	  "quota = {\n  admission = \"loose\";\n};\n", 2, "quota.admission" },
	{ "lease_timeout below the minimum",
	  "quota = {\n  lease_timeout = 2;\n};\n", 2, "quota.lease_timeout" },
	{ "bad client_close",
	  "server = {\n  threads = 2;\n  client_close = \"wait\";\n};\n", 3, "server.client_close" },
	{ "max_drains out of range",
	  "server = {\n  max_drains = -1;\n};\n", 2, "server.max_drains" },
	{ "malloc_arenas out of range",
	  "server = {\n  malloc_arenas = 1025;\n};\n", 2, "server.malloc_arenas" },
	{ "negative fallback price",
	  "quota = {\n  fallback_prompt_price = \"-0.1\";\n};\n", 2, "quota.fallback_prompt_price" },
	{ "fallback price in exponent form",
	  "quota = {\n\n  fallback_completion_price = \"1e-5\";\n};\n", 3, "quota.fallback_completion_price" },
	{ "reap_after not longer than the upstream timeout",
	  "upstream = { timeout = 60; };\nquota = {\n  reap_after = 60;\n};\n", 3, "quota.reap_after" },
	{ "empty log_level",
	  "log_level = \"\";\n", 1, "log_level" },
	{ "base_url without a scheme",
	  "upstream = {\n  key_env = \"\";\n  base_url = \"openrouter.ai/api/v1\";\n};\n", 3, "upstream.base_url" },
	{ "base_url with another scheme",
	  "upstream = {\n  base_url = \"ftp://example.com/v1\";\n};\n", 2, "upstream.base_url" },
	/* Regression test, once wrong in lib/conf.c validate(): "https://" passes the prefix check and
	 * the trailing-slash loop then turns it into "https:"; a base URL
	 * without a host must be refused. */
	{ "base_url without a host",
	  "upstream = {\n  base_url = \"https://\";\n};\n", 2, "upstream.base_url" },
	/* Regression test, once wrong in lib/conf.c validate() reports line_of(cfg, "upstream") -- the
	 * line of the group -- instead of the line of the referer setting. */
	{ "referer on two lines",
	  "upstream = {\n  timeout = 60;\n  referer = \"a\\nb\";\n};\n", 3, "upstream.referer" },
	/* Regression tests, once wrong in lib/conf.c validate(): a title
	 * with an escape character went upstream as it was; one longer than
	 * upstream.c's header line was cut short there without a word. */
	{ "title with a control character",
	  "upstream = {\n  title = \"a\\x1bb\";\n};\n", 2, "upstream.title" },
	{ "title longer than a header line holds",
	  "upstream = {\n\n  title = \"" TEXT_1001 "\";\n};\n", 3, "upstream.title" },
	{ "syntax error",
	  "log_level = \"info\";\nserver = {\n  threads = = 4;\n};\n", 3, NULL },
	{ "syntax error: unterminated group",
	  "log_level = \"info\";\n\n\nserver = {\n  threads = 4;\n", 6, NULL },
};

START_TEST(bad_file_table)
{
	struct mg_conf c;
	char path[512], name[64], err[1024] = "", where[600];
	enum mg_err rc;

	snprintf(name, sizeof(name), "bad-%d.conf", _i);
	write_file(name, bad_files[_i].text, path, sizeof(path));
	rc = mg_conf_load(&c, path, err, sizeof(err));
	if (rc == MG_OK)
		mg_conf_free(&c);   /* free before failing, so nothing leaks */
	ck_assert_msg(rc == MG_ERR_CONFIG, "%s: loaded without error", bad_files[_i].why);
	snprintf(where, sizeof(where), "%s:%d:", path, bad_files[_i].line);
	ck_assert_msg(strstr(err, where) != NULL, "%s: message '%s' does not name '%s'",
	    bad_files[_i].why, err, where);
	if (bad_files[_i].names != NULL)
		ck_assert_msg(strstr(err, bad_files[_i].names) != NULL,
		    "%s: message '%s' does not name '%s'", bad_files[_i].why, err, bad_files[_i].names);
	/* c was freed by mg_conf_load; freeing again is safe */
	ck_assert_ptr_null(c.file);
	ck_assert_ptr_null(c.up_base_url);
	ck_assert_ptr_null(c.up_key);
	mg_conf_free(&c);
}
END_TEST

START_TEST(missing_file)
{
	struct mg_conf c;
	char path[512], err[1024] = "";

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	ck_assert_int_eq(mg_conf_load(&c, path, err, sizeof(err)), MG_ERR_CONFIG);
	ck_assert_msg(strstr(err, path) != NULL, "message '%s' does not name the file", err);
	ck_assert_ptr_null(c.file);
	mg_conf_free(&c);
}
END_TEST

START_TEST(error_message_truncated_safely)
{
	struct mg_conf c;
	char path[512], err[16];

	write_file("trunc.conf", "bogus = 1;\n", path, sizeof(path));
	memset(err, 'X', sizeof(err));
	ck_assert_int_eq(mg_conf_load(&c, path, err, sizeof(err)), MG_ERR_CONFIG);
	ck_assert_ptr_nonnull(memchr(err, '\0', sizeof(err)));
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
}
END_TEST

/* --- the provider key -------------------------------------------------- */

static const struct {
	const char *content;
	const char *key;
} key_files[] = {
	{ "sk-or-v1-abc\n", "sk-or-v1-abc" },
	{ "sk-or-v1-abc", "sk-or-v1-abc" },
	{ "sk-crlf\r\n", "sk-crlf" },
	{ "sk-first\nsk-second\n", "sk-first" },
};

START_TEST(key_file_read)
{
	struct mg_conf c;
	char path[512], keypath[512], name[64], text[1024], err[1024] = "";

	snprintf(name, sizeof(name), "key-%d.txt", _i);
	write_file(name, key_files[_i].content, keypath, sizeof(keypath));
	snprintf(text, sizeof(text), "upstream = {\n  key_file = \"%s\";\n  key_env = \"%s\";\n};\n",
	    keypath, KEY_ENV);
	snprintf(name, sizeof(name), "key-%d.conf", _i);
	write_file(name, text, path, sizeof(path));
	/* key_file wins over key_env */
	setenv(KEY_ENV, "from-the-environment", 1);
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	unsetenv(KEY_ENV);
	ck_assert_ptr_nonnull(c.up_key);
	ck_assert_str_eq(c.up_key, key_files[_i].key);
	mg_conf_free(&c);
	ck_assert_ptr_null(c.up_key);
}
END_TEST

START_TEST(key_file_missing)
{
	struct mg_conf c;
	char path[512], text[1024], err[1024] = "", keypath[512], where[600];

	snprintf(keypath, sizeof(keypath), "%s/no-such.key", tmpdir);
	snprintf(text, sizeof(text), "upstream = {\n  timeout = 60;\n  key_file = \"%s\";\n};\n", keypath);
	write_file("keymissing.conf", text, path, sizeof(path));
	ck_assert_int_eq(mg_conf_load(&c, path, err, sizeof(err)), MG_ERR_CONFIG);
	snprintf(where, sizeof(where), "%s:3:", path);
	ck_assert_msg(strstr(err, where) != NULL, "'%s' does not name '%s'", err, where);
	ck_assert_msg(strstr(err, "key_file") != NULL, "'%s' does not name key_file", err);
	ck_assert_msg(strstr(err, keypath) != NULL, "'%s' does not name the key file", err);
	mg_conf_free(&c);
}
END_TEST

static const char *const empty_keys[] = { "", "\n", "\r\n" };

START_TEST(key_file_empty)
{
	struct mg_conf c;
	char path[512], keypath[512], name[64], text[1024], err[1024] = "";

	snprintf(name, sizeof(name), "empty-%d.key", _i);
	write_file(name, empty_keys[_i], keypath, sizeof(keypath));
	snprintf(text, sizeof(text), "upstream = {\n  key_file = \"%s\";\n};\n", keypath);
	snprintf(name, sizeof(name), "empty-%d.conf", _i);
	write_file(name, text, path, sizeof(path));
	ck_assert_int_eq(mg_conf_load(&c, path, err, sizeof(err)), MG_ERR_CONFIG);
	ck_assert_msg(strstr(err, "key_file") != NULL, "'%s' does not name key_file", err);
	ck_assert_msg(strstr(err, keypath) != NULL, "'%s' does not name the key file", err);
	ck_assert_msg(strstr(err, path) != NULL, "'%s' does not name the config file", err);
	mg_conf_free(&c);
}
END_TEST

/* --- metrics.allow and metrics.token_file ---------------------------- */

static const struct {
	const char *allow;
	const char *names;   /* what the message must name besides the setting */
} bad_allows[] = {
	{ "localhost", "'localhost'" },
	{ "127.0.0.1, ::1, 127.0.0.1/33", "'127.0.0.1/33'" },
	{ "::1/129", "'::1/129'" },
	{ "10.0.0.0/", "'10.0.0.0/'" },
	{ "10.0.0.0/8x", "'10.0.0.0/8x'" },
	{ "10.0.0.0/-8", "'10.0.0.0/-8'" },
	{ "300.1.1.1", "'300.1.1.1'" },
	{ "127.0.0.1;10.0.0.1", "'127.0.0.1;10.0.0.1'" },
	{ "1.1.1.1 2.2.2.2 3.3.3.3 4.4.4.4 5.5.5.5 6.6.6.6 7.7.7.7 8.8.8.8 9.9.9.9 "
	  "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.7 10.0.0.8 10.0.0.9 "
	  "11.0.0.1 11.0.0.2 11.0.0.3 11.0.0.4 11.0.0.5 11.0.0.6 11.0.0.7 11.0.0.8 11.0.0.9 "
	  "12.0.0.1 12.0.0.2 12.0.0.3 12.0.0.4 12.0.0.5 12.0.0.6", "more than 32 networks" },
};

START_TEST(metrics_allow_bad)
{
	struct mg_conf c;
	char path[512], name[64], text[1024], err[1024] = "", where[600];

	snprintf(text, sizeof(text), "metrics = {\n  per_model = 1;\n  allow = \"%s\";\n};\n",
	    bad_allows[_i].allow);
	snprintf(name, sizeof(name), "allow-%d.conf", _i);
	write_file(name, text, path, sizeof(path));
	ck_assert_int_eq(mg_conf_load(&c, path, err, sizeof(err)), MG_ERR_CONFIG);
	snprintf(where, sizeof(where), "%s:3: setting 'metrics.allow'", path);
	ck_assert_msg(strstr(err, where) != NULL, "'%s' does not name '%s'", err, where);
	ck_assert_msg(strstr(err, bad_allows[_i].names) != NULL, "'%s' does not name %s", err,
	    bad_allows[_i].names);
	mg_conf_free(&c);
}
END_TEST

/* The lists that are fine, none included. */
START_TEST(metrics_allow_good)
{
	static const char *const goods[] = { "", "127.0.0.0/8, ::1", "10.0.0.0/8 fd00::/8",
	    " ,0.0.0.0/0,, ::/0 ", "192.168.1.5" };
	struct mg_conf c;
	char path[512], text[1024], err[1024] = "";
	size_t i;

	for (i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		snprintf(text, sizeof(text), "metrics = { allow = \"%s\"; };\n", goods[i]);
		write_file("allow-good.conf", text, path, sizeof(path));
		ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "'%s': %s",
		    goods[i], err);
		ck_assert_str_eq(c.metrics_allow, goods[i]);
		mg_conf_free(&c);
	}
}
END_TEST

/* A token file that cannot be read, or holds no token: the message names
 * the file and line of the setting, the setting and the token's file. */
static void
assert_token_refused(const char *tokenpath, const char *why)
{
	struct mg_conf c;
	char path[512], text[1024], err[1024] = "", where[600];

	snprintf(text, sizeof(text), "# metrics\nmetrics = {\n  token_file = \"%s\";\n};\n",
	    tokenpath);
	write_file("token.conf", text, path, sizeof(path));
	ck_assert_int_eq(mg_conf_load(&c, path, err, sizeof(err)), MG_ERR_CONFIG);
	snprintf(where, sizeof(where), "%s:3: setting 'metrics.token_file'", path);
	ck_assert_msg(strstr(err, where) != NULL, "'%s' does not name '%s'", err, where);
	ck_assert_msg(strstr(err, tokenpath) != NULL, "'%s' does not name the token file", err);
	ck_assert_msg(strstr(err, why) != NULL, "'%s' does not say '%s'", err, why);
	ck_assert_ptr_null(c.metrics_token);
	mg_conf_free(&c);
}

START_TEST(metrics_token_file_missing)
{
	char tokenpath[512];

	snprintf(tokenpath, sizeof(tokenpath), "%s/no-such.token", tmpdir);
	assert_token_refused(tokenpath, strerror(ENOENT));
}
END_TEST

START_TEST(metrics_token_file_unreadable)
{
	char tokenpath[512];

	/* a directory opens, but cannot be read */
	ck_assert_int_lt(snprintf(tokenpath, sizeof(tokenpath), "%s/token.d", tmpdir),
	    (int)sizeof(tokenpath));
	ck_assert_int_eq(mkdir(tokenpath, 0700), 0);
	assert_token_refused(tokenpath, strerror(EISDIR));
	/* a file without read permission (root reads it all the same) */
	if (geteuid() != 0) {
		write_file("secret.token", "t0ken\n", tokenpath, sizeof(tokenpath));
		ck_assert_int_eq(chmod(tokenpath, 0), 0);
		assert_token_refused(tokenpath, strerror(EACCES));
	}
}
END_TEST

START_TEST(metrics_token_file_empty)
{
	char tokenpath[512];

	write_file("empty.token", "\n", tokenpath, sizeof(tokenpath));
	assert_token_refused(tokenpath, "is empty");
}
END_TEST

START_TEST(metrics_token_file_read)
{
	struct mg_conf c;
	char path[512], tokenpath[512], text[1024], err[1024] = "";
	char *dump;

	write_file("good.token", "s3cret-metrics-token\nsecond line\n", tokenpath, sizeof(tokenpath));
	snprintf(text, sizeof(text), "metrics = { token_file = \"%s\"; };\n", tokenpath);
	write_file("token-good.conf", text, path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_str_eq(c.metrics_token, "s3cret-metrics-token");
	dump = dump_text(&c);
	ck_assert_ptr_null(strstr(dump, "s3cret"));
	ck_assert_ptr_nonnull(strstr(dump, "# metrics token: set (not shown)"));
	free(dump);
	mg_conf_free(&c);
	ck_assert_ptr_null(c.metrics_token);
}
END_TEST

START_TEST(key_env_set_and_unset)
{
	struct mg_conf c;
	char path[512], err[1024] = "";

	write_file("env.conf", "upstream = {\n  key_env = \"" KEY_ENV "\";\n};\n", path, sizeof(path));

	setenv(KEY_ENV, "sk-env-key-123", 1);
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_ptr_nonnull(c.up_key);
	ck_assert_str_eq(c.up_key, "sk-env-key-123");
	mg_conf_free(&c);

	unsetenv(KEY_ENV);
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_ptr_null(c.up_key);
	mg_conf_free(&c);

	setenv(KEY_ENV, "", 1);
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_ptr_null(c.up_key);
	mg_conf_free(&c);
	unsetenv(KEY_ENV);
}
END_TEST

/* Regression test, once wrong in lib/conf.c validate(): the key from the
 * environment was not checked, so one with a line break made header
 * lines of its own in every upstream request, and one past the header
 * line's room was cut short; the message never shows the key. */
START_TEST(key_env_not_a_header_value)
{
	static const char *const bad[] = { "sk-a\r\nX-Injected: 1", "sk-a\x01", "sk-\xff", NULL };
	struct mg_conf c;
	char path[512], err[1024] = "", *longkey = mg_unit_repeat('k', 1001);
	int i;

	write_file("envbad.conf", "upstream = {\n  key_env = \"" KEY_ENV "\";\n};\n", path,
	    sizeof(path));
	for (i = 0; bad[i] != NULL; i++) {
		setenv(KEY_ENV, bad[i], 1);
		ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_ERR_CONFIG, "key %d", i);
		ck_assert_ptr_null(c.up_key);
		ck_assert_msg(strstr(err, ":2: setting 'upstream.key_env'") != NULL, "%s", err);
		ck_assert(strstr(err, "sk-") == NULL);
	}
	setenv(KEY_ENV, longkey, 1);
	ck_assert(mg_conf_load(&c, path, err, sizeof(err)) == MG_ERR_CONFIG);
	longkey[1000] = '\0';
	setenv(KEY_ENV, longkey, 1);
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_uint_eq(strlen(c.up_key), 1000);
	mg_conf_free(&c);
	unsetenv(KEY_ENV);
	free(longkey);
}
END_TEST

START_TEST(key_env_empty_name)
{
	struct mg_conf c;
	char path[512], err[1024] = "";

	setenv("OPENROUTER_API_KEY", "sk-should-not-be-used", 1);
	write_file("noenv.conf", "upstream = { key_env = \"\"; };\n", path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_ptr_null(c.up_key);
	mg_conf_free(&c);
	unsetenv("OPENROUTER_API_KEY");
}
END_TEST

/* --- base_url ---------------------------------------------------------- */

static const struct {
	const char *in;
	const char *out;
} base_urls[] = {
	{ "https://openrouter.ai/api/v1/", "https://openrouter.ai/api/v1" },
	{ "https://openrouter.ai/api/v1///", "https://openrouter.ai/api/v1" },
	{ "http://127.0.0.1:8080/", "http://127.0.0.1:8080" },
	{ "http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1" },
};

START_TEST(base_url_trailing_slashes)
{
	struct mg_conf c;
	char path[512], name[64], text[512], err[1024] = "";

	snprintf(name, sizeof(name), "url-%d.conf", _i);
	snprintf(text, sizeof(text), "upstream = { base_url = \"%s\"; };\n", base_urls[_i].in);
	write_file(name, text, path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_str_eq(c.up_base_url, base_urls[_i].out);
	mg_conf_free(&c);
}
END_TEST

/* --- which file -------------------------------------------------------- */

START_TEST(pick_path_precedence)
{
	setenv("MODELGATE_CONFIG", "/from/env.conf", 1);
	ck_assert_str_eq(mg_conf_pick_path("/from/arg.conf"), "/from/arg.conf");
	ck_assert_str_eq(mg_conf_pick_path(NULL), "/from/env.conf");
	ck_assert_str_eq(mg_conf_pick_path(""), "/from/env.conf");

	setenv("MODELGATE_CONFIG", "", 1);
	ck_assert_str_eq(mg_conf_pick_path(NULL), MG_CONF_DEFAULT_PATH);
	ck_assert_str_eq(mg_conf_pick_path("/from/arg.conf"), "/from/arg.conf");

	unsetenv("MODELGATE_CONFIG");
	ck_assert_str_eq(mg_conf_pick_path(NULL), MG_CONF_DEFAULT_PATH);
	ck_assert_str_eq(mg_conf_pick_path("rel.conf"), "rel.conf");
	ck_assert_str_eq(MG_CONF_DEFAULT_PATH, "/etc/modelgate/modelgate.conf");
}
END_TEST

/* --- dump -------------------------------------------------------------- */

START_TEST(dump_hides_key_file_key)
{
	struct mg_conf c;
	char path[512], keypath[512], text[1024], err[1024] = "";
	char *dump;

	write_file("secret.key", "sk-or-v1-TOPSECRET0123456789\n", keypath, sizeof(keypath));
	snprintf(text, sizeof(text), "upstream = { key_file = \"%s\"; };\n", keypath);
	write_file("secret.conf", text, path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	ck_assert_str_eq(c.up_key, "sk-or-v1-TOPSECRET0123456789");
	dump = dump_text(&c);
	ck_assert_msg(strstr(dump, "TOPSECRET") == NULL, "dump shows the key:\n%s", dump);
	ck_assert_ptr_nonnull(strstr(dump, keypath));
	ck_assert_ptr_nonnull(strstr(dump, "set (not shown)"));
	free(dump);
	mg_conf_free(&c);
}
END_TEST

START_TEST(dump_hides_env_key)
{
	struct mg_conf c;
	char path[512], err[1024] = "";
	char *dump;

	write_file("envsecret.conf", "upstream = { key_env = \"" KEY_ENV "\"; };\n", path, sizeof(path));
	setenv(KEY_ENV, "sk-ENVSECRET-987", 1);
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	unsetenv(KEY_ENV);
	dump = dump_text(&c);
	ck_assert_msg(strstr(dump, "ENVSECRET") == NULL, "dump shows the key:\n%s", dump);
	ck_assert_ptr_nonnull(strstr(dump, KEY_ENV));
	free(dump);
	mg_conf_free(&c);
}
END_TEST

/* The dump is in config-file syntax: it loads back to the same settings. */
static const char *const dump_titles[] = {
	"Example App",
	/* Regression test, once wrong in lib/conf.c mg_conf_dump() prints strings with "%s" and no
	 * escaping, so a value holding '"' or '\' is not valid libconfig. */
	"The \\\"Best\\\" App \\\\ v2",
};

START_TEST(dump_round_trip)
{
	struct mg_conf c, d;
	char path[512], path2[512], name[64], text[1024], err[1024] = "";
	char *a, *b;
	enum mg_err rc;

	snprintf(text, sizeof(text),
	    "log_level = \"warn\";\n"
	    "database = { pool_size = 9; };\n"
	    "upstream = { key_env = \"\"; title = \"%s\"; base_url = \"http://h:1/v1/\"; };\n"
	    "server = { threads = 3; };\n", dump_titles[_i]);
	snprintf(name, sizeof(name), "rt-%d.conf", _i);
	write_file(name, text, path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s", err);
	a = dump_text(&c);
	snprintf(name, sizeof(name), "rt-%d-dump.conf", _i);
	write_file(name, a, path2, sizeof(path2));
	rc = mg_conf_load(&d, path2, err, sizeof(err));
	if (rc != MG_OK) {
		char why[4096];

		/* free before failing, so nothing leaks */
		snprintf(why, sizeof(why), "the dump does not load: %s\n%s", err, a);
		free(a);
		mg_conf_free(&c);
		ck_abort_msg("%s", why);
	}
	b = dump_text(&d);
	ck_assert_str_eq(a, b);
	ck_assert_str_eq(d.up_title, c.up_title);
	ck_assert_int_eq(d.threads, 3);
	ck_assert_int_eq(d.db_pool_size, 9);
	ck_assert_int_eq(d.log_level, MG_LOG_WARN);
	free(a);
	free(b);
	mg_conf_free(&c);
	mg_conf_free(&d);
}
END_TEST

/* --- every key is documented ------------------------------------------ */

struct doc_key {
	char group[64];
	char key[64];
};

/* Reads "name" at *p (letters, digits, '_', '-') into out. */
static size_t
read_name(const char *p, char *out, size_t outlen)
{
	size_t n = 0;

	while ((isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '-') && n + 1 < outlen) {
		out[n] = p[n];
		n++;
	}
	out[n] = '\0';
	return n;
}

/* Collects "key =" lines of the example file with the group they are in. */
static size_t
scan_documented(const char *file, struct doc_key *keys, size_t max)
{
	FILE *f = fopen(file, "r");
	char line[1024], group[64] = "";
	size_t n = 0;

	ck_assert_msg(f != NULL, "cannot open %s: %s", file, strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *p = line;
		char name[64];
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		if (p[0] == '}') {
			group[0] = '\0';
			continue;
		}
		len = read_name(p, name, sizeof(name));
		if (len == 0)
			continue;
		p += len;
		if (strncmp(p, " = {", 4) == 0 || strncmp(p, " ={", 3) == 0 || strncmp(p, "={", 2) == 0) {
			snprintf(group, sizeof(group), "%s", name);
			continue;
		}
		if (strncmp(p, " =", 2) != 0)
			continue;
		ck_assert_uint_lt(n, max);
		snprintf(keys[n].group, sizeof(keys[n].group), "%s", group);
		snprintf(keys[n].key, sizeof(keys[n].key), "%s", name);
		n++;
	}
	fclose(f);
	return n;
}

START_TEST(every_key_documented)
{
	struct doc_key keys[128];
	char path[4096];
	size_t n, i, j;
	const char *name;

	example_path(path, sizeof(path));
	n = scan_documented(path, keys, sizeof(keys) / sizeof(keys[0]));
	ck_assert_uint_gt(n, 0);
	ck_assert_ptr_nonnull(mg_conf_key_name(0));
	for (i = 0; (name = mg_conf_key_name(i)) != NULL; i++) {
		const char *dot = strchr(name, '.');
		char group[64] = "";
		const char *key = name;
		int found = 0;

		if (dot != NULL) {
			snprintf(group, sizeof(group), "%.*s", (int)(dot - name), name);
			key = dot + 1;
		}
		for (j = 0; j < n && !found; j++)
			found = strcmp(keys[j].group, group) == 0 && strcmp(keys[j].key, key) == 0;
		ck_assert_msg(found, "setting '%s' is not documented as '%s =' %s%s in %s",
		    name, key, group[0] ? "in group " : "at top level", group, path);
	}
	ck_assert_uint_eq(i, 45);
	/* and nothing is documented that the program does not know */
	for (j = 0; j < n; j++) {
		int known = 0;

		for (i = 0; (name = mg_conf_key_name(i)) != NULL && !known; i++) {
			size_t glen = strlen(keys[j].group);

			if (glen > 0)
				known = strncmp(name, keys[j].group, glen) == 0 && name[glen] == '.' &&
				    strcmp(name + glen + 1, keys[j].key) == 0;
			else
				known = strcmp(name, keys[j].key) == 0;
		}
		ck_assert_msg(known, "documented '%s' in group '%s' is not a setting", keys[j].key, keys[j].group);
	}
	ck_assert_ptr_null(mg_conf_key_name(1000));
}
END_TEST

START_TEST(example_file_loads)
{
	struct mg_conf c;
	char path[4096], err[1024] = "";

	example_path(path, sizeof(path));
	ck_assert_msg(mg_conf_load(&c, path, err, sizeof(err)) == MG_OK, "%s: %s", path, err);
	mg_conf_free(&c);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc;

	tc = tcase_create("defaults");
	tcase_add_test(tc, defaults_documented);
	tcase_add_test(tc, example_file_is_the_defaults);
	tcase_add_test(tc, every_key_documented);
	tcase_add_test(tc, example_file_loads);
	tcase_add_test(tc, pick_path_precedence);
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_test(tc, load_full_file);
	tcase_add_test(tc, load_partial_keeps_defaults);
	tcase_add_test(tc, load_boundaries_ok);
	tcase_add_loop_test(tc, bad_file_table, 0, (int)(sizeof(bad_files) / sizeof(bad_files[0])));
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, error_message_truncated_safely);
	tcase_add_loop_test(tc, base_url_trailing_slashes, 0, (int)(sizeof(base_urls) / sizeof(base_urls[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("key");
	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_loop_test(tc, key_file_read, 0, (int)(sizeof(key_files) / sizeof(key_files[0])));
	tcase_add_test(tc, key_file_missing);
	tcase_add_loop_test(tc, key_file_empty, 0, (int)(sizeof(empty_keys) / sizeof(empty_keys[0])));
	tcase_add_test(tc, key_env_set_and_unset);
	tcase_add_test(tc, key_env_not_a_header_value);
	tcase_add_test(tc, key_env_empty_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("metrics");
	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_loop_test(tc, metrics_allow_bad, 0, (int)(sizeof(bad_allows) / sizeof(bad_allows[0])));
	tcase_add_test(tc, metrics_allow_good);
	tcase_add_test(tc, metrics_token_file_missing);
	tcase_add_test(tc, metrics_token_file_unreadable);
	tcase_add_test(tc, metrics_token_file_empty);
	tcase_add_test(tc, metrics_token_file_read);
	suite_add_tcase(s, tc);

	tc = tcase_create("dump");
	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_test(tc, dump_hides_key_file_key);
	tcase_add_test(tc, dump_hides_env_key);
	tcase_add_loop_test(tc, dump_round_trip, 0, (int)(sizeof(dump_titles) / sizeof(dump_titles[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
