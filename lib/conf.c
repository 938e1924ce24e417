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
#include "route.h"
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
	INT_OPT("routing.max_attempts", route_max_attempts, 3, 1, MG_ROUTE_ATTEMPTS_MAX),
	INT_OPT("routing.backoff_ms", route_backoff_ms, 100, 0, 60000),
	INT_OPT("routing.backoff_max_ms", route_backoff_max_ms, 2000, 0, 600000),
	INT_OPT("routing.failure_threshold", health_failures, 3, 1, 1000),
	INT_OPT("routing.cooldown", health_cooldown, 30, 1, 86400),
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
	STR_OPT("quota.admission", admission_name, "strict"),
	INT_OPT("quota.lease_timeout", lease_timeout, 30, 3, 3600),
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

/* Clears a secret and frees it. */
static void
free_secret(char **p)
{
	if (*p != NULL) {
		memset(*p, 0, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

static void
free_upstreams(struct mg_conf *c)
{
	int i, j;

	for (i = 0; i < c->n_ups; i++) {
		struct mg_updef *d = &c->ups[i];

		free(d->name);
		free(d->base_url);
		free_secret(&d->key);
		for (j = 0; j < d->n_patterns; j++)
			free(d->patterns[j]);
		free(d->prompt_price);
		free(d->completion_price);
	}
	memset(c->ups, 0, sizeof(c->ups));
	c->n_ups = 0;
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
	free_upstreams(c);
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
		if (prefix == NULL && strcmp(sn, "upstreams") == 0)
			continue;   /* read by build_upstreams, once the rest is known */
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

/* --- the upstreams ------------------------------------------------------- */

/* The settings of one element of the upstreams list. */
static const char *const upstream_keys[] = { "name", "base_url", "key_file", "key_env",
	"connect_timeout", "timeout", "models", "strip_prefix", "prices", "prompt_price",
	"completion_price", "fallbacks", "retries", NULL };

/* Names the element's setting s in an error: "upstreams[i].key". */
#define UP_ERR(s, fmt, ...) mg_err_detail(err, errlen, "%s:%d: upstreams[%d]%s%s: " fmt, file, \
	config_setting_source_line(s), i, (s) != el ? "." : "", \
	(s) != el ? config_setting_name(s) : "", __VA_ARGS__)

/* A string member of el: MG_OK with *out the text (NULL when absent). */
static int
up_string(config_setting_t *el, int i, const char *key, const char **out, const char *file,
    char *err, size_t errlen)
{
	config_setting_t *s = config_setting_get_member(el, key);

	*out = NULL;
	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		UP_ERR(s, "%s", "must be a string");
		return -1;
	}
	*out = config_setting_get_string(s);
	return 0;
}

/* An integer member of el within [lo, hi]; *out stays as it is when absent. */
static int
up_int(config_setting_t *el, int i, const char *key, int lo, int hi, int *out,
    const char *file, char *err, size_t errlen)
{
	config_setting_t *s = config_setting_get_member(el, key);
	long long v;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64) {
		UP_ERR(s, "%s", "must be an integer");
		return -1;
	}
	v = config_setting_get_int64(s);
	if (v < lo || v > hi) {
		UP_ERR(s, "must be between %d and %d (got %lld)", lo, hi, v);
		return -1;
	}
	*out = (int)v;
	return 0;
}

/* A list of strings (array or list), each passed to take(); -1 on error. */
static int
up_strings(config_setting_t *el, int i, const char *key, config_setting_t **list,
    const char *file, char *err, size_t errlen)
{
	config_setting_t *s = config_setting_get_member(el, key);
	int j, n;

	*list = s;
	if (s == NULL)
		return 0;
	if (!config_setting_is_aggregate(s) || config_setting_is_group(s)) {
		UP_ERR(s, "%s", "must be a list of strings, e.g. [\"openai/*\"]");
		return -1;
	}
	n = config_setting_length(s);
	for (j = 0; j < n; j++) {
		config_setting_t *e = config_setting_get_elem(s, (unsigned)j);

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			UP_ERR(s, "%s", "must be a list of strings, e.g. [\"openai/*\"]");
			return -1;
		}
	}
	return 0;
}

static int
dup_into(char **dst, const char *v, const char *file, char *err, size_t errlen)
{
	*dst = strdup(v);
	if (*dst == NULL) {
		mg_err_detail(err, errlen, "%s: out of memory", file);
		return -1;
	}
	return 0;
}

