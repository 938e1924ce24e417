/* route.c -- Routing by model string: patterns, the upstream that serves a
 * model and the string it is sent, a request's candidates with their
 * fallbacks, and each upstream's health in this process (failures in a
 * row, cooldowns), kept in atomics so that no request waits on a lock or
 * on Postgres for it.  Called by conf.c (checks), the gateway, the
 * catalog sync and /metrics and /healthz. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "metrics.h"
#include "route.h"
#include "text.h"

int
mg_route_pattern_valid(const char *p)
{
	size_t n = strlen(p);
	const char *star = strchr(p, '*');

	if (n == 0 || n >= MG_MODEL_ID_MAX || !mg_text_printable(p, n))
		return 0;
	return star == NULL || star == p + n - 1;
}

/* The literal part of p: its length, and whether a '*' ends it. */
static size_t
literal(const char *p, int *wild)
{
	size_t n = strlen(p);

	*wild = n > 0 && p[n - 1] == '*';
	return *wild ? n - 1 : n;
}

int
mg_route_pattern_match(const char *p, const char *model)
{
	int wild;
	size_t n = literal(p, &wild);

	if (wild)
		return strncmp(p, model, n) == 0;
	return strcmp(p, model) == 0;
}

int
mg_route_pattern_covers(const char *a, const char *b)
{
	int wa, wb;
	size_t na = literal(a, &wa), nb = literal(b, &wb);

	if (!wa)
		return !wb && strcmp(a, b) == 0;
	/* a prefix covers whatever starts with it, wild or not */
	return nb >= na && strncmp(a, b, na) == 0;
}

int
mg_route_find(const struct mg_conf *c, const char *model, int *pattern)
{
	int i, j;

	for (i = 0; i < c->n_ups && i < MG_UPSTREAMS_MAX; i++) {
		for (j = 0; j < c->ups[i].n_patterns; j++) {
			if (mg_route_pattern_match(c->ups[i].patterns[j], model)) {
				if (pattern != NULL)
					*pattern = j;
				return i;
			}
		}
	}
	return -1;
}

void
mg_route_model_for(const struct mg_conf *c, int up, const char *model, char *out, size_t size)
{
	const struct mg_updef *d = &c->ups[up];
	const char *sent = model;
	int j, wild;

	if (d->strip_prefix) {
		for (j = 0; j < d->n_patterns; j++) {
			size_t n = literal(d->patterns[j], &wild);

			if (!mg_route_pattern_match(d->patterns[j], model))
				continue;
			/* never strip a model to nothing */
			if (wild && model[n] != '\0')
				sent = model + n;
			break;
		}
	}
	mg_text_copy(out, size, sent);
}

/* Adds the calls of upstream up for model (one, then its retries) unless
 * that pair is planned already.  The new count. */
static int
plan_add(const struct mg_conf *c, int up, const char *model, struct mg_route_candidate *out,
    int n, int max)
{
	int i, k;

	for (i = 0; i < n; i++)
		if (out[i].upstream == up && strcmp(out[i].model, model) == 0)
			return n;
	for (k = 0; k <= c->ups[up].retries && n < max; k++, n++) {
		out[n].upstream = up;
		mg_text_copy(out[n].model, sizeof(out[n].model), model);
		mg_route_model_for(c, up, model, out[n].sent, sizeof(out[n].sent));
	}
	return n;
}

int
mg_route_plan(const struct mg_conf *c, const char *const *models, int n_models,
    struct mg_route_candidate *out, int max)
{
	int m, n = 0, f;

	for (m = 0; m < n_models && n < max; m++) {
		int up = mg_route_find(c, models[m], NULL);

		if (up < 0) {
			if (m == 0)
				return 0;
			continue;
		}
		n = plan_add(c, up, models[m], out, n, max);
		for (f = 0; f < c->ups[up].n_fallbacks && n < max; f++)
			n = plan_add(c, c->ups[up].fallbacks[f], models[m], out, n, max);
	}
	return n;
}

int
mg_route_plan_single(const struct mg_route_candidate *c, int n)
{
	int i;

	for (i = 1; i < n; i++)
		if (c[i].upstream != c[0].upstream || strcmp(c[i].model, c[0].model) != 0)
			return 0;
	return n > 0;
}

/* --- health -------------------------------------------------------------- */

struct health {
	long long failures;               /* in a row */
	long long until_ms;               /* cooling down until then */
	unsigned long long calls[MG_ROUTE__COUNT];
	unsigned long long cooldowns;
};

static struct health health[MG_UPSTREAMS_MAX];

const char *
mg_route_outcome_name(enum mg_route_outcome o)
{
	static const char *const names[] = { "ok", "connect", "timeout", "status", "broken" };

	return (unsigned)o < MG_ROUTE__COUNT ? names[o] : "unknown";
}

