/* conf.c -- The configuration: one table of keys that validates the libconfig
 * file, gives the defaults and drives --dump-config; secrets from a file
 * or the environment.  Called by both programs at start. */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "money.h"
#include "text.h"

enum opt_type {
	OPT_INT,   /* integer within [min, max] */
	OPT_STR    /* string */
};

struct opt {
	const char *name;   /* "group.key" or "key" */
	enum opt_type type;
	size_t offset;      /* into struct mg_conf */
	long long def_int;
	const char *def_str;
	long long min, max;
};

#define INT_OPT(n, f, d, lo, hi) { n, OPT_INT, offsetof(struct mg_conf, f), d, NULL, lo, hi }
#define STR_OPT(n, f, d) { n, OPT_STR, offsetof(struct mg_conf, f), 0, d, 0, 0 }

static const struct opt options[] = {
	STR_OPT("log_level", log_level_name, "info"),
	STR_OPT("log_file", log_file, ""),
	STR_OPT("database.conninfo", db_conninfo, "dbname=modelgate"),
	INT_OPT("database.pool_size", db_pool_size, 4, 1, 256),
	INT_OPT("database.connect_timeout", db_connect_timeout, 5, 1, 60),
	STR_OPT("upstream.base_url", up_base_url, "https://openrouter.ai/api/v1"),
	STR_OPT("upstream.key_file", up_key_file, ""),
	STR_OPT("upstream.key_env", up_key_env, "OPENROUTER_API_KEY"),
	INT_OPT("upstream.connect_timeout", up_connect_timeout, 10, 1, 300),
	INT_OPT("upstream.timeout", up_timeout, 600, 1, 86400),
	INT_OPT("upstream.max_response_bytes", up_max_response, 67108864, 1024, 1073741824),
	STR_OPT("upstream.referer", up_referer, ""),
	STR_OPT("upstream.title", up_title, ""),
	STR_OPT("upstream.management_key_file", up_mgmt_key_file, ""),
	INT_OPT("server.threads", threads, 16, 1, 4096),
	INT_OPT("server.max_body_bytes", max_body, 33554432, 1024, 1073741824),
	INT_OPT("server.shutdown_grace", shutdown_grace, 30, 0, 3600),
	INT_OPT("server.heartbeat_interval", heartbeat_interval, 5, 1, 300),
	STR_OPT("server.client_close", client_close_name, "abort"),
	INT_OPT("server.max_drains", max_drains, 64, 0, 4096),
	INT_OPT("server.malloc_arenas", malloc_arenas, 2, 0, 1024),
	INT_OPT("quota.default_max_tokens", default_max_tokens, 4096, 0, 100000000),
	STR_OPT("quota.fallback_prompt_price", fallback_prompt_price, "0.00001"),
	STR_OPT("quota.fallback_completion_price", fallback_completion_price, "0.00003"),
	INT_OPT("quota.reap_after", reap_after, 900, 2, 604800),
	INT_OPT("quota.reap_interval", reap_interval, 60, 0, 86400),
	INT_OPT("catalog.refresh_interval", catalog_refresh, 3600, 0, 604800),
	STR_OPT("reconcile.verify", recon_verify_name, "needed"),
	INT_OPT("reconcile.max_rps", recon_max_rps, 5, 0, 1000),
	INT_OPT("reconcile.close_after", recon_close_after, 1800, 0, 86400),
	STR_OPT("report.timezone", report_tz, "UTC"),
	STR_OPT("report.dashboard_dir", dashboard_dir, ""),
	INT_OPT("report.max_days", report_max_days, 731, 1, 36600),
	STR_OPT("metrics.dir", metrics_dir, ""),
	STR_OPT("metrics.allow", metrics_allow, "127.0.0.0/8, ::1"),
	STR_OPT("metrics.token_file", metrics_token_file, ""),
	INT_OPT("metrics.per_model", metrics_per_model, 0, 0, 1),
	INT_OPT("metrics.per_project", metrics_per_project, 0, 0, 1),
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

const char *
mg_conf_pick_path(const char *arg)
{
	const char *env;

	if (arg != NULL && arg[0] != '\0')
		return arg;
	env = getenv("MODELGATE_CONFIG");
	if (env != NULL && env[0] != '\0')
		return env;
	return MG_CONF_DEFAULT_PATH;
}

const char *
mg_conf_key_name(size_t i)
{
	return i < N_OPTIONS ? options[i].name : NULL;
}

static int *
int_field(struct mg_conf *c, const struct opt *o)
{
	return (int *)(void *)((char *)c + o->offset);
}

static char **
str_field(struct mg_conf *c, const struct opt *o)
{
	return (char **)(void *)((char *)c + o->offset);
}

static const struct opt *
find_option(const char *name)
{
	size_t i;

	for (i = 0; i < N_OPTIONS; i++)
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	return NULL;
}

static int
is_group_name(const char *name)
{
	size_t len = strlen(name), i;

	for (i = 0; i < N_OPTIONS; i++)
		if (strncmp(options[i].name, name, len) == 0 && options[i].name[len] == '.')
			return 1;
	return 0;
}

enum mg_err
mg_conf_defaults(struct mg_conf *c)
{
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < N_OPTIONS; i++) {
		const struct opt *o = &options[i];

		if (o->type == OPT_INT) {
			*int_field(c, o) = (int)o->def_int;
		} else {
			*str_field(c, o) = strdup(o->def_str);
			if (*str_field(c, o) == NULL) {
				mg_conf_free(c);
				return MG_ERR_NOMEM;
			}
		}
	}
	c->log_level = MG_LOG_INFO;
	return MG_OK;
}