/* 1 when name may name an upstream: letters, digits, '_', '-', '.'. */
static int
upstream_name_ok(const char *name)
{
	size_t n = strlen(name), k;

	if (n == 0 || n >= MG_UPSTREAM_NAME_MAX)
		return 0;
	for (k = 0; k < n; k++) {
		char ch = name[k];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '_' || ch == '-' || ch == '.'))
			return 0;
	}
	return 1;
}

/* The key of an upstream: key_file, else key_env (unset: no key). */
static int
upstream_key(struct mg_updef *d, config_setting_t *el, int i, const char *file, char *err,
    size_t errlen)
{
	const char *kf, *ke;
	config_setting_t *s;

	if (up_string(el, i, "key_file", &kf, file, err, errlen) < 0 ||
	    up_string(el, i, "key_env", &ke, file, err, errlen) < 0)
		return -1;
	if (kf != NULL && kf[0] != '\0') {
		char name[64];

		snprintf(name, sizeof(name), "upstreams[%d].key_file", i);
		s = config_setting_get_member(el, "key_file");
		if (read_key_file(kf, name, &d->key, file, config_setting_source_line(s), err,
		    errlen) != 0)
			return -1;
	} else if (ke != NULL && ke[0] != '\0') {
		const char *v = getenv(ke);

		if (v != NULL && v[0] != '\0' && dup_into(&d->key, v, file, err, errlen) < 0)
			return -1;
	}
	if (d->key != NULL && !header_value_ok(d->key)) {
		s = config_setting_get_member(el, kf != NULL && kf[0] != '\0' ? "key_file" : "key_env");
		UP_ERR(s, "the key must be one line of printable text, at most %d bytes",
		    HEADER_VALUE_MAX);
		return -1;
	}
	return 0;
}

/* A base URL: http(s)://host..., trailing slashes dropped (never the
 * scheme's: "http://" and "https:///" name no host). */
static int
base_url_ok(char *url)
{
	size_t scheme, n;

	if (strncmp(url, "http://", 7) == 0)
		scheme = 7;
	else if (strncmp(url, "https://", 8) == 0)
		scheme = 8;
	else
		return 0;
	n = strlen(url);
	while (n > scheme && url[n - 1] == '/')
		url[--n] = '\0';
	return n > scheme && header_value_ok(url);
}

/* The upstream list's element i (el) into c->ups[i]; names resolved
 * against the elements before and after it by the caller. */