long long
mg_route_now_ms(void)
{
	struct timespec ts;

	mg_clock_now(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
mg_route_health_reset(void)
{
	memset(health, 0, sizeof(health));
}

int
mg_route_available(int up, long long now_ms, long long *wait_ms)
{
	long long until;

	*wait_ms = 0;
	if (up < 0 || up >= MG_UPSTREAMS_MAX)
		return 0;
	until = __atomic_load_n(&health[up].until_ms, __ATOMIC_RELAXED);
	if (until <= now_ms)
		return 1;
	*wait_ms = until - now_ms;
	return 0;
}

void
mg_route_report(int up, enum mg_route_outcome o, long long now_ms, int failures,
    int cooldown_s)
{
	struct health *h;
	long long n;

	if (up < 0 || up >= MG_UPSTREAMS_MAX || (unsigned)o >= MG_ROUTE__COUNT)
		return;
	h = &health[up];
	__atomic_add_fetch(&h->calls[o], 1, __ATOMIC_RELAXED);
	mg_metrics_upstream(up, (int)o);
	if (o == MG_ROUTE_OK) {
		__atomic_store_n(&h->failures, 0, __ATOMIC_RELAXED);
		return;
	}
	n = __atomic_add_fetch(&h->failures, 1, __ATOMIC_RELAXED);
	if (n >= failures) {
		/* past the threshold (or after a cooldown): one more failure
		 * starts the next one */
		__atomic_store_n(&h->failures, failures, __ATOMIC_RELAXED);
		__atomic_store_n(&h->until_ms, now_ms + (long long)cooldown_s * 1000,
		    __ATOMIC_RELAXED);
		__atomic_add_fetch(&h->cooldowns, 1, __ATOMIC_RELAXED);
		mg_metrics_upstream(up, MG_METRICS_UPSTREAM_COOLDOWN);
	}
}

void
mg_route_health(int up, long long now_ms, struct mg_route_health *out)
{
	struct health *h;
	int i;

	memset(out, 0, sizeof(*out));
	if (up < 0 || up >= MG_UPSTREAMS_MAX)
		return;
	h = &health[up];
	out->cooling = !mg_route_available(up, now_ms, &out->cooldown_left_ms);
	out->failures = __atomic_load_n(&h->failures, __ATOMIC_RELAXED);
	for (i = 0; i < MG_ROUTE__COUNT; i++)
		out->calls[i] = __atomic_load_n(&h->calls[i], __ATOMIC_RELAXED);
	out->cooldowns = __atomic_load_n(&h->cooldowns, __ATOMIC_RELAXED);
}

enum mg_err
mg_route_metrics(const struct mg_conf *c, struct mg_buf *out)
{
	static const char *const heads[] = {
		"# HELP modelgate_upstream_up 1 when this responder process calls the upstream, 0 while "
		"it cools down.\n# TYPE modelgate_upstream_up gauge\n",
		"# HELP modelgate_upstream_failures Failed calls in a row, this process.\n"
		"# TYPE modelgate_upstream_failures gauge\n",
		"# HELP modelgate_upstream_cooldown_seconds What is left of the cooldown, this process."
		"\n# TYPE modelgate_upstream_cooldown_seconds gauge\n",
	};
	long long now = mg_route_now_ms();
	char line[256];
	size_t k;
	int i;

	/* the calls and cooldowns are counted for the host (metrics.c);
	 * this is each upstream's state as this process sees it */
	for (k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
		if (mg_buf_adds(out, heads[k]) != MG_OK)
			return MG_ERR_TOO_BIG;
		for (i = 0; i < c->n_ups && i < MG_UPSTREAMS_MAX; i++) {
			struct mg_route_health h;

			mg_route_health(i, now, &h);
			if (k == 0)
				snprintf(line, sizeof(line), "modelgate_upstream_up{upstream=\"%s\"} %d\n",
				    c->ups[i].name, !h.cooling);
			else if (k == 1)
				snprintf(line, sizeof(line), "modelgate_upstream_failures{upstream=\"%s\"} "
				    "%lld\n", c->ups[i].name, h.failures);
			else
				snprintf(line, sizeof(line), "modelgate_upstream_cooldown_seconds{"
				    "upstream=\"%s\"} %lld.%03lld\n", c->ups[i].name,
				    h.cooldown_left_ms / 1000, h.cooldown_left_ms % 1000);
			/* names are letters, digits and "_-." (conf.c): no escape */
			if (mg_buf_adds(out, line) != MG_OK)
				return MG_ERR_TOO_BIG;
		}
	}
	return MG_OK;
}

_Static_assert(MG_ROUTE__COUNT <= MG_METRICS_UPSTREAM_COOLDOWN,
    "metrics.h counts every outcome of a call");
_Static_assert(MG_UPSTREAMS_MAX <= MG_METRICS_UPSTREAMS, "metrics.h counts every upstream");

enum mg_err
mg_route_health_json(const struct mg_conf *c, struct mg_buf *out)
{
	long long now = mg_route_now_ms();
	char item[160];
	int i;

	if (mg_buf_adds(out, "\"upstreams\":{") != MG_OK)
		return MG_ERR_TOO_BIG;
	for (i = 0; i < c->n_ups && i < MG_UPSTREAMS_MAX; i++) {
		struct mg_route_health h;

		mg_route_health(i, now, &h);
		snprintf(item, sizeof(item), "%s\"%s\":{\"state\":\"%s\",\"failures\":%lld,"
		    "\"retry_in_ms\":%lld}", i > 0 ? "," : "", c->ups[i].name,
		    h.cooling ? "cooling" : "up", h.failures, h.cooldown_left_ms);
		if (mg_buf_adds(out, item) != MG_OK)
			return MG_ERR_TOO_BIG;
	}
	return mg_buf_adds(out, "}") != MG_OK ? MG_ERR_TOO_BIG : MG_OK;
}
