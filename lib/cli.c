/* cli.c -- The operator commands of `modelgate` (db, project, key, models,
 * reap, usage, requests, quota, admin-key, config): the table of command words, argument parsing and the
 * output formats (aligned table, --json).  Every operation is a call of
 * admin.c.  Called by app/modelgate.c. */
#include "config.h"

#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "cli.h"
#include "format.h"
#include "mcp.h"
#include "reconcile.h"

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
	    "  usage [FILTERS] [--by DIM,...] [--tz ZONE] [--format F]\n"
	    "                                        usage totals (from the rollups)\n"
	    "  requests [FILTERS] [--status S] [--limit N] [--cursor C] [--tz ZONE] [--format F]\n"
	    "                                        the latest requests, newest first\n"
	    "  quota [--project NAME] [--format F]   limits, this period's spend, what is left\n"
	    "  catalog [--project NAME] [--format F] the models a project may use, with prices\n"
	    "  projects [--format F]                 every project: limits, live keys\n"
	    "  mcp                                   an MCP server on standard input and output\n"
	    "                                        (usage tools, every project)\n"
	    "  reconcile [--since T] [--until T] [--format F]\n"
	    "                                        recorded against billed, per UTC day and model\n"
	    "  reconcile run                         look up now the generations due for a check\n"
	    "  reconcile close [--day YYYY-MM-DD] [--json]\n"
	    "                                        close a UTC day (default yesterday) against the\n"
	    "                                        upstream's activity and the account's credits\n"
	    "  usage prune --before YYYY-MM          drop the usage rows of older months\n"
	    "                                        (their totals stay)\n"
	    "  admin-key create [--name LABEL]       create an admin key (printed once)\n"
	    "  admin-key list [--json]               list admin keys\n"
	    "  admin-key revoke PREFIX               revoke an admin key\n"
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
	    "FILTERS:\n"
	    "  --project NAME  --key PREFIX  --model ID\n"
	    "  --since T  --until T   T: ISO 8601 (2026-11-05, 2026-11-05T14:30Z), today,\n"
	    "                         yesterday, 7d, 24h, this-month, last-month;\n"
	    "                         default: this month until now\n"
	    "  --by DIM,...   project, key, model, endpoint, status, day, hour\n"
	    "  --tz ZONE      an IANA time zone (default: report.timezone)\n"
	    "  --format F     table (default), json, csv, ndjson\n"
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

/* What a command runs with. */
struct ctx {
	const struct mg_conf *conf;
	const char *sql_dir;
	struct mg_admin *admin;  /* NULL for the commands without the database */
	int argc;                /* the words from the command word on */
	char **argv;
};

static int
has_flag(const struct ctx *x, const char *flag)
{
	int i;

	for (i = 0; i < x->argc; i++)
		if (strcmp(x->argv[i], flag) == 0)
			return 1;
	return 0;
}

/* Finds "--name VALUE" style options; NULL if absent. */
static const char *
option_value(const struct ctx *x, const char *name)
{
	int i;

	for (i = 0; i + 1 < x->argc; i++)
		if (strcmp(x->argv[i], name) == 0)
			return x->argv[i + 1];
	return NULL;
}

/* --- output formats -------------------------------------------------------- */

/* A column of a listing: numbers print as JSON numbers. */
struct column {
	const char *name;
	int number;
};

/* The text of cell (i, j) of a list, NULL for none (null / "-"); a
 * number is written into num. */
typedef const char *cell_fn(const struct mg_admin_list *l, size_t i, int j, char *num, size_t len);

static const char *
number_cell(char *num, size_t len, long long v)
{
	if (v < 0)
		return NULL;
	snprintf(num, len, "%lld", v);
	return num;
}