static int
upstream_element(struct mg_conf *c, config_setting_t *el, int i, const char *file, char *err,
    size_t errlen)
{
	struct mg_updef *d = &c->ups[i];
	config_setting_t *s, *list;
	const char *v;
	int j, n;

	d->line = config_setting_source_line(el);
	d->connect_timeout = c->up_connect_timeout;
	d->timeout = c->up_timeout;
	if (!config_setting_is_group(el)) {
		UP_ERR(el, "%s", "must be a group: { name = \"...\"; base_url = \"...\"; ... }");
		return -1;
	}
	n = config_setting_length(el);
	for (j = 0; j < n; j++) {
		const char *name = config_setting_name(config_setting_get_elem(el, (unsigned)j));
		int k, known = 0;

		for (k = 0; upstream_keys[k] != NULL && !known; k++)
			known = name != NULL && strcmp(name, upstream_keys[k]) == 0;
		if (!known) {
			s = config_setting_get_elem(el, (unsigned)j);
			UP_ERR(s, "%s", "unknown setting");
			return -1;
		}
	}
	if (up_string(el, i, "name", &v, file, err, errlen) < 0)
		return -1;
	if (v == NULL || !upstream_name_ok(v)) {
		s = config_setting_get_member(el, "name");
		UP_ERR(s != NULL ? s : el, "%s", "needs a name of letters, digits, '_', '-' or '.', "
		    "at most 31 bytes");
		return -1;
	}
	if (dup_into(&d->name, v, file, err, errlen) < 0)
		return -1;
	if (up_string(el, i, "base_url", &v, file, err, errlen) < 0)
		return -1;
	if (v == NULL) {
		UP_ERR(el, "%s", "needs a base_url");
		return -1;
	}
	if (dup_into(&d->base_url, v, file, err, errlen) < 0)
		return -1;
	if (!base_url_ok(d->base_url)) {
		s = config_setting_get_member(el, "base_url");
		UP_ERR(s, "%s", "must start with http:// or https://, name a host and be printable");
		return -1;
	}
	if (up_int(el, i, "connect_timeout", 1, 300, &d->connect_timeout, file, err, errlen) < 0 ||
	    up_int(el, i, "timeout", 1, 86400, &d->timeout, file, err, errlen) < 0 ||
	    up_int(el, i, "retries", 0, MG_ROUTE_ATTEMPTS_MAX - 1, &d->retries, file, err,
	    errlen) < 0)
		return -1;
	s = config_setting_get_member(el, "strip_prefix");
	if (s != NULL) {
		if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
			UP_ERR(s, "%s", "must be true or false");
			return -1;
		}
		d->strip_prefix = config_setting_get_bool(s);
	}
	if (up_string(el, i, "prices", &v, file, err, errlen) < 0)
		return -1;
	if (v == NULL || strcmp(v, "models") == 0) {
		d->prices = MG_PRICES_MODELS;
	} else if (strcmp(v, "config") == 0) {
		d->prices = MG_PRICES_CONFIG;
	} else {
		s = config_setting_get_member(el, "prices");
		UP_ERR(s, "%s", "must be \"models\" or \"config\"");
		return -1;
	}
	if (up_string(el, i, "prompt_price", &v, file, err, errlen) < 0 ||
	    dup_into(&d->prompt_price, v != NULL ? v : c->fallback_prompt_price, file, err,
	    errlen) < 0)
		return -1;
	if (up_string(el, i, "completion_price", &v, file, err, errlen) < 0 ||
	    dup_into(&d->completion_price, v != NULL ? v : c->fallback_completion_price, file,
	    err, errlen) < 0)
		return -1;
	for (j = 0; j < 2; j++) {
		const char *key = j == 0 ? "prompt_price" : "completion_price";

		s = config_setting_get_member(el, key);
		if (!mg_money_valid(j == 0 ? d->prompt_price : d->completion_price, MG_MONEY_PLAIN)) {
			UP_ERR(s, "%s", "must be a non-negative decimal number of USD per token, "
			    "as a string (e.g. \"0.00001\")");
			return -1;
		}
		if (d->prices == MG_PRICES_CONFIG && s == NULL) {
			UP_ERR(el, "prices = \"config\" needs %s", key);
			return -1;
		}
	}
	if (up_strings(el, i, "models", &list, file, err, errlen) < 0)
		return -1;
	if (list != NULL && config_setting_length(list) == 0) {
		UP_ERR(list, "%s", "is empty: list the patterns of the models it serves, or leave "
		    "models out for an upstream that is only a fallback");
		return -1;
	}
	n = list != NULL ? config_setting_length(list) : 0;
	if (n > MG_UPSTREAM_PATTERNS_MAX) {
		UP_ERR(list, "has more than %d patterns", MG_UPSTREAM_PATTERNS_MAX);
		return -1;
	}
	for (j = 0; j < n; j++) {
		v = config_setting_get_string_elem(list, (unsigned)j);
		if (!mg_route_pattern_valid(v)) {
			UP_ERR(list, "'%.100s' is not a pattern: \"*\", a prefix ending in '*' "
			    "(\"openai/*\") or a model id, printable, not empty", v);
			return -1;
		}
		if (dup_into(&d->patterns[j], v, file, err, errlen) < 0)
			return -1;
		d->n_patterns++;
	}
	return upstream_key(d, el, i, file, err, errlen);
}

/* Each element's fallbacks, by name; -1 on an unknown name, itself or
 * one named twice. */
static int
upstream_fallbacks(struct mg_conf *c, config_setting_t *el, int i, const char *file, char *err,
    size_t errlen)
{
	struct mg_updef *d = &c->ups[i];
	config_setting_t *list;
	int j, k, n;

	if (up_strings(el, i, "fallbacks", &list, file, err, errlen) < 0)
		return -1;
	n = list != NULL ? config_setting_length(list) : 0;
	for (j = 0; j < n; j++) {
		const char *v = config_setting_get_string_elem(list, (unsigned)j);

		for (k = 0; k < c->n_ups && strcmp(c->ups[k].name, v) != 0; k++)
			;
		if (k == c->n_ups) {
			UP_ERR(list, "'%.40s' names no upstream", v);
			return -1;
		}
		if (k == i) {
			UP_ERR(list, "'%.40s' is this upstream itself (use retries)", v);
			return -1;
		}
		for (k = 0; k < d->n_fallbacks; k++) {
			if (strcmp(c->ups[d->fallbacks[k]].name, v) == 0) {
				UP_ERR(list, "names '%.40s' twice", v);
				return -1;
			}
		}
		for (k = 0; strcmp(c->ups[k].name, v) != 0; k++)
			;
		d->fallbacks[d->n_fallbacks++] = k;
	}
	return 0;
}

/* 1 when d falls back on upstream k. */
static int
upstream_is_fallback(const struct mg_updef *d, int k)
{
	int f;

	for (f = 0; f < d->n_fallbacks; f++)
		if (d->fallbacks[f] == k)
			return 1;
	return 0;
}

