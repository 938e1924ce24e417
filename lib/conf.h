#ifndef MG_CONF_H
#define MG_CONF_H

#include <stddef.h>
#include <stdio.h>

#include "err.h"

#define MG_CONF_DEFAULT_PATH "/etc/modelgate/modelgate.conf"

/* The most upstreams a configuration lists, and patterns and fallbacks
 * one upstream has. */
#define MG_UPSTREAMS_MAX 16
#define MG_UPSTREAM_PATTERNS_MAX 16
#define MG_UPSTREAM_NAME_MAX 32

/* Where an upstream's prices come from. */
enum mg_price_source {
	MG_PRICES_MODELS = 0,    /* its /models list; the config's where it has none */
	MG_PRICES_CONFIG         /* the config's prompt_price and completion_price */
};

/* One upstream of the list (or the one the upstream group makes).
 * Strings are owned by the configuration. */
struct mg_updef {
	char *name;
	char *base_url;          /* without a trailing slash */
	char *key;               /* the provider key (secret), or NULL: none sent */
	int connect_timeout;     /* seconds */
	int timeout;             /* seconds */
	char *patterns[MG_UPSTREAM_PATTERNS_MAX]; /* "*", "prefix*" or an exact id */
	int n_patterns;          /* 0: a fallback only */
	int strip_prefix;        /* 1: the matching pattern's prefix is not sent */
	enum mg_price_source prices;
	char *prompt_price;      /* USD per token, decimal text */
	char *completion_price;
	int fallbacks[MG_UPSTREAMS_MAX]; /* indexes into the list, in order */
	int n_fallbacks;
	int retries;             /* tries again on itself before its fallbacks */
	int line;                /* where the file has it, 0: the upstream group */
};

/* The validated configuration.  Strings are owned by the struct. */
struct mg_conf {
	char *file;              /* the file it was read from */
	char *log_level_name;
	int log_level;           /* enum mg_log_level */
	char *log_file;

	char *db_conninfo;
	int db_pool_size;
	int db_connect_timeout;  /* seconds */

	char *up_base_url;       /* without a trailing slash */
	char *up_key_file;
	char *up_key_env;
	int up_connect_timeout;  /* seconds */
	int up_timeout;          /* seconds */
	int up_max_response;     /* bytes */
	char *up_referer;
	char *up_title;
	char *up_key;            /* the provider key (secret), or NULL */
	char *up_mgmt_key_file;
	char *up_mgmt_key;       /* the management key (secret), or NULL */

	struct mg_updef ups[MG_UPSTREAMS_MAX]; /* the upstreams, in routing order */
	int n_ups;               /* at least one once loaded */
	int ups_listed;          /* 1: from the upstreams list, 0: the upstream group */
	int route_max_attempts;  /* upstream calls per request at most */
	int route_backoff_ms;    /* the wait before the second call, doubled after */
	int route_backoff_max_ms;
	int health_failures;     /* failures in a row that start a cooldown */
	int health_cooldown;     /* seconds an upstream is skipped for */

	int threads;
	int max_body;            /* bytes */
	int shutdown_grace;      /* seconds */
	int heartbeat_interval;  /* seconds between SSE heartbeats */
	char *client_close_name; /* "abort" or "drain" */
	int drain;               /* 1: read a stream to its usage after the client left */
	int max_drains;          /* drains at once per process */
	int malloc_arenas;       /* malloc arenas per process, 0: the C library's default */

	int default_max_tokens;  /* output reserved when a request names none */
	char *fallback_prompt_price;      /* USD per token, decimal text */
	char *fallback_completion_price;
	int reap_after;          /* seconds before a pending request is reaped */
	int reap_interval;       /* seconds between a responder's reaps, 0: never */
	char *admission_name;    /* "strict" or "lease" */
	int lease;               /* 1: requests are admitted from leases */
	int lease_timeout;       /* seconds before a lease not renewed is reaped */
	int catalog_refresh;     /* seconds between catalog syncs, 0: never */

	char *recon_verify_name; /* "needed" or "all" */
	int recon_verify_all;    /* 1: look every generation up, not only doubtful ones */
	int recon_max_rps;       /* generation lookups a second per process, 0: none */
	int recon_close_after;   /* seconds after a UTC day's end before its close */

	char *dashboard_dir;     /* the dashboard's files, "" for the installed ones */
	char *report_tz;         /* reports' default time zone (IANA name) */
	int report_max_days;     /* the longest period a report covers */

	char *metrics_dir;       /* the scoreboard's directory, "": the socket's */
	char *metrics_allow;     /* addresses and networks that may read /metrics */
	char *metrics_token_file;
	char *metrics_token;     /* a bearer token that may read them (secret), or NULL */
	int metrics_per_model;   /* 1: counts per model */
	int metrics_per_project; /* 1: counts per project */
};

/* Which file to read: the -c argument if given, else $MODELGATE_CONFIG,
 * else MG_CONF_DEFAULT_PATH. */
const char *mg_conf_pick_path(const char *arg);

/* Reads and validates path into c (defaults for absent keys).  On error
 * returns MG_ERR_CONFIG and writes "FILE:LINE: message" into err; c is
 * then freed.  Resolves the upstream key from key_file or key_env. */
enum mg_err mg_conf_load(struct mg_conf *c, const char *path, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Fills c with the defaults only (no file, no key). */
enum mg_err mg_conf_defaults(struct mg_conf *c) __attribute__((warn_unused_result));
void mg_conf_free(struct mg_conf *c);
/* Writes the effective settings in config-file syntax (never the key). */
void mg_conf_dump(const struct mg_conf *c, FILE *out);

/* The longest timeout of any upstream, seconds: every upstream call of
 * a request, its fallbacks included, ends within it. */
int mg_conf_max_timeout(const struct mg_conf *c);

/* The names of all settings ("group.key"), for documentation checks;
 * NULL past the end. */
const char *mg_conf_key_name(size_t i);

#endif