static void
print_json(const struct column *cols, int ncols, const struct mg_admin_list *l, cell_fn *cell)
{
	json_object *arr = json_object_new_array();
	char num[24];
	size_t i;
	int j;

	for (i = 0; i < l->n; i++) {
		json_object *o = json_object_new_object();

		for (j = 0; j < ncols; j++) {
			const char *v = cell(l, i, j, num, sizeof(num));
			json_object *jv = NULL;

			if (v != NULL)
				jv = cols[j].number ? json_object_new_int64(strtoll(v, NULL, 10))
				    : json_object_new_string(v);
			json_object_object_add(o, cols[j].name, jv);
		}
		json_object_array_add(arr, o);
	}
	printf("%s\n", json_object_to_json_string_ext(arr,
	    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(arr);
}

/* Prints a list as a JSON array of objects or as an aligned table. */
static void
print_list(const struct column *cols, int ncols, const struct mg_admin_list *l, cell_fn *cell,
    int as_json)
{
	int width[16] = { 0 }, j;
	char num[24];
	size_t i;

	if (as_json) {
		print_json(cols, ncols, l, cell);
		return;
	}
	for (j = 0; j < ncols && j < 16; j++) {
		width[j] = (int)strlen(cols[j].name);
		for (i = 0; i < l->n; i++) {
			const char *v = cell(l, i, j, num, sizeof(num));
			int w = v == NULL ? 1 : (int)strlen(v);

			if (w > width[j])
				width[j] = w;
		}
	}
	for (j = 0; j < ncols && j < 16; j++)
		printf("%-*s%s", width[j], cols[j].name, j + 1 < ncols ? "  " : "\n");
	for (i = 0; i < l->n; i++) {
		for (j = 0; j < ncols && j < 16; j++) {
			const char *v = cell(l, i, j, num, sizeof(num));

			printf("%-*s%s", width[j], v == NULL ? "-" : v, j + 1 < ncols ? "  " : "\n");
		}
	}
}

static const struct column project_columns[] = {
	{ "name", 0 }, { "created_at", 0 }, { "keys", 1 }, { "rpm", 1 }, { "tpm", 1 },
	{ "spend_cap", 0 }, { "period", 0 }, { "period_start", 0 }, { "spent", 0 },
	{ "reserved", 0 }, { "models", 0 },
};

static const char *
project_cell(const struct mg_admin_list *l, size_t i, int j, char *num, size_t len)
{
	const struct mg_admin_project *p = &l->projects[i];
	const char *text[] = { p->name, p->created_at, NULL, NULL, NULL, p->spend_cap, p->period,
		p->period_start, p->spent, p->reserved, p->models };
	const long long numbers[] = { 0, 0, p->keys, p->rpm, p->tpm };

	return project_columns[j].number ? number_cell(num, len, numbers[j]) : text[j];
}

static const struct column key_columns[] = {
	{ "prefix", 0 }, { "name", 0 }, { "created_at", 0 }, { "revoked_at", 0 },
};

static const char *
key_cell(const struct mg_admin_list *l, size_t i, int j, char *num, size_t len)
{
	const struct mg_admin_key *k = &l->keys[i];
	const char *text[] = { k->prefix, k->name, k->created_at, k->revoked_at };

	(void)num;
	(void)len;
	return text[j];
}

static const struct column model_columns[] = {
	{ "id", 0 }, { "kind", 0 }, { "context_length", 1 }, { "prompt_price", 0 },
	{ "completion_price", 0 }, { "synced_at", 0 },
};

static const char *
model_cell(const struct mg_admin_list *l, size_t i, int j, char *num, size_t len)
{
	const struct mg_admin_model *m = &l->models[i];
	const char *text[] = { m->id, m->kind, NULL, m->prompt_price, m->completion_price,
		m->synced_at };

	return model_columns[j].number ? number_cell(num, len, m->context_length) : text[j];
}

/* How a list prints. */
struct listing {
	const struct column *cols;
	int ncols;
	cell_fn *cell;
};

#define LISTING(cols, cell) { cols, (int)(sizeof(cols) / sizeof((cols)[0])), cell }

static const struct listing projects = LISTING(project_columns, project_cell);
static const struct listing keys = LISTING(key_columns, key_cell);
static const struct listing models = LISTING(model_columns, model_cell);

/* --- the commands ---------------------------------------------------------- */

static int
cmd_migrate(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	int applied, version;

	if (mg_admin_migrate(x->admin, x->sql_dir, &applied, &version, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("migrations: %d applied, schema version %d\n", applied, version);
	return 0;
}

/* The limit options, in the order of enum mg_admin_limit. */
static const char *const limit_flags[MG_LIMIT__COUNT] = {
	[MG_LIMIT_RPM] = "--rpm",
	[MG_LIMIT_TPM] = "--tpm",
	[MG_LIMIT_SPEND_CAP] = "--spend-cap",
	[MG_LIMIT_PERIOD] = "--period",
	[MG_LIMIT_MODELS] = "--models",
};

/* Reads the limit options from the words after the project's name; -1
 * (message printed) when one is unknown, lacks its value or has a bad
 * value. */
static int
parse_limits(const struct ctx *x, struct mg_admin_limits *l)
{
	enum mg_admin_limit bad;
	int i, k;

	memset(l, 0, sizeof(*l));
	for (i = 3; i < x->argc; i++) {
		for (k = 0; k < MG_LIMIT__COUNT && strcmp(x->argv[i], limit_flags[k]) != 0; k++)
			continue;
		if (k == MG_LIMIT__COUNT || i + 1 >= x->argc) {
			fail("%s: unknown option or missing value", x->argv[i]);
			return -1;
		}
		l->value[k] = x->argv[++i];
	}
	if (mg_admin_limits_check(l, &bad) != MG_OK) {
		fail("%s %s", limit_flags[bad], mg_admin_limit_rule(bad));
		return -1;
	}
	return 0;
}

static int
cmd_project_create(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_limits l;

	if (parse_limits(x, &l) < 0)
		return 2;
	if (mg_admin_project_create(x->admin, x->argv[2], &l, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("created project %s\n", x->argv[2]);
	return 0;
}

static int
cmd_project_set(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_limits l;

	if (parse_limits(x, &l) < 0)
		return 2;
	if (x->argc <= 3)
		return fail("project set: give at least one of --rpm, --tpm, --spend-cap, --period, --models");
	if (mg_admin_project_set(x->admin, x->argv[2], &l, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("updated project %s\n", x->argv[2]);
	return 0;
}

/* Prints the list a list operation returned (rc), or its error. */
static int
print_result(enum mg_err rc, const char *err, const struct listing *how,
    struct mg_admin_list *l, int as_json)
{
	if (rc == MG_OK)
		print_list(how->cols, how->ncols, l, how->cell, as_json);
	mg_admin_list_free(l);
	return rc == MG_OK ? 0 : fail("%s", err);
}

static int
cmd_project_list(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_list l;
	enum mg_err rc = mg_admin_project_list(x->admin, &l, err, sizeof(err));

	return print_result(rc, err, &projects, &l, has_flag(x, "--json"));
}

static int
cmd_key_create(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_new_key k;

	if (mg_admin_key_create(x->admin, x->argv[2], option_value(x, "--name"), &k, err,
	    sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("%s\n", k.key);
	fflush(stdout);
	memset(k.key, 0, sizeof(k.key));
	fprintf(stderr, "modelgate: key %s created for project %s; it is shown only this once\n",
	    k.prefix, x->argv[2]);
	return 0;
}

static int
cmd_key_list(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_list l;
	enum mg_err rc = mg_admin_key_list(x->admin, x->argv[2], &l, err, sizeof(err));

	return print_result(rc, err, &keys, &l, has_flag(x, "--json"));
}

static int
cmd_key_revoke(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN], prefix[MG_APIKEY_PREFIX_LEN + 1];

	if (mg_admin_key_revoke(x->admin, x->argv[2], prefix, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("revoked key %s\n", prefix);
	return 0;
}

static int
cmd_reap(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	int n;

	if (mg_admin_reap(x->admin, x->conf->reap_after, &n, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("reaped %d requests older than %d s (charged at their reserved amount)\n",
	    n, x->conf->reap_after);
	if (mg_admin_reap_leases(x->admin, x->conf->lease_timeout, &n, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	/* said when leases are in use here, or were */
	if (x->conf->lease || n > 0)
		printf("reaped %d leases not renewed for %d s (charged whole)\n", n,
		    x->conf->lease_timeout);
	return 0;
}

static int
cmd_models_sync(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	int n;

	if (mg_admin_catalog_sync(x->admin, &n, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("catalog: %d models from %s\n", n, x->conf->up_base_url);
	return 0;
}

static int
cmd_models_list(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_list l;
	enum mg_err rc = mg_admin_catalog_list(x->admin, &l, err, sizeof(err));

	return print_result(rc, err, &models, &l, has_flag(x, "--json"));
}

/* --- usage ------------------------------------------------------------------ */

/* The options a report command takes, each "--NAME VALUE" or
 * "--NAME=VALUE", into q and *format.  0, or 2 (usage) after saying
 * what is wrong. */
static int
report_options(const struct ctx *x, enum mg_report r, struct mg_report_query *q,
    enum mg_format *format)
{
	const char *fmt = NULL;
	int i;

	memset(q, 0, sizeof(*q));
	*format = MG_FORMAT_TABLE;
	for (i = 1; i < x->argc; i++) {
		const char *arg = x->argv[i], *eq, *value;
		const char **slot;
		size_t n;

		if (strncmp(arg, "--", 2) != 0) {
			fprintf(stderr, "modelgate: %s: unexpected argument \"%.64s\"\n", x->argv[0], arg);
			return 2;
		}
		arg += 2;
		eq = strchr(arg, '=');
		n = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
		if (eq != NULL)
			value = eq + 1;
		else if (i + 1 < x->argc)
			value = x->argv[++i];
		else {
			fprintf(stderr, "modelgate: %s: --%.*s needs a value\n", x->argv[0], (int)n, arg);
			return 2;
		}
		if (n == 6 && strncmp(arg, "format", 6) == 0) {
			fmt = value;
			continue;
		}
		slot = mg_report_field(q, r, arg, n);
		if (slot != NULL)
			*slot = value;
		else {
			fprintf(stderr, "modelgate: %s: unknown option --%.*s\n", x->argv[0],
			    (int)(n > 32 ? 32 : n), arg);
			return 2;
		}
	}
	if (fmt != NULL && mg_format_parse(fmt, format) != 0) {
		fprintf(stderr, "modelgate: %s: --format is table, json, csv or ndjson\n",
		    x->argv[0]);
		return 2;
	}
	return 0;
}

/* Runs report r with the command's options and prints it: 0, 2 for bad
 * input, 1 for other failures. */
static int
run_report(struct ctx *x, enum mg_report r)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_report_query q;
	enum mg_format f;
	json_object *o;
	enum mg_err rc;
	int st = report_options(x, r, &q, &f);

	if (st != 0)
		return st;
	rc = mg_admin_report(x->admin, r, &q, &o, err, sizeof(err));
	if (rc == MG_ERR_INVALID) {
		fprintf(stderr, "modelgate: %s: %s\n", x->argv[0], err);
		return 2;
	}
	if (rc != MG_OK)
		return fail("%s", err);
	rc = mg_format_report(stdout, r, o, f);
	json_object_put(o);
	return rc == MG_OK ? 0 : fail("cannot write the report");
}

static int
cmd_usage(struct ctx *x)
{
	return run_report(x, MG_REPORT_USAGE);
}

static int
cmd_requests(struct ctx *x)
{
	return run_report(x, MG_REPORT_REQUESTS);
}

static int
cmd_quota(struct ctx *x)
{
	return run_report(x, MG_REPORT_QUOTA);
}

static int
cmd_reconcile(struct ctx *x)
{
	return run_report(x, MG_REPORT_RECONCILE);
}

static int
cmd_catalog(struct ctx *x)
{
	return run_report(x, MG_REPORT_MODELS);
}

static int
cmd_projects(struct ctx *x)
{
	return run_report(x, MG_REPORT_PROJECTS);
}

/* The query layer for modelgate mcp: the CLI's own connection. */
static enum mg_err
mcp_report(void *arg, enum mg_report r, const struct mg_report_query *q, json_object **out,
    char *err, size_t errlen)
{
	return mg_admin_report(arg, r, q, out, err, errlen);
}

/* The longest message modelgate mcp reads (bytes); a longer line is
 * answered with a parse error and skipped. */
#define MCP_LINE_MAX (1024 * 1024)

/* modelgate mcp: MCP over standard input and output, one JSON-RPC
 * message a line, with the operator's scope (every project).  Ends at the
 * end of its input or when its output is gone. */
static int
cmd_mcp(struct ctx *x)
{
	struct mg_mcp m;
	char *line = NULL, *out = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;

	/* a reader gone is a write error, not a signal */
	signal(SIGPIPE, SIG_IGN);
	mg_mcp_init(&m, 1, NULL, mcp_report, x->admin);
	while ((n = getline(&line, &cap, stdin)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		if (n > MCP_LINE_MAX) {
			out = strdup("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":"
			    "-32700,\"message\":\"Parse error: a message longer than 1 MiB\"}}");
		} else if (mg_mcp_handle(&m, line, (size_t)n, &out) != MG_OK) {
			free(out);
			rc = fail("mcp: out of memory");
			break;
		}
		if (out != NULL) {
			int bad = fputs(out, stdout) == EOF || putchar('\n') == EOF ||
			    fflush(stdout) == EOF;

			free(out);
			out = NULL;
			if (bad)
				break;   /* the client is gone: done */
		}
	}
	free(line);
	return rc;
}

static int
cmd_reconcile_run(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_recon_pass p;

	if (mg_admin_reconcile_run(x->admin, &p, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("looked up %d generations: %d confirmed, %d adjusted, %d not known yet "
	    "(looked up again later), %d missing upstream, %d without an answer (again "
	    "later); %lld rows unsupported\n", p.looked, p.confirmed, p.adjusted, p.retried,
	    p.missing, p.failed, p.unsupported);
	return 0;
}

static int
cmd_reconcile_close(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN], day[16], *json = NULL;
	const char *arg = option_value(x, "--day");
	json_object *o, *t, *acct;
	enum mg_err rc;

	if (arg == NULL) {
		time_t now = time(NULL) - 86400;
		struct tm tm;

		if (gmtime_r(&now, &tm) == NULL || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0)
			return fail("cannot tell the date");
	} else if (strlen(arg) != 10 || strspn(arg, "0123456789-") != 10 || arg[4] != '-' ||
	    arg[7] != '-') {
		fprintf(stderr, "modelgate: reconcile close: --day is a UTC date, YYYY-MM-DD\n");
		return 2;
	} else {
		memcpy(day, arg, 11);
	}
	rc = mg_admin_reconcile_close(x->admin, day, &json, err, sizeof(err));
	if (rc != MG_OK)
		return fail("%s", err);
	if (has_flag(x, "--json")) {
		printf("%s\n", json);
		free(json);
		return 0;
	}
	o = json_tokener_parse(json);
	free(json);
	if (o == NULL || !json_object_object_get_ex(o, "totals", &t)) {
		json_object_put(o);
		return fail("the close of %s came back unreadable", day);
	}
	printf("closed %s: the gateway charged %s USD, the upstream billed %s USD: "
	    "difference %s USD\n", day,
	    json_object_get_string(json_object_object_get(t, "charged")),
	    json_object_get_string(json_object_object_get(t, "upstream")),
	    json_object_get_string(json_object_object_get(t, "difference")));
	if (json_object_object_get_ex(o, "account", &acct) && acct != NULL)
		printf("account: the upstream billed %s USD in all, the gateway charged %s USD: "
		    "difference %s USD\n",
		    json_object_get_string(json_object_object_get(acct, "upstream")),
		    json_object_get_string(json_object_object_get(acct, "charged")),
		    json_object_get_string(json_object_object_get(acct, "difference")));
	printf("per model: modelgate reconcile --since %s\n", day);
	json_object_put(o);
	return 0;
}

static int
cmd_usage_prune(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	const char *before = option_value(x, "--before");
	json_object *removed;
	enum mg_err rc;
	size_t i, n;

	if (before == NULL) {
		fprintf(stderr, "modelgate: usage prune: --before YYYY-MM is needed\n");
		return 2;
	}
	rc = mg_admin_usage_prune(x->admin, before, &removed, err, sizeof(err));
	if (rc == MG_ERR_INVALID) {
		fprintf(stderr, "modelgate: usage prune: %s\n", err);
		return 2;
	}
	if (rc != MG_OK)
		return fail("%s", err);
	n = json_object_array_length(removed);
	for (i = 0; i < n; i++) {
		json_object *p = json_object_array_get_idx(removed, i), *v;
		const char *name = "", *from = NULL, *to = "";
		long long rows = 0;

		if (json_object_object_get_ex(p, "partition", &v))
			name = json_object_get_string(v);
		if (json_object_object_get_ex(p, "from", &v) && !json_object_is_type(v, json_type_null))
			from = json_object_get_string(v);
		if (json_object_object_get_ex(p, "to", &v))
			to = json_object_get_string(v);
		if (json_object_object_get_ex(p, "rows", &v))
			rows = json_object_get_int64(v);
		printf("dropped %s: %lld usage rows %s%s to %s\n", name, rows, from != NULL ? "from " : "",
		    from != NULL ? from : "older than", to);
	}
	printf("pruned %zu partition%s before %s; the rollups (usage totals) are kept\n", n,
	    n == 1 ? "" : "s", before);
	json_object_put(removed);
	return 0;
}

static int
cmd_admin_key_create(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_new_key k;

	if (mg_admin_admin_key_create(x->admin, option_value(x, "--name"), &k, err,
	    sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("%s\n", k.key);
	fflush(stdout);
	memset(k.key, 0, sizeof(k.key));
	fprintf(stderr, "modelgate: admin key %s created; it reads the usage of every project "
	    "and is shown only this once\n", k.prefix);
	return 0;
}

static int
cmd_admin_key_list(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN];
	struct mg_admin_list l;
	enum mg_err rc = mg_admin_admin_key_list(x->admin, &l, err, sizeof(err));

	return print_result(rc, err, &keys, &l, has_flag(x, "--json"));
}

static int
cmd_admin_key_revoke(struct ctx *x)
{
	char err[MG_ERR_DETAIL_LEN], prefix[MG_APIKEY_PREFIX_LEN + 1];

	if (mg_admin_admin_key_revoke(x->admin, x->argv[2], prefix, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	printf("revoked admin key %s\n", prefix);
	return 0;
}

static int
cmd_config_check(struct ctx *x)
{
	printf("%s: ok\n", x->conf->file);
	return 0;
}

static int
cmd_config_dump(struct ctx *x)
{
	mg_conf_dump(x->conf, stdout);
	return 0;
}

/* The commands: the words, the shape of the words after them, whether
 * they need the database. */
static const struct command {
	const char *word, *sub;  /* sub NULL: the command has none */
	int min_words;           /* words counted from the command word on */
	int max_words;           /* -1: any (the command reads them) */
	const char *flag;        /* a flag allowed after min_words, or NULL */
	const char *valued;      /* an option with a value allowed there, or NULL */
	int db;                  /* 1: runs on a database connection */
	int (*run)(struct ctx *x);
} commands[] = {
	{ "db", "migrate", 2, 2, NULL, NULL, 1, cmd_migrate },
	{ "project", "create", 3, -1, NULL, NULL, 1, cmd_project_create },
	{ "project", "set", 3, -1, NULL, NULL, 1, cmd_project_set },
	{ "project", "list", 2, -1, "--json", NULL, 1, cmd_project_list },
	{ "key", "create", 3, -1, NULL, "--name", 1, cmd_key_create },
	{ "key", "list", 3, -1, "--json", NULL, 1, cmd_key_list },
	{ "key", "revoke", 3, 3, NULL, NULL, 1, cmd_key_revoke },
	{ "reap", NULL, 1, 1, NULL, NULL, 1, cmd_reap },
	{ "models", "sync", 2, 2, NULL, NULL, 1, cmd_models_sync },
	{ "models", "list", 2, -1, "--json", NULL, 1, cmd_models_list },
	{ "usage", "prune", 2, 4, NULL, "--before", 1, cmd_usage_prune },
	{ "usage", NULL, 1, -1, NULL, NULL, 1, cmd_usage },
	{ "requests", NULL, 1, -1, NULL, NULL, 1, cmd_requests },
	{ "quota", NULL, 1, -1, NULL, NULL, 1, cmd_quota },
	{ "catalog", NULL, 1, -1, NULL, NULL, 1, cmd_catalog },
	{ "mcp", NULL, 1, 1, NULL, NULL, 1, cmd_mcp },
	{ "projects", NULL, 1, -1, NULL, NULL, 1, cmd_projects },
	{ "reconcile", "run", 2, 2, NULL, NULL, 1, cmd_reconcile_run },
	{ "reconcile", "close", 2, 5, "--json", "--day", 1, cmd_reconcile_close },
	{ "reconcile", NULL, 1, -1, NULL, NULL, 1, cmd_reconcile },
	{ "admin-key", "create", 2, -1, NULL, "--name", 1, cmd_admin_key_create },
	{ "admin-key", "list", 2, -1, "--json", NULL, 1, cmd_admin_key_list },
	{ "admin-key", "revoke", 3, 3, NULL, NULL, 1, cmd_admin_key_revoke },
	{ "config", "check", 2, 2, NULL, NULL, 0, cmd_config_check },
	{ "config", "dump", 2, 2, NULL, NULL, 0, cmd_config_dump },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* 1 when the words fit the command: their count, and after min_words
 * only its flag and its option with a value. */
static int
fits(const struct command *cmd, int argc, char **argv)
{
	int i;

	if (argc < cmd->min_words || (cmd->max_words >= 0 && argc > cmd->max_words))
		return 0;
	if (cmd->flag == NULL && cmd->valued == NULL)
		return 1;
	for (i = cmd->min_words; i < argc; i++) {
		if (cmd->flag != NULL && strcmp(argv[i], cmd->flag) == 0)
			continue;
		if (cmd->valued != NULL && strcmp(argv[i], cmd->valued) == 0 && i + 1 < argc) {
			i++;
			continue;
		}
		return 0;
	}
	return 1;
}

/* The command the words name, or NULL; *known says whether the command
 * word itself is one. */
static const struct command *
find_command(int argc, char **argv, int *known)
{
	size_t i;

	*known = 0;
	for (i = 0; i < NCOMMANDS; i++) {
		const struct command *cmd = &commands[i];

		if (strcmp(argv[0], cmd->word) != 0)
			continue;
		*known = 1;
		if ((cmd->sub == NULL || (argc > 1 && strcmp(argv[1], cmd->sub) == 0)) &&
		    fits(cmd, argc, argv))
			return cmd;
	}
	return NULL;
}

int
mg_cli_run(const struct mg_conf *conf, const char *sql_dir, int argc, char **argv)
{
	struct ctx x = { conf, sql_dir, NULL, argc, argv };
	const struct command *cmd;
	char err[MG_ERR_DETAIL_LEN];
	int known, status;

	if (argc < 1)
		return usage_error("no command given");
	cmd = find_command(argc, argv, &known);
	if (!known)
		return usage_error("unknown command");
	if (cmd == NULL)
		return usage_error(strcmp(argv[0], "config") == 0 ? "unknown config command"
		    : "unknown command or wrong arguments");
	if (cmd->db && mg_admin_new(conf, "modelgate-cli", &x.admin, err, sizeof(err)) != MG_OK)
		return fail("%s", err);
	status = cmd->run(&x);
	mg_admin_free(x.admin);
	return status;
}