/* Refuses a pattern that an earlier one (of the same or an earlier
 * upstream) shadows: the first matching pattern wins, so it would never
 * route anything. */
static int
routes_disjoint(const struct mg_conf *c, config_setting_t *root, const char *file, char *err,
    size_t errlen)
{
	int i, j, a, b;

	for (i = 0; i < c->n_ups; i++) {
		for (j = 0; j < c->ups[i].n_patterns; j++) {
			for (a = 0; a <= i; a++) {
				for (b = 0; b < (a == i ? j : c->ups[a].n_patterns); b++) {
					config_setting_t *el;

					if (!mg_route_pattern_covers(c->ups[a].patterns[b],
					    c->ups[i].patterns[j]))
						continue;
					el = config_setting_get_elem(root, (unsigned)i);
					mg_err_detail(err, errlen, "%s:%d: upstreams[%d].models: "
					    "'%.100s' overlaps '%.100s' of upstream '%s' (line %d), "
					    "which comes first and routes every model it matches",
					    file, config_setting_source_line(
					    config_setting_get_member(el, "models")), i,
					    c->ups[i].patterns[j], c->ups[a].patterns[b],
					    c->ups[a].name, c->ups[a].line);
					return -1;
				}
			}
		}
	}
	return 0;
}

/* The one upstream of the upstream group: "default", serving "*". */
static int
default_upstream(struct mg_conf *c, const char *file, char *err, size_t errlen)
{
	struct mg_updef *d = &c->ups[0];

	c->n_ups = 1;
	if (dup_into(&d->name, "default", file, err, errlen) < 0 ||
	    dup_into(&d->base_url, c->up_base_url, file, err, errlen) < 0 ||
	    dup_into(&d->patterns[0], "*", file, err, errlen) < 0)
		return -1;
	d->n_patterns = 1;
	if (c->up_key != NULL && dup_into(&d->key, c->up_key, file, err, errlen) < 0)
		return -1;
	if (dup_into(&d->prompt_price, c->fallback_prompt_price, file, err, errlen) < 0 ||
	    dup_into(&d->completion_price, c->fallback_completion_price, file, err, errlen) < 0)
		return -1;
	d->connect_timeout = c->up_connect_timeout;
	d->timeout = c->up_timeout;
	return 0;
}

/* The upstreams: the list when the file has one, else the upstream
 * group's one. */