void
mg_conf_free(struct mg_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < N_OPTIONS; i++) {
		if (options[i].type == OPT_STR) {
			free(*str_field(c, &options[i]));
			*str_field(c, &options[i]) = NULL;
		}
	}
	free(c->file);
	c->file = NULL;
	if (c->metrics_token != NULL) {
		memset(c->metrics_token, 0, strlen(c->metrics_token));
		free(c->metrics_token);
		c->metrics_token = NULL;
	}
	if (c->up_mgmt_key != NULL) {
		memset(c->up_mgmt_key, 0, strlen(c->up_mgmt_key));
		free(c->up_mgmt_key);
		c->up_mgmt_key = NULL;
	}
	if (c->up_key != NULL) {
		memset(c->up_key, 0, strlen(c->up_key));
		free(c->up_key);
		c->up_key = NULL;
	}
}

/* Stores one scalar setting s, whose full name is name, or explains why not. */
static int
apply_setting(struct mg_conf *c, const char *file, config_setting_t *s,
    const char *name, char *err, size_t errlen)
{
	const struct opt *o = find_option(name);
	int line = config_setting_source_line(s);
	int type = config_setting_type(s);

	if (o == NULL) {
		mg_err_detail(err, errlen, "%s:%d: unknown setting '%s'", file, line, name);
		return -1;
	}
	if (o->type == OPT_INT) {
		long long v;

		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			mg_err_detail(err, errlen, "%s:%d: setting '%s' must be an integer",
			    file, line, name);
			return -1;
		}
		v = config_setting_get_int64(s);
		if (v < o->min || v > o->max) {
			mg_err_detail(err, errlen, "%s:%d: setting '%s' must be between %lld and %lld (got %lld)",
			    file, line, name, o->min, o->max, v);
			return -1;
		}
		*int_field(c, o) = (int)v;
	} else {
		char *dup;

		if (type != CONFIG_TYPE_STRING) {
			mg_err_detail(err, errlen, "%s:%d: setting '%s' must be a string",
			    file, line, name);
			return -1;
		}
		dup = strdup(config_setting_get_string(s));
		if (dup == NULL) {
			mg_err_detail(err, errlen, "%s: out of memory", file);
			return -1;
		}
		free(*str_field(c, o));
		*str_field(c, o) = dup;
	}
	return 0;
}

/* Walks a group (the root or one level below it) and applies its settings. */
static int
apply_group(struct mg_conf *c, const char *file, config_setting_t *g,
    const char *prefix, char *err, size_t errlen)
{
	int i, n = config_setting_length(g);

	for (i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *sn = config_setting_name(s);
		char name[128];

		if (sn == NULL)
			continue;
		if (prefix != NULL)
			snprintf(name, sizeof(name), "%s.%s", prefix, sn);
		else
			snprintf(name, sizeof(name), "%s", sn);
		if (config_setting_is_group(s)) {
			if (prefix != NULL || !is_group_name(name)) {
				mg_err_detail(err, errlen, "%s:%d: unknown group '%s'", file,
				    config_setting_source_line(s), name);
				return -1;
			}
			if (apply_group(c, file, s, name, err, errlen) < 0)
				return -1;
		} else if (apply_setting(c, file, s, name, err, errlen) < 0) {
			return -1;
		}
	}
	return 0;
}

static int
line_of(const config_t *cfg, const char *name)
{
	config_setting_t *s = config_lookup(cfg, name);

	return s != NULL ? config_setting_source_line(s) : 0;
}

/* Reads the first line of key file path (setting name, at line) into
 * *key. */
static int
read_key_file(const char *path, const char *name, char **key, const char *file, int line,
    char *err, size_t errlen)
{
	char keybuf[1024];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL) {
		mg_err_detail(err, errlen, "%s:%d: setting '%s': cannot read '%s': %s",
		    file, line, name, path, strerror(errno));
		return -1;
	}
	if (fgets(keybuf, sizeof(keybuf), f) == NULL) {
		keybuf[0] = '\0';
		/* a directory opens, and fails here */
		if (ferror(f)) {
			mg_err_detail(err, errlen, "%s:%d: setting '%s': cannot read '%s': %s",
			    file, line, name, path, strerror(errno));
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	n = strcspn(keybuf, "\r\n");
	if (keybuf[n] == '\0' && n == sizeof(keybuf) - 1) {
		memset(keybuf, 0, sizeof(keybuf));
		mg_err_detail(err, errlen,
		    "%s:%d: setting '%s': the key in '%s' is longer than %zu bytes",
		    file, line, name, path, sizeof(keybuf) - 2);
		return -1;
	}
	keybuf[n] = '\0';
	if (n == 0) {
		mg_err_detail(err, errlen, "%s:%d: setting '%s': '%s' is empty",
		    file, line, name, path);
		return -1;
	}
	*key = strdup(keybuf);
	memset(keybuf, 0, sizeof(keybuf));
	if (*key == NULL) {
		mg_err_detail(err, errlen, "%s: out of memory", file);
		return -1;
	}
	return 0;
}

/* The longest value of a header line the gateway sends upstream (the
 * key, the referer, the title): upstream.c's lines hold it with room. */
#define HEADER_VALUE_MAX 1000

/* 1 when v can go into a header line of the upstream's requests as it
 * is: printable text (lib/text; no CR, LF or other control), at most
 * HEADER_VALUE_MAX bytes.  A longer one was cut short there, one with a
 * line break made header lines of its own. */
static int
header_value_ok(const char *v)
{
	size_t n = strlen(v);

	return n <= HEADER_VALUE_MAX && mg_text_printable(v, n);
}

/* Checks the keys read; never shows them. */
static int
keys_ok(const struct mg_conf *c, const config_t *cfg, const char *file, char *err, size_t errlen)
{
	const char *from = c->up_key_file[0] != '\0' ? "upstream.key_file" : "upstream.key_env";

	if (c->up_key != NULL && !header_value_ok(c->up_key)) {
		mg_err_detail(err, errlen, "%s:%d: setting '%s': the upstream key must be one line of "
		    "printable text, at most %d bytes", file, line_of(cfg, from), from,
		    HEADER_VALUE_MAX);
		return -1;
	}
	if (c->up_mgmt_key != NULL && !header_value_ok(c->up_mgmt_key)) {
		mg_err_detail(err, errlen, "%s:%d: setting 'upstream.management_key_file': the key "
		    "must be one line of printable text, at most %d bytes", file,
		    line_of(cfg, "upstream.management_key_file"), HEADER_VALUE_MAX);
		return -1;
	}
	return 0;
}

static int
validate(struct mg_conf *c, const config_t *cfg, const char *file, char *err, size_t errlen)
{
	size_t n;
	int lvl = mg_log_level_parse(c->log_level_name);

	if (lvl < 0) {
		mg_err_detail(err, errlen, "%s:%d: setting 'log_level' must be one of error, warn, info, debug",
		    file, line_of(cfg, "log_level"));
		return -1;
	}
	c->log_level = lvl;
	if (strcmp(c->client_close_name, "abort") == 0) {
		c->drain = 0;
	} else if (strcmp(c->client_close_name, "drain") == 0) {
		c->drain = 1;
	} else {
		mg_err_detail(err, errlen, "%s:%d: setting 'server.client_close' must be \"abort\" or \"drain\"",
		    file, line_of(cfg, "server.client_close"));
		return -1;
	}
	if (strcmp(c->recon_verify_name, "needed") == 0) {
		c->recon_verify_all = 0;
	} else if (strcmp(c->recon_verify_name, "all") == 0) {
		c->recon_verify_all = 1;
	} else {
		mg_err_detail(err, errlen, "%s:%d: setting 'reconcile.verify' must be \"needed\" or "
		    "\"all\"", file, line_of(cfg, "reconcile.verify"));
		return -1;
	}
	if (!mg_money_valid(c->fallback_prompt_price, MG_MONEY_PLAIN)) {
		mg_err_detail(err, errlen, "%s:%d: setting 'quota.fallback_prompt_price' must be a "
		    "non-negative decimal number of USD per token, as a string (e.g. \"0.00001\")",
		    file, line_of(cfg, "quota.fallback_prompt_price"));
		return -1;
	}
	if (!mg_money_valid(c->fallback_completion_price, MG_MONEY_PLAIN)) {
		mg_err_detail(err, errlen, "%s:%d: setting 'quota.fallback_completion_price' must be a "
		    "non-negative decimal number of USD per token, as a string (e.g. \"0.00003\")",
		    file, line_of(cfg, "quota.fallback_completion_price"));
		return -1;
	}
	if (c->reap_after <= c->up_timeout + c->db_connect_timeout) {
		int line = line_of(cfg, "quota.reap_after");

		mg_err_detail(err, errlen, "%s:%d: setting 'quota.reap_after' (%d s) must be longer than "
		    "upstream.timeout + database.connect_timeout (%d s): a request still running "
		    "must not be reaped", file, line > 0 ? line : line_of(cfg, "upstream.timeout"),
		    c->reap_after, c->up_timeout + c->db_connect_timeout);
		return -1;
	}
	if (strncmp(c->up_base_url, "http://", 7) != 0 &&
	    strncmp(c->up_base_url, "https://", 8) != 0) {
		mg_err_detail(err, errlen,
		    "%s:%d: setting 'upstream.base_url' must start with http:// or https://",
		    file, line_of(cfg, "upstream.base_url"));
		return -1;
	}
	n = strlen(c->up_base_url);
	while (n > 0 && c->up_base_url[n - 1] == '/')
		c->up_base_url[--n] = '\0';
	if (strstr(c->up_base_url, "://") == NULL || strstr(c->up_base_url, "://")[3] == '\0') {
		mg_err_detail(err, errlen, "%s:%d: setting 'upstream.base_url' has no host",
		    file, line_of(cfg, "upstream.base_url"));
		return -1;
	}
	if (!header_value_ok(c->up_referer)) {
		mg_err_detail(err, errlen, "%s:%d: setting 'upstream.referer' must be one line of "
		    "printable text, at most %d bytes", file, line_of(cfg, "upstream.referer"),
		    HEADER_VALUE_MAX);
		return -1;
	}
	if (!header_value_ok(c->up_title)) {
		mg_err_detail(err, errlen, "%s:%d: setting 'upstream.title' must be one line of "
		    "printable text, at most %d bytes", file, line_of(cfg, "upstream.title"),
		    HEADER_VALUE_MAX);
		return -1;
	}
	{
		struct mg_netmask nets[MG_METRICS_ALLOW_MAX];
		char why[160];
		int nets_n;

		if (mg_metrics_allow_parse(c->metrics_allow, nets, MG_METRICS_ALLOW_MAX, &nets_n, why,
		    sizeof(why)) != 0) {
			mg_err_detail(err, errlen, "%s:%d: setting 'metrics.allow': %s", file,
			    line_of(cfg, "metrics.allow"), why);
			return -1;
		}
	}
	if (c->metrics_token_file[0] != '\0' &&
	    read_key_file(c->metrics_token_file, "metrics.token_file", &c->metrics_token,
	    file, line_of(cfg, "metrics.token_file"), err, errlen) != 0)
		return -1;
	if (c->up_mgmt_key_file[0] != '\0' &&
	    read_key_file(c->up_mgmt_key_file, "upstream.management_key_file", &c->up_mgmt_key,
	    file, line_of(cfg, "upstream.management_key_file"), err, errlen) != 0)
		return -1;
	if (c->up_key_file[0] != '\0') {
		if (read_key_file(c->up_key_file, "upstream.key_file", &c->up_key, file,
		    line_of(cfg, "upstream.key_file"), err, errlen) != 0)
			return -1;
	} else if (c->up_key_env[0] != '\0') {
		const char *v = getenv(c->up_key_env);

		if (v != NULL && v[0] != '\0') {
			c->up_key = strdup(v);
			if (c->up_key == NULL) {
				mg_err_detail(err, errlen, "%s: out of memory", file);
				return -1;
			}
		}
	}
	return keys_ok(c, cfg, file, err, errlen);
}

enum mg_err
mg_conf_load(struct mg_conf *c, const char *path, char *err, size_t errlen)
{
	config_t cfg;
	enum mg_err e;
	int rc = -1;

	e = mg_conf_defaults(c);
	if (e != MG_OK) {
		mg_err_detail(err, errlen, "%s: %s", path, mg_strerror(e));
		return e;
	}
	c->file = strdup(path);
	if (c->file == NULL) {
		mg_err_detail(err, errlen, "%s: out of memory", path);
		mg_conf_free(c);
		return MG_ERR_NOMEM;
	}
	config_init(&cfg);
	if (config_read_file(&cfg, path) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			mg_err_detail(err, errlen, "%s: cannot read the configuration file: %s",
			    path, strerror(errno));
		else
			mg_err_detail(err, errlen, "%s:%d: %s",
			    config_error_file(&cfg) ? config_error_file(&cfg) : path,
			    config_error_line(&cfg), config_error_text(&cfg));
		goto out;
	}
	if (apply_group(c, path, config_root_setting(&cfg), NULL, err, errlen) < 0)
		goto out;
	if (validate(c, &cfg, path, err, errlen) < 0)
		goto out;
	rc = 0;
out:
	config_destroy(&cfg);
	if (rc < 0) {
		mg_conf_free(c);
		return MG_ERR_CONFIG;
	}
	return MG_OK;
}

/* Writes key = "value"; with the value escaped as libconfig reads it. */
static void
dump_string(FILE *out, const char *indent, const char *key, const char *v)
{
	fprintf(out, "%s%s = \"", indent, key);
	for (; *v != '\0'; v++) {
		unsigned char ch = (unsigned char)*v;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\x%02x", ch);
		else
			fputc(ch, out);
	}
	fputs("\";\n", out);
}

void
mg_conf_dump(const struct mg_conf *c, FILE *out)
{
	const char *group = NULL; /* the open group's name, not NUL-terminated */
	size_t glen = 0, i;

	for (i = 0; i < N_OPTIONS; i++) {
		const struct opt *o = &options[i];
		const char *dot = strchr(o->name, '.');
		size_t len = dot != NULL ? (size_t)(dot - o->name) : 0;

		if (group != NULL && (len != glen || strncmp(group, o->name, len) != 0)) {
			fputs("};\n", out);
			group = NULL;
		}
		if (dot != NULL && group == NULL) {
			fprintf(out, "%.*s = {\n", (int)len, o->name);
			group = o->name;
			glen = len;
		}
		if (o->type == OPT_INT)
			fprintf(out, "%s%s = %d;\n", dot ? "  " : "", dot ? dot + 1 : o->name,
			    *(const int *)(const void *)((const char *)c + o->offset));
		else
			dump_string(out, dot ? "  " : "", dot ? dot + 1 : o->name,
			    *(char *const *)(const void *)((const char *)c + o->offset));
	}
	if (group != NULL)
		fputs("};\n", out);
	fprintf(out, "# upstream key: %s\n", c->up_key ? "set (not shown)" : "not set");
	fprintf(out, "# management key: %s\n", c->up_mgmt_key ? "set (not shown)" : "not set");
	fprintf(out, "# metrics token: %s\n", c->metrics_token ? "set (not shown)" : "not set");
}