static int
build_upstreams(struct mg_conf *c, const config_t *cfg, const char *file, char *err,
    size_t errlen)
{
	config_setting_t *root = config_lookup(cfg, "upstreams");
	int i, j, n;

	if (root == NULL)
		return default_upstream(c, file, err, errlen);
	c->ups_listed = 1;
	if (!config_setting_is_list(root) && !config_setting_is_array(root)) {
		mg_err_detail(err, errlen, "%s:%d: setting 'upstreams' must be a list of groups: "
		    "( { name = \"...\"; ... }, ... )", file, config_setting_source_line(root));
		return -1;
	}
	n = config_setting_length(root);
	if (n == 0 || n > MG_UPSTREAMS_MAX) {
		mg_err_detail(err, errlen, "%s:%d: setting 'upstreams' must list 1 to %d upstreams",
		    file, config_setting_source_line(root), MG_UPSTREAMS_MAX);
		return -1;
	}
	for (i = 0; i < n; i++) {
		config_setting_t *el = config_setting_get_elem(root, (unsigned)i);

		c->n_ups = i + 1;
		if (upstream_element(c, el, i, file, err, errlen) < 0)
			return -1;
		for (j = 0; j < i; j++) {
			if (strcmp(c->ups[j].name, c->ups[i].name) == 0) {
				mg_err_detail(err, errlen, "%s:%d: upstreams[%d].name: '%s' is the name "
				    "of upstream %d (line %d) too", file, c->ups[i].line, i,
				    c->ups[i].name, j, c->ups[j].line);
				return -1;
			}
		}
	}
	for (i = 0; i < n; i++) {
		config_setting_t *el = config_setting_get_elem(root, (unsigned)i);

		if (upstream_fallbacks(c, el, i, file, err, errlen) < 0)
			return -1;
	}
	for (i = 0; i < n; i++) {
		int used = c->ups[i].n_patterns > 0;

		for (j = 0; j < n && !used; j++)
			used = upstream_is_fallback(&c->ups[j], i);
		if (!used) {
			mg_err_detail(err, errlen, "%s:%d: upstreams[%d]: '%s' serves no model (no "
			    "models) and is no upstream's fallback", file, c->ups[i].line, i,
			    c->ups[i].name);
			return -1;
		}
	}
	return routes_disjoint(c, root, file, err, errlen);
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
	if (strcmp(c->admission_name, "strict") == 0) {
		c->lease = 0;
	} else if (strcmp(c->admission_name, "lease") == 0) {
		c->lease = 1;
	} else {
		mg_err_detail(err, errlen, "%s:%d: setting 'quota.admission' must be \"strict\" or "
		    "\"lease\"", file, line_of(cfg, "quota.admission"));
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
	if (keys_ok(c, cfg, file, err, errlen) < 0 || build_upstreams(c, cfg, file, err, errlen) < 0)
		return -1;
	/* a request's calls, fallbacks and all, end within the longest timeout */
	if (c->reap_after <= mg_conf_max_timeout(c) + c->db_connect_timeout) {
		int line = line_of(cfg, "quota.reap_after");

		mg_err_detail(err, errlen, "%s:%d: setting 'quota.reap_after' (%d s) must be longer than "
		    "the longest upstream timeout + database.connect_timeout (%d s): a request still "
		    "running must not be reaped", file, line > 0 ? line : line_of(cfg, "upstreams"),
		    c->reap_after, mg_conf_max_timeout(c) + c->db_connect_timeout);
		return -1;
	}
	return 0;
}

int
mg_conf_max_timeout(const struct mg_conf *c)
{
	int i, t = 0;

	for (i = 0; i < c->n_ups; i++)
		if (c->ups[i].timeout > t)
			t = c->ups[i].timeout;
	return t;
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

/* Writes "value" escaped as libconfig reads it. */
static void
dump_quoted(FILE *out, const char *v)
{
	fputc('"', out);
	for (; *v != '\0'; v++) {
		unsigned char ch = (unsigned char)*v;

		if (ch == '"' || ch == '\\')
			fprintf(out, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(out, "\\x%02x", ch);
		else
			fputc(ch, out);
	}
	fputc('"', out);
}

/* Writes key = "value"; with the value escaped as libconfig reads it. */
static void
dump_string(FILE *out, const char *indent, const char *key, const char *v)
{
	fprintf(out, "%s%s = ", indent, key);
	dump_quoted(out, v);
	fputs(";\n", out);
}

/* Writes a list of strings as libconfig reads it. */
static void
dump_list(FILE *out, const char *key, char *const *v, int n)
{
	int i;

	fprintf(out, "    %s = [", key);
	for (i = 0; i < n; i++) {
		fputs(i > 0 ? ", " : "", out);
		dump_quoted(out, v[i]);
	}
	fputs("];\n", out);
}

/* The upstreams list (never a key). */
static void
dump_upstreams(const struct mg_conf *c, FILE *out)
{
	int i, f;

	fputs("upstreams = (\n", out);
	for (i = 0; i < c->n_ups; i++) {
		const struct mg_updef *d = &c->ups[i];
		char *names[MG_UPSTREAMS_MAX];

		fputs("  {\n", out);
		dump_string(out, "    ", "name", d->name);
		dump_string(out, "    ", "base_url", d->base_url);
		fprintf(out, "    # key: %s\n", d->key != NULL ? "set (not shown)" : "not set");
		fprintf(out, "    connect_timeout = %d;\n    timeout = %d;\n    retries = %d;\n",
		    d->connect_timeout, d->timeout, d->retries);
		if (d->n_patterns > 0)
			dump_list(out, "models", d->patterns, d->n_patterns);
		fprintf(out, "    strip_prefix = %s;\n", d->strip_prefix ? "true" : "false");
		fprintf(out, "    prices = \"%s\";\n", d->prices == MG_PRICES_CONFIG ? "config" : "models");
		dump_string(out, "    ", "prompt_price", d->prompt_price);
		dump_string(out, "    ", "completion_price", d->completion_price);
		for (f = 0; f < d->n_fallbacks; f++)
			names[f] = c->ups[d->fallbacks[f]].name;
		dump_list(out, "fallbacks", names, d->n_fallbacks);
		fprintf(out, "  }%s\n", i + 1 < c->n_ups ? "," : "");
	}
	fputs(");\n", out);
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
	if (c->ups_listed)
		dump_upstreams(c, out);
	fprintf(out, "# upstream key: %s\n", c->up_key ? "set (not shown)" : "not set");
	fprintf(out, "# management key: %s\n", c->up_mgmt_key ? "set (not shown)" : "not set");
	fprintf(out, "# metrics token: %s\n", c->metrics_token ? "set (not shown)" : "not set");
}
